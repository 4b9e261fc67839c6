"""camera (Wu & Smyth 2012): a competitive gene-set test on a linear model of log-scale expression
that widens each set's null by the correlation between its genes, estimated from the residuals.

The algorithm is R limma's camera(y, index, design, contrast, inter.gene.cor = NA) with its other
defaults (limma 3.54: no weights, use.ranks FALSE, allow.neg.cor FALSE, trend.var FALSE):
  - the design is reparametrised so that its last coefficient is the contrast, and every gene is
    fitted by one QR decomposition: the contrast's effect (unscaled t) and the n - p residual
    effects;
  - moderated t = unscaled t / sqrt(posterior variance), the variances squeezed towards a prior
    fitted to them (squeezeVar / fitFDist, empirical Bayes of Smyth 2004), then turned into
    z-scores (zscoreT, Hill's approximation) with df = residual df + prior df;
  - per set of m genes: the variance inflation factor vif = m x the mean square, over the residual
    effects, of the set's mean standardised residual, so the inter-gene correlation is
    (vif - 1) / (m - 1), reported as estimated but counted as 0 when negative (vif at least 1);
  - the set's mean z against the other genes' in a two-sample t whose variance of the set mean is
    multiplied by vif, on min(n - p, G - 2) df (G - 2 with a preset correlation); two-sided
    p = 2 min(P(down), P(up)); the direction is the smaller tail; FDR by BH.

A preset correlation (inter_gene_cor, limma's default 0.01) is accepted for comparison only: on
null cohorts with co-expressed genes it calls many sets (tests/test_camera.py, bench/README.md),
because blood genes of one pathway co-vary much more than that.

The pipeline runs it on the blind VST of the contrast's samples (results/vst/vst.h5ad) and on the
genes GSEA ranks (enrichment.analysis.tested_genes), with the contrast's design matrix.
"""

import logging

import anndata as ad
import numpy as np
import pandas as pd
from scipy.special import digamma, polygamma
from scipy.stats import t as t_distribution

from trdpipe.enrichment.analysis import tested_genes
from trdpipe.io.genesets import load_collection
from trdpipe.model.design import contrast_model_matrix
from trdpipe.model.tables import bh
from trdpipe.model.vst import variance_stabilise

log = logging.getLogger("trd")

CAMERA_COLUMNS = ["collection", "term", "name", "n_genes", "correlation", "direction", "pvalue", "fdr"]


# ----------------------------------------------------------------------------- empirical Bayes
def trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by limma's Newton iteration (its start and stopping rule)."""
    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        trigamma = float(polygamma(1, y))
        step = trigamma * (1 - trigamma / x) / float(polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


def fit_f_dist(variances: np.ndarray, df: float) -> tuple[float, float]:
    """(scale, df2) of the scaled F distribution the variances follow (limma's fitFDist without a
    covariate): moments of the log variances, the tiny ones offset away from zero."""
    x = np.maximum(variances[np.isfinite(variances) & (variances > -1e-15)], 0.0)
    median = float(np.median(x))
    x = np.maximum(x, 1e-5 * (median if median > 0 else 1.0))
    e = np.log(x) - digamma(df / 2) + np.log(df / 2)
    excess = float(np.var(e, ddof=1)) - float(polygamma(1, df / 2))
    if excess <= 0:
        return float(np.mean(x)), np.inf
    df2 = 2 * trigamma_inverse(excess)
    return float(np.exp(np.mean(e) + digamma(df2 / 2) - np.log(df2 / 2))), df2


def squeeze_var(variances: np.ndarray, df: float) -> tuple[np.ndarray, float]:
    """(posterior variances, prior df): each variance shrunk towards the fitted prior (squeezeVar)."""
    prior, df_prior = fit_f_dist(variances, df)
    if np.isinf(df_prior):
        return np.full(variances.shape, prior), df_prior
    return (df * variances + df_prior * prior) / (df + df_prior), df_prior


def zscore_t_hill(t: np.ndarray, df: float) -> np.ndarray:
    """z-scores of t statistics by Hill's (1970) approximation (limma's zscoreT, method 'hill')."""
    df = min(df, 1e100)
    a = df - 0.5
    b = 48 * a * a
    z = a * np.log1p(t / df * t)
    z = (((((-0.4 * z - 3.3) * z - 24) * z - 85.5) / (0.8 * z * z + 100 + b) + z + 3) / b + 1) * np.sqrt(z)
    return z * np.sign(t)


# ----------------------------------------------------------------------------- the linear model
def contrast_as_last_coefficient(design: np.ndarray, contrast: np.ndarray) -> np.ndarray:
    """The design rotated so that its last coefficient is contrast'beta / |contrast| and the others
    span the rest (limma's reparametrisation; camera's results do not depend on that rest)."""
    contrast = np.asarray(contrast, dtype=float)
    basis, _ = np.linalg.qr(contrast[:, None], mode="complete")
    basis[:, 0] *= np.sign(basis[:, 0] @ contrast)  # the contrast's own direction, not its opposite
    rotated = np.asarray(design, dtype=float) @ basis
    return np.column_stack([rotated[:, 1:], rotated[:, 0]])


def contrast_effects(expression: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unscaled t of the last coefficient, residual effects (n - p) x genes) of every gene's least
    squares fit: Q'y for the QR decomposition of the design."""
    p = design.shape[1]
    if np.linalg.matrix_rank(design) < p:
        raise ValueError("design matrix is not of full rank")
    q, r = np.linalg.qr(design, mode="complete")
    effects = q.T @ expression.T
    return effects[p - 1] * np.sign(r[p - 1, p - 1]), effects[p:]


def moderated_z(expression: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z-scores of the moderated t of the last coefficient, standardised residuals genes x (n - p))."""
    unscaled_t, residuals = contrast_effects(expression, design)
    df_residual = residuals.shape[0]
    variances = np.mean(residuals**2, axis=0)
    posterior, df_prior = squeeze_var(variances, df_residual)
    df_total = min(df_residual + df_prior, expression.shape[0] * df_residual)
    z = zscore_t_hill(unscaled_t / np.sqrt(posterior), df_total)
    return z, (residuals / np.sqrt(np.maximum(variances, 1e-8))).T


def variance_inflation(standardised: np.ndarray) -> float:
    """m x the mean square of the set's mean standardised residual: 1 + (m - 1) x correlation."""
    return len(standardised) * float(np.mean(np.mean(standardised, axis=0) ** 2))


# ----------------------------------------------------------------------------- camera
def camera(
    expression: np.ndarray,
    sets: dict[str, np.ndarray],
    design: np.ndarray,
    contrast: np.ndarray,
    inter_gene_cor: float | None = None,
) -> pd.DataFrame:
    """camera of every set: columns term, n_genes, correlation, direction (up, down), pvalue, fdr, in
    the order of `sets`.

    expression: log-scale, genes x samples (limma's y); sets: term -> row positions of its genes;
    design: samples x coefficients, full rank; contrast: weights of the coefficients (a unit vector
    picks one). inter_gene_cor None estimates each set's correlation (limma's NA); a number presets
    it for every set (correlation reported as that number).
    """
    design = contrast_as_last_coefficient(design, contrast)
    z, standardised = moderated_z(np.asarray(expression, dtype=float), design)
    n_genes, df_residual = len(z), standardised.shape[1]
    df_camera = n_genes - 2 if inter_gene_cor is not None else min(df_residual, n_genes - 2)
    mean_z, var_z = float(np.mean(z)), float(np.var(z, ddof=1))
    rows = []
    for term, genes in sets.items():
        m, others = len(genes), n_genes - len(genes)
        if inter_gene_cor is not None:
            correlation, vif = inter_gene_cor, 1 + (m - 1) * inter_gene_cor
        elif m > 1:
            vif = variance_inflation(standardised[genes])
            correlation = (vif - 1) / (m - 1)
        else:
            correlation, vif = np.nan, 1.0
        delta = n_genes / others * (float(np.mean(z[genes])) - mean_z)
        pooled = ((n_genes - 1) * var_z - delta**2 * m * others / n_genes) / (n_genes - 2)
        statistic = delta / np.sqrt(pooled * (max(vif, 1.0) / m + 1 / others))
        down, up = t_distribution.cdf(statistic, df_camera), t_distribution.sf(statistic, df_camera)
        rows.append((term, m, correlation, "down" if down < up else "up", 2 * min(down, up)))
    table = pd.DataFrame(rows, columns=["term", "n_genes", "correlation", "direction", "pvalue"])
    table["fdr"] = bh(table["pvalue"].to_numpy())
    return table


def gene_positions(genes: pd.Index, sets: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """term -> row positions of its genes present in `genes` (each once); sets with none are left out."""
    positions = {term: np.unique(genes.get_indexer(members)) for term, members in sets.items()}
    return {term: rows[rows >= 0] for term, rows in positions.items() if (rows >= 0).any()}


def design_and_contrast(obs: pd.DataFrame, design: str, contrast: dict) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix DESeq2 fits (prepare_metadata's coding, formulaic's treatment contrasts) and
    the unit vector of the contrast's coefficient (test vs reference)."""
    matrix, coefficient = contrast_model_matrix(obs, design, contrast)
    return np.asarray(matrix, dtype=float), (matrix.columns == coefficient).astype(float)


def camera_from_counts(
    counts: pd.DataFrame,
    samples: pd.DataFrame,
    design: str,
    contrast: dict,
    sets: dict[str, list[str]],
    settings: dict | None = None,
    inter_gene_cor: float | None = None,
) -> pd.DataFrame:
    """camera of `sets` (term -> gene names, the counts' unique columns) on the blind VST of raw counts
    (samples x genes, filtered as the caller wants), for the design and contrast as the config
    gives them; samples: the sample sheet's covariates (index = the counts' rows). Columns term,
    n_genes, correlation, direction, pvalue, fdr; sets with no gene in the counts are left out."""
    obs = samples.loc[counts.index]
    adata = ad.AnnData(counts.to_numpy(), obs=obs, var=pd.DataFrame(index=counts.columns.astype(str)))
    expression = variance_stabilise(adata, settings or {}, 1).T
    matrix, vector = design_and_contrast(obs, design, contrast)
    positions = gene_positions(pd.Index(counts.columns.astype(str)), sets)
    return camera(expression, positions, matrix, vector, inter_gene_cor)


def camera_collections(
    de: pd.DataFrame,
    vst: ad.AnnData,
    samples: pd.Index,
    design: str,
    contrast: dict,
    collections: dict[str, str],
    annotation: pd.DataFrame | None,
    *,
    min_size: int,
    max_size: int,
) -> pd.DataFrame:
    """camera of every collection (name -> GMT path; each BH-adjusted separately) for one contrast:
    the VST (samples x genes, var = gene_id) of its samples and of the genes GSEA ranks (one row per
    symbol), the sets GSEA tests, its design and contrast. Sorted by p-value."""
    tested = tested_genes(de)
    values = vst[samples.astype(str), tested["gene_id"].astype(str)]
    expression = np.asarray(values.X, dtype=float).T
    matrix, vector = design_and_contrast(values.obs, design, contrast)
    log.info("camera: %d genes x %d samples, design %s", *expression.shape, design)
    tables = []
    for name, path in collections.items():
        collection = load_collection(name, path, tested.index, min_size, max_size, annotation)
        positions = gene_positions(tested.index, {t: genes for t, (_, genes) in collection.sets.items()})
        table = camera(expression, positions, matrix, vector)
        table.insert(0, "collection", name)
        table.insert(2, "name", table["term"].map({t: d for t, (d, _) in collection.sets.items()}))
        tables.append(table)
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=CAMERA_COLUMNS)
    table = pd.concat(tables, ignore_index=True)[CAMERA_COLUMNS]
    return table.sort_values(["pvalue", "term"], kind="mergesort", ignore_index=True)


def log_calls(table: pd.DataFrame, cut: float) -> None:
    """Per collection: sets at FDR < cut, up and down, and the five smallest p-values."""
    for name, sets in table.groupby("collection", sort=False):
        called = sets[sets["fdr"] < cut]
        log.info(
            "camera %s: %d of %d sets at FDR < %g (%d up, %d down)",
            name,
            len(called),
            len(sets),
            cut,
            int((called["direction"] == "up").sum()),
            int((called["direction"] == "down").sum()),
        )
        for row in sets.head(5).itertuples():
            log.info(
                "  %s %s %s p %.3g fdr %.3g correlation %.3f",
                row.term,
                row.name,
                row.direction,
                row.pvalue,
                row.fdr,
                row.correlation,
            )
