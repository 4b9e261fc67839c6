"""PyDESeq2 inference with every gene-wise fit done for many genes at once.

PyDESeq2's ``DefaultInference`` fits one gene at a time (a Python-level IRLS
loop or an L-BFGS-B call per gene, spread over joblib workers). The arithmetic
of those fits is tiny, so almost all of their time is interpreter overhead.
``BatchedInference`` runs the same fits for a block of genes at a time with
batched NumPy linear algebra and keeps PyDESeq2's conventions (bounds,
tolerances, starting points, convergence tests). Where PyDESeq2 would leave
its fast path (IRLS diverging, an optimiser not converging) the few genes
concerned are handed to PyDESeq2's own per-gene routine, so they get exactly
the per-gene treatment, including its grid-search fallbacks.

Use::

    inference = BatchedInference(n_cpus=threads)
    dds = DeseqDataSet(counts=..., metadata=..., design=..., inference=inference)
    stats = DeseqStats(dds, contrast=[...], alpha=0.05, inference=inference)

Warm starts: inside ``with inference.starting_from(irls=..., alpha_mle=...)`` the
IRLS and dispersion fits start from the given coefficients and dispersions
instead of PyDESeq2's starting points (the label-permutation refits start from
the observed fit). The convergence tests are the same, so the optimum is the
same within their tolerance; where PyDESeq2's L-BFGS-B would stop at, or jump
from, its own starting point, that point is still examined first.

Memory: genes are processed in blocks so that a block's working arrays (about
a dozen samples x genes float64 arrays, plus genes x design x design matrices)
take about ``block_mib`` MiB (more at thousands of samples, where a block
keeps at least ``min_block_genes`` genes); ``n_cpus`` blocks are in flight at once. Outputs
that PyDESeq2 asks for as samples x genes (means, hat diagonals) are full size
as in the default backend.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Literal

import numba
import numpy as np
from pydeseq2 import utils
from pydeseq2.default_inference import DefaultInference
from pydeseq2.inference import Inference
from scipy.special import expit, gammaln, ndtr
from threadpoolctl import ThreadpoolController

from batched_deseq2 import numba_cache  # noqa: F401, I001 - before numba: where its cache goes, and that it cannot crash a run

# Working arrays per gene in a block: samples-long vectors and design-sized matrices.
SAMPLE_ARRAYS_PER_GENE = 12
MATRIX_ARRAYS_PER_GENE = 8
# IRLS ridge, as in pydeseq2.utils.irls_solver.
IRLS_RIDGE = 1e-6
# Newton on log(dispersion): stop when the step is below this (relative change of alpha),
# or below NEWTON_FINAL_STEP for a full Newton step, which converges quadratically: the
# error after a step s is of order s^2, ~1e-8, below what L-BFGS-B's pgtol resolves.
DISP_STEP_TOL = 1e-7
NEWTON_FINAL_STEP = 1e-4
DISP_MAX_STEP = 5.0
# scipy's L-BFGS-B: default projected-gradient tolerance, line-search decrease constant.
LBFGSB_PGTOL = 1e-5
LBFGSB_LINESEARCH_FTOL = 1e-3
MAX_NEWTON_ITER = 100
# apeGLM MAP (LFC shrinkage): stop when the largest coefficient step is below this.
SHRINK_STEP_TOL = 1e-8
ARMIJO_C = 1e-4
MAX_HALVINGS = 40


class BatchedInference(Inference):
    """Drop-in replacement for ``DefaultInference`` that fits genes in blocks.

    Parameters
    ----------
    n_cpus : int, optional
        Worker threads (blocks processed concurrently); BLAS is held to one
        thread per worker so the total stays at ``n_cpus``. ``None``: all cpus.
    block_mib : float
        Target working memory per block of genes, in MiB (default 16: at 300 x 20,000
        on 2 threads the Inference methods took 10% less time than with 64, likely
        because two blocks in flight fit a 32 MiB L3 cache).
    min_block_genes : int
        At least this many genes per block (default 200). At 3,000 samples, 16 MiB
        holds 54 genes, and the per-block Python work of the batched loops made the
        DE step 15% slower than with blocks of about 200 genes.
    """

    # Already computed for all genes at once by a single small optimisation.
    dispersion_trend_gamma_glm = DefaultInference.dispersion_trend_gamma_glm

    def __init__(self, n_cpus: int | None = None, block_mib: float = 16.0, min_block_genes: int = 200):
        self._n_cpus = utils.get_num_processes(n_cpus)
        self.block_mib = block_mib
        self.min_block_genes = min_block_genes
        self._starts: dict[str, np.ndarray] = {}

    @property
    def n_cpus(self) -> int:  # noqa: D102
        return self._n_cpus

    @n_cpus.setter
    def n_cpus(self, n_cpus: int) -> None:
        self._n_cpus = utils.get_num_processes(n_cpus)

    @contextmanager
    def starting_from(
        self, irls: np.ndarray | None = None, alpha_mle: np.ndarray | None = None
    ) -> Iterator[None]:
        """Warm starts of the irls and alpha_mle calls made inside the block: coefficients
        (genes x design columns, natural log) and dispersions (genes), one row per gene fitted.
        Non-finite starts, and coefficients beyond max_beta, leave a gene's start PyDESeq2's."""
        self._starts = {
            name: np.asarray(start, dtype=float)
            for name, start in (("irls", irls), ("alpha_mle", alpha_mle))
            if start is not None
        }
        try:
            yield
        finally:
            self._starts = {}

    def _start(self, method: str, n_genes: int) -> np.ndarray | None:
        """The warm start of `method` set by starting_from, checked against the genes fitted."""
        start = self._starts.get(method)
        if start is not None and len(start) != n_genes:
            raise ValueError(
                f"BatchedInference: a warm start of {method} for {len(start)} genes, "
                f"but {n_genes} genes to fit"
            )
        return start

    # -- scheduling ---------------------------------------------------------

    def block_size(self, n_samples: int, n_vars: int) -> int:
        """Genes per block so that one block's working set is about ``block_mib``,
        but at least ``min_block_genes``."""
        bytes_per_gene = 8 * (SAMPLE_ARRAYS_PER_GENE * n_samples + MATRIX_ARRAYS_PER_GENE * n_vars * n_vars)
        return max(1, self.min_block_genes, int(self.block_mib * 2**20 // bytes_per_gene))

    def _map_blocks(
        self,
        fit_block: Callable[[slice], tuple],
        n_genes: int,
        n_samples: int,
        n_vars: int,
        gene_axes: tuple[int, ...],
    ) -> tuple:
        """Apply ``fit_block`` to consecutive gene slices in a pool of threads and
        join its outputs; ``gene_axes[k]`` is the gene axis of output k.

        NumPy, BLAS and the numba kernel release the GIL, so threads run in
        parallel; BLAS is limited to one thread each to avoid oversubscription.
        Each worker copies its block's outputs into place: joining them after
        the pool was a serial copy, 15-25% of an IRLS call on 2 threads.
        """
        if n_genes == 0:
            # as DefaultInference, whose per-gene results cannot be unpacked either
            raise ValueError("BatchedInference: no genes to fit")
        size = self.block_size(n_samples, n_vars)
        blocks = [slice(start, min(start + size, n_genes)) for start in range(0, n_genes, size)]
        outputs = BlockOutputs(n_genes, gene_axes)

        def fit_and_store(block: slice) -> None:
            outputs.store(block, fit_block(block))

        with blas_controller().limit(limits=1, user_api="blas"):
            if self.n_cpus == 1 or len(blocks) == 1:
                for block in blocks:
                    fit_and_store(block)
            else:
                with ThreadPoolExecutor(max_workers=self.n_cpus) as pool:
                    list(pool.map(fit_and_store, blocks))
        return outputs.arrays

    # -- the Inference interface ------------------------------------------

    def lin_reg_mu(  # noqa: D102
        self,
        counts: np.ndarray,
        size_factors: np.ndarray,
        design_matrix: np.ndarray,
        min_mu: float,
    ) -> np.ndarray:
        # The least-squares fit of utils.fit_lin_mu, for all genes with one pseudo-inverse.
        pseudo_inverse = np.linalg.pinv(design_matrix)

        def fit_block(genes: slice) -> tuple:
            coefs = pseudo_inverse @ (counts[:, genes] / size_factors[:, None])
            return (np.maximum(size_factors[:, None] * (design_matrix @ coefs), min_mu),)

        return self._map_blocks(fit_block, counts.shape[1], *design_matrix.shape, gene_axes=(1,))[0]

    def fit_rough_dispersions(  # noqa: D102
        self, normed_counts: np.ndarray, design_matrix: np.ndarray
    ) -> np.ndarray:
        # utils.fit_rough_dispersions with the least-squares fit of all genes through one
        # pseudo-inverse (as lin_reg_mu) instead of a scikit-learn regression per block
        n_samples, n_vars = design_matrix.shape
        if n_samples == n_vars:  # its message: no replicates
            return utils.fit_rough_dispersions(normed_counts, design_matrix)
        pseudo_inverse = np.linalg.pinv(design_matrix)

        def fit_block(genes: slice) -> tuple:
            y = normed_counts[:, genes]
            y_hat = np.maximum(design_matrix @ (pseudo_inverse @ y), 1)
            alpha_rde = (((y - y_hat) ** 2 - y_hat) / ((n_samples - n_vars) * y_hat**2)).sum(axis=0)
            return (np.maximum(alpha_rde, 0),)

        return self._map_blocks(fit_block, normed_counts.shape[1], *design_matrix.shape, gene_axes=(0,))[0]

    def fit_moments_dispersions(  # noqa: D102
        self, normed_counts: np.ndarray, size_factors: np.ndarray
    ) -> np.ndarray:
        size_factors = np.asarray(size_factors)

        def fit_block(genes: slice) -> tuple:
            return (utils.fit_moments_dispersions(normed_counts[:, genes], size_factors),)

        return self._map_blocks(fit_block, normed_counts.shape[1], normed_counts.shape[0], 1, gene_axes=(0,))[
            0
        ]

    def irls(  # noqa: D102
        self,
        counts: np.ndarray,
        size_factors: np.ndarray,
        design_matrix: np.ndarray,
        disp: np.ndarray,
        min_mu: float,
        beta_tol: float,
        min_beta: float = -30,
        max_beta: float = 30,
        optimizer: Literal["BFGS", "L-BFGS-B"] = "L-BFGS-B",
        maxiter: int = 250,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        disp = np.asarray(disp, dtype=float)
        start = self._start("irls", counts.shape[1])

        def per_gene(gene: int) -> tuple:
            return utils.irls_solver(
                counts[:, gene],
                size_factors,
                design_matrix,
                disp[gene],
                min_mu=min_mu,
                beta_tol=beta_tol,
                min_beta=min_beta,
                max_beta=max_beta,
                optimizer=optimizer,
                maxiter=maxiter,
            )

        def fit_block(genes: slice) -> tuple:
            return irls_block(
                float_columns(counts, genes),
                size_factors,
                design_matrix,
                disp[genes],
                min_mu,
                beta_tol,
                max_beta,
                maxiter,
                per_gene=lambda g: per_gene(genes.start + g),
                start=None if start is None else start[genes],
            )

        return self._map_blocks(fit_block, counts.shape[1], *design_matrix.shape, gene_axes=(0, 1, 1, 0))

    def alpha_mle(  # noqa: D102
        self,
        counts: np.ndarray,
        design_matrix: np.ndarray,
        mu: np.ndarray,
        alpha_hat: np.ndarray,
        min_disp: float,
        max_disp: float,
        prior_disp_var: float | None = None,
        cr_reg: bool = True,
        prior_reg: bool = False,
        optimizer: Literal["BFGS", "L-BFGS-B"] = "L-BFGS-B",
    ) -> tuple[np.ndarray, np.ndarray]:
        if prior_reg and prior_disp_var is None:
            raise ValueError("Sigma_prior is required for prior regularization")
        alpha_hat = np.asarray(alpha_hat, dtype=float)
        start = self._start("alpha_mle", counts.shape[1])

        def per_gene(gene: int) -> tuple:
            return utils.fit_alpha_mle(
                counts[:, gene],
                design_matrix,
                mu[:, gene],
                alpha_hat[gene],
                min_disp,
                max_disp,
                prior_disp_var=prior_disp_var,
                cr_reg=cr_reg,
                prior_reg=prior_reg,
                optimizer=optimizer,
            )

        def fit_block(genes: slice) -> tuple:
            if optimizer != "L-BFGS-B":
                # The batched Newton reproduces the bounded optimum only.
                return _per_gene_block(per_gene, genes)
            problem = DispersionProblem(
                float_columns(counts, genes),
                design_matrix,
                mu[:, genes],
                np.log(alpha_hat[genes]),
                prior_disp_var if prior_reg else None,
                cr_reg,
            )
            return fit_log_dispersion_block(
                problem,
                np.log(min_disp),
                np.log(max_disp),
                per_gene=lambda g: per_gene(genes.start + g),
                start=None if start is None else np.log(start[genes]),
            )

        return self._map_blocks(fit_block, counts.shape[1], *design_matrix.shape, gene_axes=(0, 0))

    def wald_test(  # noqa: D102
        self,
        design_matrix: np.ndarray,
        disp: np.ndarray,
        lfc: np.ndarray,
        mu: np.ndarray,
        ridge_factor: np.ndarray,
        contrast: np.ndarray,
        lfc_null: np.ndarray,
        alt_hypothesis: (Literal["greaterAbs", "lessAbs", "greater", "less"] | None) = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        disp, lfc, mu = np.asarray(disp, float), np.asarray(lfc, float), np.asarray(mu, float)

        def fit_block(genes: slice) -> tuple:
            return wald_test_block(
                design_matrix,
                disp[genes],
                lfc[genes],
                mu[:, genes],
                ridge_factor,
                contrast,
                lfc_null,
                alt_hypothesis,
            )

        return self._map_blocks(fit_block, mu.shape[1], *design_matrix.shape, gene_axes=(0, 0, 0))

    def lfc_shrink_nbinom_glm(  # noqa: D102
        self,
        design_matrix: np.ndarray,
        counts: np.ndarray,
        size: np.ndarray,
        offset: np.ndarray,
        prior_no_shrink_scale: float,
        prior_scale: float,
        optimizer: str,
        shrink_index: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        size = np.asarray(size, dtype=float)
        offset = np.asarray(offset, dtype=float)

        def per_gene(gene: int) -> tuple:
            return utils.nbinomGLM(
                design_matrix,
                counts[:, gene],
                size[gene],
                offset,
                prior_no_shrink_scale,
                prior_scale,
                optimizer,
                shrink_index,
            )

        prior = ApeglmPrior(prior_no_shrink_scale, prior_scale, shrink_index, design_matrix.shape[1])

        def fit_block(genes: slice) -> tuple:
            return shrink_block(
                design_matrix,
                float_columns(counts, genes),
                size[genes],
                offset,
                prior,
                per_gene=lambda g: per_gene(genes.start + g),
            )

        return self._map_blocks(fit_block, counts.shape[1], *design_matrix.shape, gene_axes=(0, 0, 0))


# -- shared helpers ------------------------------------------------------------


@cache
def blas_controller() -> ThreadpoolController:
    """The thread pools of the loaded libraries, found once: threadpool_limits looks for them at
    every call (2-8 ms, and a DESeq2 fit calls the Inference methods about ten times)."""
    return ThreadpoolController()


def float_columns(counts: np.ndarray, genes: slice) -> np.ndarray:
    """A block of the counts as float64, converted in the worker (PyDESeq2 passes integer
    counts; converting the whole matrix up front was a serial pass over fresh memory)."""
    return np.asarray(counts[:, genes], dtype=float)


class BlockOutputs:
    """Whole-cohort outputs that blocks of genes are written into, allocated when the
    first block arrives (its arrays give each output's shape and dtype)."""

    def __init__(self, n_genes: int, gene_axes: tuple[int, ...]):
        self.n_genes, self.gene_axes = n_genes, gene_axes
        self.arrays: tuple | None = None
        self._allocating = threading.Lock()

    def store(self, genes: slice, parts: tuple) -> None:
        with self._allocating:
            if self.arrays is None:
                self.arrays = tuple(
                    np.empty(part.shape[:axis] + (self.n_genes,) + part.shape[axis + 1 :], dtype=part.dtype)
                    for part, axis in zip(parts, self.gene_axes, strict=True)
                )
        for array, part, axis in zip(self.arrays, parts, self.gene_axes, strict=True):
            array[(slice(None),) * axis + (genes,)] = part


def _per_gene_block(per_gene: Callable[[int], tuple], genes: slice) -> tuple:
    """Outputs of a per-gene PyDESeq2 routine for every gene of a block, stacked."""
    results = [per_gene(g) for g in range(genes.stop - genes.start)]
    return tuple(np.array(column) for column in zip(*results, strict=True))


def outer_rows(design_matrix: np.ndarray) -> np.ndarray:
    """Row-wise outer products x_i x_i^T, flattened: samples x (vars * vars)."""
    n_samples, n_vars = design_matrix.shape
    return (design_matrix[:, :, None] * design_matrix[:, None, :]).reshape(n_samples, -1)


def weighted_gram(outer: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """X^T diag(w_g) X for every gene g (weights: samples x genes) as one matmul."""
    n_vars = int(round(np.sqrt(outer.shape[1])))
    return (weights.T @ outer).reshape(weights.shape[1], n_vars, n_vars)


def quadratic_form_rows(outer: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """x_i^T A_g x_i for every sample i and gene g: samples x genes."""
    return outer @ matrices.reshape(matrices.shape[0], -1).T


def nb_nll_constant(counts: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The part of pydeseq2.utils.nb_nll that does not depend on mu, per gene."""
    inv_disp = 1.0 / disp
    log_binom = gammaln(counts + inv_disp) - gammaln(counts + 1) - gammaln(inv_disp)
    return counts.shape[0] * inv_disp * np.log(disp) - log_binom.sum(axis=0)


def nb_nll_mu_part(counts: np.ndarray, mu: np.ndarray, log_mu: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The mu-dependent part of pydeseq2.utils.nb_nll, per gene (log_mu: log(mu), known to IRLS)."""
    inv_disp = 1.0 / disp
    return ((counts + inv_disp) * np.log(inv_disp + mu) - counts * log_mu).sum(axis=0)


def nb_nll_disp_part(counts: np.ndarray, mu: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """The dispersion-dependent part of pydeseq2.utils.nb_nll, per gene.

    nb_nll without sum(gammaln(y + 1) - y log(mu)): one gammaln and one log per count
    instead of two of each, for fits that change the dispersion only.
    """
    inv_disp = 1.0 / disp
    per_gene = counts.shape[0] * (inv_disp * np.log(disp) + gammaln(inv_disp))
    return per_gene + ((counts + inv_disp) * np.log(inv_disp + mu) - gammaln(counts + inv_disp)).sum(axis=0)


# -- IRLS ----------------------------------------------------------------------


def initial_beta(counts: np.ndarray, size_factors: np.ndarray, design_matrix: np.ndarray) -> np.ndarray:
    """IRLS starting point of pydeseq2.utils.irls_solver, genes x vars."""
    n_vars = design_matrix.shape[1]
    if np.linalg.matrix_rank(design_matrix) == n_vars:
        q, r = np.linalg.qr(design_matrix)
        y = np.log(counts / size_factors[:, None] + 0.1)
        return np.linalg.solve(r, q.T @ y).T
    beta = np.zeros((counts.shape[1], n_vars))
    with np.errstate(divide="ignore"):
        beta[:, 0] = np.log(counts / size_factors[:, None]).mean(axis=0)
    return beta


def irls_block(
    counts, size_factors, design_matrix, disp, min_mu, beta_tol, max_beta, maxiter, per_gene, start=None
) -> tuple:
    """pydeseq2.utils.irls_solver for a block of genes, iterating all of them together.

    Each gene follows the same iterates and stopping rule as the per-gene
    solver; a gene leaves the loop when its deviance ratio falls below
    ``beta_tol``. Genes whose IRLS step leaves [-max_beta, max_beta] or that
    reach ``maxiter`` go to ``per_gene`` (PyDESeq2's solver, which then
    switches to L-BFGS-B and grid search exactly as it would by default).
    ``start``: warm-start coefficients (genes x vars); genes whose start is not finite
    or beyond max_beta start from PyDESeq2's point.
    """
    n_samples, n_genes = counts.shape
    outer = outer_rows(design_matrix)
    ridge = IRLS_RIDGE * np.eye(design_matrix.shape[1])
    sf = size_factors[:, None]
    log_sf, log_min_mu = np.log(sf), np.log(min_mu)

    def thresholded_log_means(coefficients):
        """log max(s exp(X beta), min_mu): the log, that the IRLS working response and the
        deviance take, without a log per count."""
        return np.maximum(log_sf + design_matrix @ coefficients.T, log_min_mu)

    beta = initial_beta(counts, size_factors, design_matrix)
    if start is not None:
        usable = np.isfinite(start).all(axis=1) & (np.abs(start) <= max_beta).all(axis=1)
        beta[usable] = start[usable]
    log_mu = thresholded_log_means(beta)
    mu = np.exp(log_mu)
    nll_constant = nb_nll_constant(counts, disp)
    deviance = np.full(n_genes, 1000.0)
    if start is not None:  # the start is the first iterate: a good one converges at once
        deviance[usable] = -2 * (
            nll_constant[usable]
            + nb_nll_mu_part(counts[:, usable], mu[:, usable], log_mu[:, usable], disp[usable])
        )
    diverged = np.zeros(n_genes, dtype=bool)
    active = np.arange(n_genes)
    # the active genes' arrays, compacted when genes leave (indexing all arrays by `active` at
    # every iteration copied each of them twice)
    y, m, log_m, d, constant, dev = counts, mu, log_mu, disp, nll_constant, deviance
    iteration = 0
    while active.size:
        iteration += 1
        weights = m / (1.0 + m * d)
        working = (log_m - log_sf) + (y - m) / m
        lhs = weighted_gram(outer, weights) + ridge
        rhs = (weights * working).T @ design_matrix
        beta_hat = np.linalg.solve(lhs, rhs[:, :, None])[:, :, 0]

        leaving = (np.abs(beta_hat) > max_beta).any(axis=1) | (iteration >= maxiter)
        diverged[active[leaving]] = True
        if leaving.any():
            stay = ~leaving
            active, beta_hat, y, d = active[stay], beta_hat[stay], y[:, stay], d[stay]
            constant, dev = constant[stay], dev[stay]

        beta[active] = beta_hat
        log_m = thresholded_log_means(beta_hat)
        m = np.exp(log_m)
        new_dev = -2 * (constant + nb_nll_mu_part(y, m, log_m, d))
        going_on = np.abs(new_dev - dev) / (np.abs(new_dev) + 0.1) > beta_tol
        mu[:, active[~going_on]] = m[:, ~going_on]  # the means of the genes that converged
        if not going_on.all():
            active, y, m, log_m = active[going_on], y[:, going_on], m[:, going_on], log_m[:, going_on]
            d, constant = d[going_on], constant[going_on]
        dev = new_dev[going_on]

    # Hat diagonals of W^1/2 X (X^T W X + ridge)^-1 X^T W^1/2, from thresholded means.
    weights = mu / (1.0 + mu * disp)
    inverse = np.linalg.inv(weighted_gram(outer, weights) + ridge)
    hat = weights * quadratic_form_rows(outer, inverse)
    # The per-gene solver returns unthresholded means, as DESeq2 does.
    mu = sf * np.exp(design_matrix @ beta.T)
    converged = np.ones(n_genes, dtype=bool)

    for gene in np.flatnonzero(diverged):
        beta[gene], mu[:, gene], hat[:, gene], converged[gene] = per_gene(gene)
    return beta, mu, hat, converged


# -- dispersion MLE / MAP -----------------------------------------------------

# Where the asymptotic series of di- and trigamma is used (error below 1e-13 from there on).
SERIES_FROM = 10.0
# Counts per chunk of nb_dispersion_sums: its NumPy temporaries stay in cache and under
# glibc's mmap threshold, so they are neither fresh pages nor trips to memory.
CHUNK_COUNTS = 12288


@numba.njit(cache=True, nogil=True, fastmath=True)
def _series_digamma_trigamma(log_x: float, inv: float) -> tuple[float, float]:
    """Digamma and trigamma at x >= SERIES_FROM from log(x) and 1/x (asymptotic series)."""
    f = inv * inv
    psi = (
        log_x
        - 0.5 * inv
        - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f * (1 / 132 - f * 691 / 32760)))))
    )
    psi1 = (
        inv
        + 0.5 * f
        + f
        * inv
        * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f * (1 / 30 - f * (5 / 66 - f * (691 / 2730 - f * 7 / 6))))))
    )
    return psi, psi1


@numba.njit(cache=True, nogil=True, fastmath=True)
def _digamma_trigamma(x: float) -> tuple[float, float]:
    """Digamma and trigamma for x > 0: recurrence up to SERIES_FROM, then the series."""
    psi = 0.0
    psi1 = 0.0
    while x < SERIES_FROM:
        inv = 1.0 / x
        psi -= inv
        psi1 += inv * inv
        x += 1.0
    series, series1 = _series_digamma_trigamma(np.log(x), 1.0 / x)
    return psi + series, psi1 + series1


@numba.njit(cache=True, nogil=True, fastmath=True)
def _digamma_trigamma_vector(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_digamma_trigamma of every element of x."""
    psi = np.empty(x.size)
    psi1 = np.empty(x.size)
    for k in range(x.size):
        psi[k], psi1[k] = _digamma_trigamma(x[k])
    return psi, psi1


@numba.njit(cache=True, nogil=True, fastmath=True)
def _nb_dispersion_chunk(counts, mu, r, log_x, log_ratio, psi_r, psi1_r):
    """nb_dispersion_sums for a chunk of genes, given log(y + r) and log1p(mu / r).

    The first loop has no branch and no call to libm, so LLVM vectorises it; it
    takes the series for every count and keeps it where y > 0 and y + r is in
    its range. The second adds the few counts with 0 < y + r < SERIES_FROM.
    """
    n_samples, n_genes = counts.shape
    d1 = np.zeros(n_genes)
    d2 = np.zeros(n_genes)
    for i in range(n_samples):
        for k in range(n_genes):
            y, m = counts[i, k], mu[i, k]
            inv_rm = 1.0 / (r[k] + m)
            resid = (y - m) * inv_rm
            psi_y, psi1_y = _series_digamma_trigamma(log_x[i, k], 1.0 / (y + r[k]))
            use = (y > 0.0) & (y + r[k] >= SERIES_FROM)
            d1[k] += log_ratio[i, k] + resid + (psi_r[k] - psi_y if use else 0.0)
            d2[k] += (psi1_r[k] - psi1_y if use else 0.0) - (m / r[k] + resid) * inv_rm
    for i in range(n_samples):
        for k in range(n_genes):
            y = counts[i, k]
            if y > 0.0 and y + r[k] < SERIES_FROM:
                psi_y, psi1_y = _digamma_trigamma(y + r[k])
                d1[k] += psi_r[k] - psi_y
                d2[k] += psi1_r[k] - psi1_y
    return d1, d2


def nb_dispersion_sums(
    counts: np.ndarray, mu: np.ndarray, inv_disp: np.ndarray, genes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """First and second derivatives of the NB negative log-likelihood in r = 1/alpha,
    summed over samples, for the columns ``genes`` (inv_disp: one r per gene of ``genes``).

    The di- and trigamma of y + r dominate the cost, and SciPy's trigamma
    (polygamma) is slow, so numba runs the series; NumPy takes the logs, as
    its SIMD log is several times faster than numba's calls to libm. Genes
    go in chunks of about CHUNK_COUNTS counts.
    """
    d1 = np.empty(genes.size)
    d2 = np.empty(genes.size)
    psi_r, psi1_r = _digamma_trigamma_vector(inv_disp)
    chunk = max(1, CHUNK_COUNTS // counts.shape[0])
    for start in range(0, genes.size, chunk):
        part = slice(start, start + chunk)
        y, m, r = counts[:, genes[part]], mu[:, genes[part]], inv_disp[part]
        d1[part], d2[part] = _nb_dispersion_chunk(
            y, m, r, np.log(y + r), np.log1p(m / r), psi_r[part], psi1_r[part]
        )
    return d1, d2


class DispersionProblem:
    """The loss of pydeseq2.utils.fit_alpha_mle for a block of genes, in log(alpha).

    NB negative log-likelihood, plus 0.5 log det(X^T W X) (Cox-Reid) and a
    normal prior on log(alpha) centred on log(alpha_hat) when asked.
    """

    def __init__(self, counts, design_matrix, mu, log_alpha_hat, prior_var, cr_reg):
        self.counts, self.design_matrix, self.mu = counts, design_matrix, mu
        self.log_alpha_hat, self.prior_var, self.cr_reg = log_alpha_hat, prior_var, cr_reg
        self.outer = outer_rows(design_matrix)

    def loss(self, genes: np.ndarray, log_alpha: np.ndarray) -> np.ndarray:
        """The loss of some genes at their log(alpha), up to terms that do not depend on it."""
        alpha = np.exp(log_alpha)
        counts, mu = self.counts[:, genes], self.mu[:, genes]
        value = nb_nll_disp_part(counts, mu, alpha)
        if self.cr_reg:
            weights = mu / (1.0 + mu * alpha)
            value += 0.5 * np.linalg.slogdet(weighted_gram(self.outer, weights))[1]
        if self.prior_var is not None:
            value += (log_alpha - self.log_alpha_hat[genes]) ** 2 / (2 * self.prior_var)
        return value

    def derivatives(self, genes: np.ndarray, log_alpha: np.ndarray, second: bool = True):
        """Gradient and second derivative of the loss in log(alpha) for some genes (the
        second None when not asked for: the Cox-Reid term's is most of its cost)."""
        alpha = np.exp(log_alpha)
        r = 1.0 / alpha
        d1, d2 = nb_dispersion_sums(self.counts, self.mu, r, genes)
        # chain rule from r = exp(-log_alpha)
        grad = -r * d1
        hess = r * r * d2 + r * d1 if second else None
        if self.cr_reg:
            cr_grad, cr_hess = self._cox_reid_derivatives(self.mu[:, genes], alpha, second)
            grad += alpha * cr_grad
            if second:
                hess += alpha * alpha * cr_hess + alpha * cr_grad
        if self.prior_var is not None:
            grad += (log_alpha - self.log_alpha_hat[genes]) / self.prior_var
            if second:
                hess += 1.0 / self.prior_var
        return grad, hess

    def _cox_reid_derivatives(self, mu, alpha, second: bool = True):
        """d/dalpha and d2/dalpha2 (None unless `second`) of 0.5 log det(X^T W X),
        W = mu / (1 + alpha mu).

        dW/dalpha = -W^2 and d2W/dalpha2 = 2 W^3.
        """
        weights = mu / (1.0 + mu * alpha)
        inverse = np.linalg.inv(weighted_gram(self.outer, weights))
        gram_a = weighted_gram(self.outer, weights**2)
        if not second:  # trace(inverse @ gram_a) without the matrix product
            return -0.5 * np.einsum("gij,gji->g", inverse, gram_a), None
        inv_a = inverse @ gram_a
        inv_b = inverse @ weighted_gram(self.outer, weights**3)
        trace_inv_a = np.trace(inv_a, axis1=1, axis2=2)
        grad = -0.5 * trace_inv_a
        hess = np.trace(inv_b, axis1=1, axis2=2) - 0.5 * np.einsum("gij,gji->g", inv_a, inv_a)
        return grad, hess


def lbfgsb_first_step(
    problem: DispersionProblem,
    log_alpha: np.ndarray,
    grad: np.ndarray,
    lower_bound: float,
    upper_bound: float,
) -> tuple:
    """Genes whose L-BFGS-B run (as scipy does it) stops at, or leaves for, another point.

    L-BFGS-B stops at its start when the projected gradient there is below
    pgtol. Otherwise its first trial point is x0 - g0 (the Cauchy point for
    an identity Hessian), cut at the bounds; when that is a bound and the
    line search's sufficient-decrease test accepts it, PyDESeq2's answer
    follows from the bound (often stopping there on a flat likelihood),
    not from the local minimum nearest to x0 that Newton finds.
    ``grad``: the loss gradient at ``log_alpha``. Returns (stops_at_start,
    accepts_bound) masks.
    """
    genes = np.arange(log_alpha.size)
    projected = np.where(
        grad > 0, np.minimum(log_alpha - lower_bound, grad), np.maximum(log_alpha - upper_bound, grad)
    )
    stops_at_start = np.abs(projected) <= LBFGSB_PGTOL
    trial = np.clip(log_alpha - grad, lower_bound, upper_bound)
    to_bound = ~stops_at_start & ((trial == lower_bound) | (trial == upper_bound))
    start_loss = problem.loss(genes[to_bound], log_alpha[to_bound])
    trial_loss = problem.loss(genes[to_bound], trial[to_bound])
    descent = (grad * (trial - log_alpha))[to_bound]
    accepts_bound = np.zeros_like(to_bound)
    accepts_bound[to_bound] = trial_loss <= start_loss + LBFGSB_LINESEARCH_FTOL * descent
    return stops_at_start, accepts_bound


def fit_log_dispersion_block(
    problem: DispersionProblem, lower_bound: float, upper_bound: float, per_gene, start=None
) -> tuple:
    """Minimise the dispersion loss in log(alpha) within bounds, for a block of genes.

    Safeguarded Newton from log(alpha_hat), as L-BFGS-B starts there: the
    point where the gradient changes sign is kept bracketed, a step that
    would leave the bracket is replaced by a halving towards its edge, steps
    stop at the bounds (where a gradient pointing outwards means a bound
    optimum, as for L-BFGS-B). Genes that L-BFGS-B would send elsewhere
    (``lbfgsb_first_step``), that do not converge, or whose loss is not
    finite go to ``per_gene`` (PyDESeq2's L-BFGS-B with grid fallback).
    ``start``: warm-start log(alpha) of the Newton iterations, for the genes that
    L-BFGS-B would not stop at, or jump from, log(alpha_hat) (those are found at
    log(alpha_hat) as without it); a start that is not finite leaves log(alpha_hat).
    """
    n_genes = problem.counts.shape[1]
    log_alpha = np.clip(problem.log_alpha_hat, lower_bound, upper_bound)
    warm = start is not None
    # warm: only the gradient at L-BFGS-B's start is needed, for its first step
    grad, hess = problem.derivatives(np.arange(n_genes), log_alpha, second=not warm)
    with np.errstate(all="ignore"):
        stops_at_start, accepts_bound = lbfgsb_first_step(problem, log_alpha, grad, lower_bound, upper_bound)
    converged = stops_at_start.copy()
    failed = [np.flatnonzero(accepts_bound & ~stops_at_start)]
    active = np.flatnonzero(~stops_at_start & ~accepts_bound)
    below = np.full(n_genes, lower_bound)  # gradient < 0 seen at this point
    above = np.full(n_genes, upper_bound)  # gradient > 0 seen at this point
    if warm:
        usable = np.isfinite(start[active])
        log_alpha[active[usable]] = np.clip(start[active[usable]], lower_bound, upper_bound)
    else:
        grad, hess = grad[active], hess[active]
    for iteration in range(MAX_NEWTON_ITER):
        if not active.size:
            break
        x = log_alpha[active]
        if iteration or warm:  # the derivatives at the cold start are those computed above
            grad, hess = problem.derivatives(active, x)
        finite = np.isfinite(grad) & np.isfinite(hess)
        failed.append(active[~finite])
        active, x, grad, hess = active[finite], x[finite], grad[finite], hess[finite]

        above[active] = np.where(grad > 0, np.minimum(above[active], x), above[active])
        below[active] = np.where(grad < 0, np.maximum(below[active], x), below[active])
        at_bound = ((x <= lower_bound) & (grad >= 0)) | ((x >= upper_bound) & (grad <= 0))

        newton = np.where(hess > 0, -grad / np.where(hess > 0, hess, 1.0), -np.sign(grad))
        step = np.clip(newton, -DISP_MAX_STEP, DISP_MAX_STEP)
        new = np.clip(x + step, lower_bound, upper_bound)
        lo, hi = below[active], above[active]
        leaves_bracket = ((new <= lo) & (lo > lower_bound)) | ((new >= hi) & (hi < upper_bound))
        new = np.where(leaves_bracket, 0.5 * (x + np.where(step > 0, hi, lo)), new)

        full_newton = (hess > 0) & ~leaves_bracket & (new == x + newton)
        tolerance = np.where(full_newton, NEWTON_FINAL_STEP, DISP_STEP_TOL)
        done = at_bound | (np.abs(new - x) < tolerance)
        log_alpha[active] = np.where(at_bound, x, new)
        converged[active[done]] = True
        active = active[~done]

    alpha = np.exp(log_alpha)
    for gene in np.concatenate([active, *failed]).astype(int):
        alpha[gene], converged[gene] = per_gene(gene)
    return alpha, converged


# -- Wald test ----------------------------------------------------------------


def wald_test_block(design_matrix, disp, lfc, mu, ridge_factor, contrast, lfc_null, alt_hypothesis) -> tuple:
    """pydeseq2.utils.wald_test for a block of genes (genes without a fit give NaN)."""
    n_genes = mu.shape[1]
    se = np.full(n_genes, np.nan)
    fitted = np.isfinite(mu).all(axis=0) & np.isfinite(disp) & np.isfinite(lfc).all(axis=1)
    weights = mu[:, fitted] / (1 + mu[:, fitted] * disp[fitted])
    gram = weighted_gram(outer_rows(design_matrix), weights)
    h_contrast = np.linalg.solve(
        gram + ridge_factor, np.broadcast_to(contrast, (gram.shape[0], contrast.size))[:, :, None]
    )[:, :, 0]
    se[fitted] = np.sqrt(np.einsum("gi,gij,gj->g", h_contrast, gram, h_contrast))
    stat, pval = wald_statistic(lfc, se, contrast, lfc_null, alt_hypothesis)
    return pval, stat, se


def wald_statistic(lfc, se, contrast, lfc_null, alt_hypothesis) -> tuple:
    """Statistic and p-value of each alternative of pydeseq2.utils.wald_test."""
    se = se[:, None]

    def greater(null):
        stat = np.fmax((lfc - null) / se, 0) @ contrast
        return stat, norm_sf(stat)

    def less(null):
        stat = np.fmin((lfc - null) / se, 0) @ contrast
        return stat, norm_sf(np.abs(stat))

    if alt_hypothesis is None:
        stat = ((lfc - lfc_null) @ contrast) / se[:, 0]
        return stat, 2 * norm_sf(np.abs(stat))
    if alt_hypothesis == "greater":
        return greater(lfc_null)
    if alt_hypothesis == "less":
        return less(lfc_null)
    if alt_hypothesis == "greaterAbs":
        stat = (np.sign(lfc) * np.fmax((np.abs(lfc) - lfc_null) / se, 0)) @ contrast
        return stat, 2 * norm_sf(np.abs(stat))
    if alt_hypothesis == "lessAbs":
        stat_above, pval_above = greater(-abs(lfc_null))
        stat_below, pval_below = less(abs(lfc_null))
        # min(..., key=abs) keeps the first on ties
        stat = np.where(np.abs(stat_below) < np.abs(stat_above), stat_below, stat_above)
        return stat, np.maximum(pval_above, pval_below)
    raise ValueError(f"Unknown alt_hypothesis {alt_hypothesis!r}")


def norm_sf(x: np.ndarray) -> np.ndarray:
    """Standard normal survival function (scipy.stats.norm.sf without its overhead)."""
    return ndtr(-x)


# -- LFC shrinkage (apeGLM prior) ----------------------------------------------


class ApeglmPrior:
    """The prior of pydeseq2.utils.nbinomFn: normal on all but one coefficient, Cauchy on it."""

    def __init__(self, no_shrink_scale: float, scale: float, shrink_index: int, n_vars: int):
        self.no_shrink_scale, self.scale, self.index = no_shrink_scale, scale, shrink_index
        self.no_shrink = np.ones(n_vars)
        self.no_shrink[shrink_index] = 0.0

    def value(self, beta):
        normal = ((beta * self.no_shrink) ** 2).sum(axis=1) / (2 * self.no_shrink_scale**2)
        return normal + np.log1p((beta[:, self.index] / self.scale) ** 2)

    def gradient(self, beta):
        grad = beta * self.no_shrink / self.no_shrink_scale**2
        b = beta[:, self.index]
        grad[:, self.index] = 2 * b / (self.scale**2 + b**2)
        return grad

    def hessian_diagonal(self, beta):
        diag = np.broadcast_to(self.no_shrink / self.no_shrink_scale**2, beta.shape).copy()
        b2 = beta[:, self.index] ** 2
        diag[:, self.index] = 2 * (self.scale**2 - b2) / (self.scale**2 + b2) ** 2
        return diag


def shrink_objective(design_matrix, counts, size, offset, prior, beta):
    """pydeseq2.utils.nbinomFn for a block of genes (beta: genes x vars)."""
    xbeta = design_matrix @ beta.T
    nll = (counts * xbeta - (counts + size) * np.logaddexp(xbeta + offset[:, None], np.log(size))).sum(axis=0)
    return prior.value(beta) - nll


def shrink_block(design_matrix, counts, size, offset, prior: ApeglmPrior, per_gene) -> tuple:
    """pydeseq2.utils.nbinomGLM (apeGLM MAP) for a block of genes.

    Newton's method from PyDESeq2's starting point with the Hessian made
    positive definite where the Cauchy prior makes it indefinite, and an
    Armijo backtracking line search, so it descends to a local minimum as
    L-BFGS-B does. Genes that fail go to ``per_gene``.
    """
    n_vars = design_matrix.shape[1]
    n_genes = counts.shape[1]
    outer = outer_rows(design_matrix)
    log_size = np.log(size)

    def objective(genes, beta):
        return shrink_objective(design_matrix, counts[:, genes], size[genes], offset, prior, beta)

    def derivatives(genes, beta):
        y = counts[:, genes]
        t = design_matrix @ beta.T + offset[:, None] - log_size[genes]
        p = expit(t)
        grad = prior.gradient(beta) - (y - (y + size[genes]) * p).T @ design_matrix
        curvature = (y + size[genes]) * p * (1 - p)
        return grad, weighted_gram(outer, curvature), prior.hessian_diagonal(beta)

    beta = np.tile(0.1 * (-1.0) ** np.arange(n_vars), (n_genes, 1))
    converged = np.zeros(n_genes, dtype=bool)
    active = np.arange(n_genes)
    for _ in range(MAX_NEWTON_ITER):
        if not active.size:
            break
        b = beta[active]
        grad, gram, prior_diag = derivatives(active, b)
        step = -modified_newton_direction(gram + _diag_matrices(prior_diag), grad)
        new_b, accepted = armijo_search(lambda g, x, active=active: objective(active[g], x), b, grad, step)
        beta[active] = new_b
        done = accepted & (np.abs(new_b - b).max(axis=1) < SHRINK_STEP_TOL)
        converged[active[done]] = True
        active = active[accepted & ~done]

    # PyDESeq2 reports the inverse of its Hessian expression, which adds the
    # prior's diagonal to every row (np.diag of a matrix); reproduced as is.
    _, gram, prior_diag = derivatives(np.arange(n_genes), beta)
    inv_hessian = np.linalg.inv(gram + prior_diag[:, None, :])
    for gene in np.flatnonzero(~converged):
        beta[gene], inv_hessian[gene], converged[gene] = per_gene(gene)
    return beta, inv_hessian, converged


def _diag_matrices(diagonals: np.ndarray) -> np.ndarray:
    """Stack of diagonal matrices from rows of diagonals."""
    return diagonals[:, :, None] * np.eye(diagonals.shape[1])


def modified_newton_direction(hessian: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """H^-1 g with H's eigenvalues floored at a small positive value (descent direction)."""
    eigval, eigvec = np.linalg.eigh(hessian)
    floor = 1e-8 * np.maximum(np.abs(eigval).max(axis=1, keepdims=True), 1.0)
    eigval = np.maximum(np.abs(eigval), floor)
    coords = np.einsum("gji,gj->gi", eigvec, grad) / eigval
    return np.einsum("gij,gj->gi", eigvec, coords)


def armijo_search(objective, beta, grad, step):
    """Backtracking line search per gene: halve the step until the decrease is sufficient.

    ``objective(rows, beta_rows)`` evaluates genes by row of ``beta``. Returns
    the new coefficients and whether a sufficient decrease was found.
    """
    rows = np.arange(beta.shape[0])
    current = objective(rows, beta)
    slope = (grad * step).sum(axis=1)
    new = beta.copy()
    accepted = np.zeros(beta.shape[0], dtype=bool)
    t = 1.0
    pending = rows
    for _ in range(MAX_HALVINGS):
        trial = beta[pending] + t * step[pending]
        value = objective(pending, trial)
        ok = value <= current[pending] + ARMIJO_C * t * slope[pending]
        new[pending[ok]] = trial[ok]
        accepted[pending[ok]] = True
        pending = pending[~ok]
        if not pending.size:
            break
        t *= 0.5
    # a step too small to change the objective any more is converged, not failed
    stalled = pending[np.abs(step[pending]).max(axis=1) * t < SHRINK_STEP_TOL]
    accepted[stalled] = True
    return new, accepted
