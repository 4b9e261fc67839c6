"""Rule genotype_association: each candidate variant's and polygenic score's association with one
contrast, with allele frequencies by group. The work is done in trdpipe.genotypes.association."""

import anndata as ad
import pandas as pd

from trdpipe.common import read_sample_table, run_script, write_table
from trdpipe.genotypes.association import association_table


def main(smk) -> None:
    settings = dict(smk.params.genotypes)
    table = association_table(
        ad.read_h5ad(smk.input.cohort, backed="r").obs,
        read_sample_table(smk.input.dosages),
        pd.read_csv(smk.input.variants, sep="\t", dtype={"chrom": str}),
        list(settings["scores"]),
        smk.params.design,
        dict(smk.params.contrast),
        int(settings["min_allele_count"]),
    )
    write_table(table, smk.output.table, float_format="%.6g")


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
