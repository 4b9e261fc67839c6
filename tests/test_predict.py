from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from sklearn.impute import SimpleImputer
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from conftest import default_config_and, run_snakemake, small_cohort_config
from noise_cv import coverage, null_comparison
from trdpipe.checks.inputs import check_prediction_inputs, prediction_group_column
from trdpipe.common import InputError
from trdpipe.model.vst import variance_stabilise
from trdpipe.predict import features
from trdpipe.predict import models as prediction
from trdpipe.predict.contrast import model_genes
from trdpipe.predict.features import FoldVST, make_cohort, vst_settings
from trdpipe.predict.figures import prediction_figures
from trdpipe.predict.models import (
    bootstrap_indices,
    compare_models,
    cross_validate,
    outer_splits,
    permutation_null,
    permutation_p,
    permuted_labels,
    rank_auc,
    site_splits,
    validate_by_site,
)

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
FILTER = {"min_count": 10, "min_total_count": 15, "large_n": 10, "min_prop": 0.7}
DESEQ2 = {"fit_type": "parametric", "vst_nsub": 1000, "inference": "batched"}
SETTINGS = {
    "n_genes": 20,
    "outer_folds": 4,
    "inner_folds": 3,
    "repeats": 2,
    "learners": ["l2"],
    "c_grid": [0.1, 1.0],
    "elasticnet_c_grid": [1.0],
    "elasticnet_l1_ratios": [0.5],
    "hgb_learning_rates": [0.1],
    "covariates": ["sex", "age", "site"],
    "group_by": "auto",
    "permutations": 19,
    "bootstrap": 500,
    "stacked_learners": [],
}


def count_cohort(signal: float, n_samples=60, n_genes=300, seed=3, n_signal=10, labels=None) -> ad.AnnData:
    """Negative-binomial counts; genes g0..g{n_signal-1} shift by `signal` (log2) in TRD, the
    others are noise; three sites, sex and age unrelated to the group (`labels`, 1 = TRD, drawn
    at random unless given)."""
    rng = np.random.default_rng(seed)
    permuted = rng.permutation(np.repeat([1, 0], n_samples // 2))
    labels = permuted if labels is None else labels
    log_mean = rng.uniform(3, 9, n_genes)[None, :] + rng.normal(0, 0.2, (n_samples, 1))
    log_mean[:, :n_signal] += signal * np.log(2) * labels[:, None]
    mean = np.exp(log_mean)
    shape = 1 / (0.05 + 3 / mean)  # a dispersion trend DESeq2's parametric fit can find
    counts = rng.poisson(rng.gamma(shape, mean / shape))
    obs = pd.DataFrame(
        {
            "group": np.where(labels == 1, "TRD", "responder"),
            "site": rng.choice(["siteA", "siteB", "siteC"], n_samples),
            "sex": rng.choice(["female", "male"], n_samples),
            "age": rng.normal(45, 10, n_samples).round(1),
        },
        index=[f"S{i:02d}" for i in range(n_samples)],
    )
    var = pd.DataFrame(
        {"gene_symbol": [f"G{i}" for i in range(n_genes)]}, index=[f"g{i}" for i in range(n_genes)]
    )
    return ad.AnnData(X=counts, obs=obs, var=var)


def cohort_of(adata, group_by="site"):
    return make_cohort(adata, CONTRAST, ["sex", "age", "site"], group_by)


def layered_cohort(mirna_signal: float, n_samples=60, seed=3, absent=(), group_by=None):
    """Three layers of the same samples where only the small RNA carries signal: mRNA counts of
    pure noise (300 genes), miRNA counts (80, the first 8 shifting by `mirna_signal` log2 in TRD;
    the samples of `absent` not measured) and genotypes (10 variants of 2-allele dosage with a few
    missing calls, and a polygenic score; all unrelated to the group)."""
    mrna = count_cohort(0.0, n_samples, 300, seed)
    labels = (mrna.obs["group"] == "TRD").to_numpy().astype(int)
    mirna = count_cohort(mirna_signal, n_samples, 80, seed + 1, n_signal=8, labels=labels)
    mirna_counts = pd.DataFrame(mirna.X, index=mrna.obs_names, columns=[f"miR-{i}" for i in range(80)])
    rng = np.random.default_rng(seed + 2)
    dosages = pd.DataFrame(
        rng.binomial(2, rng.uniform(0.1, 0.5, 10), (n_samples, 10)).astype(float),
        index=mrna.obs_names,
        columns=[f"rs{i}" for i in range(10)],
    )
    dosages = dosages.mask(rng.random(dosages.shape) < 0.03)
    dosages["prs"] = rng.normal(0, 1, n_samples)
    layers = (
        features.Layer("mirna", "counts", mirna_counts.drop(index=list(absent)), 20, FILTER),
        features.Layer("genotypes", "genotypes", dosages, 20),
    )
    return make_cohort(mrna, CONTRAST, ["sex", "age", "site"], group_by, None, "mrna", layers)


# ---------------------------------------------------------------- in-fold VST


def test_fold_vst_gives_training_samples_the_pipeline_vst_and_test_samples_values_of_their_own():
    adata = count_cohort(0.0, n_samples=40)
    counts = np.asarray(adata.X)
    train, test = np.arange(30), np.arange(30, 40)
    vst = FoldVST(FILTER, vst_settings(DESEQ2), group_size=10).fit(counts[train])
    expected = variance_stabilise(adata[train][:, vst.genes_], vst_settings(DESEQ2), n_cpus=1)
    np.testing.assert_allclose(vst.transform(counts[train]), expected, rtol=1e-10)
    # a test sample's values depend on the training fit and itself only ...
    alone = np.vstack([vst.transform(counts[[i]]) for i in test])
    np.testing.assert_allclose(vst.transform(counts[test]), alone, rtol=1e-12)
    # ... and its size factor is the median ratio to the training samples' geometric means
    kept = counts[:, vst.genes_].astype(float)
    with np.errstate(divide="ignore"):
        logmeans = np.log(kept[train]).mean(axis=0)
    usable = np.isfinite(logmeans)
    size_factor = np.exp(np.median(np.log(kept[35, usable]) - logmeans[usable]))
    np.testing.assert_allclose(
        vst.transform(counts[[35]])[0], transformed_by_hand(vst, kept[35] / size_factor), rtol=1e-10
    )
    # fitted with the test samples, the values would differ: the check above can fail
    everyone = FoldVST(FILTER, vst_settings(DESEQ2), group_size=10).fit(counts)
    assert not np.allclose(everyone.transform(counts[test])[:, :50], vst.transform(counts[test])[:, :50])


def transformed_by_hand(vst, normed):
    """DESeq2's VST of normalised counts with the training fit's parametric trend."""
    a0, a1 = vst.dds_.uns["vst_trend_coeffs"]
    return np.log2((1 + a1 + 2 * a0 * normed + 2 * np.sqrt(a0 * normed * (1 + a1 + a0 * normed))) / (4 * a0))


# ---------------------------------------------------------------- no test sample is ever seen


class Spy:
    """Records the samples every learning step is fitted on: the fold VST of each count layer
    (size factors and trend), the genotypes' imputation, the feature selection, the scaler
    (checked to get exactly its model's rows), the learner and the stacked model's
    meta-learner, against the outer split in progress; and that no fitted model predicts a
    sample it was fitted on (the stacked model's inputs must be out of fold)."""

    def __init__(self, cohort, monkeypatch):
        self.split, self.violations, self.fits, self.predictions = {"fold_rows": []}, [], [], 0
        layers = [cohort.counts] + [layer.values.to_numpy() for layer in cohort.layers]
        sample_of_row = {
            row.tobytes(): i for values in layers for i, row in enumerate(np.ascontiguousarray(values))
        }
        fitted_rows = {}
        spy = self

        def fold_fit(step, original):
            def fit(transform, values, y=None):
                rows = {sample_of_row[row.tobytes()] for row in np.ascontiguousarray(values)}
                spy.split["fold_rows"].append((step, rows))
                return original(transform, values, y)

            return fit

        def run_models(features, label_sets, train, test, *args):
            spy.split.update(values=features.values, train=set(train), test=set(test))
            for step, rows in spy.split.pop("fold_rows"):
                spy.check(step, rows)
            spy.split["fold_rows"] = []
            return original_run_models(features, label_sets, train, test, *args)

        def top_genes(genes, labels, masks, k):
            for mask in masks:
                spy.check("gene selection", set(np.flatnonzero(mask)))
            return original_top_genes(genes, labels, masks, k)

        def fit_model(values, rows, columns, labels, learner, *args):
            spy.check("meta-learner" if learner == prediction.META_LEARNER else "learner", set(rows))
            spy.split["expected_scaler_input"] = values[np.ix_(rows, columns)]
            pipeline = original_fit_model(values, rows, columns, labels, learner, *args)
            fitted_rows[id(pipeline)] = set(rows)
            return pipeline

        def predict_rows(pipeline, values, rows, columns):
            spy.predictions += 1
            if set(rows) & fitted_rows[id(pipeline)]:
                spy.violations.append(("prediction", "of samples the model was fitted on"))
            return original_predict_rows(pipeline, values, rows, columns)

        def scale_fit(scaler, X, y=None, sample_weight=None):
            spy.fits.append("scaling")
            if not np.array_equal(X, spy.split.pop("expected_scaler_input")):
                spy.violations.append(("scaling", "fitted on other rows than its model"))
            return original_scale_fit(scaler, X, y, sample_weight)

        original_run_models, original_predict_rows = prediction.run_models, prediction.predict_rows
        original_top_genes, original_fit_model = prediction.top_genes, prediction.fit_model
        original_scale_fit = StandardScaler.fit
        monkeypatch.setattr(FoldVST, "fit", fold_fit("size factors and VST trend", FoldVST.fit))
        monkeypatch.setattr(SimpleImputer, "fit", fold_fit("imputation", SimpleImputer.fit))
        monkeypatch.setattr(prediction, "run_models", run_models)
        monkeypatch.setattr(prediction, "top_genes", top_genes)
        monkeypatch.setattr(prediction, "fit_model", fit_model)
        monkeypatch.setattr(prediction, "predict_rows", predict_rows)
        monkeypatch.setattr(StandardScaler, "fit", scale_fit)

    def check(self, step, rows):
        self.fits.append(step)
        if rows & self.split["test"] or not rows <= self.split["train"]:
            self.violations.append((step, sorted(rows & self.split["test"])))


@pytest.mark.parametrize("leak", [None, "vst", "selection"])
def test_no_learning_step_ever_sees_a_test_sample(monkeypatch, leak):
    """The spy sees every fit of the size factors and VST trend, the gene selection, the scaler
    and the learner, in every outer and site-held-out split and every inner fold. Planted leaks
    (a VST fitted on all samples, the old blind-VST shortcut; genes selected on all samples)
    are reported, so the check can fail."""
    adata = count_cohort(1.0, n_samples=40, n_genes=120)
    cohort = cohort_of(adata)
    if leak == "vst":
        original_features = prediction.split_features
        monkeypatch.setattr(
            prediction,
            "split_features",
            lambda cohort, train, *args: original_features(cohort, np.arange(40), *args),
        )
    spy = Spy(cohort, monkeypatch)
    if leak == "selection":  # planted in the caller of the spied selection, as a bug would be
        spied = prediction.top_genes
        monkeypatch.setattr(
            prediction,
            "top_genes",
            lambda genes, labels, masks, k: spied(genes, labels, np.ones_like(masks), k),
        )
    settings = {**SETTINGS, "learners": ["l2", "hgb"], "repeats": 1}
    cross_validate(cohort, settings, FILTER, DESEQ2, seed=1, n_jobs=1)
    assert set(spy.fits) == {"size factors and VST trend", "gene selection", "learner", "scaling"}
    # 4 outer + 3 site splits; 3 inner folds + the refit each; per split 3 feature sets x
    # (l2: 2 grid values x 3 inner fits + refit; hgb: one grid value, refit only)
    assert spy.fits.count("gene selection") == 7 * 4
    assert spy.fits.count("learner") == spy.fits.count("scaling") == 7 * 3 * ((2 * 3 + 1) + 1)
    if leak is None:
        assert spy.violations == []
    else:
        expected = {"vst": "size factors and VST trend", "selection": "gene selection"}[leak]
        assert {step for step, _ in spy.violations} == {expected}


@pytest.mark.parametrize("leak", [None, "in-sample inputs", "meta-learner on test"])
def test_the_stacked_model_never_sees_a_test_sample(monkeypatch, leak):
    """Three layers and a stacked model: every fold transform, selection and fit of every layer
    model and of the meta-learner stays within the outer training set, and no model predicts a
    sample it was fitted on, so the meta-learner learns from out-of-fold probabilities only.
    Planted leaks are reported: the layer models' refit predicting the training samples the
    meta-learner is fitted on (in-sample inputs, the classic stacking error), and the
    meta-learner fitted on the test samples too."""
    cohort = layered_cohort(1.0, n_samples=40, absent=["S03"])
    spy = Spy(cohort, monkeypatch)
    if leak == "in-sample inputs":
        tuned = prediction.best_params

        def in_sample(values, labels, folds, columns, learner, settings, seed, out_of_fold=False):
            params, inner = tuned(values, labels, folds, columns, learner, settings, seed, out_of_fold)
            if out_of_fold:
                train = np.concatenate([validation for _, validation in folds])
                model = prediction.fit_model(
                    values, train, columns[0], labels, learner, params, settings, seed
                )
                inner = [prediction.predict_rows(model, values, rows, columns[0]) for _, rows in folds]
            return params, inner

        monkeypatch.setattr(prediction, "best_params", in_sample)
    if leak == "meta-learner on test":
        stacked = prediction.stacked_model
        monkeypatch.setattr(
            prediction,
            "stacked_model",
            lambda features, labels, train, test, *args: stacked(
                features, labels, np.concatenate([train, test]), test, *args
            ),
        )
    settings = {**SETTINGS, "repeats": 1, "stacked_learners": ["l2"]}
    predictions, *_ = cross_validate(cohort, settings, FILTER, DESEQ2, seed=1, n_jobs=1)
    assert set(predictions["feature_set"]) == {
        "clinical",
        "mrna",
        "mirna",
        "genotypes",
        "combined",
        "stacked",
    }
    assert len(predictions) == 39 * 6
    if leak is None:
        assert spy.violations == []
        # 4 outer splits: the VST of mrna and mirna, the imputation, a selection per layer and fit
        # set (3 inner + the training set); five
        # l2 models of 2 grid values x 3 inner fits + the refit (the stacked model's layer models
        # among them: their inner fits give its inputs) and one meta-learner
        assert [
            spy.fits.count(step) for step in ("size factors and VST trend", "imputation", "gene selection")
        ] == [
            4 * 2,
            4,
            4 * 3 * 4,
        ]
        assert spy.fits.count("learner") == 4 * 5 * (2 * 3 + 1) and spy.fits.count("meta-learner") == 4
        assert spy.predictions == 4 * (5 * (2 * 3 + 1) + 1)
    else:
        expected = {
            "in-sample inputs": {"prediction"},
            "meta-learner on test": {"meta-learner", "prediction"},
        }
        assert {step for step, _ in spy.violations} == expected[leak]


# ---------------------------------------------------------------- folds and permutations


def test_site_held_out_folds_never_mix_sites():
    sites = np.array(["a", "b", "c", "a", "c", "c", "b", "a"])
    splits = site_splits(sites)
    assert [site for site, _, _ in splits] == ["a", "b", "c"]
    for site, train, test in splits:
        assert set(sites[test]) == {site}
        assert site not in set(sites[train])
        assert sorted(np.concatenate([train, test])) == list(range(len(sites)))


def test_permutations_keep_every_fold_and_site_case_mix_and_shuffle_within_them():
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat([1, 0], 30))
    sites = rng.choice(["a", "b", "c"], 60)
    splits = outer_splits(labels, 5, 2, seed=4)
    folds = np.zeros(60, dtype=int)
    for repeat, fold, _, test in splits:
        if repeat == 1:
            folds[test] = fold
    permuted = permuted_labels(labels, folds, sites, 50, seed=1)
    for fold in range(1, 6):
        assert {labels[folds == fold].sum()} == set(permuted[:, folds == fold].sum(axis=1))
        for site in "abc":
            cell = (folds == fold) & (sites == site)
            assert set(permuted[:, cell].sum(axis=1)) == {labels[cell].sum()}
    assert (permuted != labels).any(axis=1).all()
    # every sample is a case in some permutations and a control in others (unless its cell is pure)
    mixed = [(permuted[:, i] != permuted[0, i]).any() for i in range(60)]
    assert np.mean(mixed) > 0.8


def noise_null_p(seed):
    adata = count_cohort(0.0, n_samples=48, n_genes=150, seed=seed)
    cohort = cohort_of(adata)
    settings = {**SETTINGS, "repeats": 1, "c_grid": [1.0]}
    splits = outer_splits(cohort.labels, settings["outer_folds"], 1, seed)
    predictions, *_ = cross_validate(cohort, settings, FILTER, DESEQ2, seed, n_jobs=1)
    first = predictions[predictions["feature_set"] == "mrna"].set_index("sample_id").loc[cohort.sample_ids]
    observed = rank_auc(first["probability"].to_numpy(), cohort.labels)[0]
    null = permutation_null(cohort, splits, ("mrna", "l2"), settings, FILTER, DESEQ2, seed, n_jobs=1)
    return permutation_p(observed, null), null


def test_permutation_p_value_is_small_on_a_planted_signal():
    adata = count_cohort(0.8, n_samples=48, n_genes=150, seed=11)
    cohort = cohort_of(adata)
    settings = {**SETTINGS, "repeats": 1, "c_grid": [1.0]}
    splits = outer_splits(cohort.labels, settings["outer_folds"], 1, 11)
    predictions, *_ = cross_validate(cohort, settings, FILTER, DESEQ2, 11, n_jobs=1)
    first = predictions[predictions["feature_set"] == "mrna"].set_index("sample_id").loc[cohort.sample_ids]
    observed = rank_auc(first["probability"].to_numpy(), cohort.labels)[0]
    null = permutation_null(cohort, splits, ("mrna", "l2"), settings, FILTER, DESEQ2, 11, n_jobs=1)
    assert observed > 0.85
    assert permutation_p(observed, null) == pytest.approx(1 / 20)
    assert 0.35 < np.median(null) < 0.65


def test_permutation_p_value_on_noise_is_roughly_uniform():
    """Five noise cohorts, 19 permutations each: p-values spread over (0, 1], not piled at 1/20."""
    p_values = [noise_null_p(seed)[0] for seed in (21, 22, 23, 24, 25)]
    assert sum(p <= 0.1 for p in p_values) <= 1
    assert 0.25 < np.mean(p_values) < 0.8
    assert max(p_values) - min(p_values) > 0.3


def test_permutation_p_value_counts_ties_and_the_observed_run():
    assert permutation_p(0.7, np.array([0.5, 0.7, 0.8, 0.6])) == pytest.approx(3 / 5)
    assert permutation_p(0.9, np.array([0.5, 0.7, 0.8, 0.6])) == pytest.approx(1 / 5)


# ---------------------------------------------------------------- metrics against independent computations


def test_rank_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 50)
    scores = rng.integers(0, 6, (3, 50)).astype(float)  # many ties
    expected = [roc_auc_score(labels, row) for row in scores]
    np.testing.assert_allclose(rank_auc(scores, labels), expected, rtol=1e-12)


def synthetic_predictions(n=40, repeats=3, seed=5):
    """Out-of-fold predictions of a clinical and an expression model (the latter better)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([1, 0], n // 2))
    ids = np.array([f"S{i:02d}" for i in range(n)])
    rows = []
    for repeat in range(1, repeats + 1):
        folds = rng.permutation(np.arange(n) % 4) + 1
        for feature_set, strength in (("clinical", 0.3), ("mrna", 1.5)):
            probability = 1 / (1 + np.exp(-(strength * (labels - 0.5) * 2 + rng.normal(0, 1, n))))
            rows.append(
                pd.DataFrame(
                    {
                        "sample_id": ids,
                        "repeat": repeat,
                        "fold": folds,
                        "feature_set": feature_set,
                        "learner": "l2",
                        "label": labels,
                        "probability": probability,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True), labels, ids


def test_auc_brier_intervals_and_gain_equal_independent_computations():
    predictions, labels, ids = synthetic_predictions()
    cohort = features.Cohort(ids, np.zeros((40, 1)), np.array(["g"]), np.zeros((40, 0)), [], labels, None)
    settings = {"bootstrap": 200}
    table = compare_models(predictions, cohort, settings, seed=9).set_index("feature_set")

    def matrix(feature_set):
        chosen = predictions[predictions["feature_set"] == feature_set]
        return np.array(
            [chosen[chosen["repeat"] == r].set_index("sample_id").loc[ids, "probability"] for r in (1, 2, 3)]
        )

    def fold_aucs(feature_set):
        """Per fold (repeat-major): sklearn's AUC, and each case's and control's placement values."""
        chosen = predictions[predictions["feature_set"] == feature_set]
        folds = [
            chosen[(chosen["repeat"] == r) & (chosen["fold"] == f)].sort_values("sample_id")
            for r in (1, 2, 3)
            for f in (1, 2, 3, 4)
        ]
        return np.array([roc_auc_score(f["label"], f["probability"]) for f in folds]), [
            placements(f) for f in folds
        ]

    def corrected(values, placement_sets):
        """Nadeau & Bengio: 3 x 4 folds of 10 test and 30 training samples, t with 11 df; the fold
        variance at least the mean DeLong variance, var(V10) / n1 + var(V01) / n0 per fold."""
        delong = np.mean(
            [np.var(v10, ddof=1) / len(v10) + np.var(v01, ddof=1) / len(v01) for v10, v01 in placement_sets]
        )
        se = np.sqrt((1 / 12 + 10 / 30) * max(np.var(values, ddof=1), delong))
        half = scipy.stats.t.ppf(0.975, 11) * se
        return values.mean() - half, values.mean() + half, 2 * scipy.stats.t.sf(abs(values.mean()) / se, 11)

    # the stratified resamples, drawn as the code documents it: all cases' draws, then the controls'
    rng = np.random.default_rng(9)
    cases, controls = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    draws = np.hstack([rng.choice(cases, (200, len(cases))), rng.choice(controls, (200, len(controls)))])
    for feature_set in ("clinical", "mrna"):
        m, (folds, placement_sets), row = matrix(feature_set), fold_aucs(feature_set), table.loc[feature_set]
        assert row["auc_mean"] == pytest.approx(folds.mean(), abs=1e-12)
        low, high, _ = corrected(folds, placement_sets)
        assert (row["auc_low"], row["auc_high"]) == pytest.approx((max(low, 0), min(high, 1)), abs=1e-12)
        assert (row["auc_folds_low"], row["auc_folds_high"]) == pytest.approx(
            tuple(np.percentile(folds, [2.5, 97.5])), abs=1e-12
        )
        assert row["auc_pooled"] == pytest.approx(np.mean([roc_auc_score(labels, p) for p in m]), abs=1e-12)
        boot = np.array([np.mean([roc_auc_score(labels[d], p[d]) for p in m]) for d in draws])
        assert (row["auc_pooled_low"], row["auc_pooled_high"]) == pytest.approx(
            tuple(np.percentile(boot, [2.5, 97.5])), abs=1e-12
        )
        assert row["brier"] == pytest.approx(np.mean([np.mean((p - labels) ** 2) for p in m]), abs=1e-12)
        assert row["brier"] == pytest.approx(np.mean([brier_score_loss(labels, p) for p in m]), abs=1e-12)
    (expression_folds, expression_placements), (clinical_folds, clinical_placements) = (
        fold_aucs("mrna"),
        fold_aucs("clinical"),
    )
    paired = [
        (e10 - c10, e01 - c01) for (e10, e01), (c10, c01) in zip(expression_placements, clinical_placements)
    ]
    gain = expression_folds - clinical_folds  # paired: the same folds
    expression = table.loc["mrna"]
    assert expression["auc_gain_over_clinical"] == pytest.approx(gain.mean(), abs=1e-12)
    assert (expression["gain_low"], expression["gain_high"], expression["gain_p"]) == pytest.approx(
        corrected(gain, paired), abs=1e-12
    )
    assert 0 < expression["gain_p"] < 0.05 and expression["gain_low"] > 0
    assert bool(expression["best"]) and not table.loc["clinical", "best"]
    assert np.isnan(table.loc["clinical", "auc_gain_over_clinical"])


def placements(fold):
    """DeLong's placement values by pairs: a case's share of controls below it, a control's
    share of cases above it (ties one half)."""
    cases = fold.loc[fold["label"] == 1, "probability"].to_numpy()
    controls = fold.loc[fold["label"] == 0, "probability"].to_numpy()
    v10 = [np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for y in controls]) for x in cases]
    v01 = [np.mean([1.0 if x > y else 0.5 if x == y else 0.0 for x in cases]) for y in controls]
    return np.array(v10), np.array(v01)


def test_corrected_t_widens_the_naive_interval_by_the_overlap_of_the_training_sets():
    values = np.array([0.6, 0.7, 0.8])
    mean, low, high, p = prediction.corrected_t(values, test_train_ratio=0.25, null=0.5)
    # var 0.01; (1/3 + 1/4) * 0.01 = 0.005833; t(0.975, 2 df) = 4.302653
    assert mean == pytest.approx(0.7)
    assert (low, high) == pytest.approx((0.7 - 4.302653 * 0.0763763, 0.7 + 4.302653 * 0.0763763), abs=1e-6)
    assert p == pytest.approx(2 * scipy.stats.t.sf(0.2 / 0.0763763, 2), abs=1e-6)
    # a floor above the folds' spread replaces it: (1/3 + 1/4) * 0.04 = 0.023333
    assert prediction.corrected_t(values, 0.25, 0.5, variance_floor=0.04)[1] == pytest.approx(
        0.7 - 4.302653 * 0.1527525, abs=1e-6
    )
    assert prediction.corrected_t(np.full(4, 0.5), 0.25, null=0.5) == (0.5, 0.5, 0.5, 1.0)


def test_on_noise_the_corrected_interval_holds_its_coverage_and_the_pooled_bootstrap_does_not():
    """40 noise cohorts (tests/noise_cv.py), 60 samples, 2 x 5-fold nested CV: every model's
    true AUC is 0.5 and its true gain 0. The corrected t interval contains them in about 95%
    of the cohorts (its gain p-value falls below 0.05 in about 5%); the bootstrap of the pooled
    predictions, which ignores the folds, misses 0.5 in a fifth of them. Without the DeLong
    floor (corrected_t) the expression model's coverage falls to 0.85."""
    settings = {**SETTINGS, "n_genes": 10, "outer_folds": 5, "repeats": 2, "c_grid": [1.0], "bootstrap": 200}
    summary = coverage(pd.concat([null_comparison(60, 60, settings, seed) for seed in range(40)]))
    assert (summary["corrected_covers"] >= 0.9).all()
    assert (summary["bootstrap_covers"] <= summary["corrected_covers"] - 0.1).all()
    with_genes = summary.drop(index="clinical", level=0)
    assert (with_genes["gain_covers"] >= 0.9).all() and (with_genes["gain_p_below_05"] <= 0.1).all()


def test_bootstrap_resamples_keep_the_number_of_cases():
    labels = np.array([1, 0, 0, 1, 0, 1, 0])
    indices = bootstrap_indices(labels, 20, seed=1)
    assert (labels[indices].sum(axis=1) == 3).all() and indices.shape == (20, 7)


def test_site_validation_gives_each_site_its_auc_and_none_to_a_one_group_site():
    frame = pd.DataFrame(
        {
            "site": ["a"] * 6 + ["b"] * 3,
            "feature_set": "combined",
            "learner": "l2",
            "label": [1, 1, 0, 0, 1, 0, 1, 1, 1],
            "probability": [0.9, 0.4, 0.5, 0.1, 0.7, 0.8, 0.6, 0.2, 0.9],
        }
    )
    table = validate_by_site(frame, {"bootstrap": 200}, seed=1).set_index("site")
    assert table.loc["a", "auc"] == pytest.approx(
        roc_auc_score([1, 1, 0, 0, 1, 0], [0.9, 0.4, 0.5, 0.1, 0.7, 0.8])
    )
    assert np.isnan(table.loc["b", "auc"]) and table.loc["b", "n_test_group"] == 3
    assert table.loc["all sites (pooled)", "auc"] == pytest.approx(
        roc_auc_score(frame["label"], frame["probability"])
    )
    assert table.loc["a", "brier"] == pytest.approx(
        np.mean((frame["probability"][:6] - frame["label"][:6]) ** 2)
    )


# ---------------------------------------------------------------- the whole procedure


def test_planted_signal_is_predicted_by_expression_not_by_clinical_data_and_its_genes_lead():
    adata = count_cohort(1.2, n_samples=60, n_genes=300)
    cohort = cohort_of(adata)
    predictions, site_predictions, _, split_results = cross_validate(
        cohort, SETTINGS, FILTER, DESEQ2, seed=1, n_jobs=1
    )
    assert len(predictions) == 60 * 2 * 3 and set(predictions["repeat"]) == {1, 2}
    assert set(site_predictions["site"]) == {"siteA", "siteB", "siteC"}
    table = compare_models(predictions, cohort, SETTINGS, seed=1).set_index("feature_set")
    assert table.loc["mrna", "auc_mean"] > 0.9 and table.loc["combined", "auc_mean"] > 0.9
    assert table.loc["clinical", "auc_mean"] < 0.7  # the clinical columns carry no planted signal
    # 2 x 4 folds: the corrected t has 7 degrees of freedom
    assert table.loc["combined", "gain_low"] > 0 and table.loc["combined", "gain_p"] < 0.05
    genes = model_genes(cohort, split_results, ("combined", "l2"), SETTINGS, FILTER, DESEQ2, 1, adata.var)
    planted = {f"g{i}" for i in range(10)}
    assert set(genes["gene_id"].head(10)) == planted
    assert (genes.set_index("gene_id").loc[sorted(planted), "selection_frequency"] == 1.0).all()
    assert (genes.set_index("gene_id").loc[sorted(planted), "coefficient"] > 0).all()


def test_noise_gives_chance_performance_with_an_interval_that_includes_one_half():
    """Selection inside the folds: choosing the 20 best of 300 noise genes on all samples
    first would report an AUC near 0.9."""
    adata = count_cohort(0.0, n_samples=60, n_genes=300, seed=8)
    cohort = cohort_of(adata)
    predictions, *_ = cross_validate(cohort, SETTINGS, FILTER, DESEQ2, seed=1, n_jobs=1)
    table = compare_models(predictions, cohort, SETTINGS, seed=1).set_index("feature_set")
    for feature_set in ("mrna", "combined"):
        assert table.loc[feature_set, "auc_low"] < 0.5 < table.loc[feature_set, "auc_high"]
        assert table.loc[feature_set, "auc_mean"] < 0.7


# ---------------------------------------------------------------- bad input, stopped before any DE


def test_group_column_defaults_to_the_design_site_column_when_it_has_three_levels():
    sheet = pd.DataFrame({"site": ["a", "b", "c", "a"], "batch": ["x", "y", "x", "y"]})
    assert prediction_group_column(sheet, {"group_by": "auto"}, "~ site + group") == "site"
    assert prediction_group_column(sheet, {"group_by": "auto"}, "~ group") is None
    assert (
        prediction_group_column(
            sheet.assign(site=["a", "b", "a", "b"]), {"group_by": "auto"}, "~ site + group"
        )
        is None
    )
    assert prediction_group_column(sheet, {"group_by": "batch"}, "~ group") == "batch"
    assert prediction_group_column(sheet, {"group_by": ""}, "~ site + group") is None


def bad_sheet():
    return pd.DataFrame(
        {
            "group": ["TRD", "responder"] * 12,
            "site": ["a", "b", "c"] * 8,
            "sex": ["f", "m"] * 12,
            "age": np.arange(24.0),
            "one_site": "x",
        },
        index=[f"S{i:02d}" for i in range(24)],
    )


PREDICT = {"enabled": True, "inner_folds": 4, "covariates": ["sex", "age", "site"], "group_by": "auto"}


def test_a_covariate_with_missing_values_is_named():
    sheet = bad_sheet()
    sheet.loc[["S03", "S07"], "age"] = np.nan
    with pytest.raises(InputError) as error:
        check_prediction_inputs(sheet, {"c": CONTRAST}, "~ site + group", PREDICT, "config/samples.tsv")
    assert str(error.value) == (
        "config/samples.tsv: column 'age' of config predict.covariates has no value for sample(s) S03, S07; "
        "the prediction needs one for every sample (fill them in, or remove 'age' from predict.covariates)."
    )


def test_an_empty_covariate_list_is_refused():
    with pytest.raises(InputError) as error:
        check_prediction_inputs(
            bad_sheet(),
            {"c": CONTRAST},
            "~ site + group",
            {**PREDICT, "covariates": []},
            "config/samples.tsv",
        )
    assert str(error.value) == (
        "config predict.covariates is empty, so the clinical model has no features and the comparison of "
        "expression with clinical data cannot be made; name at least one column of the sample sheet "
        "config/samples.tsv, or set predict.enabled to false."
    )


def test_a_group_by_column_with_a_single_level_is_refused():
    with pytest.raises(InputError) as error:
        check_prediction_inputs(
            bad_sheet(),
            {"c": CONTRAST},
            "~ site + group",
            {**PREDICT, "group_by": "one_site"},
            "config/samples.tsv",
        )
    assert str(error.value) == (
        "config/samples.tsv: column 'one_site' (config predict.group_by) has a single level (x), so no "
        "site can be held out; name a column with at least 2 levels, or set predict.group_by to '' for "
        "no site-held-out validation."
    )


def test_too_few_samples_per_group_once_a_site_is_held_out():
    sheet = bad_sheet()
    sheet.loc[sheet["site"] != "a", "group"] = "responder"  # every TRD patient from site a
    sheet.loc[["S01", "S04", "S07"], "group"] = "TRD"
    with pytest.raises(InputError) as error:
        check_prediction_inputs(
            sheet, {"TRD_vs_responder": CONTRAST}, "~ site + group", PREDICT, "config/samples.tsv"
        )
    assert str(error.value) == (
        "config/samples.tsv: contrast 'TRD_vs_responder': without site 'a' (held out in the site-held-out "
        "validation) 3 sample(s) with group = 'TRD' remain; at least 4 are needed for the inner folds "
        "(config predict.inner_folds): lower it, set predict.group_by to '' for no site-held-out "
        "validation, or set predict.enabled to false."
    )


def test_a_covariate_with_missing_values_stops_the_run_at_ingest(workflow_copy):
    root = Path(__file__).resolve().parents[1]
    sheet = pd.read_csv(root / "resources/toy/samples.tsv", sep="\t", index_col=0)
    sheet["bmi"] = np.linspace(20, 30, len(sheet))
    sheet.iloc[[4, 9], sheet.columns.get_loc("bmi")] = np.nan
    sheet.to_csv(workflow_copy / "config" / "samples.tsv", sep="\t")
    result = run_snakemake(workflow_copy, "--config", "predict={covariates: [sex, age, bmi]}", check=False)
    assert result.returncode != 0
    missing = ", ".join(sheet.index[[4, 9]])
    assert (
        f"config/samples.tsv: column 'bmi' of config predict.covariates has no value for sample(s) "
        f"{missing}; the prediction needs one for every sample (fill them in, or remove 'bmi' from "
        "predict.covariates)."
    ) in result.stdout + result.stderr
    assert not (workflow_copy / "results").exists() or not any((workflow_copy / "results").rglob("*.h5ad"))


# ---------------------------------------------------------------- the rule on the toy cohort


def test_toy_cohort_prediction(toy_run):
    out = toy_run / "results/predict/TRD_vs_responder"
    comparison = pd.read_csv(out / "model_comparison.tsv", sep="\t")
    # clinical, the toy's layers (mrna, mirna, genotypes) and combined with the toy's 2 learners,
    # stacked with l2 (predict.stacked_learners), on the 46 samples every layer has (the miRNA
    # layer lacks two)
    assert len(comparison) == 11 and comparison["best"].sum() == 1
    assert (comparison["n_samples"] == 46).all()
    best = comparison[comparison["best"]].iloc[0]
    combined = comparison[comparison["feature_set"] == "combined"].set_index("learner")
    assert 0.65 <= combined.loc["l2", "auc_mean"] <= 0.90  # the toy leaves prediction non-trivial
    assert 0 < best["permutation_p"] <= 1 and comparison["permutation_p"].notna().sum() == 1
    assert (comparison["auc_low"] <= comparison["auc_mean"]).all()
    assert (comparison["auc_mean"] <= comparison["auc_high"]).all()
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert len(predictions) == 46 * 3 * 11  # the toy's 3 repeats
    gains = pd.read_csv(out / "layer_gains.tsv", sep="\t").set_index(["feature_set", "learner", "reference"])
    # the gains over clinical data are those of model_comparison; the stacked model is compared too
    row = comparison.set_index(["feature_set", "learner"]).loc[("mrna", "l2")]
    assert gains.loc[("mrna", "l2", "clinical"), "auc_gain"] == pytest.approx(row["auc_gain_over_clinical"])
    assert ("stacked", "l2", "mrna") in gains.index and ("mrna", "l2", "mrna") not in gains.index
    sites = pd.read_csv(out / "site_validation.tsv", sep="\t")
    assert set(sites["site"]) == {"siteA", "siteB", "siteC", "all sites (pooled)"}
    genes = pd.read_csv(out / "model_genes.tsv", sep="\t")
    assert genes["selection_frequency"].between(0, 1).all() and genes["in_final_model"].sum() > 0
    for figure in ("roc.png", "calibration.png", "layers.png"):
        assert (out / figure).stat().st_size > 5000


def test_a_cohort_too_small_to_cross_validate_stops_or_skips_the_prediction(workflow_copy):
    """4 TRD and 4 responders cannot fill 5 outer folds: with predict.enabled true ingest says so
    before any fitting, and with predict.enabled false everything else runs and the report says the
    prediction did not (`auto` switches it off: tests/test_config_first.py)."""
    root = Path(__file__).resolve().parents[1]
    sheet = pd.read_csv(root / "resources/toy/samples.tsv", sep="\t", index_col=0)
    keep = sheet.groupby("group").head(4).index
    counts = pd.read_csv(root / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    counts[list(keep)].to_csv(workflow_copy / "config" / "counts.tsv", sep="\t")
    sheet.loc[keep].to_csv(workflow_copy / "config" / "samples.tsv", sep="\t")
    small = ("--config", "counts=config/counts.tsv", "design=~ sex + group")

    stopped = run_snakemake(workflow_copy, *small, "predict={enabled: true}", check=False)
    assert stopped.returncode != 0
    assert (
        "config/samples.tsv: contrast 'TRD_vs_responder' has 4 sample(s) with group = 'TRD'; "
        "at least 5 are needed for the TRD prediction's nested cross-validation (config "
        "predict.outer_folds 5, predict.inner_folds 4): lower those, or set predict.enabled to "
        "false to skip the prediction."
    ) in stopped.stdout + stopped.stderr
    assert not (workflow_copy / "results" / "ingest" / "cohort.h5ad").exists()

    # the fewest permutations the schema allows, and the small curated collection alone: the point
    # is which jobs run, not their numbers
    config_path = workflow_copy / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["enrichment"]["collections"] = {"curated_TRD": config["enrichment"]["collections"]["curated_TRD"]}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    run_snakemake(
        workflow_copy,
        *small_cohort_config(workflow_copy),
        *small,
        "calibration={permutations: 10, block_size: 10}",
        "enrichment={permutations: 100}",
    )
    assert (workflow_copy / "results/de/TRD_vs_responder/deseq2_results.tsv").exists()
    assert not (workflow_copy / "results" / "predict").exists()
    page = (workflow_copy / "results/report/report.html").read_text(encoding="utf-8")
    assert "Not run: the config sets predict.enabled to false." in page
    assert "nested cross-validation" not in page.split('id="methods-text"')[1]


def test_new_prediction_settings_redo_only_the_prediction_and_the_report(toy_run, tmp_path):
    """Ingest and filter check the group sizes against predict's folds, but read them from the
    config rather than params, so that a change of them does not redo the DE and enrichment."""
    settings = tmp_path / "more_folds.yaml"
    settings.write_text("predict:\n  outer_folds: 4\n  inner_folds: 3\n  c_grid: [0.1, 1.0]\n  repeats: 2\n")
    dry_run = run_snakemake(toy_run, "--dry-run", *default_config_and(settings))
    table = dry_run.stdout.split("Job stats:")[1].strip().split("\n\n")[0].splitlines()[2:]
    # and the provenance: software_versions lists the run's config files, one more here
    assert {line.split()[0] for line in table} == {"predict", "software_versions", "report", "all", "total"}


def test_top_genes_ranks_as_sklearn_f_classif_for_every_label_vector_and_sample_set():
    from sklearn.feature_selection import f_classif

    rng = np.random.default_rng(4)
    genes = rng.normal(5, 2, (30, 40))
    labels = np.array([rng.permutation(np.repeat([1, 0], 15)) for _ in range(3)])
    masks = rng.random((3, 30)) < 0.7
    chosen = features.top_genes(genes, labels, masks, 6)
    for b in range(3):
        f, _ = f_classif(genes[masks[b]], labels[b][masks[b]])
        assert list(chosen[b]) == sorted(np.argsort(-f)[:6])


def test_a_contrast_of_sites_has_no_site_held_out_validation():
    sheet = pd.DataFrame({"site": ["A", "B", "C"] * 4, "group": ["TRD", "responder"] * 6})
    settings = {"group_by": "auto"}
    assert prediction_group_column(sheet, settings, "~ site + group") == "site"
    assert prediction_group_column(sheet, settings, "~ site + group", compared="site") is None
    sites = {"c": {"variable": "site", "test": "B", "reference": "A"}}
    check_prediction_inputs(
        sheet, sites, "~ site + group", {"group_by": "auto", "inner_folds": 4}, "s.tsv"
    )  # would need 4 samples of site A without site A


def test_prediction_figures_draw_each_feature_sets_best_learner_under_the_contrasts_title():
    labels = np.array([0, 0, 1, 1] * 3)
    rows = []
    for feature_set in ("clinical", "mrna", "combined"):
        for learner, shift in (("logistic", 0.3), ("boosting", 0.1)):
            rows.append(
                pd.DataFrame(
                    {
                        "feature_set": feature_set,
                        "learner": learner,
                        "label": labels,
                        "probability": np.clip(0.5 + shift * (labels - 0.5) * 2, 0, 1),
                    }
                )
            )
    predictions = pd.concat(rows, ignore_index=True)
    comparison = pd.DataFrame(
        [
            {
                "feature_set": f,
                "learner": lrn,
                "auc_mean": auc,
                "auc_low": auc - 0.1,
                "auc_high": 1.0,
                "brier": 0.2,
            }
            for f in ("clinical", "mrna", "combined")
            for lrn, auc in (("logistic", 0.9), ("boosting", 0.6))
        ]
    )
    gains = pd.DataFrame(
        [
            (f, lrn, reference, 0.9, 0.6, 0.3, 0.1, 0.5, 0.01)
            for f in ("mrna", "combined")
            for lrn in ("logistic", "boosting")
            for reference in ("clinical", "mrna")
            if f != reference
        ],
        columns=prediction.GAIN_COLUMNS,
    )
    result = {"predictions": predictions, "comparison": comparison, "gains": gains, "primary": "mrna"}
    figures = prediction_figures(result, {"variable": "arm", "test": "drug", "reference": "placebo"})
    aucs, added = figures["layers"].axes
    assert figures["layers"].get_suptitle() == "Prediction of drug vs placebo: what each layer adds"
    assert [t.get_text() for t in aucs.get_yticklabels()] == ["clinical", "mrna", "combined"]
    assert [t.get_text() for t in added.get_legend().get_texts()] == [
        "over the clinical model",
        "over the mrna model",
    ]
    roc, calibration = figures["roc"].axes[0], figures["calibration"].axes[0]
    assert roc.get_title() == "Prediction of drug vs placebo (nested cross-validation)"
    assert calibration.get_title() == "Prediction of drug vs placebo: calibration"
    assert [t.get_text() for t in roc.get_legend().get_texts()] == [
        f"{f} (logistic): AUC 0.90 [0.80, 1.00]" for f in ("clinical", "mrna", "combined")
    ]
    assert prediction_figures(result, CONTRAST)["roc"].axes[0].get_title() == (
        "TRD prediction (nested cross-validation)"
    )
