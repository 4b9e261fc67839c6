"""BatchedInference against PyDESeq2's DefaultInference: whole fits and single primitives."""

import warnings

import numpy as np
import pytest
from pydeseq2 import utils
from pydeseq2.dds import DeseqDataSet
from pydeseq2.default_inference import DefaultInference
from pydeseq2.ds import DeseqStats
from scipy.special import digamma, polygamma

from batched_deseq2 import inference as bi
from nb_cohort import DESIGNS, simulate_nb_cohort

CONTRAST = ["group", "TRD", "responder"]
SHRINK_COEFF = "group[T.TRD]"
ALPHA = 0.05
MAX_DISP = 10.0


def fit(counts, metadata, design, inference):
    """DESeq2 as the pipeline runs it, plus apeGLM shrinkage of the group LFC."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(
            counts=counts, metadata=metadata, design=DESIGNS[design], inference=inference, quiet=True
        )
        dds.deseq2()
        stats = DeseqStats(dds, contrast=CONTRAST, alpha=ALPHA, inference=inference, quiet=True)
        stats.summary()
        results = stats.results_df.copy()
        stats.lfc_shrink(coeff=SHRINK_COEFF)
    results["shrunk"] = stats.results_df["log2FoldChange"]
    return dds, results


COHORTS = {
    "one factor": dict(n_samples=30, n_genes=150, design="group", n_outliers=0),
    "factor + covariate": dict(n_samples=30, n_genes=150, design="age_group", n_outliers=0),
    "four terms": dict(n_samples=48, n_genes=200, design="full", n_outliers=0),
    # Cook's replacement needs >= 7 samples per design cell: a factor-only design
    "one factor, outliers": dict(n_samples=40, n_genes=150, design="group", n_outliers=8),
}


@pytest.fixture(scope="module", params=list(COHORTS))
def fits(request):
    spec = COHORTS[request.param]
    counts, metadata = simulate_nb_cohort(
        spec["n_samples"], spec["n_genes"], seed=7, design=spec["design"], n_outliers=spec["n_outliers"]
    )
    default = fit(counts, metadata, spec["design"], DefaultInference(n_cpus=1))
    batched = fit(counts, metadata, spec["design"], bi.BatchedInference(n_cpus=2))
    return request.param, default, batched


def interior_genes(dds) -> np.ndarray:
    """Genes whose dispersion fits are away from the bounds and where L-BFGS-B converged.

    Where PyDESeq2's L-BFGS-B fails it falls back to a coarse grid search,
    so its value is not an optimum to compare against.
    """
    var = dds.var
    mask = np.ones(dds.n_vars, dtype=bool)
    for column in ["genewise_dispersions", "MAP_dispersions"]:
        mask &= (var[column] > 1e-6).to_numpy() & (var[column] < 0.9 * MAX_DISP).to_numpy()
    for column in ["_genewise_converged", "_MAP_converged"]:
        mask &= var[column].fillna(False).to_numpy(dtype=bool)
    return mask


def test_size_factors_and_normalised_counts_identical(fits):
    _, (dds0, _), (dds1, _) = fits
    np.testing.assert_array_equal(dds1.obs["size_factors"], dds0.obs["size_factors"])
    np.testing.assert_array_equal(dds1.layers["normed_counts"], dds0.layers["normed_counts"])


def test_dispersions_agree_away_from_bounds(fits):
    _, (dds0, _), (dds1, _) = fits
    keep = interior_genes(dds0)
    assert keep.sum() > 0.8 * dds0.n_vars
    for column in ["genewise_dispersions", "fitted_dispersions", "MAP_dispersions", "dispersions"]:
        np.testing.assert_allclose(dds1.var[column][keep], dds0.var[column][keep], rtol=1e-4, err_msg=column)


def test_lfc_and_pvalues_agree(fits):
    _, (dds0, res0), (dds1, res1) = fits
    keep = interior_genes(dds0)
    np.testing.assert_allclose(
        res1["log2FoldChange"][keep], res0["log2FoldChange"][keep], rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(res1["stat"][keep], res0["stat"][keep], rtol=1e-4, atol=1e-6)
    # below 1e-20 a p-value's relative error is the statistic's times stat^2
    moderate = keep & (res0["pvalue"] > 1e-20).to_numpy()
    np.testing.assert_allclose(res1["pvalue"][moderate], res0["pvalue"][moderate], rtol=1e-4)
    np.testing.assert_allclose(res1["lfcSE"][keep], res0["lfcSE"][keep], rtol=1e-4)
    # genes without a test (all zero, Cook's outliers) are the same genes
    np.testing.assert_array_equal(res1["padj"].isna(), res0["padj"].isna())


def test_same_de_calls_except_at_threshold(fits):
    _, (_, res0), (_, res1) = fits
    called0, called1 = res0["padj"] < ALPHA, res1["padj"] < ALPHA
    at_threshold = (res0["padj"] - ALPHA).abs() <= 0.01 * ALPHA
    assert called0.sum() >= 5
    assert not ((called0 != called1) & ~at_threshold).any()


def test_shrunk_lfcs_agree(fits):
    """Within 1e-3 (log2) for at least 95% of genes.

    The rest differ because PyDESeq2's L-BFGS-B stops on its relative
    objective tolerance before the optimum (see the nbinomGLM unit test:
    the batched optimum is never worse).
    """
    _, (_, res0), (_, res1) = fits
    difference = (res1["shrunk"] - res0["shrunk"]).abs()
    assert difference.max() < 0.05
    assert (difference <= 1e-3).mean() >= 0.95


@pytest.mark.parametrize("fits", ["one factor, outliers"], indirect=True)
def test_cooks_refit_goes_through_backend(fits):
    _, (dds0, _), (dds1, _) = fits
    assert dds0.var["refitted"].sum() > 0
    np.testing.assert_array_equal(dds1.var["refitted"], dds0.var["refitted"])


# -- primitives against PyDESeq2's per-gene functions --------------------------


@pytest.fixture(scope="module")
def small_problem():
    """Eight genes, four-term design, with PyDESeq2's own dispersion estimates."""
    counts, metadata = simulate_nb_cohort(50, 8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = DeseqDataSet(
            counts=counts,
            metadata=metadata,
            design=DESIGNS["full"],
            inference=DefaultInference(n_cpus=1),
            quiet=True,
        )
        dds.deseq2()
    return dict(
        counts=dds.X.astype(float),
        X=dds.obsm["design_matrix"].values,
        sf=dds.obs["size_factors"].values,
        disp=dds.var["dispersions"].values,
        mu=dds.layers["_mu_hat"],
        lfc=dds.varm["LFC"].values,
        mom=dds.var["_MoM_dispersions"].values,
    )


def per_gene(function, n_genes, **per_gene_args):
    return [function(**{k: v(g) for k, v in per_gene_args.items()}) for g in range(n_genes)]


def test_digamma_trigamma_match_scipy():
    x = np.array([1e-3, 0.37, 1.0, 9.99, 10.0, 57.3, 1e4, 1e8])
    got = np.array([bi._digamma_trigamma(v) for v in x])
    np.testing.assert_allclose(got[:, 0], digamma(x), rtol=1e-13)
    np.testing.assert_allclose(got[:, 1], polygamma(1, x), rtol=1e-13)


def test_dispersion_sums_match_scipy(monkeypatch):
    """The NB derivatives in r = 1/alpha, against the same sums with SciPy's di- and
    trigamma: zero counts, counts whose y + r falls below the series' range and above it,
    a subset of genes out of order, and genes split over chunks of 3 (9 genes here)."""
    rng = np.random.default_rng(7)
    n_samples, n_genes = 5, 12
    counts = rng.negative_binomial(2, 0.05, size=(n_samples, n_genes)).astype(float)
    counts[:, 0] = 0
    counts[:, 1] = [1, 2, 3, 0, 8]
    mu = rng.uniform(0.5, 80, size=(n_samples, n_genes))
    genes = np.array([1, 0, 11, 4, 5, 6, 9, 2, 3])
    r = rng.uniform(0.2, 30, size=genes.size)
    r[0] = 0.7  # gene 1: every y + r below 10
    assert ((counts[:, genes] > 0) & (counts[:, genes] + r < bi.SERIES_FROM)).any()
    assert (counts[:, genes] + r >= bi.SERIES_FROM).any()
    monkeypatch.setattr(bi, "CHUNK_COUNTS", 3 * n_samples)

    y, m = counts[:, genes], mu[:, genes]
    resid = (y - m) / (r + m)
    expected_d1 = (np.log1p(m / r) + resid + digamma(r) - digamma(y + r)).sum(axis=0)
    expected_d2 = (polygamma(1, r) - polygamma(1, y + r) - (m / r + resid) / (r + m)).sum(axis=0)
    d1, d2 = bi.nb_dispersion_sums(counts, mu, r, genes)
    np.testing.assert_allclose(d1, expected_d1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(d2, expected_d2, rtol=1e-10, atol=1e-12)


def test_irls_matches_irls_solver(small_problem):
    p = small_problem
    beta, mu, hat, converged = bi.BatchedInference(n_cpus=1).irls(
        p["counts"], p["sf"], p["X"], p["disp"], min_mu=0.5, beta_tol=1e-8
    )
    expected = per_gene(
        lambda g: utils.irls_solver(p["counts"][:, g], p["sf"], p["X"], p["disp"][g]),
        len(p["disp"]),
        g=lambda g: g,
    )
    np.testing.assert_allclose(beta, [e[0] for e in expected], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(mu.T, [e[1] for e in expected], rtol=1e-8)
    np.testing.assert_allclose(hat.T, [e[2] for e in expected], rtol=1e-7)
    assert converged.all()


def test_irls_hands_diverging_genes_to_pydeseq2(small_problem):
    """With maxiter=2 every gene leaves the batched loop; results are PyDESeq2's exactly."""
    p = small_problem
    beta, mu, hat, converged = bi.BatchedInference(n_cpus=1).irls(
        p["counts"], p["sf"], p["X"], p["disp"], min_mu=0.5, beta_tol=1e-8, maxiter=2
    )
    for g in range(len(p["disp"])):
        expected = utils.irls_solver(p["counts"][:, g], p["sf"], p["X"], p["disp"][g], maxiter=2)
        np.testing.assert_array_equal(beta[g], expected[0])
        np.testing.assert_array_equal(hat[:, g], expected[2])
        assert converged[g] == expected[3]


def test_warm_started_irls_reaches_the_cold_optimum(small_problem):
    """Started at the cold fit's result, or at another gene's (a far start), the fit ends where the
    cold one does, within what the deviance-ratio test resolves (the cold fit itself stops about
    1e-5 from the optimum: one more step from its result moves it that much)."""
    p = small_problem
    inference = bi.BatchedInference(n_cpus=1)

    def fit():
        return inference.irls(p["counts"], p["sf"], p["X"], p["disp"], min_mu=0.5, beta_tol=1e-8)

    cold = fit()
    for start, rtol in ((cold[0], 3e-5), (np.roll(cold[0], 1, axis=0), 1e-3)):
        with inference.starting_from(irls=start):
            beta, mu, hat, converged = fit()
        np.testing.assert_allclose(beta, cold[0], rtol=rtol, atol=rtol)
        np.testing.assert_allclose(mu, cold[1], rtol=rtol)
        np.testing.assert_allclose(hat, cold[2], rtol=rtol)
        assert converged.all()
    # out of the block, the fit starts cold again
    np.testing.assert_array_equal(fit()[0], cold[0])
    with inference.starting_from(irls=cold[0][:-1]), pytest.raises(ValueError, match="7 genes"):
        fit()


@pytest.mark.parametrize("prior_reg", [False, True])
def test_warm_started_alpha_mle_reaches_the_cold_optimum(small_problem, prior_reg):
    """Newton from another gene's dispersion ends at the optimum L-BFGS-B reaches from PyDESeq2's
    start (the MAP prior stays centred on alpha_hat)."""
    p = small_problem
    prior_var = 0.5 if prior_reg else None
    inference = bi.BatchedInference(n_cpus=1)
    with inference.starting_from(alpha_mle=np.roll(p["disp"], 3)):
        alpha, converged = inference.alpha_mle(
            p["counts"],
            p["X"],
            p["mu"],
            p["mom"],
            1e-8,
            MAX_DISP,
            prior_disp_var=prior_var,
            prior_reg=prior_reg,
        )
    for g in range(len(p["mom"])):
        expected, _ = utils.fit_alpha_mle(
            p["counts"][:, g],
            p["X"],
            p["mu"][:, g],
            p["mom"][g],
            1e-8,
            MAX_DISP,
            prior_disp_var=prior_var,
            prior_reg=prior_reg,
        )
        assert converged[g]
        assert alpha[g] == pytest.approx(expected, rel=1e-4)


def test_dispersion_gradient_alone_equals_that_of_the_derivatives(small_problem):
    p = small_problem
    problem = bi.DispersionProblem(p["counts"], p["X"], p["mu"], np.log(p["mom"]), 0.5, True)
    genes, x = np.arange(len(p["mom"])), np.log(p["disp"])
    grad, hess = problem.derivatives(genes, x, second=False)
    assert hess is None
    np.testing.assert_allclose(grad, problem.derivatives(genes, x)[0], rtol=1e-12)


def test_rough_dispersions_match_pydeseq2(small_problem):
    p = small_problem
    normed = p["counts"] / p["sf"][:, None]
    np.testing.assert_allclose(
        bi.BatchedInference(n_cpus=1).fit_rough_dispersions(normed, p["X"]),
        utils.fit_rough_dispersions(normed, p["X"]),
        rtol=1e-12,
    )


@pytest.mark.parametrize("prior_reg", [False, True])
def test_alpha_mle_matches_fit_alpha_mle(small_problem, prior_reg):
    p = small_problem
    prior_var = 0.5 if prior_reg else None
    alpha, converged = bi.BatchedInference(n_cpus=1).alpha_mle(
        p["counts"], p["X"], p["mu"], p["mom"], 1e-8, MAX_DISP, prior_disp_var=prior_var, prior_reg=prior_reg
    )
    for g in range(len(p["mom"])):
        expected, ok = utils.fit_alpha_mle(
            p["counts"][:, g],
            p["X"],
            p["mu"][:, g],
            p["mom"][g],
            1e-8,
            MAX_DISP,
            prior_disp_var=prior_var,
            prior_reg=prior_reg,
        )
        assert ok and converged[g]
        assert alpha[g] == pytest.approx(expected, rel=1e-4)


def test_dispersion_derivatives_match_finite_differences(small_problem):
    p = small_problem
    problem = bi.DispersionProblem(p["counts"], p["X"], p["mu"], np.log(p["mom"]), 0.5, True)
    genes = np.arange(len(p["mom"]))
    x, h = np.log(p["disp"]), 1e-5
    grad, hess = problem.derivatives(genes, x)
    loss_up, loss_down = problem.loss(genes, x + h), problem.loss(genes, x - h)
    np.testing.assert_allclose(grad, (loss_up - loss_down) / (2 * h), rtol=1e-5, atol=1e-6)
    grad_up, _ = problem.derivatives(genes, x + h)
    grad_down, _ = problem.derivatives(genes, x - h)
    np.testing.assert_allclose(hess, (grad_up - grad_down) / (2 * h), rtol=1e-5)


def test_dispersion_loss_changes_as_pydeseq2_objective(small_problem):
    """The loss drops terms that do not depend on alpha; its changes are those of
    fit_alpha_mle's objective: nb_nll + 0.5 log det(X^T W X) + the log-normal prior."""
    p = small_problem
    prior_var = 0.5
    problem = bi.DispersionProblem(p["counts"], p["X"], p["mu"], np.log(p["mom"]), prior_var, True)

    def objective(g, log_alpha):
        alpha = np.exp(log_alpha)
        weights = p["mu"][:, g] / (1 + p["mu"][:, g] * alpha)
        return (
            utils.nb_nll(p["counts"][:, g], p["mu"][:, g], alpha)
            + 0.5 * np.linalg.slogdet((p["X"].T * weights) @ p["X"])[1]
            + (log_alpha - np.log(p["mom"][g])) ** 2 / (2 * prior_var)
        )

    genes = np.arange(len(p["mom"]))
    low, high = np.log(p["disp"]) - 0.7, np.log(p["disp"]) + 0.4
    expected = [objective(g, high[g]) - objective(g, low[g]) for g in genes]
    np.testing.assert_allclose(problem.loss(genes, high) - problem.loss(genes, low), expected, rtol=1e-9)


@pytest.mark.parametrize("prior_reg", [False, True])
def test_dispersion_fit_ends_at_a_stationary_point(small_problem, prior_reg):
    """The Newton fit stops on a small step; what is left of the distance to the optimum,
    |gradient / second derivative| at the result, must be far below the 1e-4 concordance."""
    p = small_problem
    prior_var = 0.5 if prior_reg else None
    alpha, _ = bi.BatchedInference(n_cpus=1).alpha_mle(
        p["counts"], p["X"], p["mu"], p["mom"], 1e-8, MAX_DISP, prior_disp_var=prior_var, prior_reg=prior_reg
    )
    problem = bi.DispersionProblem(p["counts"], p["X"], p["mu"], np.log(p["mom"]), prior_var, True)
    grad, hess = problem.derivatives(np.arange(len(alpha)), np.log(alpha))
    assert (hess > 0).all()
    assert np.abs(grad / hess).max() < 1e-7


@pytest.mark.parametrize("alt", [None, "greater", "less", "greaterAbs", "lessAbs"])
def test_wald_test_matches_per_gene(small_problem, alt):
    p = small_problem
    mu = p["sf"][:, None] * np.exp(p["X"] @ p["lfc"].T)
    ridge = np.diag(np.repeat(1e-6, p["X"].shape[1]))
    contrast = np.zeros(p["X"].shape[1])
    contrast[-1] = 1.0
    lfc_null = 0.1 if alt else 0.0
    pvals, stats, se = bi.BatchedInference(n_cpus=1).wald_test(
        p["X"], p["disp"], p["lfc"], mu, ridge, contrast, lfc_null, alt
    )
    for g in range(len(p["disp"])):
        expected = utils.wald_test(
            p["X"], p["disp"][g], p["lfc"][g], mu[:, g], ridge, contrast, lfc_null, alt
        )
        np.testing.assert_allclose([pvals[g], stats[g], se[g]], expected, rtol=1e-9)


def test_lfc_shrink_reaches_pydeseq2_optimum(small_problem):
    """Same optimum as nbinomGLM: never a worse objective, shrunk LFC within 1e-3."""
    p = small_problem
    offset = np.log(p["sf"])
    size = 1 / p["disp"]
    prior = bi.ApeglmPrior(15.0, 0.5, shrink_index=p["X"].shape[1] - 1, n_vars=p["X"].shape[1])
    beta, inv_hessian, converged = bi.BatchedInference(n_cpus=1).lfc_shrink_nbinom_glm(
        p["X"], p["counts"], size, offset, 15.0, 0.5, "L-BFGS-B", p["X"].shape[1] - 1
    )
    for g in range(len(size)):
        expected = utils.nbinomGLM(
            p["X"], p["counts"][:, g], size[g], offset, 15.0, 0.5, "L-BFGS-B", p["X"].shape[1] - 1
        )
        ours, theirs = (
            bi.shrink_objective(p["X"], p["counts"][:, [g]], size[[g]], offset, prior, b[None])[0]
            for b in (beta[g], expected[0])
        )
        assert ours <= theirs + 1e-9
        assert beta[g, -1] == pytest.approx(expected[0][-1], abs=1e-3)
        np.testing.assert_allclose(inv_hessian[g], expected[1], rtol=1e-2, atol=1e-6)
        assert converged[g]


def test_block_size_bounds_memory_with_a_floor_of_genes():
    inference = bi.BatchedInference(n_cpus=1)  # 16 MiB, at least 200 genes
    # 300 samples, 6 design columns: 8 bytes x (12 x 300 + 8 x 36) per gene
    assert inference.block_size(300, 6) == 16 * 2**20 // (8 * (12 * 300 + 8 * 36)) == 539
    assert inference.block_size(3000, 6) == 200  # 16 MiB would hold 57


def test_results_do_not_depend_on_blocks_or_threads(small_problem):
    p = small_problem
    one_block = bi.BatchedInference(n_cpus=1, block_mib=1024)
    tiny_blocks = bi.BatchedInference(n_cpus=2, block_mib=0.01, min_block_genes=1)
    assert tiny_blocks.block_size(*p["X"].shape) == 1
    for name, args in [
        ("alpha_mle", (p["counts"], p["X"], p["mu"], p["mom"], 1e-8, MAX_DISP)),
        ("irls", (p["counts"], p["sf"], p["X"], p["disp"], 0.5, 1e-8)),
    ]:
        for a, b in zip(getattr(one_block, name)(*args), getattr(tiny_blocks, name)(*args), strict=True):
            # block sizes change BLAS summation order only
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_no_genes_is_an_error_not_an_empty_fit(small_problem):
    p = small_problem
    with pytest.raises(ValueError, match="BatchedInference: no genes to fit"):
        bi.BatchedInference(n_cpus=1).irls(
            p["counts"][:, :0], p["sf"], p["X"], p["disp"][:0], min_mu=0.5, beta_tol=1e-8
        )
