"""Variance-stabilised expression of the filtered cohort, for heat maps, PCA and prediction."""

import anndata as ad

from trdpipe.model.design import variance_stabilise


def vst_cohort(adata: ad.AnnData, settings: dict, n_cpus: int) -> ad.AnnData:
    """Same samples and genes, X = blind VST values (log2-like scale)."""
    return ad.AnnData(
        X=variance_stabilise(adata, settings, n_cpus), obs=adata.obs.copy(), var=adata.var.copy()
    )
