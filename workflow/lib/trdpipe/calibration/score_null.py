"""A label-permutation null for the pathway tests that costs seconds: the score statistic of the
contrast under the model fitted without it, for the observed labels and K permutations at once.

The model without the contrast's variable (the primary design minus it, on the samples of the
contrast's two levels) is fitted once by the DE engine (trdpipe.model.engines; PyDESeq2 by default); its means mu,
dispersions alpha and size factors do not depend on the labels. For the indicator x of the test
level (a labelling), the score of the contrast's coefficient in the negative binomial GLM with
log link (Rao's score test), gene by gene, is

    U = sum_i x_i (y_i - mu_i) / (1 + alpha mu_i)
    V = x' W x - x' W Z (Z' W Z)^-1 Z' W x,    W = diag(mu / (1 + alpha mu)),

Z the design matrix of the fit without the contrast, and the statistic is U / sqrt(V): signed
as the Wald statistic (positive = higher in the test group), on the same scale, and close to it
in rank (tests/test_score_null.py). U for every labelling is one product of the labellings with
a fixed samples x genes matrix; V needs one small p x p matrix per gene. The observed labels are
ranked by the same statistic as the permuted ones, so the permutation test is exact under
exchangeability of the labels within strata. The labellings are the calibration's
(permutation.permute_labels: its seed, strata and enumeration rules).
"""

import logging

import anndata as ad
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trdpipe.calibration.permutation import permute_labels
from trdpipe.model.engines import make_engine
from trdpipe.model.engines.base import NullFit

log = logging.getLogger("trd")

# labellings x genes x covariates cells per block of genes: bounds memory (~3 arrays of this
# many float64 in flight, ~250 MB) while keeping the matrix products large
BLOCK_CELLS = 10_000_000


def contrast_samples(adata: ad.AnnData, contrast: dict) -> ad.AnnData:
    """The samples of the contrast's test and reference levels (all of them with two levels)."""
    levels = adata.obs[contrast["variable"]].astype(str)
    return adata[levels.isin([contrast["test"], contrast["reference"]]).to_numpy()].copy()


def score_statistics(indicators: np.ndarray, fit: NullFit) -> np.ndarray:
    """U / sqrt(V) of every labelling and gene: indicators samples x labellings (1 = test level),
    the engine's fit without the contrast (weights and weighted residuals samples x genes, z
    samples x covariates) -> labellings x genes. NaN where V is 0 (a gene the fit gives no
    weight)."""
    x = indicators.astype(float)
    block = max(1, BLOCK_CELLS // max(x.shape[1] * fit.z.shape[1], 1))
    parts = []
    for start in range(0, fit.weight.shape[1], block):
        genes = slice(start, start + block)
        parts.append(block_statistics(x, fit.weighted_residual[:, genes], fit.weight[:, genes], fit.z))
    return np.concatenate(parts, axis=1)


def block_statistics(x: np.ndarray, residual: np.ndarray, weight: np.ndarray, z: np.ndarray) -> np.ndarray:
    """score_statistics of one block of genes."""
    score = x.T @ residual
    # x' W x: the indicator is 0 or 1, so x_i^2 = x_i
    variance = x.T @ weight
    zwz = np.einsum("ig,ij,ik->gjk", weight, z, z)
    xwz = np.stack([x.T @ (weight * z[:, [j]]) for j in range(z.shape[1])], axis=2)
    # pseudo-inverse: a gene without weight (all counts 0 in these samples) gets V = 0, not an error
    projected = np.einsum("lgj,gjk->lgk", xwz, np.linalg.pinv(zwz))
    variance -= np.einsum("lgk,lgk->lg", projected, xwz)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(variance > 0, score / np.sqrt(np.maximum(variance, 0)), np.nan)


def score_null(
    adata: ad.AnnData,
    design: str,
    contrast: dict,
    settings: dict,
    strata: list[str],
    permutations: int,
    seed: int,
    n_cpus: int = 1,
) -> ad.AnnData:
    """The score statistic of K within-strata labellings (obs = permutations, var = genes, as the
    calibration's null_statistics.h5ad) and of the observed labels (var column
    observed_statistic)."""
    adata = contrast_samples(adata, contrast)
    labels = permute_labels(adata.obs, contrast["variable"], strata, permutations, seed)
    observed = adata.obs[[contrast["variable"]]].astype(str)
    indicators = pd.concat([observed, labels], axis=1).to_numpy() == contrast["test"]
    with threadpool_limits(limits=n_cpus, user_api="blas"):
        fit = make_engine(settings, n_cpus).fit_without_contrast(adata, design, contrast)
        stat = score_statistics(indicators, fit)
    log.info(
        "score null: %d labellings x %d genes, %d covariates in the model without %s",
        labels.shape[1],
        adata.n_vars,
        fit.z.shape[1],
        contrast["variable"],
    )
    var = pd.DataFrame(
        {
            "gene_symbol": adata.var["gene_symbol"].fillna("").astype(str).to_numpy(),
            "observed_statistic": stat[0],
        },
        index=pd.Index(adata.var_names.astype(str), name="gene_id"),
    )
    null = ad.AnnData(
        X=stat[1:].astype(np.float32),
        obs=pd.DataFrame(index=pd.Index(list(labels.columns), name="permutation")),
        var=var,
    )
    null.uns["score_null"] = {
        "seed": int(seed),
        "strata": list(strata),
        "K": int(labels.shape[1]),
        "X": "score statistic of the contrast under the model without it",
    }
    return null
