"""The PyDESeq2 engine (the default): DESeq2's negative binomial model and Wald test, fitted by
PyDESeq2 with the vectorised backend of batched_deseq2 or PyDESeq2's own.

Every use of PyDESeq2's internals is here: the stage names wrapped for the log, the size factors
pinned for the permutation refits, the fitted means of the score test.
"""

import functools
import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from pydeseq2.dds import DeseqDataSet
from pydeseq2.default_inference import DefaultInference
from pydeseq2.ds import DeseqStats

from batched_deseq2.dds import BatchedDeseqDataSet, BatchedDeseqStats, WarmStarts
from batched_deseq2.inference import BatchedInference
from trdpipe.common import log_duration
from trdpipe.model.design import prepare_metadata, shrink_coefficient
from trdpipe.model.engines.base import ContrastFit, DEEngine, NullFit
from trdpipe.model.results import SHRUNK_LFC, results_table
from trdpipe.model.sensitivity import model_design

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


def make_dataset(
    adata: ad.AnnData,
    design: str,
    settings: dict,
    n_cpus: int,
    contrast: dict | None = None,
    low_memory: bool = False,
) -> DeseqDataSet:
    """A PyDESeq2 dataset of raw counts with the prepared design metadata. With `low_memory`
    (and the batched backend), the dataset drops its samples x genes intermediates once used
    (batched_deseq2/dds.py): for a fit that needs its results only."""
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
        # PyDESeq2's own class with low_memory fails on iterative size factors (its fit reads
        # _mu_hat after dropping it); the batched one keeps it until the fold changes' IRLS
        low_memory=low_memory and issubclass(dataset_class, BatchedDeseqDataSet),
    )


def fit_and_test(dds, contrast: dict, settings: dict, var: pd.DataFrame) -> pd.DataFrame:
    """DESeq2 on a prepared dataset (the label permutations give theirs pinned size factors),
    each stage's time in the log. With lfc_shrink, log2FoldChange_shrunk is added beside the
    maximum-likelihood log2FoldChange, on which the Wald test and the calls rest."""
    log_stages(dds, FIT_STAGES)
    dds.deseq2()
    stats = stats_class(settings)(
        dds,
        contrast=[contrast["variable"], contrast["test"], contrast["reference"]],
        alpha=settings["alpha"],
        cooks_filter=settings.get("cooks_filter", True),
        independent_filter=settings.get("independent_filter", True),
        inference=dds.inference,  # the backend make_dataset chose from the config
        quiet=True,
    )
    log_stages(stats, TEST_STAGES)
    stats.summary()
    table = stats.results_df.copy()
    if settings.get("lfc_shrink", False):
        stats.lfc_shrink(coeff=shrink_coefficient(contrast))
        table[SHRUNK_LFC] = stats.results_df["log2FoldChange"]
    return results_table(table, var)


# ---------------------------------------------------------------- refits under permuted labels
@dataclass
class SizeFactors:
    """What DESeq2's fit_size_factors leaves, for label-independent methods (ratio, poscounts)."""

    size_factors: np.ndarray
    normed_counts: np.ndarray
    normed_means: np.ndarray


def label_independent_fit(
    adata: ad.AnnData, design: str, contrast: dict, settings: dict
) -> SizeFactors | None:
    """Size factors and normalised counts, fitted once for all permutations. None for the
    `iterative` method, whose size factors depend on the design (so on the labels)."""
    if settings.get("size_factors_fit_type", "ratio") == "iterative":
        return None
    dds = make_dataset(adata, design, settings, 1, contrast)
    dds.fit_size_factors()
    return SizeFactors(
        dds.obs["size_factors"].to_numpy(),
        np.asarray(dds.layers["normed_counts"]),
        dds.var["_normed_means"].to_numpy(),
    )


def pin_size_factors(dds, fitted: SizeFactors) -> None:
    """Give a dataset the size factors fitted once; its deseq2() then skips fitting them again."""
    dds.obs["size_factors"] = fitted.size_factors
    dds.layers["normed_counts"] = fitted.normed_counts
    dds.var["_normed_means"] = fitted.normed_means
    dds.fit_size_factors = lambda *args, **kwargs: None  # the values it would compute are set


def relabelled_dataset(
    adata: ad.AnnData,
    labels: pd.Series,
    design: str,
    contrast: dict,
    settings: dict,
    n_cpus: int,
    fitted: SizeFactors | None,
    starts=None,
):
    """The primary model's dataset with the contrast variable replaced by `labels`, its size
    factors pinned to `fitted` and, with the batched backend, its gene-wise fits starting from
    `starts` (WarmStarts; None: PyDESeq2's starting points). Its samples x genes intermediates
    are dropped once used (low_memory): a refit needs its results only."""
    obs = adata.obs.copy()
    obs[contrast["variable"]] = labels.loc[obs.index].to_numpy()
    dds = make_dataset(
        ad.AnnData(X=adata.X, obs=obs, var=adata.var), design, settings, n_cpus, contrast, low_memory=True
    )
    if fitted is not None:
        pin_size_factors(dds, fitted)
    if starts is not None and isinstance(dds, BatchedDeseqDataSet):
        dds.warm_starts = starts
    return dds


def observed_starts(
    adata: ad.AnnData, design: str, contrast: dict, settings: dict, n_cpus: int, fitted: SizeFactors | None
):
    """The fit with the observed labels (the primary fit), whose coefficients and dispersions the
    permutation refits start from: a WarmStarts, or None with the default backend."""
    dds = relabelled_dataset(
        adata, adata.obs[contrast["variable"]], design, contrast, settings, n_cpus, fitted
    )
    if not isinstance(dds, BatchedDeseqDataSet):
        return None
    dds.deseq2()  # the dataset's fits only: the starts need no test
    return WarmStarts.of(dds)


def refit_permuted(
    adata: ad.AnnData,
    labels: pd.Series,
    design: str,
    contrast: dict,
    settings: dict,
    n_cpus: int,
    fitted: SizeFactors | None,
    starts=None,
) -> pd.DataFrame:
    """The primary model refitted with the contrast variable replaced by `labels`: the same samples,
    genes, design and DESeq2 settings (shrinkage aside, which the null does not use), its fits
    started from `starts` when given (observed_starts). One row per gene in the cohort's order."""
    dds = relabelled_dataset(adata, labels, design, contrast, settings, n_cpus, fitted, starts)
    table = fit_and_test(dds, contrast, {**settings, "lfc_shrink": False}, adata.var)
    del dds
    gc.collect()  # the dataset's reference cycles (fit_contrast): freed before the next refit
    return table.set_index("gene_id").loc[adata.var_names]


def nb_null_fit(counts: np.ndarray, mu: np.ndarray, dispersion: np.ndarray, z: np.ndarray) -> NullFit:
    """The negative binomial GLM's (log link) working weight mu / (1 + phi mu) and weighted
    residual (y - mu) / (1 + phi mu), counts and mu samples x genes, phi per gene."""
    return NullFit(
        weighted_residual=(counts - mu) / (1 + dispersion * mu), weight=mu / (1 + dispersion * mu), z=z
    )


# ---------------------------------------------------------------- the engine
class PyDESeq2Engine(DEEngine):
    name = "pydeseq2"
    method = "DESeq2 (PyDESeq2), Wald test"

    def fit_contrast(
        self, adata: ad.AnnData, design: str, contrast: dict, shrink: bool = False
    ) -> ContrastFit:
        dds = make_dataset(adata, design, self.settings, self.n_cpus, contrast, low_memory=True)
        table = fit_and_test(dds, contrast, {**self.settings, "lfc_shrink": shrink}, adata.var)
        # the counts divided by the fit's size factors (R: counts(dds, normalized = TRUE))
        normalised = np.asarray(dds.layers["normed_counts"])
        # PyDESeq2's AnnData views of the dataset (self[:, genes]) are reference cycles that hold
        # it, and the stage logs' wrappers too: collected now, the dataset's counts (880 MB at
        # 6,000 x 18,364) are freed here, not at some later collection
        del dds
        gc.collect()
        return ContrastFit(table, normalised)

    def fit_without_contrast(self, adata: ad.AnnData, design: str, contrast: dict) -> NullFit:
        """PyDESeq2's fit of the reduced design: its fitted means (size factors included) and
        dispersions."""
        reduced = model_design(design, {"remove": [contrast["variable"]]})
        dds = make_dataset(adata, reduced, self.settings, self.n_cpus)
        dds.deseq2()
        return nb_null_fit(
            np.asarray(adata.X, dtype=float),
            np.asarray(dds.obsm["_mu_LFC"], dtype=float),
            dds.var["dispersions"].to_numpy(dtype=float),
            np.asarray(dds.obsm["design_matrix"], dtype=float),
        )

    def permutation_refits(
        self, adata: ad.AnnData, design: str, contrast: dict
    ) -> Callable[[pd.Series], pd.DataFrame]:
        """Size factors fitted once (unless iterative); each refit's gene-wise fits start from the
        observed fit (the same optimum, in fewer iterations)."""
        fitted = label_independent_fit(adata, design, contrast, self.settings)
        starts = observed_starts(adata, design, contrast, self.settings, self.n_cpus, fitted)
        return lambda labels: refit_permuted(
            adata, labels, design, contrast, self.settings, self.n_cpus, fitted, starts
        )
