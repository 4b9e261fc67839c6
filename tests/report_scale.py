"""A results folder of 6,000 samples written cheaply from the toy run's, and the report built on it
through the report rule's script: the per-sample inputs (sample sheet columns, counts, VST, QC
metrics and their bar charts) are synthetic at 6,000 samples; the tables whose size does not grow
with the samples (DE, calibration, enrichment) are the toy run's, on its top genes. Shared by
tests/test_report_scale.py and bench/bench_report_scale.py."""

import ast
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import yaml
from snakemake.utils import validate

from rule_scripts import rule_script
from trdpipe.common import save_figure
from trdpipe.qc import figures as qc_figures
from trdpipe.qc.metrics import confounding_tables

ROOT = Path(__file__).resolve().parents[1]
CONTRAST = "TRD_vs_responder"
N_GENES = 2000  # the report reads the top genes only; the DE table keeps these
# the toy run's files whose size does not grow with the samples, by the report's manifest names
CONTRAST_FILES = {
    "table": "de/{c}/deseq2_results.tsv",
    "model": "de/{c}/model.tsv",
    "volcano": "de/{c}/volcano.png",
    "ma": "de/{c}/ma.png",
    "gsea": "enrichment/{c}/gsea.tsv",
    "ora": "enrichment/{c}/ora.tsv",
    "gsea_dotplot": "enrichment/{c}/gsea_dotplot.png",
    "ora_dotplot": "enrichment/{c}/ora_dotplot.png",
    "running_scores": "enrichment/{c}/running_scores",
    "calibration_summary": "calibration/{c}/summary.tsv",
    "calibration_qq": "calibration/{c}/qq.png",
    "calibration_null_degs": "calibration/{c}/null_degs.png",
}
# drawn by the qc rule from the 6,000 samples' metrics (the other QC figures are the toy's)
METRIC_CHARTS = [
    ("library_size", "low_library_size", "library size"),
    ("detected_genes", "low_detected_genes", "detected genes"),
]


def scale_config() -> dict:
    """The default (toy) config with the schema's defaults and without the optional steps whose tables
    this folder does not hold."""
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["predict"]["enabled"] = False
    config["cells"]["enabled"] = False
    config.setdefault("assays", {})
    for assay in config["assays"].values():
        assay["enabled"] = False
    for model in config.get("sensitivity", {}).values():
        if isinstance(model, dict):
            model["enabled"] = False
    validate(config, schema=str(ROOT / "workflow/schemas/config.schema.yaml"))
    return config


def synthetic_cohort(toy: Path, genes: pd.Index, n_samples: int, seed: int = 1) -> ad.AnnData:
    """n_samples with the toy's sample-sheet rows drawn at random and Poisson counts at each gene's
    toy mean times a per-sample depth."""
    rng = np.random.default_rng(seed)
    filtered = ad.read_h5ad(toy / "results/filter/cohort.h5ad")[:, genes]
    rows = rng.integers(0, filtered.n_obs, n_samples)
    obs = filtered.obs.iloc[rows].copy()
    obs.index = pd.Index([f"S{i:05d}" for i in range(n_samples)], name=filtered.obs.index.name)
    depth = rng.lognormal(0, 0.3, n_samples)[:, None]
    counts = rng.poisson(filtered.X.mean(axis=0)[None, :] * depth).astype(np.int32)
    return ad.AnnData(X=counts, obs=obs, var=filtered.var.copy(), uns=dict(filtered.uns))


def qc_metrics(toy: Path, obs: pd.DataFrame, counts: np.ndarray, seed: int = 1) -> pd.DataFrame:
    """The toy's QC metrics drawn per sample, library size and detected genes from the counts
    (scaled to a blood library), two samples flagged low."""
    rng = np.random.default_rng(seed)
    toy_metrics = pd.read_csv(toy / "results/qc/qc_metrics.tsv", sep="\t", index_col=0, keep_default_na=False)
    metrics = toy_metrics.iloc[rng.integers(0, len(toy_metrics), len(obs))].set_axis(obs.index)
    metrics["library_size"] = counts.sum(axis=1) * 1000
    metrics["detected_genes"] = (counts > 0).sum(axis=1)
    metrics["flags"] = ""
    metrics.iloc[[3, 7], metrics.columns.get_loc("library_size")] = [200_000, 100_000]
    metrics.iloc[[3, 7], metrics.columns.get_loc("flags")] = "low_library_size"
    return metrics


def draw_metric_charts(metrics: pd.DataFrame, qc_dir: Path, max_labelled: int) -> None:
    """The qc rule's bar charts (trdpipe.qc.figures.metric_chart) of the 6,000 samples."""
    flagged = metrics["flags"] != ""
    for metric, flag, label in METRIC_CHARTS:
        own = metrics["flags"].str.contains(flag)
        limit = metrics[metric].median() / 4
        chart = qc_figures.metric_chart(
            metrics[metric], own, flagged & ~own, limit, label, flag, max_labelled
        )
        save_figure(chart, qc_dir / f"{metric}.png")


def write_results(toy: Path, dest: Path, n_samples: int) -> dict:
    """A results folder of n_samples under dest; returns the config of its run."""
    config = scale_config()
    results, toy_results = dest / "results", toy / "results"
    shutil.copytree(toy_results / "qc", results / "qc", ignore=shutil.ignore_patterns("*.svg"))
    for pattern in CONTRAST_FILES.values():
        source = toy_results / pattern.format(c=CONTRAST)
        target = results / pattern.format(c=CONTRAST)
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    for name in ("filter/filter_summary.tsv", "software_versions.yml"):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(toy_results / name, results / name)
    table = pd.read_csv(toy_results / CONTRAST_FILES["table"].format(c=CONTRAST), sep="\t")
    kept = table.sort_values("pvalue").head(N_GENES)
    kept.sort_index().to_csv(results / CONTRAST_FILES["table"].format(c=CONTRAST), sep="\t", index=False)

    cohort = synthetic_cohort(toy, pd.Index(kept.sort_index()["gene_id"]), n_samples)
    for name in ("ingest/cohort.h5ad", "filter/cohort.h5ad"):
        (results / name).parent.mkdir(parents=True, exist_ok=True)
        cohort.write_h5ad(results / name)
    vst = ad.AnnData(X=np.log2(cohort.X + 1.0, dtype=np.float32), obs=cohort.obs, var=cohort.var)
    (results / "vst").mkdir()
    vst.write_h5ad(results / "vst/vst.h5ad")
    metrics = qc_metrics(toy, cohort.obs, cohort.X)
    metrics.to_csv(results / "qc/qc_metrics.tsv", sep="\t")
    # the qc rule's confounding table of the 6,000 samples' sheet
    confounding = confounding_tables(cohort.obs, config["design"], config["contrasts"], config["qc"])
    confounding.to_csv(results / "qc/confounding.tsv", sep="\t", index=False)
    draw_metric_charts(metrics, results / "qc", config["qc"]["max_samples_labelled"])
    return config


class NamedInput(dict):
    """Snakemake's named input: read by name as an attribute or a key."""

    __getattr__ = dict.__getitem__


def report_sections() -> list[str]:
    """REPORT_SECTIONS of workflow/rules/report.smk: the page's sections in order."""
    rules = (ROOT / "workflow/rules/report.smk").read_text()
    listed = re.search(r"^REPORT_SECTIONS = (\[.*?\])", rules, re.M | re.S).group(1)
    return ast.literal_eval(listed)


def report_snakemake(dest: Path, config: dict) -> SimpleNamespace:
    """What the report rule hands its script (workflow/rules/report.smk), on the folder in dest."""
    results, templates = dest / "results", ROOT / "workflow/report"
    files = {name: str(results / pattern.format(c=CONTRAST)) for name, pattern in CONTRAST_FILES.items()}
    files.update(sensitivity={}, assays={})
    qc = results / "qc"
    run_files = {
        "cohort": results / "ingest/cohort.h5ad",
        "metrics": qc / "qc_metrics.tsv",
        "balance": qc / "covariate_balance.tsv",
        "association": qc / "pc_covariate_association.tsv",
        "confounding": qc / "confounding.tsv",
        "qc_figures": sorted(map(str, qc.glob("*.png"))),
        "filter_summary": results / "filter/filter_summary.tsv",
        "vst": results / "vst/vst.h5ad",
        "filtered": results / "filter/cohort.h5ad",
        "cell_markers": [],
        "cell_choice": [],
        "genotype_eqtl": [],
        "genotype_eqtl_figure": [],
        "readmes": [],
        "software_versions": results / "software_versions.yml",
        "benchmarks": [],
        "template": templates / "report.html.j2",
    }
    return SimpleNamespace(
        input=NamedInput({k: v if isinstance(v, list) else str(v) for k, v in run_files.items()}),
        params=SimpleNamespace(
            config=config,
            switched_off=[],
            key_model=None,
            contrast_files={CONTRAST: files},
            sections=report_sections(),
        ),
        output=SimpleNamespace(html=str(results / "report/report.html")),
    )


def build_report(toy: Path, dest: Path, n_samples: int = 6000) -> Path:
    """The report of a synthetic folder of n_samples, built by the report rule's script."""
    config = write_results(toy, dest, n_samples)
    smk = report_snakemake(dest, config)
    rule_script("report").main(smk)
    return Path(smk.output.html)
