"""Variance-stabilised expression of the filtered cohort, for heat maps, PCA and prediction."""

import anndata as ad

from de_model import variance_stabilise
from de_tables import gene_by_sample_table
from pipeline_common import atomic_output, write_table


def vst_cohort(adata: ad.AnnData, settings: dict, n_cpus: int) -> ad.AnnData:
    """Same samples and genes, X = blind VST values (log2-like scale)."""
    return ad.AnnData(
        X=variance_stabilise(adata, settings, n_cpus), obs=adata.obs.copy(), var=adata.var.copy()
    )


def main(smk) -> None:
    result = vst_cohort(ad.read_h5ad(smk.input.h5ad), dict(smk.params.deseq2), smk.threads)
    with atomic_output(smk.output.h5ad) as tmp:
        result.write_h5ad(tmp)
    # the same matrix as a table for readers without AnnData
    write_table(
        gene_by_sample_table(result.X, result.obs_names, result.var), smk.output.tsv, float_format="%.6g"
    )


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
