"""What a DE engine gives the pipeline: one class per engine, all with this interface.

The rules and the calibration call these methods only; what an engine does inside (PyDESeq2's
stages, voom's weights) stays in its own module.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd


@dataclass
class ContrastFit:
    """The fit and test of a contrast: the results table (trdpipe.model.results' contract) and the
    normalised counts of the fit, samples x genes in the cohort's order."""

    table: pd.DataFrame
    normalised_counts: np.ndarray


@dataclass
class NullFit:
    """The fit of the design without the contrast's variable, as the score test needs it: for each
    sample and gene the working weight w and the weighted residual w (y - mu) on the scale the
    engine models, and the reduced design matrix z (samples x covariates). The score statistic of
    a labelling x is then x'r / sqrt(x'Wx - x'Wz (z'Wz)^-1 z'Wx)."""

    weighted_residual: np.ndarray
    weight: np.ndarray
    z: np.ndarray


class DEEngine(ABC):
    """A differential-expression engine, configured by the `de:` section (settings) and the rule's
    threads."""

    name: str  # the config's value of `engine:`
    method: str  # what the log and the report call it
    unfilled: tuple[str, ...] = ()  # contract columns this engine leaves NaN

    def __init__(self, settings: dict, n_cpus: int = 1):
        self.settings = settings
        self.n_cpus = n_cpus

    @abstractmethod
    def fit_contrast(
        self, adata: ad.AnnData, design: str, contrast: dict, shrink: bool = False
    ) -> ContrastFit:
        """Fit the design on adata's samples (raw counts) and test the contrast; with `shrink`, the
        table adds log2FoldChange_shrunk where the engine offers it."""

    @abstractmethod
    def fit_without_contrast(self, adata: ad.AnnData, design: str, contrast: dict) -> NullFit:
        """The design minus the contrast's variable, fitted once for a score test of any labelling."""

    @abstractmethod
    def permutation_refits(
        self, adata: ad.AnnData, design: str, contrast: dict
    ) -> Callable[[pd.Series], pd.DataFrame]:
        """A function that refits the model with the contrast's variable replaced by given labels
        (a Series over adata's samples) and returns its results table, indexed by gene in the
        cohort's order, unshrunk. What does not depend on the labels is fitted once, here."""
