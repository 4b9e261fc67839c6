"""Outputs of the toy run a user expects: normalised counts and VST as tables, shrunk fold changes,
every figure as PNG and SVG, the deseq2 log's stages, MultiQC's report, and params per key.

All of them read the session's toy run (conftest.toy_run); none runs the workflow again.
"""

import json
import re
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, run_snakemake
from test_deseq2 import DESEQ2_STAGES
from trdpipe.model.filtering import contrast_cohort

pytestmark = pytest.mark.e2e
CONTRAST = "TRD_vs_responder"


def read_gene_table(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", index_col="gene_id", keep_default_na=False, na_values=[""])


def test_normalised_counts_are_the_counts_over_median_of_ratios_size_factors(toy_run):
    cohort = contrast_cohort(ad.read_h5ad(toy_run / "results/filter/cohort.h5ad"), CONTRAST)
    table = read_gene_table(toy_run / f"results/de/{CONTRAST}/normalised_counts.tsv.gz")
    assert list(table.columns) == ["gene_symbol", *cohort.obs_names]
    assert list(table.index) == list(cohort.var_names)
    # DESeq2's median of ratios, computed here from the raw counts
    counts = np.asarray(cohort.X, dtype=float)
    no_zero = (counts > 0).all(axis=0)
    log_geomeans = np.log(counts[:, no_zero]).mean(axis=0)
    size_factors = np.exp(np.median(np.log(counts[:, no_zero]) - log_geomeans, axis=1))
    np.testing.assert_allclose(
        table[cohort.obs_names].to_numpy(), (counts / size_factors[:, None]).T, rtol=1e-5
    )


def test_vst_table_holds_the_h5ad_matrix(toy_run):
    vst = ad.read_h5ad(toy_run / "results/vst/vst.h5ad")
    table = read_gene_table(toy_run / "results/vst/vst.tsv.gz")
    assert list(table.columns) == ["gene_symbol", *vst.obs_names]
    assert table["gene_symbol"].fillna("").tolist() == vst.var["gene_symbol"].fillna("").tolist()
    np.testing.assert_allclose(table[vst.obs_names].to_numpy(), np.asarray(vst.X).T, rtol=1e-5)


def test_shrunk_fold_changes_pull_the_null_genes_towards_zero(toy_run):
    table = pd.read_csv(toy_run / f"results/de/{CONTRAST}/deseq2_results.tsv", sep="\t")
    truth = pd.read_csv(ROOT / "resources/toy/truth_genes.tsv", sep="\t").drop(columns="gene_symbol")
    genes = table.merge(truth, on="gene_id")
    shrunk, mle = genes["log2FoldChange_shrunk"], genes["log2FoldChange"]
    null, de = ~genes["is_de"], genes["is_de"]
    assert shrunk[null].abs().mean() < 0.5 * mle[null].abs().mean()
    # closer to the planted truth over all genes, and the called genes keep their sign
    error = {
        name: ((genes[name] - genes["true_log2FC"]) ** 2).mean()
        for name in ("log2FoldChange_shrunk", "log2FoldChange")
    }
    assert error["log2FoldChange_shrunk"] < 0.7 * error["log2FoldChange"]
    called = genes[de & (genes["padj"] < 0.05)]
    assert (np.sign(called["log2FoldChange_shrunk"]) == np.sign(called["true_log2FC"])).mean() > 0.95


def test_every_figure_is_png_and_svg(toy_run):
    results = toy_run / "results"
    pngs = {p.with_suffix("") for p in results.rglob("*.png")}
    svgs = {p.with_suffix("") for p in results.rglob("*.svg")}
    assert len(pngs) > 20
    assert pngs == svgs
    assert (results / f"de/{CONTRAST}/volcano.svg").read_text().lstrip().startswith("<?xml")


def test_deseq2_log_times_every_stage(toy_run):
    log = (toy_run / f"logs/deseq2/{CONTRAST}.log").read_text()
    stages = re.findall(r"INFO (.+): \d+\.\d\d s$", log, flags=re.MULTILINE)
    assert stages == [*DESEQ2_STAGES, "log fold-change shrinkage (apeGLM-like prior)"]


def test_sensitivity_models_and_permutations_fit_no_prior(toy_run):
    """They compare maximum-likelihood fold changes and Wald statistics: shrinkage would be wasted."""
    for model in ("cell_adjusted", "female_only", "male_only"):
        table = pd.read_csv(toy_run / f"results/sensitivity/{CONTRAST}/{model}/deseq2_results.tsv", sep="\t")
        assert "log2FoldChange_shrunk" not in table.columns
        assert "Wald test" in (toy_run / f"logs/sensitivity/{CONTRAST}/{model}.log").read_text()
    block_logs = sorted((toy_run / "logs/calibration_block").glob(f"{CONTRAST}_*.log"))
    assert len(block_logs) == 2
    for log in block_logs:
        text = log.read_text()
        assert "Wald test" in text and "shrinkage" not in text


def test_multiqc_report_holds_the_qc_tables(toy_run):
    data = toy_run / "results/multiqc/multiqc_data"
    samples = set(pd.read_csv(ROOT / "config/samples.tsv", sep="\t", dtype=str)["sample_id"])
    metrics = pd.read_csv(data / "multiqc_trd_qc_metrics_table.txt", sep="\t", index_col=0)
    flags = pd.read_csv(data / "multiqc_trd_qc_flags_table.txt", sep="\t", index_col=0)
    assert set(metrics.index) == samples and set(flags.index) == samples
    qc = pd.read_csv(toy_run / "results/qc/qc_metrics.tsv", sep="\t", index_col=0)
    np.testing.assert_allclose(metrics.loc[qc.index, "library_size"], qc["library_size"], rtol=1e-5)
    title = json.loads((data / "multiqc_data.json").read_text())["config_title"]
    assert title == "TRD blood transcriptome: sample QC"
    html = (toy_run / "results/multiqc/multiqc_report.html").read_text()
    assert 'id="trd_qc_metrics"' in html and 'id="trd_qc_flags"' in html  # the two sections
    assert not re.search(r'<(script|link)[^>]+(src|href)="https?://', html)  # opens offline


def jobs_after_config_change(toy_run, tmp_path, old: str, new: str) -> set[str]:
    """The jobs a dry run schedules on a copy of the finished toy run after one config edit,
    when only changed params count as a reason to rerun."""
    workdir = tmp_path / "run"
    shutil.copytree(toy_run, workdir, symlinks=True)
    config = workdir / "config/config.yaml"
    text = config.read_text()
    assert text.count(old) == 1
    config.write_text(text.replace(old, new))
    out = run_snakemake(workdir, "--dry-run", "--rerun-triggers", "params").stdout
    stats = out[out.index("Job stats:") :].splitlines()[3:]
    return {line.split()[0] for line in stats if line.strip() and not line.startswith("total")}


def test_a_new_alpha_reruns_the_tests_not_qc_filter_or_vst(toy_run, tmp_path):
    jobs = jobs_after_config_change(toy_run, tmp_path, "  alpha: 0.05\n", "  alpha: 0.1\n")
    assert {"deseq2", "calibration_block", "calibration", "enrichment", "sensitivity", "report"} <= jobs
    assert not jobs & {"ingest", "qc", "filter", "vst", "predict", "cell_composition", "multiqc"}


def test_shrinkage_reruns_the_primary_fit_not_the_permutations(toy_run, tmp_path):
    jobs = jobs_after_config_change(toy_run, tmp_path, "  lfc_shrink: true\n", "  lfc_shrink: false\n")
    assert "deseq2" in jobs
    # the sensitivity models rerun only because the primary table they compare with changed
    assert not jobs & {"qc", "filter", "vst", "calibration_permutations", "calibration_block", "predict"}
