"""Rule build_mirna_annotation: build the shipped human miRNA annotation from miRBase 22's hsa.gff3
and its families. The work is done in trdpipe.resources.mirna."""

from trdpipe.common import run_script
from trdpipe.resources.mirna import build_mirna


def main(smk) -> None:
    build_mirna(smk.input.gff3, smk.input.families, smk.output.mirna)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
