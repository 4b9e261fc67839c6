"""batched_deseq2.dds' vectorised DeseqDataSet/DeseqStats against PyDESeq2's own methods.

Both sides run the same Inference backend, so every input to the gene-wise fits must be
the same: the tolerance is 1e-12 (summation order), far inside the 1e-4 that
tests/test_batched_inference.py allows between Inference backends. One test compares the
pipeline's whole batched backend with PyDESeq2 as published (DefaultInference) at those
1e-4 tolerances.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from pydeseq2 import utils
from pydeseq2.dds import DeseqDataSet
from pydeseq2.default_inference import DefaultInference
from pydeseq2.ds import DeseqStats
from scipy.stats import f, false_discovery_control

from batched_deseq2 import dds as bd
from batched_deseq2.inference import BatchedInference
from nb_cohort import DESIGNS, simulate_nb_cohort
from test_batched_inference import interior_genes
from trdpipe.model.engines.pydeseq2 import make_dataset, stats_class

CONTRAST = ["group", "TRD", "responder"]
ALPHA = 0.05
RTOL = 1e-12


def zero_genes(counts: pd.DataFrame, metadata: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three all-zero genes (not fitted) and zeros in one sample of a tenth of the others
    (left out of the size factors' geometric means)."""
    values = counts.to_numpy().copy()
    rng = np.random.default_rng(seed)
    values[:, :3] = 0
    some = rng.choice(np.arange(3, values.shape[1]), values.shape[1] // 10, replace=False)
    values[rng.integers(0, len(values), len(some)), some] = 0
    return pd.DataFrame(values, index=counts.index, columns=counts.columns), metadata


def small_unbalanced(
    counts: pd.DataFrame, metadata: pd.DataFrame, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """3 TRD and 6 responders: both cells below min_replicates (7), so no count can be
    replaced, and cells of 3 and 6 in Cook's trimmed variance (the two smaller trim
    classes)."""
    metadata = metadata.copy()
    metadata["group"] = pd.Categorical(
        np.where(np.arange(len(metadata)) < 3, "TRD", "responder"), categories=["responder", "TRD"]
    )
    return counts, metadata


COHORTS = {
    # continuous age: no design cell has 3 replicates, Cook's variance over all samples
    "four terms": dict(n_samples=60, n_genes=300, design="full", n_outliers=6),
    # factor-only design with >= 7 per cell: outliers replaced and refitted
    "one factor, outliers": dict(n_samples=40, n_genes=300, design="group", n_outliers=12),
    "genes with zeros": dict(n_samples=40, n_genes=300, design="group", n_outliers=6, edit=zero_genes),
    "small, unbalanced": dict(n_samples=9, n_genes=300, design="group", n_outliers=6, edit=small_unbalanced),
    # no planted effect: at most a few calls, so the filtering keeps every gene (cutoff 0)
    "null": dict(n_samples=30, n_genes=300, design="group", n_outliers=0, de_fraction=0.0),
}


def make_cohort(spec: dict, seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame]:
    counts, metadata = simulate_nb_cohort(
        spec["n_samples"],
        spec["n_genes"],
        seed=seed,
        design=spec["design"],
        n_outliers=spec["n_outliers"],
        de_fraction=spec.get("de_fraction", 0.1),
    )
    if "edit" in spec:
        counts, metadata = spec["edit"](counts, metadata, seed)
    return counts, metadata


def fit(counts, metadata, design, dataset_class, stats_class_, inference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = dataset_class(
            counts=counts, metadata=metadata, design=DESIGNS[design], inference=inference, quiet=True
        )
        dds.deseq2()
        stats = stats_class_(dds, contrast=CONTRAST, alpha=ALPHA, inference=inference, quiet=True)
        stats.summary()
    return dds, stats.results_df


@pytest.fixture(scope="module", params=list(COHORTS))
def fits(request):
    spec = COHORTS[request.param]
    counts, metadata = make_cohort(spec)
    inference = BatchedInference(n_cpus=1)
    pydeseq2 = fit(counts, metadata, spec["design"], DeseqDataSet, DeseqStats, inference)
    batched = fit(counts, metadata, spec["design"], bd.BatchedDeseqDataSet, bd.BatchedDeseqStats, inference)
    return request.param, counts, pydeseq2, batched


def assert_same(new, reference, err_msg=""):
    np.testing.assert_allclose(
        np.asarray(new, dtype=float), np.asarray(reference, dtype=float), rtol=RTOL, atol=0, err_msg=err_msg
    )


def test_cohorts_reach_the_edge_cases(fits):
    """Each cohort exercises what its name says, in PyDESeq2's own fit."""
    name, _, (dds, res), _ = fits
    refitted = int(dds.var["refitted"].sum()) if "refitted" in dds.var else 0
    if name == "one factor, outliers":
        assert refitted >= 5
    if name in ("four terms", "small, unbalanced"):
        # Cook's distance finds the planted outliers, but no count can be replaced
        n_coefs = dds.obsm["design_matrix"].shape[1]
        assert (dds.layers["cooks"] > f.ppf(0.99, n_coefs, dds.n_obs - n_coefs)).any()
        assert not dds.obs["replaceable"].any() and refitted == 0
    if name == "small, unbalanced":
        # too few samples for the gamma GLM: PyDESeq2 falls back to the mean trend, and
        # the outliers' p-values are dropped (cells of 3 and 6 count for the maximum)
        assert dds.uns["disp_function_type"] == "mean"
        assert dds.cooks_outlier().any()
    if name == "genes with zeros":
        assert (~dds.var["non_zero"]).sum() == 3 and (~dds.filtered_genes).sum() >= 30
    if name == "null":
        assert (res["padj"] < ALPHA).sum() <= 2


def test_size_factors_and_normalised_counts(fits):
    _, _, (dds0, _), (dds1, _) = fits
    np.testing.assert_array_equal(dds1.obs["size_factors"], dds0.obs["size_factors"])
    np.testing.assert_array_equal(dds1.layers["normed_counts"], dds0.layers["normed_counts"])
    np.testing.assert_array_equal(dds1.var["_normed_means"], dds0.var["_normed_means"])
    np.testing.assert_array_equal(dds1.filtered_genes, dds0.filtered_genes)


def test_trend_coefficients_and_dispersions(fits):
    _, _, (dds0, _), (dds1, _) = fits
    assert dds1.uns["disp_function_type"] == dds0.uns["disp_function_type"]
    if dds0.uns["disp_function_type"] == "parametric":
        assert_same(dds1.uns["trend_coeffs"], dds0.uns["trend_coeffs"], "trend_coeffs")
    else:
        assert_same(dds1.uns["mean_disp"], dds0.uns["mean_disp"], "mean_disp")
    for column in ["genewise_dispersions", "fitted_dispersions", "MAP_dispersions", "dispersions"]:
        assert_same(dds1.var[column], dds0.var[column], column)
    np.testing.assert_array_equal(dds1.var["_outlier_genes"], dds0.var["_outlier_genes"])


def test_cooks_distances_and_outliers(fits):
    _, _, (dds0, _), (dds1, _) = fits
    assert_same(dds1.layers["cooks"], dds0.layers["cooks"], "cooks")
    if "replaced" in dds0.var:
        np.testing.assert_array_equal(dds1.var["replaced"], dds0.var["replaced"])
        np.testing.assert_array_equal(dds1.var["refitted"], dds0.var["refitted"])
    np.testing.assert_array_equal(dds1.cooks_outlier(), dds0.cooks_outlier())


def test_lfcs_pvalues_padj_and_calls(fits):
    _, _, (_, res0), (_, res1) = fits
    for column in ["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]:
        assert_same(res1[column], res0[column], column)
    np.testing.assert_array_equal(res1["padj"] < ALPHA, res0["padj"] < ALPHA)


def test_counts_are_not_modified_through_views(fits):
    """With no all-zero gene, PyDESeq2's X[:, non_zero_idx] are views of the counts."""
    _, counts, _, (dds1, _) = fits
    np.testing.assert_array_equal(dds1.X, counts.to_numpy())
    if dds1.var["non_zero"].all():
        assert dds1.non_zero_idx == slice(None)


# -- the pipeline's batched backend against PyDESeq2 as published ----------------


def test_batched_backend_matches_published_pydeseq2():
    """Subclasses + BatchedInference vs DeseqDataSet + DefaultInference, with the
    tolerances of tests/test_batched_inference.py, on its cohort with Cook's refits."""
    counts, metadata = simulate_nb_cohort(40, 150, seed=7, design="group", n_outliers=8)
    dds0, res0 = fit(counts, metadata, "group", DeseqDataSet, DeseqStats, DefaultInference(n_cpus=1))
    dds1, res1 = fit(
        counts, metadata, "group", bd.BatchedDeseqDataSet, bd.BatchedDeseqStats, BatchedInference(n_cpus=1)
    )
    assert dds0.var["refitted"].sum() > 0
    np.testing.assert_array_equal(dds1.var["refitted"], dds0.var["refitted"])
    np.testing.assert_allclose(dds1.uns["trend_coeffs"], dds0.uns["trend_coeffs"], rtol=1e-4)
    keep = interior_genes(dds0)
    np.testing.assert_allclose(
        dds1.var["MAP_dispersions"][keep], dds0.var["MAP_dispersions"][keep], rtol=1e-4
    )
    np.testing.assert_allclose(
        res1["log2FoldChange"][keep], res0["log2FoldChange"][keep], rtol=1e-4, atol=1e-6
    )
    moderate = keep & (res0["pvalue"] > 1e-20).to_numpy()
    np.testing.assert_allclose(res1["pvalue"][moderate], res0["pvalue"][moderate], rtol=1e-4)
    np.testing.assert_array_equal(res1["padj"].isna(), res0["padj"].isna())
    called0, called1 = res0["padj"] < ALPHA, res1["padj"] < ALPHA
    at_threshold = (res0["padj"] - ALPHA).abs() <= 0.01 * ALPHA
    assert called0.sum() >= 5
    assert not ((called0 != called1) & ~at_threshold).any()


@pytest.mark.parametrize("size_factors_fit_type", ["ratio", "iterative"])
def test_low_memory_drops_the_intermediates_and_changes_no_result(size_factors_fit_type):
    """With low_memory the fit keeps none of its samples x genes intermediates and gives the
    same results, bit for bit; iterative size factors (which read _mu_hat after the MAP fit,
    where PyDESeq2's low_memory drops it) still work."""
    counts, metadata = make_cohort(COHORTS["one factor, outliers"])
    results = []
    for low_memory in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dds = bd.BatchedDeseqDataSet(
                counts=counts,
                metadata=metadata,
                design=DESIGNS["group"],
                size_factors_fit_type=size_factors_fit_type,
                inference=BatchedInference(n_cpus=1),
                quiet=True,
                low_memory=low_memory,
            )
            dds.deseq2()
            stats = bd.BatchedDeseqStats(
                dds, contrast=CONTRAST, alpha=ALPHA, inference=dds.inference, quiet=True
            )
            stats.summary()
        results.append(stats.results_df)
    assert dds.var["refitted"].sum() >= 5
    assert set(dds.layers) == {"normed_counts"} and set(dds.obsm) == {"design_matrix"}
    assert not hasattr(dds, "counts_to_refit")
    pd.testing.assert_frame_equal(results[1], results[0], check_exact=True)


# -- paths left to PyDESeq2, the VST, the pipeline's hook ------------------------


@pytest.mark.parametrize("size_factors_fit_type", ["poscounts", "ratio"])
def test_size_factor_paths_left_to_pydeseq2(size_factors_fit_type):
    """poscounts, and ratio with a zero in every gene (PyDESeq2 switches to iterative)."""
    counts, metadata = simulate_nb_cohort(20, 60, seed=2, design="group")
    values = counts.to_numpy().copy()
    values[np.arange(60) % 20, np.arange(60)] = 0
    counts = pd.DataFrame(values, index=counts.index, columns=counts.columns)
    fitted = []
    for dataset_class in (DeseqDataSet, bd.BatchedDeseqDataSet):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dds = dataset_class(
                counts=counts,
                metadata=metadata,
                design="~ group",
                size_factors_fit_type=size_factors_fit_type,
                inference=BatchedInference(n_cpus=1),
                quiet=True,
            )
            dds.fit_size_factors()
        fitted.append(dds.obs["size_factors"].to_numpy())
    assert_same(fitted[1], fitted[0])


def test_vst_trend_matches_pydeseq2():
    counts, metadata = simulate_nb_cohort(30, 200, seed=4, design="group")
    transformed = []
    for dataset_class in (DeseqDataSet, bd.BatchedDeseqDataSet):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dds = dataset_class(
                counts=counts,
                metadata=metadata,
                design="~ group",
                inference=BatchedInference(n_cpus=1),
                quiet=True,
            )
            dds.vst(use_design=False)
        transformed.append((dds.uns["vst_trend_coeffs"], dds.layers["vst_counts"]))
    assert_same(transformed[1][0], transformed[0][0], "vst_trend_coeffs")
    assert_same(transformed[1][1], transformed[0][1], "vst_counts")


@pytest.mark.parametrize(
    "backend, dataset_class, stats_class_",
    [("batched", bd.BatchedDeseqDataSet, bd.BatchedDeseqStats), ("default", DeseqDataSet, DeseqStats)],
)
def test_pipeline_uses_the_backends_classes(backend, dataset_class, stats_class_):
    import anndata as ad

    counts, metadata = simulate_nb_cohort(10, 20, seed=1, design="group")
    adata = ad.AnnData(counts.to_numpy(), obs=metadata[["group"]], var=pd.DataFrame(index=counts.columns))
    settings = {"inference": backend}
    assert type(make_dataset(adata, "~ group", settings, 1)) is dataset_class
    assert stats_class(settings) is stats_class_


# -- primitives against PyDESeq2's functions ------------------------------------


@pytest.mark.parametrize("n_columns", [7, 8])
def test_sorted_median_rows_equals_numpy_median(n_columns):
    x = np.random.default_rng(0).normal(size=(50, n_columns))
    x[3, :2] = x[3, 2]  # ties
    np.testing.assert_array_equal(bd.sorted_median_rows(x), np.median(x, axis=1))


@pytest.mark.parametrize("n_samples", [3, 5, 12, 30])
def test_trimmed_statistics_match_pydeseq2(n_samples):
    x = np.random.default_rng(n_samples).negative_binomial(2, 0.02, size=(n_samples, 40)) * 1.3
    for trim in bd.CELL_TRIM:
        assert_same(bd.trimmed_means(x.T, trim), utils.trimmed_mean(x, trim=trim, axis=0))
    assert_same(bd.trimmed_variances(x.T, 0.125, 1.51), utils.trimmed_variance(x))


@pytest.mark.parametrize("cells", ["none with 3", "3 and 9", "5 and 25, one of 2"])
def test_robust_moments_dispersions_match_pydeseq2(cells):
    sizes = {"none with 3": [2, 2, 1], "3 and 9": [3, 9], "5 and 25, one of 2": [5, 25, 2]}[cells]
    level = np.repeat(np.arange(len(sizes)), sizes)
    design = pd.DataFrame({"Intercept": 1.0, **{f"g{k}": (level == k) * 1.0 for k in range(1, len(sizes))}})
    normed = np.random.default_rng(1).negative_binomial(3, 0.01, size=(len(level), 60)) + 0.5
    assert_same(
        bd.robust_moments_dispersions(normed, design), utils.robust_method_of_moments_disp(normed, design)
    )


def test_bh_rejections_count_scipys_adjusted_pvalues():
    rng = np.random.default_rng(3)
    for pvalues in [
        np.sort(np.concatenate([rng.uniform(size=500), rng.uniform(0, 1e-3, 40)])),
        np.array([0.01]),
        np.array([]),
        np.full(20, 0.002),
    ]:
        expected = (false_discovery_control(pvalues) < ALPHA).sum()
        assert bd.bh_rejections(pvalues, ALPHA) == expected


def test_independent_filtering_matches_pydeseq2_where_it_filters():
    """p-values planted so that dropping the low-count half gains rejections (the cutoff
    PyDESeq2 chooses is above 0), with some genes untested (NaN)."""
    counts, metadata = simulate_nb_cohort(20, 400, seed=6, design="group")
    inference = BatchedInference(n_cpus=1)
    dds, _ = fit(counts, metadata, "group", DeseqDataSet, DeseqStats, inference)
    rng = np.random.default_rng(6)
    base_mean = np.concatenate([rng.uniform(0.5, 5, 200), rng.uniform(50, 500, 200)])
    pvalues = np.concatenate([rng.uniform(size=200), rng.uniform(0, 0.01, 60), rng.uniform(size=140)])
    pvalues[rng.choice(400, 8, replace=False)] = np.nan
    padj = []
    for stats_class_ in (DeseqStats, bd.BatchedDeseqStats):
        stats = stats_class_(dds, contrast=CONTRAST, alpha=ALPHA, inference=inference, quiet=True)
        stats.p_values = pd.Series(pvalues, index=dds.var_names)
        stats.base_mean = pd.Series(base_mean, index=dds.var_names)
        stats._independent_filtering()
        padj.append(stats.padj)
    assert padj[0].isna().sum() > 50  # low-count genes filtered out
    np.testing.assert_array_equal(padj[1].isna(), padj[0].isna())
    assert_same(padj[1], padj[0])
