from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import run_snakemake, without_prediction
from predict import feature_table, final_model_genes, nested_cv, summarise

SETTINGS = {"n_genes": 20, "outer_folds": 5, "inner_folds": 3, "c_grid": [0.1, 1.0]}


def synthetic_cohort(signal: float, n_samples=60, n_genes=300, seed=3):
    """Genes g0..g4 shift by `signal` SDs in TRD; everything else is noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([1, 0], n_samples // 2)
    X = rng.normal(size=(n_samples, n_genes))
    X[:, :5] += signal * labels[:, None]
    obs = pd.DataFrame({"group": np.where(labels == 1, "TRD", "responder"),
                        "sex": rng.choice(["female", "male"], n_samples),
                        "age": rng.normal(45, 10, n_samples)},
                       index=[f"S{i:02d}" for i in range(n_samples)])
    var = pd.DataFrame({"gene_symbol": [f"G{i}" for i in range(n_genes)]},
                       index=[f"g{i}" for i in range(n_genes)])
    return ad.AnnData(X=X, obs=obs, var=var), labels


def test_feature_table_encodes_covariates_after_genes():
    vst, _ = synthetic_cohort(0.0, n_samples=10, n_genes=4)
    features, n_genes = feature_table(vst, ["sex", "age"])
    assert n_genes == 4
    assert list(features.columns) == ["g0", "g1", "g2", "g3", "age", "sex_male"]
    assert features["sex_male"].tolist() == (vst.obs["sex"] == "male").astype(float).tolist()


def test_planted_signal_is_predicted_and_its_genes_lead_the_model():
    vst, labels = synthetic_cohort(2.0)
    features, n_genes = feature_table(vst, ["sex", "age"])
    folds, predictions = nested_cv(features, n_genes, labels, SETTINGS, seed=1)
    metrics = summarise(folds, predictions).set_index("metric")["value"]
    assert metrics["auc_pooled_out_of_fold"] > 0.9
    assert len(predictions) == 60 and predictions["sample_id"].is_unique
    genes = final_model_genes(features, n_genes, labels, SETTINGS, 1, vst.var)
    assert set(genes["gene_id"].head(5)) == {"g0", "g1", "g2", "g3", "g4"}
    assert (genes.set_index("gene_id").loc[["g0", "g1", "g2", "g3", "g4"], "coefficient"] > 0).all()


def test_no_signal_gives_chance_performance():
    """Gene selection happens inside the folds: on noise the out-of-fold AUC stays near 0.5
    (selecting the 20 best of 300 noise genes on all samples first would report ~0.9)."""
    vst, labels = synthetic_cohort(0.0)
    features, n_genes = feature_table(vst, [])
    folds, predictions = nested_cv(features, n_genes, labels, SETTINGS, seed=1)
    assert summarise(folds, predictions).set_index("metric").loc["auc_pooled_out_of_fold", "value"] < 0.7


def test_toy_cohort_trd_is_predictable(toy_run):
    metrics = pd.read_csv(toy_run / "results/predict/TRD_vs_responder/cv_metrics.tsv", sep="\t")
    pooled = metrics.set_index("metric").loc["auc_pooled_out_of_fold", "value"]
    assert 0.65 <= pooled <= 0.90  # the toy leaves prediction non-trivial (issue: not 1.00)
    predictions = pd.read_csv(toy_run / "results/predict/TRD_vs_responder/predictions.tsv", sep="\t")
    assert len(predictions) == 48
    assert (toy_run / "results/predict/TRD_vs_responder/roc.png").stat().st_size > 5000


def test_a_cohort_too_small_to_cross_validate_stops_or_skips_the_prediction(workflow_copy):
    """4 TRD and 4 responders cannot fill 5 outer folds: ingest says so before any fitting, and
    with predict.enabled false everything else runs and the report says the prediction did not."""
    root = Path(__file__).resolve().parents[1]
    sheet = pd.read_csv(root / "resources/toy/samples.tsv", sep="\t", index_col=0)
    keep = sheet.groupby("group").head(4).index
    counts = pd.read_csv(root / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    counts[list(keep)].to_csv(workflow_copy / "config" / "counts.tsv", sep="\t")
    sheet.loc[keep].to_csv(workflow_copy / "config" / "samples.tsv", sep="\t")
    small = ("--config", "counts=config/counts.tsv", "design=~ sex + group")

    stopped = run_snakemake(workflow_copy, *small, check=False)
    assert stopped.returncode != 0
    assert ("config/samples.tsv: contrast 'TRD_vs_responder' has 4 sample(s) with group = 'TRD'; "
            "at least 5 are needed for the TRD prediction's nested cross-validation (config "
            "predict.outer_folds 5, predict.inner_folds 4): lower those, or set predict.enabled to "
            "false to skip the prediction.") in stopped.stdout + stopped.stderr
    assert not (workflow_copy / "results" / "ingest" / "cohort.h5ad").exists()

    run_snakemake(workflow_copy, *without_prediction(workflow_copy), *small)
    assert (workflow_copy / "results/de/TRD_vs_responder/deseq2_results.tsv").exists()
    assert not (workflow_copy / "results" / "predict").exists()
    page = (workflow_copy / "results/report/report.html").read_text(encoding="utf-8")
    assert "Not run: the config sets <code>predict.enabled</code> to false." in page
    assert "nested cross-validation" not in page.split('id="methods-text"')[1]


def test_new_prediction_settings_redo_only_the_prediction_and_the_report(toy_run, tmp_path):
    """Ingest and filter check the group sizes against predict's folds, but read them from the
    config rather than params, so that a change of them does not redo the DE and enrichment."""
    settings = tmp_path / "more_folds.yaml"
    settings.write_text("predict:\n  outer_folds: 4\n  inner_folds: 3\n  c_grid: [0.1, 1.0]\n")
    dry_run = run_snakemake(toy_run, "--dry-run", "--configfile", str(settings))
    table = dry_run.stdout.split("Job stats:")[1].strip().split("\n\n")[0].splitlines()[2:]
    assert {line.split()[0] for line in table} == {"predict", "report", "all", "total"}
