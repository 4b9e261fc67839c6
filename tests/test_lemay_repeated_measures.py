"""A real whole-blood cohort with repeated measures (Lemay et al. 2019, GSE127530; see
tests/data/lemay2019_whole_blood/SOURCE.md): 5 subjects x 3 diet arms x 3 timepoints. It tests
what the simulator cannot: the sex check on real XIST and Y-gene expression, permutations
within subject, and prediction folds that keep each subject whole. Expected values are those
SOURCE.md states; the pipeline's settings are its defaults."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from test_predict import DESEQ2, FILTER
from trdpipe.calibration.permutation import check_strata, labellings_available, permute_labels
from trdpipe.checks.inputs import check_prediction_inputs, prediction_groups_column
from trdpipe.common import InputError
from trdpipe.predict import models as prediction
from trdpipe.predict.features import make_cohort
from trdpipe.predict.models import (
    cross_validate,
    inner_folds,
    outer_splits,
    permutation_scheme,
    permuted_labels,
)
from trdpipe.qc.metrics import infer_sex, one_sided_sex_score, sex_flags, sex_scores
from trdpipe.report.sections.calibration import calibration_pairing
from trdpipe.report.sections.prediction import prediction_grouping

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests/data/lemay2019_whole_blood"
DESIGN = "~ subject + arm + timepoint"
CONTRAST = {"variable": "timepoint", "test": "6hr", "reference": "Fast"}
SEX_OF_SUBJECT = {"S9": "female", "S17": "female", "S2": "male", "S21": "male", "S27": "male"}


def schema_defaults(section: str) -> dict:
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    properties = schema["properties"][section]["properties"]
    return {key: spec["default"] for key, spec in properties.items() if "default" in spec}


# the cohort has no clinical columns but the arm
QC, PREDICT = schema_defaults("qc"), {**schema_defaults("predict"), "covariates": ["arm"]}


@pytest.fixture(scope="module")
def sheet() -> pd.DataFrame:
    return pd.read_csv(DATA / "samples.tsv", sep="\t", index_col="sample_id")


@pytest.fixture(scope="module")
def cohort(sheet) -> ad.AnnData:
    counts = pd.read_csv(DATA / "counts.tsv.gz", sep="\t", index_col=0)[sheet.index]
    var = pd.DataFrame({"gene_symbol": counts.index}, index=counts.index)
    return ad.AnnData(X=counts.to_numpy().T, obs=sheet.copy(), var=var)


def test_sex_check_calls_the_two_women_and_three_men_and_each_subject_agrees(cohort):
    scores = sex_scores(cohort, QC["female_genes"], QC["male_genes"])
    score = one_sided_sex_score(scores, QC["sex_margin"])
    inferred = infer_sex(score, QC["sex_margin"])
    expected = cohort.obs["subject"].map(SEX_OF_SUBJECT)
    assert (inferred == expected).all()
    assert inferred.groupby(cohort.obs["subject"]).nunique().eq(1).all()
    assert (sex_flags(expected, inferred, score, QC["sex_margin"]) == "").all()
    # a recorded sex swapped for one subject is flagged in all nine of its samples
    swapped = expected.mask(cohort.obs["subject"] == "S2", "female")
    flags = sex_flags(swapped, inferred, score, QC["sex_margin"])
    assert set(flags.index[flags != ""]) == set(cohort.obs_names[cohort.obs["subject"] == "S2"])


def test_calibration_permutes_timepoints_within_each_subject_and_arm_and_calls_it_paired(sheet):
    strata = check_strata(sheet, "6hr_vs_Fast", CONTRAST, DESIGN, None, "samples.tsv")
    assert strata == ["subject", "arm"]
    # 15 subject x arm strata of one Fast, one 3hr and one 6hr sample: 3! orders each
    assert labellings_available(sheet, "timepoint", strata) == 6**15 - 1
    labels = permute_labels(sheet, "timepoint", strata, 200, seed=7)
    for _, stratum in sheet.groupby(["subject", "arm"]):
        in_order = np.sort(labels.loc[stratum.index].to_numpy().astype(str), axis=0)
        assert (in_order == np.array([["3hr"], ["6hr"], ["Fast"]])).all()
    assert (labels.ne(sheet["timepoint"], axis=0)).any().all()
    config = {"design": DESIGN, "calibration": {"strata": None}}
    assert calibration_pairing(sheet, CONTRAST, config) == (
        "Paired design: the permutations stay within subject (subject x arm), so every subject keeps "
        "its own mix of timepoint levels and is compared with itself."
    )
    assert calibration_pairing(sheet, CONTRAST, {**config, "calibration": {"strata": ["arm"]}}) == ""


def test_prediction_folds_hold_one_subject_each_and_labels_are_permuted_within_subjects(cohort, sheet):
    assert prediction_groups_column(sheet, PREDICT, DESIGN, CONTRAST) == "subject"
    check_prediction_inputs(sheet, {"6hr_vs_Fast": CONTRAST}, DESIGN, PREDICT, "samples.tsv")
    data = make_cohort(cohort, CONTRAST, ["arm"], None, "subject")
    subjects, labels = data.groups, data.labels
    assert len(labels) == 30
    splits = outer_splits(labels, PREDICT["outer_folds"], PREDICT["repeats"], seed=1, groups=subjects)
    for repeat in range(1, PREDICT["repeats"] + 1):
        tested = [subjects[test] for r, _, _, test in splits if r == repeat]
        # 5 subjects, 5 folds: each test fold is one whole subject, with its 3 Fast and 3 6hr samples
        assert sorted(len(set(t)) for t in tested) == [1] * 5 and sorted({t[0] for t in tested}) == sorted(
            SEX_OF_SUBJECT
        )
    for _, _, train, test in splits:
        assert labels[test].sum() == 3 and len(test) == 6
        for fit, validation in inner_folds(labels, train, PREDICT["inner_folds"], 1, subjects):
            assert len(set(subjects[validation])) == 1 and subjects[validation][0] not in set(subjects[fit])
    assert permutation_scheme(labels, subjects) == "within groups"
    folds = np.zeros(len(labels), dtype=int)
    permuted = permuted_labels(labels, folds, None, 50, seed=2, groups=subjects)
    for subject in SEX_OF_SUBJECT:
        assert set(permuted[:, subjects == subject].sum(axis=1)) == {3}
    assert prediction_grouping(sheet, CONTRAST, {"predict": PREDICT, "design": DESIGN})["grouping"] == (
        "Related samples: every outer and inner fold keeps the samples of each subject together (5 "
        "subjects, predict.groups), so no model is tested on a subject it was trained on; the label "
        "permutations permute labels within each subject (the label varies within a subject: a paired "
        "design)."
    )


def test_the_grouped_cross_validation_runs_on_the_real_counts_without_splitting_a_subject(
    cohort, monkeypatch
):
    """The engine's own folds on 300 well-expressed genes: every inner fold keeps subjects whole."""
    expressed = np.argsort(-np.asarray(cohort.X).mean(axis=0))[:300]
    data = make_cohort(cohort[:, np.sort(expressed)], CONTRAST, ["arm"], None, "subject")
    seen, original = [], prediction.inner_folds

    def inner_folds_seen(labels, train, n_folds, seed, groups=None):
        seen.append(original(labels, train, n_folds, seed, groups))
        return seen[-1]

    monkeypatch.setattr(prediction, "inner_folds", inner_folds_seen)
    settings = {**PREDICT, "learners": ["l2"], "c_grid": [0.1, 1.0], "repeats": 1, "n_genes": 50}
    predictions, _, splits, _ = cross_validate(data, settings, FILTER, DESEQ2, seed=1, n_jobs=1)
    assert len(seen) == 5 and sorted(predictions["sample_id"].unique()) == sorted(data.sample_ids)
    for folds in seen:
        for fit, validation in folds:
            assert not set(data.groups[fit]) & set(data.groups[validation])
    for *_, train, test in splits:
        assert not set(data.groups[train]) & set(data.groups[test])


def test_more_folds_than_subjects_stops_with_the_grouping_named(sheet):
    with pytest.raises(InputError) as error:
        check_prediction_inputs(
            sheet, {"6hr_vs_Fast": CONTRAST}, DESIGN, {**PREDICT, "outer_folds": 6}, "samples.tsv"
        )
    assert str(error.value) == (
        "samples.tsv: contrast '6hr_vs_Fast': the samples with timepoint = '6hr' belong to 5 level(s) of "
        "column 'subject' (config predict.groups), too few for folds that keep each subject whole: at "
        "least 6 are needed (config predict.outer_folds 6, predict.inner_folds 4): lower those, or set "
        "predict.enabled to false to skip the prediction."
    )
