"""PyDESeq2's DeseqDataSet and DeseqStats with their serial bookkeeping vectorised.

With ``BatchedInference`` the gene-wise fits take about two thirds of the DE step; most of
the rest was PyDESeq2's own code, which no Inference backend reaches: a Python loop over
the genes before the dispersion trend fit, pandas label look-ups between its iterations,
a sample-wise median by partition for the size factors, two full sorts per trimmed mean
in Cook's dispersion estimate, and one Benjamini-Hochberg run and pandas assignment per
cutoff of the independent filtering. The subclasses below compute the same quantities
with whole-array NumPy, calling the same Inference methods on the same inputs, so results
equal PyDESeq2's (tests/test_batched_dds.py). Cases they do not cover (other size-factor
methods, control genes, sparse counts) go to PyDESeq2's own methods.

A dataset given ``warm_starts`` (the fit of the same genes under other labels, as the
label-permutation refits have) starts its gene-wise fits from them (BatchedInference's
starting_from); without, it fits as PyDESeq2 does.

With PyDESeq2's ``low_memory``, each samples x genes intermediate is dropped once the last
stage that reads it is done: the gene-wise fit's means before the IRLS of the fold changes
(not after the MAP fit, as PyDESeq2 does: its iterative size factors read them after it), the
IRLS's means and hat diagonals once Cook's distances are computed, the Cook's distances and
PyDESeq2's copy of the refitted genes once the refit is done.

Written against PyDESeq2 0.5 (requirements pin it below 0.6): the overridden methods
follow that version's private attribute names.
"""

import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from math import floor

import numpy as np
import pandas as pd
from pydeseq2.dds import DeseqDataSet
from pydeseq2.ds import DeseqStats
from pydeseq2.utils import lowess, n_or_more_replicates
from scipy.stats import false_discovery_control

# PyDESeq2's stopping rules for the trend fit (dds._fit_parametric_dispersion_trend).
TREND_MIN_COEFF = 1e-10
TREND_LOG_CHANGE_TOL = 1e-6
TREND_KEEP_RATIO = (1e-4, 15.0)
# Cook's trimmed moments (utils.robust_method_of_moments_disp, trimmed_cell_variance):
# trim fraction and variance scale by cell size (< 3.5, < 23.5, larger), and the floor.
CELL_TRIM = (1 / 3, 1 / 4, 1 / 8)
CELL_SCALE = (2.04, 1.86, 1.51)
ALL_SAMPLES_TRIM = 0.125
COOKS_MIN_DISP = 0.04
# Independent filtering (ds._independent_filtering): cutoffs and the lowess span.
FILTER_CUTOFFS = 50
FILTER_LOWESS_FRAC = 1 / 5
# Genes per block of the Cook's computations: a block's temporaries stay in cache.
BLOCK_GENES = 512


def in_blocks(fill_block: Callable[[slice], None], n_items: int, block: int, n_threads: int) -> None:
    """fill_block(items) for consecutive slices of `block` items, in n_threads threads; each
    call writes its own part of a preallocated output. NumPy releases the GIL in its sorts
    and ufuncs, so the blocks run in parallel."""
    blocks = [slice(start, min(start + block, n_items)) for start in range(0, n_items, block)]
    if n_threads <= 1 or len(blocks) <= 1:
        for items in blocks:
            fill_block(items)
        return
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        list(pool.map(fill_block, blocks))


def sorted_median_rows(x: np.ndarray) -> np.ndarray:
    """Median of each row, equal to np.median(x, axis=1) (same middle values, same mean of
    two); NumPy's SIMD sort is several times faster than the partition np.median uses."""
    s = np.sort(x, axis=1)
    n = s.shape[1]
    if n % 2:
        return s[:, n // 2].copy()
    return (s[:, n // 2 - 1] + s[:, n // 2]) / 2


def median_of_ratios(counts: np.ndarray, n_threads: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log geometric means, the genes with no zero count, and the size factors of
    preprocessing.deseq2_norm_fit/transform, taking the logs once and the samples' medians
    in blocks of samples."""
    with np.errstate(divide="ignore"):
        log_counts = np.log(counts)
    logmeans = log_counts.mean(axis=0)
    filtered_genes = ~np.isinf(logmeans)
    log_medians = np.empty(len(counts))

    def fill_block(samples: slice) -> None:
        log_ratios = log_counts[samples][:, filtered_genes] - logmeans[filtered_genes]
        log_medians[samples] = sorted_median_rows(log_ratios)

    in_blocks(fill_block, len(counts), max(1, -(-len(counts) // (4 * n_threads))), n_threads)
    return logmeans, filtered_genes, np.exp(log_medians)


def trimmed_means(rows: np.ndarray, trim: float) -> np.ndarray:
    """Mean of each row without its floor(n * trim) smallest and largest values
    (utils.trimmed_mean along the row); rows are contiguous, so the sort is fast."""
    n = rows.shape[1]
    ntrim = floor(n * trim)
    return np.sort(rows, axis=1)[:, ntrim : n - ntrim].mean(axis=1)


def trimmed_variances(rows: np.ndarray, trim: float, scale: float) -> np.ndarray:
    """utils.trimmed_variance of each row (the scale corrects for trimmed large squares)."""
    squared_error = rows - trimmed_means(rows, trim)[:, None]
    squared_error **= 2
    return scale * trimmed_means(squared_error, trim)


def trim_class(cell_size: int) -> int:
    """Index into CELL_TRIM/CELL_SCALE for a cell of this many samples (utils.trimfn)."""
    return 2 if cell_size >= 23.5 else 1 if cell_size >= 3.5 else 0


def cell_trimmed_variances(genes_by_samples: np.ndarray, cells: np.ndarray | None) -> np.ndarray:
    """The largest trimmed variance of each gene over the cells (one label per sample), or
    over all samples when cells is None (utils.trimmed_cell_variance, trimmed_variance)."""
    if cells is None:
        return trimmed_variances(genes_by_samples, ALL_SAMPLES_TRIM, CELL_SCALE[2])
    variances = []
    for cell in np.unique(cells):
        size_class = trim_class(int((cells == cell).sum()))
        variances.append(
            trimmed_variances(
                genes_by_samples[:, cells == cell], CELL_TRIM[size_class], CELL_SCALE[size_class]
            )
        )
    return np.max(variances, axis=0)


def robust_moments_dispersions(
    normed_counts: np.ndarray, design_matrix: pd.DataFrame, n_threads: int = 1
) -> np.ndarray:
    """utils.robust_method_of_moments_disp: the trimmed method-of-moments dispersions that
    Cook's distances use. The largest trimmed variance over the design cells with 3 or more
    replicates, or over all samples when there are none."""
    three_or_more = n_or_more_replicates(design_matrix, 3).to_numpy()
    samples, cells = slice(None), None
    if three_or_more.any():
        samples = three_or_more
        design = design_matrix.loc[three_or_more, :]
        cells = design.groupby(design.columns.values.tolist()).ngroup().to_numpy()
    variance = np.empty(normed_counts.shape[1])

    def fill_block(genes: slice) -> None:
        # the samples are selected block by block (for all genes at once, a samples x genes
        # float64 copy: 880 MB at 6,000 x 18,364); genes x samples, so that the sorts run
        # along contiguous rows
        rows = np.ascontiguousarray(normed_counts[samples, genes].T)
        variance[genes] = cell_trimmed_variances(rows, cells)

    in_blocks(fill_block, len(variance), BLOCK_GENES, n_threads)
    mean = normed_counts.mean(axis=0)
    return np.maximum((variance - mean) / mean**2, COOKS_MIN_DISP)


def cooks_distances(
    counts: np.ndarray,
    mu: np.ndarray,
    hat_diagonals: np.ndarray,
    dispersions: np.ndarray,
    num_vars: int,
    n_threads: int = 1,
) -> np.ndarray:
    """Cook's distances as dds.calculate_cooks computes them, operation for operation, in
    blocks of genes so that the temporaries stay in cache (the whole-matrix passes were
    memory-bound)."""
    cooks = np.empty(mu.shape)

    def fill_block(genes: slice) -> None:
        block_mu = mu[:, genes]
        residual = counts[:, genes] - block_mu
        residual **= 2
        variance = block_mu**2
        variance *= dispersions[None, genes]
        variance += block_mu
        residual /= variance
        residual /= num_vars
        hat = hat_diagonals[:, genes]
        leverage = 1 - hat
        leverage **= 2
        residual *= hat / leverage
        cooks[:, genes] = residual

    in_blocks(fill_block, mu.shape[1], BLOCK_GENES, n_threads)
    return cooks


def bh_rejections(sorted_pvalues: np.ndarray, alpha: float) -> int:
    """Genes with a Benjamini-Hochberg adjusted p-value below alpha, from the p-values in
    increasing order, with scipy's false_discovery_control arithmetic (p * (m / rank))."""
    m = len(sorted_pvalues)
    if m <= 1:  # scipy returns a single p-value unadjusted
        return int((sorted_pvalues < alpha).sum())
    adjusted = sorted_pvalues * (m / np.arange(1, m + 1, dtype=float))
    below = np.flatnonzero(adjusted < alpha)
    return int(below[-1] + 1) if len(below) else 0


@dataclass
class WarmStarts:
    """Starting points of a dataset's gene-wise fits, from a fit of the same genes and design
    columns (its non-zero genes, in order): the coefficients (natural log) start both IRLS
    fits, the gene-wise and MAP dispersions their dispersion fits."""

    coefficients: np.ndarray
    genewise_dispersions: np.ndarray
    map_dispersions: np.ndarray

    @classmethod
    def of(cls, dds: DeseqDataSet) -> "WarmStarts":
        """The starts a fitted dataset gives (its final values, Cook's refits included)."""
        non_zero = dds.var["non_zero"].to_numpy()
        return cls(
            dds.varm["LFC"].to_numpy()[non_zero],
            dds.var["genewise_dispersions"].to_numpy()[non_zero],
            dds.var["MAP_dispersions"].to_numpy()[non_zero],
        )

    def of_stage(self, stage: str) -> dict[str, np.ndarray]:
        """The starts of the Inference calls of a stage, by method."""
        return {
            "genewise": {"irls": self.coefficients, "alpha_mle": self.genewise_dispersions},
            "MAP": {"alpha_mle": self.map_dispersions},
            "LFC": {"irls": self.coefficients},
        }[stage]


class BatchedDeseqDataSet(DeseqDataSet):
    """``DeseqDataSet`` with size factors, the dispersion trend's bookkeeping and Cook's
    distances computed for all genes at once; same results, same attributes. With
    ``warm_starts`` set (and a BatchedInference), the gene-wise fits start from them."""

    warm_starts: WarmStarts | None = None

    def _starting_from(self, stage: str):
        """The inference's warm starts for one stage, or nothing without warm_starts."""
        if self.warm_starts is None:
            return nullcontext()
        return self.inference.starting_from(**self.warm_starts.of_stage(stage))

    def fit_genewise_dispersions(self, vst: bool = False) -> None:  # noqa: D102
        with self._starting_from("genewise"):
            super().fit_genewise_dispersions(vst)

    def fit_MAP_dispersions(self) -> None:  # noqa: D102
        # _mu_hat is kept, which PyDESeq2's low_memory drops here: the iterative size factors
        # read it after this fit (a KeyError in PyDESeq2 0.5), the warm starts in fit_LFC too
        low_memory, self.low_memory = self.low_memory, False
        try:
            with self._starting_from("MAP"):
                super().fit_MAP_dispersions()
        finally:
            self.low_memory = low_memory

    def fit_LFC(self) -> None:  # noqa: D102
        starts = None if self.warm_starts is None else self.genewise_coefficients()
        if self.low_memory:
            # read last just above: freed before the IRLS allocates its means and hat
            # diagonals (each samples x genes float64, 880 MB at 6,000 x 18,364)
            self.layers.pop("_mu_hat", None)
        with nullcontext() if starts is None else self.inference.starting_from(irls=starts):
            super().fit_LFC()

    def refit(self) -> None:  # noqa: D102
        super().refit()
        if self.low_memory and hasattr(self, "counts_to_refit"):
            # PyDESeq2's copy of the refitted genes (their counts with the outliers replaced,
            # normalised counts, Cook's distances), which only the refit reads
            del self.counts_to_refit

    def genewise_coefficients(self) -> np.ndarray:
        """The coefficients of the gene-wise IRLS fit (non-zero genes), from its means:
        mu = size factor x exp(X beta), unthresholded, so log(mu / s) = X beta exactly."""
        mu = self.layers["_mu_hat"][:, self.non_zero_idx]
        log_means = np.log(mu / self.obs["size_factors"].to_numpy()[:, None])
        return np.linalg.lstsq(self.obsm["design_matrix"].to_numpy(), log_means, rcond=None)[0].T

    @property
    def n_threads(self) -> int:
        """Threads for the vectorised steps: those of the Inference backend."""
        return getattr(self.inference, "n_cpus", 1)

    @property
    def non_zero_idx(self) -> np.ndarray | slice:
        """Positions of the genes with a non-zero count, as PyDESeq2 sets them in
        fit_genewise_dispersions; when that is every gene, a slice of all, so that PyDESeq2's
        X[:, non_zero_idx] and layers[...][:, non_zero_idx] (eight in a fit) are views, not
        copies of a samples x genes matrix."""
        return self._non_zero_idx

    @non_zero_idx.setter
    def non_zero_idx(self, positions: np.ndarray) -> None:
        self._non_zero_idx = slice(None) if len(positions) == self.n_vars else positions

    def fit_size_factors(self, fit_type=None, control_genes=None) -> None:  # noqa: D102
        fit_type = fit_type or self.size_factors_fit_type
        counts = self.X
        if (
            fit_type != "ratio"
            or control_genes is not None
            or self.control_genes is not None
            or not isinstance(counts, np.ndarray)
            or (counts == 0).any(0).all()
        ):
            super().fit_size_factors(fit_type=fit_type, control_genes=control_genes)
            return
        self.logmeans, self.filtered_genes, size_factors = median_of_ratios(counts, self.n_threads)
        self.layers["normed_counts"] = counts / size_factors[:, None]
        self.obs["size_factors"] = size_factors
        self.var["_normed_means"] = self.layers["normed_counts"].mean(axis=0)

    def _fit_parametric_dispersion_trend(self, vst: bool = False) -> None:
        """PyDESeq2's iteration (gamma GLM through the Inference backend, dropping genes far
        from the curve until the coefficients settle) on positional masks instead of a
        per-gene loop and label look-ups."""
        disp_param_name = "vst_genewise_dispersions" if vst else "genewise_dispersions"
        if disp_param_name not in self.var:
            self.fit_genewise_dispersions(vst)
        non_zero = self.var["non_zero"].to_numpy()
        dispersions = self.var[disp_param_name].to_numpy()[non_zero]
        covariates = 1 / self.var["_normed_means"].to_numpy()[non_zero]
        genes = self.var_names[non_zero]
        keep = np.isfinite(covariates)
        old_coeffs, coeffs = np.array([0.1, 0.1]), np.array([1.0, 1.0])
        while (coeffs > TREND_MIN_COEFF).all() and (
            np.log(np.abs(coeffs / old_coeffs)) ** 2
        ).sum() >= TREND_LOG_CHANGE_TOL:
            old_coeffs = coeffs
            coeffs, predictions, converged = self.inference.dispersion_trend_gamma_glm(
                pd.Series(covariates[keep], index=genes[keep]),
                pd.Series(dispersions[keep], index=genes[keep]),
            )
            if not converged or (coeffs <= TREND_MIN_COEFF).any():
                warnings.warn(
                    "The dispersion trend curve fitting did not converge. "
                    "Switching to a mean-based dispersion trend.",
                    UserWarning,
                    stacklevel=2,
                )
                self._fit_mean_dispersion_trend(vst)
                return
            ratios = dispersions[keep] / predictions
            far = (ratios < TREND_KEEP_RATIO[0]) | (ratios >= TREND_KEEP_RATIO[1])
            keep[np.flatnonzero(keep)[far]] = False
        trend_coeffs = pd.Series(coeffs, index=["a0", "a1"])
        if vst:
            self.uns["vst_trend_coeffs"] = trend_coeffs
            return
        self.uns["trend_coeffs"] = trend_coeffs
        self.uns["disp_function_type"] = "parametric"
        fitted = np.full(self.n_vars, np.nan)
        fitted[non_zero] = self.disp_function(self.var["_normed_means"].to_numpy()[non_zero])
        self.var["fitted_dispersions"] = fitted

    def calculate_cooks(self) -> None:  # noqa: D102
        if "dispersions" not in self.var:
            self.fit_MAP_dispersions()
        non_zero = self.var["non_zero"].to_numpy()
        design_matrix = self.obsm["design_matrix"]
        dispersions = robust_moments_dispersions(
            self.layers["normed_counts"][:, self.non_zero_idx], design_matrix, self.n_threads
        )
        distances = cooks_distances(
            self.X[:, self.non_zero_idx],
            self.obsm["_mu_LFC"],
            self.obsm["_hat_diagonals"],
            dispersions,
            design_matrix.shape[-1],
            self.n_threads,
        )
        if self.low_memory:
            del self.obsm["_mu_LFC"]
            del self.obsm["_hat_diagonals"]
        if non_zero.all():
            self.layers["cooks"] = distances
        else:
            self.layers["cooks"] = np.full((self.n_obs, self.n_vars), np.nan)
            self.layers["cooks"][:, non_zero] = distances


class BatchedDeseqStats(DeseqStats):
    """``DeseqStats`` whose independent filtering counts the rejections at every cutoff
    from one sort of the p-values, and runs Benjamini-Hochberg only at the chosen one."""

    def _independent_filtering(self) -> None:
        if not hasattr(self, "p_values"):
            self.run_wald_test()
        base_mean = self.base_mean.to_numpy()
        pvalues = self.p_values.to_numpy()
        lower_quantile = np.mean(base_mean == 0)
        upper_quantile = 0.95 if lower_quantile < 0.95 else 1
        theta = np.linspace(lower_quantile, upper_quantile, FILTER_CUTOFFS)
        cutoffs = np.quantile(base_mean, theta)
        tested = np.flatnonzero(~np.isnan(pvalues))
        order = tested[np.argsort(pvalues[tested])]
        num_rej = np.array(
            [bh_rejections(pvalues[order][base_mean[order] >= cutoff], self.alpha) for cutoff in cutoffs]
        )
        j = chosen_cutoff(theta, num_rej)
        use = (base_mean >= cutoffs[j]) & ~np.isnan(pvalues)
        padj = np.full(len(pvalues), np.nan)
        if use.any():
            padj[use] = false_discovery_control(pvalues[use], method="bh")
        self.padj = pd.Series(padj, index=self.dds.var_names, name=j)


def chosen_cutoff(theta: np.ndarray, num_rej: np.ndarray) -> int:
    """ds._independent_filtering's choice: the first cutoff whose rejections exceed the
    lowess fit's maximum less the residuals' root mean square (0 with 10 or fewer)."""
    if num_rej.max() <= 10:
        return 0
    fit = lowess(theta, num_rej, frac=FILTER_LOWESS_FRAC)
    residual = num_rej[num_rej > 0] - fit[num_rej > 0]
    above = np.flatnonzero(num_rej > fit.max() - np.sqrt(np.mean(residual**2)))
    return int(above[0]) if len(above) else 0
