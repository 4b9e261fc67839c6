"""Rule vst: variance-stabilised expression of the filtered cohort, for heat maps, PCA and prediction.
The work is done in trdpipe.model.vst."""

import anndata as ad

from trdpipe.common import atomic_output, run_script
from trdpipe.model.tables import write_gene_by_sample_table
from trdpipe.model.vst import vst_cohort


def main(smk) -> None:
    result = vst_cohort(ad.read_h5ad(smk.input.h5ad), dict(smk.params.deseq2), smk.threads)
    with atomic_output(smk.output.h5ad) as tmp:
        result.write_h5ad(tmp)
    # the same matrix as a table for readers without AnnData (in blocks of genes, as deseq2's
    # normalised counts: no genes x samples copy of the whole matrix)
    write_gene_by_sample_table(result.X, result.obs_names, result.var, smk.output.tsv, float_format="%.6g")


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
