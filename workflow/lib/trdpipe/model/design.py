"""The DESeq2 model as the pipeline fits it: metadata preparation, the dataset, VST.

Shared by the deseq2, vst and qc scripts so that every step fits the same way.
"""

import functools
import logging

import anndata as ad
import numpy as np
import pandas as pd
from pydeseq2.dds import DeseqDataSet
from pydeseq2.default_inference import DefaultInference
from pydeseq2.ds import DeseqStats

from batched_deseq2.dds import BatchedDeseqDataSet, BatchedDeseqStats
from batched_deseq2.inference import BatchedInference
from trdpipe.checks.inputs import design_variables
from trdpipe.common import log_duration

log = logging.getLogger("trd")

INFERENCE_BACKENDS = {"batched": BatchedInference, "default": DefaultInference}
# The dataset and statistics classes of each backend: `batched` also vectorises PyDESeq2's
# own per-gene code (workflow/lib/batched_deseq2/dds.py); `default` is PyDESeq2 as published.
MODEL_CLASSES = {"batched": (BatchedDeseqDataSet, BatchedDeseqStats), "default": (DeseqDataSet, DeseqStats)}


# PyDESeq2's stages as DeseqDataSet.deseq2() and DeseqStats.summary() call them, named for the log.
FIT_STAGES = {
    "fit_size_factors": "size factors",
    "fit_genewise_dispersions": "genewise dispersions",
    "fit_dispersion_trend": "dispersion trend",
    "fit_dispersion_prior": "dispersion prior",
    "fit_MAP_dispersions": "MAP dispersions",
    "fit_LFC": "log fold changes (IRLS)",
    "calculate_cooks": "Cook's distances",
    "refit": "refit of the genes with Cook's outliers",
}
TEST_STAGES = {
    "run_wald_test": "Wald test",
    "_cooks_filtering": "Cook's filtering",
    "_independent_filtering": "independent filtering and BH",
    "_p_value_adjustment": "BH adjustment",
    "lfc_shrink": "log fold-change shrinkage (apeGLM-like prior)",
}


def log_stages(model, stages: dict[str, str]) -> None:
    """Make each of the model's stage methods log its duration when called.

    The methods are wrapped on this one object, so deseq2() and summary() keep PyDESeq2's own
    order and conditions (Cook's refit, independent filtering) and give the same results.
    """
    for name, stage in stages.items():
        setattr(model, name, _timed(getattr(model, name), stage))


def _timed(method, stage: str):
    @functools.wraps(method)
    def timed(*args, **kwargs):
        with log_duration(stage):
            return method(*args, **kwargs)

    return timed


def make_inference(n_cpus: int, backend: str = "batched"):
    """The PyDESeq2 inference backend named in the config; threads come from the rule.

    `batched` fits many genes at once (same results as PyDESeq2's `default`, which fits
    one gene at a time; see tests/test_batched_inference.py and bench/).
    """
    return INFERENCE_BACKENDS[backend](n_cpus=n_cpus)


def stats_class(settings: dict) -> type[DeseqStats]:
    """The DeseqStats class of the configured backend (MODEL_CLASSES)."""
    return MODEL_CLASSES[settings.get("inference", "batched")][1]


def prepare_metadata(
    obs: pd.DataFrame, design: str, contrast: dict | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Design columns ready to fit, and a table saying how each was coded.

    Continuous covariates are centred and scaled (so the optimiser sees
    comparable columns); categorical ones become categories with the contrast's
    reference level first, so model coefficients read 'test vs reference'.
    """
    metadata = pd.DataFrame(index=obs.index)
    rows = []
    for variable in design_variables(design):
        column = obs[variable]
        if pd.api.types.is_numeric_dtype(column):
            centre, scale = float(column.mean()), float(column.std(ddof=1))
            scale = scale if scale > 0 else 1.0
            metadata[variable] = (column - centre) / scale
            rows.append((variable, "continuous", "", "", centre, scale))
        else:
            levels = sorted(column.astype(str).unique())
            if contrast and variable == contrast["variable"]:
                levels.remove(contrast["reference"])
                levels.insert(0, contrast["reference"])
            metadata[variable] = pd.Categorical(column.astype(str), categories=levels)
            rows.append((variable, "categorical", ",".join(levels), levels[0], np.nan, np.nan))
    coding = pd.DataFrame(rows, columns=["variable", "type", "levels", "reference", "centre", "scale"])
    return metadata, coding


def make_dataset(
    adata: ad.AnnData, design: str, settings: dict, n_cpus: int, contrast: dict | None = None
) -> DeseqDataSet:
    """A PyDESeq2 dataset of raw counts with the prepared design metadata."""
    metadata, _ = prepare_metadata(adata.obs, design, contrast)
    counts = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=adata.var_names)
    dataset_class = MODEL_CLASSES[settings.get("inference", "batched")][0]
    return dataset_class(
        counts=counts,
        metadata=metadata,
        design=design,
        fit_type=settings.get("fit_type", "parametric"),
        size_factors_fit_type=settings.get("size_factors_fit_type", "ratio"),
        refit_cooks=settings.get("refit_cooks", True),
        min_replicates=settings.get("min_replicates", 7),
        inference=make_inference(n_cpus, settings.get("inference", "batched")),
        quiet=True,
    )


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
