"""Rule genotype_eqtl: each candidate gene's VST expression against the dosage of each of its variants,
with the design's covariates, and the expression-by-genotype figure. The work is done in
trdpipe.genotypes.eqtl, the figure by trdpipe.genotypes.figures."""

import anndata as ad
import pandas as pd

from trdpipe.common import read_sample_table, run_script, save_figure, write_table
from trdpipe.genotypes.eqtl import adjusted_expression, eqtl_table
from trdpipe.genotypes.figures import MAX_PANELS, eqtl_figure


def main(smk) -> None:
    vst = ad.read_h5ad(smk.input.vst)
    dosages = read_sample_table(smk.input.dosages)
    variants = pd.read_csv(smk.input.variants, sep="\t", dtype={"chrom": str})
    table = eqtl_table(vst, dosages, variants, smk.params.design)
    write_table(table, smk.output.table, float_format="%.6g")
    tested = table[table["pvalue"].notna()].head(MAX_PANELS)
    panels = [
        (row, adjusted_expression(vst, dosages, row["gene_id"], row["variant_id"], smk.params.design))
        for _, row in tested.iterrows()
    ]
    save_figure(eqtl_figure(panels), smk.output.figure)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
