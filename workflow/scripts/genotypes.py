"""Rule genotypes: the genotype file (VCF/BCF or dosage table) as checked alt-allele dosages of the
candidate variants and the user's own. The work is done in trdpipe.genotypes.reading."""

from trdpipe.common import run_script, write_table
from trdpipe.genotypes.reading import check_scores, read_genotypes
from trdpipe.genotypes.variants import analysed_variants
from trdpipe.io.sample_sheet import read_sample_sheet


def main(smk) -> None:
    settings = dict(smk.params.genotypes)
    sheet = read_sample_sheet(smk.input.samples)
    check_scores(sheet, list(settings["scores"]), smk.input.samples)
    variants = analysed_variants(smk.input.candidates, settings["variants"])
    genotypes = read_genotypes(
        settings["file"],
        settings["format"],
        variants,
        sheet,
        smk.input.samples,
        float(settings["max_missing"]),
        smk.input.candidates,
    )
    write_table(genotypes.dosages.reset_index(), smk.output.dosages, float_format="%.4g")
    write_table(genotypes.variants, smk.output.variants, float_format="%.6g")


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
