"""The blind variance-stabilising transformation (R DESeq2's vst), for heat maps, PCA, camera,
the cell scores and prediction."""

import logging

import anndata as ad
import numpy as np
from pydeseq2.dds import DeseqDataSet

from trdpipe.model.engines.pydeseq2 import make_dataset

log = logging.getLogger("trd")


def trend_genes(normed_means: np.ndarray, nsub: int) -> np.ndarray | None:
    """The genes R DESeq2's vst() fits its dispersion trend on: `nsub` of the genes with mean
    normalised count > 5, evenly spaced in the order of their means (R: o[round(seq(1,
    length(o), length = nsub))]). None when fewer genes qualify, or nsub is 0: then all are used.
    """
    eligible = np.flatnonzero(normed_means > 5)
    if nsub <= 0 or len(eligible) < nsub:
        return None
    ordered = eligible[np.argsort(normed_means[eligible], kind="stable")]
    return ordered[np.round(np.linspace(1, len(ordered), nsub)).astype(int) - 1]


def fit_vst(adata: ad.AnnData, settings: dict, n_cpus: int) -> DeseqDataSet:
    """The blind VST (design ~ 1) fitted on adata's samples, as R DESeq2's vst(blind=TRUE,
    nsub=vst_nsub): its vst_transform() applies it to these samples or, given counts, to others
    (their size factors from these samples' geometric means, the dispersion trend from these).

    The parametric dispersion trend is fitted on `vst_nsub` genes (trend_genes) with the size
    factors of all genes, then applied to every gene; that fit is most of the VST's time. With
    fewer qualifying genes, vst_nsub 0 or fit_type mean, all genes are used (R's
    varianceStabilizingTransformation), which is PyDESeq2's vst_fit().
    """
    dds = make_dataset(adata, "~ 1", settings, n_cpus)
    dds.fit_size_factors()
    subset = trend_genes(dds.var["_normed_means"].to_numpy(), settings.get("vst_nsub", 1000))
    if subset is None or dds.fit_type != "parametric":
        log.info("VST: dispersion trend fitted on all %d genes", dds.n_vars)
        dds.vst_fit(use_design=False)
        return dds
    log.info("VST: dispersion trend fitted on %d of %d genes (vst_nsub)", len(subset), dds.n_vars)
    trend = make_dataset(adata[:, subset], "~ 1", settings, n_cpus)
    # the state fit_size_factors() leaves, taken from all genes (R: sizeFactors of the full object)
    trend.obs["size_factors"] = dds.obs["size_factors"].to_numpy()
    trend.layers["normed_counts"] = dds.layers["normed_counts"][:, subset]
    trend.var["_normed_means"] = dds.var["_normed_means"].to_numpy()[subset]
    trend.fit_dispersion_trend()  # its design is ~ 1 already: the VST's fit
    if "trend_coeffs" not in trend.uns:
        # PyDESeq2 switched to a mean trend (its parametric fit did not converge: counts with no
        # mean-dispersion relation, from a wrong strandedness, say); the VST then takes one too
        log.warning("VST: the parametric dispersion trend did not converge; a mean trend is used")
        dds.vst_fit_type = "mean"
        dds.vst_fit(use_design=False)
        return dds
    dds.uns["vst_trend_coeffs"] = trend.uns["trend_coeffs"]
    dds.vst_fit_type = "parametric"  # what vst_fit() would set
    return dds


def variance_stabilise(adata: ad.AnnData, settings: dict, n_cpus: int) -> np.ndarray:
    """Blind VST of adata's samples x genes (fit_vst applied to the samples it was fitted on)."""
    return np.asarray(fit_vst(adata, settings, n_cpus).vst_transform())


def vst_cohort(adata: ad.AnnData, settings: dict, n_cpus: int) -> ad.AnnData:
    """Same samples and genes, X = blind VST values (log2-like scale)."""
    return ad.AnnData(
        X=variance_stabilise(adata, settings, n_cpus), obs=adata.obs.copy(), var=adata.var.copy()
    )
