"""Rule build_resources: build the shipped gene annotation and gene-set resources from Bioconductor's
SQLite files. The work is done in trdpipe.resources.build."""

from trdpipe.common import run_script
from trdpipe.resources.build import build


def main(smk) -> None:
    build(
        smk.input.orgdb,
        smk.input.godb,
        smk.output.genes,
        smk.output.go_bp,
        smk.output.curated,
    )


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
