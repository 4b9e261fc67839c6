"""Repeated measures in the prediction: folds that keep related samples together, permutations
that keep the null exchangeable, and the checks that stop a grouping the folds cannot use."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake
from test_predict import DESEQ2, FILTER, SETTINGS
from test_report import prediction_files
from trdpipe.checks.inputs import check_prediction_inputs, prediction_groups_column, repeated_measures_column
from trdpipe.common import InputError
from trdpipe.predict import models as prediction
from trdpipe.predict.features import make_cohort
from trdpipe.predict.models import (
    compare_models,
    cross_validate,
    outer_splits,
    permutation_scheme,
    permuted_labels,
)
from trdpipe.report.sections import methods as methods_section
from trdpipe.report.sections import prediction as prediction_section

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
SUBJECTS, PER_SUBJECT = 24, 3


def subject_cohort(subject_sd: float = 0.8, n_genes: int = 200, seed: int = 5) -> ad.AnnData:
    """24 subjects of three samples each in three sites (four TRD and four responder subjects a
    site); the label is the subject's. Every gene has a subject-specific level (log SD
    `subject_sd`) and no group effect: expression follows the label only through which subject
    a sample comes from."""
    rng = np.random.default_rng(seed)
    subject = np.repeat(np.arange(SUBJECTS), PER_SUBJECT)
    subject_label = np.tile([1, 1, 0, 0], SUBJECTS // 4)
    labels = subject_label[subject]
    log_mean = rng.uniform(4, 8, n_genes)[None, :] + rng.normal(0, subject_sd, (SUBJECTS, n_genes))[subject]
    mean = np.exp(log_mean)
    shape = 1 / (0.05 + 3 / mean)
    counts = rng.poisson(rng.gamma(shape, mean / shape))
    obs = pd.DataFrame(
        {
            "group": np.where(labels == 1, "TRD", "responder"),
            "subject": [f"P{s:02d}" for s in subject],
            "site": [f"site{'ABC'[3 * s // SUBJECTS]}" for s in subject],
            "sex": rng.choice(["female", "male"], len(subject)),
            "age": rng.normal(45, 10, len(subject)).round(1),
        },
        index=[f"S{i:02d}" for i in range(len(subject))],
    )
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_genes)])
    var["gene_symbol"] = var.index.str.upper()
    return ad.AnnData(X=counts, obs=obs, var=var)


GROUPED = {**SETTINGS, "repeats": 1, "c_grid": [0.1, 1.0], "permutations": 0}


def expression_auc(adata: ad.AnnData, groups: str | None) -> float:
    cohort = make_cohort(adata, CONTRAST, ["sex", "age"], None, groups)
    predictions, *_ = cross_validate(cohort, GROUPED, FILTER, DESEQ2, seed=2, n_jobs=1)
    table = compare_models(predictions, cohort, GROUPED, seed=2).set_index("feature_set")
    return float(table.loc["mrna", "auc_mean"])


def test_a_subject_signal_scores_high_with_sample_wise_folds_and_chance_with_grouped_ones():
    """The label follows subjects only: sample-wise folds test subjects that training has seen
    and reward recognising them; folds that keep subjects whole find nothing. Four cohorts: a
    grouped AUC of one cohort, from test folds of six subjects, spreads widely about 0.5."""
    cohorts = [subject_cohort(seed=seed) for seed in (1, 2, 3, 4)]
    assert min(expression_auc(adata, None) for adata in cohorts) > 0.9
    assert 0.3 < np.mean([expression_auc(adata, "subject") for adata in cohorts]) < 0.7


def test_no_outer_or_inner_fold_splits_a_subject(monkeypatch):
    """Every outer split (repeated folds and site-held-out) and every inner fold of its training
    set, seen as the engine makes them."""
    adata = subject_cohort(n_genes=80)
    cohort = make_cohort(adata, CONTRAST, ["sex", "age"], "site", "subject")
    seen = []
    original = prediction.inner_folds

    def inner_folds(labels, train, n_folds, seed, groups=None):
        folds = original(labels, train, n_folds, seed, groups)
        seen.append((train, folds))
        return folds

    monkeypatch.setattr(prediction, "inner_folds", inner_folds)
    _, _, splits, _ = cross_validate(cohort, {**GROUPED, "repeats": 2}, FILTER, DESEQ2, seed=3, n_jobs=1)
    subjects = cohort.groups
    # 2 repeats x 4 folds + 3 held-out sites, each split's inner folds made once per label vector
    assert len(seen) == 2 * 4 + 3
    for train, folds in seen:
        assert len(folds) == GROUPED["inner_folds"]
        for fit, validation in folds:
            assert not set(subjects[fit]) & set(subjects[validation])
            assert sorted(np.concatenate([fit, validation])) == sorted(train)
    assert len(splits) == 2 * 4
    for _, _, train, test in splits:
        assert not set(subjects[train]) & set(subjects[test])
        # a quarter of the subjects a fold, three of each label
        assert len(set(subjects[test])) == SUBJECTS // 4 and cohort.labels[test].sum() == len(test) / 2
    # the same splits without groups put a subject on both sides, so the checks above can fail
    ungrouped = outer_splits(cohort.labels, 4, 2, 3)
    assert any(set(subjects[train]) & set(subjects[test]) for *_, train, test in ungrouped)


def test_permutations_keep_a_paired_subject_s_mix_and_swap_whole_subjects_of_one_label():
    folds = np.repeat([0, 1], 12)
    subjects = np.repeat([f"P{i}" for i in range(8)], 3)
    # within-subject labels: each subject has samples of both levels
    paired = np.tile([1, 0, 0], 8)
    assert permutation_scheme(paired, subjects) == "within groups"
    permuted = permuted_labels(paired, folds, None, 40, seed=1, groups=subjects)
    for subject in np.unique(subjects):
        assert set(permuted[:, subjects == subject].sum(axis=1)) == {1}
    assert len({tuple(row) for row in permuted}) > 20
    # subject-level labels: subjects swap labels whole, each fold keeps its two TRD subjects
    constant = np.repeat([1, 1, 0, 0, 1, 1, 0, 0], 3)
    assert permutation_scheme(constant, subjects) == "whole groups"
    permuted = permuted_labels(constant, folds, None, 400, seed=1, groups=subjects)
    for subject in np.unique(subjects):
        assert all(len(set(row)) == 1 for row in permuted[:, subjects == subject])
    assert set(permuted[:, folds == 0].sum(axis=1)) == {6}
    assert len({tuple(row) for row in permuted}) == 36  # (4 choose 2) per fold, squared
    assert permutation_scheme(constant, None) == "samples"


# ---------------------------------------------------------------- the grouping column


def repeated_sheet() -> pd.DataFrame:
    """Six subjects, each sampled at both timepoints in two arms, at two sites."""
    subjects = np.repeat([f"P{i}" for i in range(6)], 4)
    return pd.DataFrame(
        {
            "subject": subjects,
            "arm": np.tile(["a", "a", "b", "b"], 6),
            "timepoint": np.tile(["pre", "post"], 12),
            "site": np.repeat(["s1", "s2"], 12),
            "sex": np.repeat(["f", "m", "f", "m", "f", "m"], 4),
        },
        index=[f"S{i:02d}" for i in range(24)],
    )


TIME = {"variable": "timepoint", "test": "post", "reference": "pre"}
PREDICT = {
    "enabled": True,
    "outer_folds": 3,
    "inner_folds": 2,
    "covariates": ["sex"],
    "group_by": "",
    "groups": "auto",
}


def test_auto_takes_the_column_of_repeated_measures_not_sites_arms_or_sex():
    sheet = repeated_sheet()
    design = "~ site + sex + subject + arm + timepoint"
    assert repeated_measures_column(sheet, design, TIME) == "subject"
    assert prediction_groups_column(sheet, PREDICT, design, TIME) == "subject"
    assert prediction_groups_column(sheet, {**PREDICT, "groups": ""}, design, TIME) is None
    assert prediction_groups_column(sheet, {**PREDICT, "groups": "arm"}, design, TIME) == "arm"
    # without the subject in the design, nothing else is taken for one
    assert repeated_measures_column(sheet, "~ site + sex + arm + timepoint", TIME) is None


def test_the_toy_cohort_has_no_repeated_measures():
    root = Path(__file__).resolve().parents[1]
    sheet = pd.read_csv(root / "resources/toy/samples.tsv", sep="\t", index_col=0)
    assert repeated_measures_column(sheet, "~ site + sex + age + group", CONTRAST) is None


def stopped(sheet, predict, design="~ subject + arm + timepoint") -> str:
    with pytest.raises(InputError) as error:
        check_prediction_inputs(sheet, {"post_vs_pre": TIME}, design, predict, "samples.tsv")
    return str(error.value)


def test_a_groups_column_absent_from_the_sheet_is_named():
    assert stopped(repeated_sheet(), {**PREDICT, "groups": "patient"}) == (
        "config predict.groups: column 'patient' is not in the sample sheet samples.tsv; its columns "
        "are subject, arm, timepoint, site, sex."
    )


def test_a_level_held_by_a_single_group_is_refused():
    sheet = repeated_sheet()
    sheet.loc[sheet["timepoint"] == "post", "subject"] = "P0"  # every post sample in one subject
    assert stopped(sheet, {**PREDICT, "groups": "subject"}) == (
        "samples.tsv: contrast 'post_vs_pre': the samples with timepoint = 'post' belong to 1 level(s) "
        "of column 'subject' (config predict.groups): P0; at least 2 are needed, because the "
        "prediction's folds keep the samples of each subject together and need one to train on and one "
        "to test on; set predict.enabled to false to skip the prediction (predict.groups '' would split "
        "a subject's samples between training and test, and overstate the AUC)."
    )


def test_too_few_groups_for_the_folds_is_refused():
    assert stopped(repeated_sheet(), {**PREDICT, "outer_folds": 7}) == (
        "samples.tsv: contrast 'post_vs_pre': the samples with timepoint = 'post' belong to 6 level(s) "
        "of column 'subject' (config predict.groups), too few for folds that keep each subject whole: "
        "at least 7 are needed (config predict.outer_folds 7, predict.inner_folds 2): lower those, or "
        "set predict.enabled to false to skip the prediction."
    )
    check_prediction_inputs(repeated_sheet(), {"post_vs_pre": TIME}, "~ subject + timepoint", PREDICT, "s")


def test_a_group_spanning_two_sites_conflicts_with_site_held_out_validation():
    sheet = repeated_sheet()
    sheet.loc["S05", "site"] = "s2"  # subject P1 sampled at both sites
    assert stopped(sheet, {**PREDICT, "group_by": "site"}) == (
        "samples.tsv: column 'subject' (config predict.groups) conflicts with column 'site' (config "
        "predict.group_by): subject 'P1' has samples in site s1, s2, so holding out a site would split "
        "it between training and test; every subject must lie within one site: correct the sample "
        "sheet, or set predict.group_by to '' for no site-held-out validation."
    )


def test_a_held_out_site_must_leave_enough_groups_for_the_inner_folds():
    assert stopped(repeated_sheet(), {**PREDICT, "group_by": "site", "inner_folds": 4}) == (
        "samples.tsv: contrast 'post_vs_pre': without site 's1' (held out in the site-held-out "
        "validation) 3 level(s) of column 'subject' (config predict.groups) hold samples with "
        "timepoint = 'post'; at least 4 are needed for inner folds that keep each of them whole "
        "(config predict.inner_folds): lower it, set predict.group_by to '' for no site-held-out "
        "validation, or set predict.enabled to false."
    )


def test_the_report_states_the_grouping_and_how_the_labels_were_permuted(tmp_path):
    obs = subject_cohort(n_genes=10).obs
    files = prediction_files(tmp_path)
    grouped = prediction_section.prediction_section(
        "TRD_vs_responder",
        CONTRAST,
        files,
        {"predict": {"groups": "subject", "permutations": 20}, "design": "~ group"},
        tmp_path,
        obs,
    )
    assert grouped["groups"] == "subject"
    assert grouped["grouping"] == (
        "Related samples: every outer and inner fold keeps the samples of each subject together (24 "
        "subjects, predict.groups), so no model is tested on a subject it was trained on; the label "
        "permutations permute labels by whole subjects (every subject has one label, which all its "
        "samples keep)."
    )
    # the methods name the grouped contrast with its sentence
    assert methods_section.prediction_settings({"learners": ["l2"], "stacked_learners": []}, 1, [grouped])[
        "grouped"
    ] == [{"name": "TRD_vs_responder", "grouping": grouped["grouping"]}]
    # the subject is not in the design, so auto finds no grouping and says so
    config = {"predict": {"groups": "auto", "permutations": 20}, "design": "~ site + sex + age + group"}
    ungrouped = prediction_section.prediction_section(
        "TRD_vs_responder", CONTRAST, files, config, tmp_path, obs
    )
    assert ungrouped["groups"] is None
    assert ungrouped["grouping"] == (
        "Related samples: none declared or found (predict.groups), so the folds split the samples one by one."
    )
    assert (
        methods_section.prediction_settings({"learners": ["l2"], "stacked_learners": []}, 1, [ungrouped])[
            "grouped"
        ]
        == []
    )


def test_the_toy_report_says_its_folds_split_the_samples_one_by_one(toy_run):
    """The toy cohort has one sample a patient: nothing is grouped, and the tables are those of a
    run without predict.groups (tests/test_snapshot.py)."""
    html = (toy_run / "results/report/report.html").read_text(encoding="utf-8")
    assert (
        '<p class="grouping">Related samples: none declared or found (predict.groups), so the folds '
        "split the samples one by one.</p>"
    ) in html
    assert "Paired design" not in html and "StratifiedGroupKFold" not in html


def test_a_groups_column_absent_from_the_sheet_stops_the_run_at_ingest(workflow_copy):
    result = run_snakemake(workflow_copy, "--config", "predict={groups: patient}", check=False)
    assert result.returncode != 0
    assert (
        "config predict.groups: column 'patient' is not in the sample sheet config/samples.tsv; its "
        "columns are"
    ) in result.stdout + result.stderr
    assert not (workflow_copy / "results").exists() or not any((workflow_copy / "results").rglob("*.h5ad"))
