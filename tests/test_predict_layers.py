"""The prediction over several layers: samples common to every layer, what each layer adds over
the clinical and the mRNA model, and the report's sentence on it."""

import logging

import pandas as pd
import pytest

from test_predict import DESEQ2, FILTER, SETTINGS, count_cohort, layered_cohort
from trdpipe.predict.features import read_layers
from trdpipe.predict.models import compare_models, cross_validate, layer_gains
from trdpipe.report.sections.prediction import layer_sentence

LAYERED = {**SETTINGS, "c_grid": [1.0], "stacked_learners": ["l2"]}


def gains_of(cohort) -> pd.DataFrame:
    predictions, *_ = cross_validate(cohort, LAYERED, FILTER, DESEQ2, seed=1, n_jobs=1)
    assert predictions.groupby(["feature_set", "repeat"])["sample_id"].nunique().eq(len(cohort.labels)).all()
    return predictions, layer_gains(predictions, cohort).set_index(["feature_set", "reference"])


def test_only_the_layer_that_carries_signal_adds_to_clinical_data_and_to_mrna(caplog):
    """mRNA and genotypes are noise and the small RNA carries the signal: the small RNA's gain
    over the clinical model and over the mRNA model has its interval above 0, the mRNA's and the
    genotypes' gains over clinical data have intervals that hold 0; the combined and stacked
    models carry the small RNA's signal. Two samples without small RNA are left out of every set."""
    with caplog.at_level(logging.INFO, logger="trd"):
        cohort = layered_cohort(1.0, n_samples=60, absent=["S05", "S17"])
    assert len(cohort.labels) == 58 and "S05" not in cohort.sample_ids
    assert (
        "prediction: 2 sample(s) of the contrast have no mirna data and are left out of every feature set "
        "(so that all are compared on the same samples): S05, S17"
    ) in caplog.text
    predictions, gains = gains_of(cohort)
    for reference in ("clinical", "mrna"):
        assert (
            gains.loc[("mirna", reference), "gain_low"] > 0
            and gains.loc[("mirna", reference), "gain_p"] < 0.05
        )
    for layer in ("mrna", "genotypes"):
        assert gains.loc[(layer, "clinical"), "gain_low"] < 0 < gains.loc[(layer, "clinical"), "gain_high"]
    for fused in ("combined", "stacked"):
        assert gains.loc[(fused, "clinical"), "gain_low"] > 0
    # the gain is the difference of the two models' mean fold AUCs (paired on the same folds)
    row = gains.loc[("mirna", "mrna")]
    assert row["auc_gain"] == pytest.approx(row["auc_mean"] - row["reference_auc_mean"], abs=1e-12)
    comparison = compare_models(predictions, cohort, LAYERED, seed=1).set_index("feature_set")
    assert comparison.loc["mirna", "auc_mean"] > 0.8 and comparison.loc["mrna", "auc_mean"] < 0.7
    assert comparison.loc["mirna", "auc_gain_over_clinical"] == pytest.approx(
        gains.loc[("mirna", "clinical"), "auc_gain"], abs=1e-12
    )
    assert layer_sentence(gains.reset_index(), "mrna", "l2").startswith(
        "Over the clinical model (l2), mirna adds "
    )


def test_no_layer_adds_on_a_cohort_without_signal():
    """Every layer noise: no gain interval over the clinical model lies above 0."""
    _, gains = gains_of(layered_cohort(0.0, n_samples=60, seed=8))
    clinical = gains.xs("clinical", level="reference")
    assert (clinical["gain_low"] < 0).all() and (clinical["auc_mean"] < 0.75).all()


def test_the_layer_sentence_names_what_each_layer_adds():
    gains = pd.DataFrame(
        [
            ("mrna", "l2", "clinical", 0.62, 0.60, 0.02, -0.05, 0.09, 0.51),
            ("mirna", "l2", "clinical", 0.81, 0.60, 0.21, 0.12, 0.30, 0.001),
            ("genotypes", "l2", "clinical", 0.58, 0.60, -0.02, -0.09, 0.05, 0.6),
            ("combined", "l2", "clinical", 0.80, 0.60, 0.20, 0.10, 0.30, 0.002),
            ("mirna", "l2", "mrna", 0.81, 0.62, 0.19, 0.10, 0.28, 0.003),
            ("genotypes", "l2", "mrna", 0.58, 0.62, -0.04, -0.11, 0.03, 0.3),
            ("mirna", "hgb", "clinical", 0.70, 0.60, 0.10, 0.0, 0.2, 0.05),
        ],
        columns=[
            "feature_set",
            "learner",
            "reference",
            "auc_mean",
            "reference_auc_mean",
            "auc_gain",
            "gain_low",
            "gain_high",
            "gain_p",
        ],
    )
    assert layer_sentence(gains, "mrna", "l2") == (
        "Over the clinical model (l2), mirna adds +0.21 AUC (95% CI +0.12 to +0.30, p = 0.001); mrna "
        "(+0.02, -0.05 to +0.09, p = 0.51) and genotypes (-0.02, -0.09 to +0.05, p = 0.6) add nothing "
        "detectable; over the mrna model, mirna adds +0.19 (+0.10 to +0.28, p = 0.003)."
    )


def test_the_rule_s_layers_are_read_with_their_settings_and_the_sheet_s_scores(tmp_path):
    """What the predict rule hands over: another assay's filtered cohort and the genotype dosages
    (gzipped TSV, first column sample_id, a missing call empty), joined with the sheet's score."""
    obs = count_cohort(0.0, n_samples=6, n_genes=5).obs.assign(prs=[0.1, -0.2, 0.3, 0.0, 1.2, -1.0])
    count_cohort(0.5, n_samples=6, n_genes=4).write_h5ad(tmp_path / "mirna.h5ad")
    dosages = pd.DataFrame(
        {"sample_id": ["S00", "S01", "S02", "S04"], "rs6295": [0, 1, None, 2], "rs17110747": [2, 2, 1, 0]}
    )
    dosages.to_csv(tmp_path / "dosages.tsv.gz", sep="\t", index=False)
    settings = {
        "primary": "mrna",
        "assays": ["mirna"],
        "mirna": {"n_features": 3, "filter": FILTER},
        "genotypes": {"scores": ["prs"], "n_features": 200},
    }
    mirna, genotypes = read_layers(settings, [tmp_path / "mirna.h5ad"], str(tmp_path / "dosages.tsv.gz"), obs)
    assert (mirna.name, mirna.kind, mirna.n_features, mirna.filter_settings) == ("mirna", "counts", 3, FILTER)
    assert mirna.values.shape == (6, 4) and list(mirna.values.columns) == ["g0", "g1", "g2", "g3"]
    assert (genotypes.name, genotypes.kind, genotypes.n_features) == ("genotypes", "genotypes", 200)
    assert list(genotypes.values.index) == ["S00", "S01", "S02", "S04"]
    assert list(genotypes.values.columns) == ["rs6295", "rs17110747", "prs"]
    assert genotypes.values.loc["S04", "prs"] == 1.2 and pd.isna(genotypes.values.loc["S02", "rs6295"])
    assert read_layers({**settings, "assays": []}, [], [], obs) == []
