"""The HTML report: its functions on small tables, the toy run's page against the result tables,
the page in a real headless browser, `snakemake --report`, and a run with two contrasts."""

import base64
import hashlib
import html
import importlib.metadata
import io
import math
import re
import shutil
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import report
import report_figures
from conftest import ROOT, copy_workflow, run_snakemake
from headless_chromium import chromium_path, open_page

CONTRAST = "TRD_vs_responder"


# ---------------------------------------------------------------- reading the page back

class ReportParser(HTMLParser):
    """Tables by id (cell texts per row), section ids, image sources and external references."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.sections: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("id") or f"anon{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        for key in ("src", "href"):
            if key in attrs:
                self.links.append(attrs[key])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_report(path: Path) -> tuple[str, ReportParser]:
    text = path.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    return text, parser


def as_frame(rows: list[list[str]]) -> pd.DataFrame:
    return pd.DataFrame(rows[1:], columns=rows[0])


def read_de(workdir: Path, contrast: str) -> pd.DataFrame:
    return pd.read_csv(workdir / f"results/de/{contrast}/deseq2_results.tsv", sep="\t",
                       keep_default_na=False, na_values=[""])


# ---------------------------------------------------------------- unit tests

@pytest.mark.parametrize("value, text", [
    (1.23456e-5, "1.23e-05"), (0.049999, "0.05"), (3.0, "3"), (12, "12"), (float("nan"), "NA"),
    (None, "NA"), (True, "yes"), ("siteA", "siteA"), (-0.12345, "-0.123"),
])
def test_format_value(value, text):
    assert report.format_value(value) == text


def test_join_words():
    assert report.join_words(["site"]) == "site"
    assert report.join_words(["site", "sex"]) == "site and sex"
    assert report.join_words(["site", "sex", "age"]) == "site, sex and age"


MODEL = pd.DataFrame({
    "variable": ["site", "sex", "age", "group"],
    "type": ["categorical", "categorical", "continuous", "categorical"],
    "levels": ["siteA,siteB", "female,male", "", "responder,TRD"],
    "reference": ["siteA", "female", "", "responder"],
    "centre": [np.nan, np.nan, 44.5, np.nan], "scale": [np.nan, np.nan, 12.25, np.nan],
})


def test_describe_contrast_and_coding():
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    assert report.describe_contrast(contrast, MODEL) == "TRD vs responder, adjusted for site, sex and age"
    only_group = MODEL[MODEL["variable"] == "group"]
    assert report.describe_contrast(contrast, only_group) == "TRD vs responder, without covariates"
    coding = report.describe_coding(MODEL)
    assert "age (continuous, centred at 44.5 and scaled by its SD 12.2)" in coding
    assert coding.startswith("site (categorical, reference siteA), sex (categorical, reference female)")
    assert report.categorical_covariates(MODEL) == ["site", "sex", "group"]


DE = pd.DataFrame({
    "gene_id": ["g1", "g2", "g3", "g4", "g5"],
    "gene_symbol": ["IL1B", "BDNF", "TNF", "HTR1A", ""],
    "baseMean": [100.0, 50.0, 20.0, 5.0, 1.0],
    "log2FoldChange": [1.2, -0.6, 0.3, 0.1, 2.0],
    "lfcSE": [0.2, 0.1, 0.25, 0.5, 1.0],
    "stat": [6.0, -6.0, 1.2, 0.2, 2.0],
    "pvalue": [1e-9, 1e-9, 0.2, 0.8, 0.04],
    "padj": [1e-8, 1e-8, 0.04, 0.9, np.nan],
})


def test_calls_table_counts_up_and_down_per_threshold():
    calls = report.calls_table(DE, 0.05, [0.5, 1.0])
    assert calls["genes"].tolist() == ["padj < 0.05", "padj < 0.05, |log2FC| ≥ 0.5",
                                       "padj < 0.05, |log2FC| ≥ 1"]
    assert calls[["up", "down", "total"]].to_numpy().tolist() == [[2, 1, 3], [1, 1, 2], [1, 0, 1]]


def test_candidate_panel():
    panel = report.candidate_panel(DE, 0.05, ["IL1B", "BDNF", "TNF", "HTR1A", "IL6"]).set_index("gene")
    assert panel.loc["IL1B", "CI95_low"] == pytest.approx(1.2 - 1.959964 * 0.2)
    assert panel.loc["BDNF", "CI95_high"] == pytest.approx(-0.6 + 1.959964 * 0.1)
    assert panel["call"].tolist() == ["significant, up", "significant, down", "significant, up",
                                      "not significant", "not measured/filtered"]
    assert math.isnan(panel.loc["IL6", "log2FoldChange"])
    assert panel.loc["HTR1A", "padj"] == 0.9


def test_candidate_panel_gene_without_padj():
    table = DE.assign(gene_symbol=["IL1B", "BDNF", "TNF", "HTR1A", "IL6"])
    assert report.candidate_panel(table, 0.05, ["IL6"])["call"].tolist() == ["not tested (padj NA)"]


def test_top_genes_by_pvalue():
    top = report.top_genes(DE, 3)
    assert top["gene_id"].tolist() == ["g1", "g2", "g5"]
    assert "log2FoldChange_shrunk" not in top
    with_shrunk = report.top_genes(DE.assign(log2FoldChange_shrunk=0.0), 2)
    assert with_shrunk.columns.tolist() == ["gene_id", "gene_symbol", "baseMean", "log2FoldChange",
                                            "log2FoldChange_shrunk", "lfcSE", "stat", "pvalue", "padj"]


def test_table_rows_formats_cells():
    rows = report.table_rows(DE.head(2)[["gene_symbol", "pvalue", "padj"]])
    assert rows == {"columns": ["gene_symbol", "pvalue", "padj"],
                    "rows": [["IL1B", "1e-09", "1e-08"], ["BDNF", "1e-09", "1e-08"]]}


def test_input_checksums_sorted_by_file():
    ingest = {"input_files": np.array(["resources/toy/counts.tsv.gz", "config/samples.tsv"]),
              "input_md5": np.array(["b", "a"])}
    assert report.input_checksums(ingest).to_dict("list") == {
        "file": ["config/samples.tsv", "resources/toy/counts.tsv.gz"], "md5": ["a", "b"]}


def test_cohort_table():
    obs = pd.DataFrame({"group": ["TRD", "TRD", "responder"], "site": ["A", "B", "B"],
                        "sex": ["female", "male", "male"]})
    table = report.cohort_table(obs, "group", ["site", "sex", "group"]).set_index("group")
    assert table.columns.tolist() == ["n", "site: A", "site: B", "sex: female", "sex: male"]
    assert table.loc["TRD"].tolist() == [2, 1, 1, 1, 1]
    assert table.loc["total"].tolist() == [3, 1, 2, 1, 2]


def test_flagged_samples():
    metrics = pd.DataFrame({"flags": ["", "sex mismatch", np.nan], "excluded": [False, False, True]},
                           index=pd.Index(["s1", "s2", "s3"], name="sample_id"))
    flagged = report.flagged_samples(metrics)
    assert flagged.to_dict("list") == {"sample_id": ["s2", "s3"], "flags": ["sex mismatch", ""],
                                       "excluded": [False, True]}


def test_top_terms_per_collection():
    gsea = pd.DataFrame({
        "collection": ["go", "go", "curated"], "term": ["GO:1", "GO:2", "SET"],
        "name": ["a", "b", "c"], "size": [10, 20, 30], "ES": [0.5, -0.4, 0.7], "NES": [1.5, -1.2, 2.0],
        "pvalue": [0.2, 0.01, 0.001], "log2err": [0.1, 0.3, 0.35], "padj": [0.3, 0.02, 0.003],
        "leading_edge": ["A;B", "C", ";".join(f"G{i}" for i in range(20))],
    })
    terms = report.top_terms(gsea, 5)
    assert list(terms) == ["curated", "go"]
    assert terms["go"]["term"].tolist() == ["GO:2", "GO:1"]
    assert terms["go"].columns.tolist() == ["term", "name", "size", "NES (gene perm.)", "pvalue (gene perm.)",
                                            "log2err", "padj (gene perm.)", "leading_edge"]
    assert terms["go"]["log2err"].tolist() == [0.3, 0.1]
    assert terms["curated"]["leading_edge"].iloc[0].endswith("G11, ... (and 8 more)")


def test_top_terms_lead_with_the_label_permutation_fdr():
    gsea = pd.DataFrame({
        "collection": "go", "term": ["GO:1", "GO:2", "GO:3"], "name": ["a", "b", "c"], "size": [10, 20, 30],
        "ES": [0.5, -0.4, 0.7], "NES_perm": [1.9, -1.1, 1.4], "pvalue_perm": [0.01, 0.3, 0.02],
        "fdr_perm": [0.02, 0.6, 0.04], "NES": [2.5, -1.2, 3.0], "pvalue": [1e-6, 0.01, 1e-9],
        "log2err": [0.6, 0.3, 0.8], "padj": [1e-6, 0.01, 3e-9], "leading_edge": ["A", "B", "C"],
    })
    terms = report.top_terms(gsea, 5)["go"]
    assert terms["term"].tolist() == ["GO:1", "GO:3", "GO:2"]  # by fdr_perm, not by fgsea's p
    assert terms.columns.tolist()[3:10] == ["NES_perm", "pvalue_perm", "fdr_perm", "NES (gene perm.)",
                                            "pvalue (gene perm.)", "log2err", "padj (gene perm.)"]
    assert report.pathway_findings(gsea, 0.05) == (
        "GSEA go: 2 of 3 sets at label-permutation FDR < 0.05 (3 at gene-permutation padj < 0.05).")
    without = gsea.assign(NES_perm=np.nan, pvalue_perm=np.nan, fdr_perm=np.nan)
    assert report.top_terms(without, 5)["go"]["term"].tolist() == ["GO:3", "GO:1", "GO:2"]
    assert report.pathway_findings(without, 0.05).startswith(
        "GSEA go: 3 of 3 sets at gene-permutation padj < 0.05. No label-permutation null was computed")


def test_resource_provenance_of_the_shipped_readmes():
    annotation = report.resource_provenance((ROOT / "resources/annotation/README.md").read_text())
    genesets = report.resource_provenance((ROOT / "resources/genesets/README.md").read_text())
    assert annotation.startswith("Bioconductor org.Hs.eg.db 3.16.0 as packaged by Debian")
    assert "GO release 2022-07-01" in genesets and "**" not in genesets
    assert report.resource_provenance("# title\nno source section\n") == ""


def test_pipeline_version(tmp_path):
    assert report.pipeline_version(tmp_path) == "unknown"
    assert re.fullmatch(r"[0-9a-f]{12}( \(with uncommitted changes\))?", report.pipeline_version(ROOT))


def test_software_versions():
    versions = report.software_versions(["pandas", "no-such-package-xyz"])
    assert versions["pandas"] == pd.__version__
    assert versions["no-such-package-xyz"] == "not installed"
    assert re.fullmatch(r"3\.\d+\.\d+", versions["python"])


def test_methods_paragraph_states_every_parameter():
    run = {
        "pipeline_version": "abc", "versions": {"python": "3.11.7", "snakemake": "9.1", "pydeseq2": "0.5.4"},
        "design": "~ site + group", "filter": {"min_count": 10, "min_total_count": 15, "large_n": 10,
                                               "min_prop": 0.7},
        "deseq2": {"alpha": 0.05, "cooks_filter": True, "independent_filter": False, "refit_cooks": True,
                   "min_replicates": 7, "fit_type": "parametric", "size_factors_fit_type": "ratio",
                   "lfc_shrink": True, "vst_nsub": 1000},
        "n_samples_in": 48, "n_samples_excluded": 3, "n_samples_kept": 45, "n_genes_in": 6000,
        "n_genes_kept": 5724, "coding": "site (categorical, reference siteA)",
        "contrasts": "TRD vs responder, adjusted for site", "provenance": ["org.Hs.eg.db 3.16.0"],
    }
    text = report.methods_paragraph(run)
    for fragment in ["48 samples", "excluded 3 samples, leaving 45", "reached 10 counts",
                     "larger than 10, 10 plus 0.7", "total count reached 15", "5724 of 6000 genes",
                     "PyDESeq2 0.5.4", "'~ site + group'", "'ratio'", "'parametric'",
                     "at least 7 samples", "without independent filtering", "Cook's-distance outliers",
                     "below 0.05", "apeGLM", "fitted on 1000 genes", "org.Hs.eg.db 3.16.0", "Sirés et al. (2025)", "version abc"]:
        assert fragment in text, fragment


def test_zscore_rows():
    z = report_figures.zscore_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])


def test_top_gene_heatmap_orders_genes_and_samples():
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"group": ["TRD", "responder", "TRD", "responder"], "site": ["A", "A", "B", "B"]},
                       index=["s1", "s2", "s3", "s4"])
    vst = pd.DataFrame(rng.normal(size=(4, 5)), index=obs.index, columns=DE["gene_id"])
    fig = report_figures.top_gene_heatmap(DE, vst, obs, 4, ["group", "site"], "t")
    labels = [t.get_text() for t in fig.axes[2].get_yticklabels()]
    # the 4 smallest p-values (g5 has no padj but a p-value; HTR1A is 5th), up first, then down
    assert labels == ["IL1B", "g5", "TNF", "BDNF"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["group"]
    assert fig.axes[2].images[0].get_array().shape == (4, 4)


def test_caption_text_renders_the_snakemake_caption():
    rst = 'Top {{ snakemake.config["qc"]["n_top_genes"] }} genes, design ``{{ snakemake.config["design"] }}``.\n'
    assert report.caption_text(rst, {"qc": {"n_top_genes": 500}, "design": "~ group"}) == \
        "Top 500 genes, design ~ group."


def test_significant_associations():
    association = pd.DataFrame({"pc": ["PC1", "PC1", "PC2"], "variance_explained": [0.3, 0.3, 0.1],
                                "covariate": ["site", "age", "group"], "test": ["anova", "pearson", "anova"],
                                "statistic": [9.0, 0.1, 5.0], "r_squared": [0.4, 0.01, 0.2],
                                "pvalue": [1e-4, 0.6, 0.03]})
    hits = report.significant_associations(association)
    assert hits["covariate"].tolist() == ["site", "group"]
    assert "statistic" not in hits


# ---------------------------------------------------------------- the toy run's report

def contrast_checks(workdir: Path, parser: ReportParser, contrast: str, config: dict) -> None:
    """The contrast's numbers in the page equal those computed here from its result table."""
    table = read_de(workdir, contrast)
    alpha = config["deseq2"]["alpha"]
    anchor = f"de-{contrast}"
    assert anchor in parser.sections
    significant = table["padj"] < alpha
    calls = as_frame(parser.tables[f"{anchor}-calls"])
    for row, threshold in zip(calls.itertuples(), [0.0, *config["deseq2"]["lfc_thresholds"]]):
        big = table["log2FoldChange"].abs() >= threshold
        assert int(row.up) == (significant & big & (table["log2FoldChange"] > 0)).sum()
        assert int(row.down) == (significant & big & (table["log2FoldChange"] < 0)).sum()
    assert len(calls) == 1 + len(config["deseq2"]["lfc_thresholds"])

    top = as_frame(parser.tables[f"{anchor}-top"])
    expected = table.dropna(subset=["pvalue"]).sort_values("pvalue", kind="mergesort").head(200)
    assert top["gene_id"].tolist() == expected["gene_id"].tolist()
    assert top["padj"].tolist() == [f"{p:.3g}" for p in expected["padj"]]

    candidates = as_frame(parser.tables[f"{anchor}-candidates"]).set_index("gene")
    assert candidates.index.tolist() == report.CANDIDATE_GENES
    by_symbol = table.set_index("gene_symbol")
    for gene, row in candidates.iterrows():
        if gene not in by_symbol.index:
            assert row["call"] == "not measured/filtered"
            continue
        hit = by_symbol.loc[gene]
        assert row["padj"] == f"{hit['padj']:.3g}"
        assert row["CI95_low"] == f"{hit['log2FoldChange'] - 1.959964 * hit['lfcSE']:.3g}"
        assert row["call"].startswith("significant") == bool(hit["padj"] < alpha)


def test_compute_resources_tables_every_job_and_their_sum(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    paths = []
    for rule, name, seconds, rss, cpu in [("qc", "qc", 12.5, 640.2, 15.0), ("deseq2", "TRD_vs_responder", 8.25, 1049.0, 14.5)]:
        path = tmp_path / rule / f"{name}.tsv"
        path.parent.mkdir()
        path.write_text(header + f"{seconds}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t100\t{cpu}\n")
        paths.append(str(path))
    table = report.compute_resources(paths)
    assert table["job"].tolist() == ["qc", "deseq2 TRD_vs_responder", "all jobs"]
    assert table["wall time (s)"].tolist() == [12.5, 8.25, 20.75]
    assert table["CPU time (s)"].tolist() == [15.0, 14.5, 29.5]
    assert table["peak memory (MB)"].tolist() == [640.2, 1049.0, 1049.0]


def test_toy_report_sections_and_numbers(toy_run):
    text, parser = parse_report(toy_run / "results/report/report.html")
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())
    for section in ("summary", "cohort", "qc", "methods"):
        assert section in parser.sections
    contrast_checks(toy_run, parser, CONTRAST, config)
    if (toy_run / "results/enrichment").exists():
        assert f"enrichment-{CONTRAST}" in parser.sections

    # the candidates the toy cohort plants as strongly changed are called in the page
    candidates = as_frame(parser.tables[f"de-{CONTRAST}-candidates"]).set_index("gene")
    assert candidates.loc["IL1B", "call"] == "significant, up"
    assert candidates.loc["HTR1A", "call"] == "not measured/filtered"  # too few counts, as in blood

    # run summary: versions, checksums of the inputs, the config as run
    software = dict(parser.tables["software"])
    assert software["pydeseq2"] == importlib.metadata.version("pydeseq2")
    assert software["snakemake"] == importlib.metadata.version("snakemake")
    checksums = dict(parser.tables["checksums"][1:])
    counts = "resources/toy/counts.tsv.gz"
    assert checksums[counts] == hashlib.md5((toy_run / counts).read_bytes()).hexdigest()
    assert set(checksums) == {counts, "config/samples.tsv", "resources/annotation/genes.tsv.gz"}
    resources = as_frame(parser.tables["resources"]).set_index("job")
    jobs = ["ingest", "qc", "filter", "vst", f"deseq2 {CONTRAST}", f"enrichment {CONTRAST}",
            f"calibration_permutations {CONTRAST}", f"calibration_block {CONTRAST}_1-of-2",
            f"calibration_block {CONTRAST}_2-of-2", f"calibration {CONTRAST}", f"predict {CONTRAST}",
            "cell_composition", *(f"sensitivity {CONTRAST}.{model}" for model in config["sensitivity"]),
            f"sensitivity_enrichment {CONTRAST}"]
    assert resources.index.tolist() == [*jobs, "all jobs"]
    deseq2_run = pd.read_csv(toy_run / f"results/benchmarks/deseq2/{CONTRAST}.tsv", sep="\t").iloc[0]
    assert resources.loc[f"deseq2 {CONTRAST}", "wall time (s)"] == report.format_value(float(deseq2_run["s"]))
    shown_config = yaml.safe_load(html.unescape(re.search(r'<pre id="config">(.*?)</pre>', text, re.S).group(1)))
    assert shown_config["design"] == config["design"]
    assert shown_config["deseq2"]["alpha"] == config["deseq2"]["alpha"]

    # cohort and QC tables equal the sample sheet and the filter summary
    samples = pd.read_csv(toy_run / "config/samples.tsv", sep="\t")
    cohort = as_frame(parser.tables["cohort-table"]).set_index("group")
    assert int(cohort.loc["TRD", "n"]) == (samples["group"] == "TRD").sum()
    assert int(cohort.loc["responder", "site: siteA"]) == ((samples["group"] == "responder")
                                                           & (samples["site"] == "siteA")).sum()
    summary = pd.read_csv(toy_run / "results/filter/filter_summary.tsv", sep="\t")
    assert as_frame(parser.tables["filter-summary"])["n"].astype(int).tolist() == summary["n"].tolist()
    metrics = pd.read_csv(toy_run / "results/qc/qc_metrics.tsv", sep="\t", index_col=0)
    flagged = as_frame(parser.tables["flagged-samples"])
    flagged_or_excluded = (metrics["flags"].fillna("") != "") | metrics["excluded"].astype(bool)
    assert sorted(flagged["sample_id"]) == sorted(metrics.index[flagged_or_excluded])
    assert "covariate-balance" in parser.tables

    methods = re.search(r'<p id="methods-text">(.*?)</p>', text, re.S).group(1)
    assert f"{summary.set_index('step').loc['genes kept', 'n']} of 6000 genes" in methods
    assert f"PyDESeq2 {importlib.metadata.version('pydeseq2')}" in methods
    assert "org.Hs.eg.db 3.16.0" in methods


def test_toy_report_robustness_section(toy_run):
    """The concordance table and the sentences of every sensitivity model, and the cell scores by group."""
    text, parser = parse_report(toy_run / "results/report/report.html")
    assert "robustness" in parser.sections
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())
    shown = as_frame(parser.tables["concordance"]).set_index("model")
    for model in config["sensitivity"]:
        row = pd.read_csv(toy_run / f"results/sensitivity/{CONTRAST}/{model}/concordance.tsv", sep="\t").iloc[0]
        assert int(shown.loc[model, "degs_model"]) == row["degs_model"]
        assert int(shown.loc[model, "lost"]) == row["lost"]
        assert f"{model} ({row['n_samples']} samples, {row['design']}): {row['degs_model']} DEGs instead of " \
               f"{row['degs_primary']}" in html.unescape(text)
    by_group = pd.read_csv(toy_run / f"results/cells/{CONTRAST}/scores_by_group.tsv", sep="\t").dropna(
        subset=["hedges_g"])
    assert as_frame(parser.tables["cell-composition-1"])["cell_type"].tolist() == by_group["cell_type"].tolist()
    assert "pathway-survival-table-1" in parser.tables or "0 of 0 immune-related" in text


def test_toy_report_is_self_contained_with_every_figure(toy_run):
    text, parser = parse_report(toy_run / "results/report/report.html")
    qc_figures = len(list((toy_run / "results/qc").glob("*.png")))
    # every QC figure, then per contrast volcano, MA and heat map, 2 enrichment dot plots, the
    # calibration's QQ plot and null-count histogram, the ROC and reliability curves, the cell
    # scores by group
    assert len(parser.images) == qc_figures + 3 + 2 + 2 + 2 + 1
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64_png(src).size[0] > 100
    # nothing is fetched: no external scripts, styles, images or links
    assert all(link.startswith(("data:", "#")) for link in parser.links), parser.links
    assert "<script src" not in text and 'rel="stylesheet"' not in text
    # every in-page link (the contents, one entry per section) leads to a section of the page
    anchors = [link[1:] for link in parser.links if link.startswith("#")]
    assert {"summary", "cohort", "qc", "predict-TRD_vs_responder", "methods"} <= set(anchors)
    assert all(f'id="{anchor}"' in text for anchor in anchors)


def base64_png(src: str):
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None,
                    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
def test_toy_report_in_headless_chromium(toy_run):
    page = toy_run / "results/report/report.html"
    table = read_de(toy_run, CONTRAST).dropna(subset=["pvalue"]).head(200)
    top = f"de-{CONTRAST}-top"
    column = 3  # log2FoldChange
    load = open_page(page.as_uri(), evaluate={
        "images": "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0).length",
        "all_images": "document.images.length",
        "sorted_first": f"""(() => {{ const t = document.getElementById('{top}');
            t.tHead.rows[0].cells[{column}].click();
            return t.tBodies[0].rows[0].cells[{column}].textContent; }})()""",
        "sorted_first_descending": f"""(() => {{ const t = document.getElementById('{top}');
            t.tHead.rows[0].cells[{column}].click();
            return t.tBodies[0].rows[0].cells[{column}].textContent; }})()""",
        "search_hits": f"""(() => {{ const box = document.querySelector('input[data-table="{top}"]');
            box.value = '{table['gene_id'].iloc[4]}'; box.dispatchEvent(new Event('input'));
            return Array.from(document.getElementById('{top}').tBodies[0].rows).filter(r => !r.hidden).length; }})()""",
    })
    assert load.failed_requests == []
    assert load.console_errors == []
    assert all(url.startswith(("file://", "data:")) for url in load.requests)
    assert load.evaluations["images"] == load.evaluations["all_images"] > 0
    assert load.evaluations["sorted_first"] == f"{table['log2FoldChange'].min():.3g}"
    assert load.evaluations["sorted_first_descending"] == f"{table['log2FoldChange'].max():.3g}"
    assert load.evaluations["search_hits"] == 1
    pixels = np.asarray(Image.open(io.BytesIO(load.screenshot)).convert("L"), dtype=float)
    assert pixels.shape[1] >= 1000
    assert pixels.std() > 20  # text, tables and figures, not a blank page


def test_snakemake_native_report(toy_run):
    run_snakemake(toy_run, "--report", "report.zip")
    with zipfile.ZipFile(toy_run / "report.zip") as archive:
        names = archive.namelist()
        main_page = archive.read("report/report.html").decode()
    expected = ["report.html", "deseq2_results.tsv", "volcano.png", "ma.png", "pca.png",
                "qc_metrics.tsv", "covariate_balance.tsv", "sex_check.png"]
    for name in expected:
        assert any(n.startswith("report/data/raw/") and n.endswith("/" + name) for n in names), name
    assert "Differential expression" in main_page and "Quality control" in main_page


def test_report_of_two_contrasts(toy_run, tmp_path):
    """A second contrast (site B vs A) on the toy run's results. Genes are filtered per contrast,
    so the filter runs again (forced: the copied results have no Snakemake metadata to show that
    its params changed) and with it what reads its output."""
    workdir = copy_workflow(tmp_path / "two")
    shutil.copytree(toy_run / "results", workdir / "results")
    config_path = workdir / "config/config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["contrasts"]["siteB_vs_siteA"] = {"variable": "site", "test": "siteB", "reference": "siteA"}
    # the report's shape is under test here, not the numbers: the fewest permutations and repeats
    config["calibration"].update(permutations=10, block_size=10)
    config["predict"].update(repeats=1, learners=["l2"], permutations=10)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # Snakemake does not look behind an up-to-date target for inputs it could still make.
    (workdir / "results/report/report.html").unlink()
    run_snakemake(workdir, "results/report/report.html", "--rerun-triggers", "mtime", "--forcerun", "filter")
    text, parser = parse_report(workdir / "results/report/report.html")
    for contrast in (CONTRAST, "siteB_vs_siteA"):
        contrast_checks(workdir, parser, contrast, config)
    assert "siteB vs siteA, adjusted for sex, age and group" in text
    assert "TRD vs responder, adjusted for site, sex and age" in text
    # per contrast: volcano, MA, heat map, 2 enrichment dot plots, 2 calibration figures, ROC and
    # reliability curves, cell scores by group
    assert len(parser.images) == len(list((workdir / "results/qc").glob("*.png"))) + 2 * (3 + 2 + 2 + 2 + 1)


def test_enrichment_methods_states_the_settings():
    settings = {"collections": {"GO_BP": "go.gmt", "curated_TRD": "c.gmt"}, "permutations": 1000,
                "seed": 42, "min_size": 10, "max_size": 500}
    text = report.enrichment_methods(settings, {"gseapy": "1.3.1"})
    for fragment in ["(GO_BP, curated_TRD)", "gseapy 1.3.1", "1000 permutations, seed 42",
                     "10 to 500 genes", "Wald statistic", "hypergeometric", "annotated in the collection"]:
        assert fragment in text, fragment
    assert "permutations of the contrast's labels" not in text
    calibrated = report.enrichment_methods(settings, {"gseapy": "1.3.1"}, 100)
    assert "taken from the 100 permutations of the contrast's labels" in calibrated
    assert "Subramanian et al. 2005" in calibrated


def test_enrichment_section(tmp_path):
    gsea = pd.DataFrame({
        "collection": ["GO_BP", "GO_BP", "curated_TRD"], "term": ["GO:1", "GO:2", "TRD_NK_CYTOTOXIC"],
        "name": ["a", "b", "NK"], "size": [10, 20, 29], "ES": [0.5, -0.4, -0.7], "NES": [1.5, -1.2, -2.1],
        "pvalue": [0.2, 0.01, 1e-5], "log2err": [0.1, 0.3, 0.5], "padj": [0.3, 0.02, 8e-5],
        "leading_edge": ["A;B", "C", "GZMB;PRF1"],
    })
    gsea.to_csv(tmp_path / "gsea.tsv", sep="\t", index=False)
    ora = pd.DataFrame({
        "collection": ["curated_TRD", "curated_TRD"], "direction": ["down", "up"],
        "term": ["TRD_NK_CYTOTOXIC", "TRD_INFLAMMATION_INNATE_IMMUNITY"], "name": ["NK", "inflammation"],
        "size": [29, 29], "overlap": [6, 7], "universe": [5000, 5000], "n_de": [180, 190],
        "pvalue": [1e-6, 2e-7], "padj": [8e-6, 1e-6], "odds_ratio": [9.5, 11.25],
        "overlap_genes": ["GZMB;PRF1", "IL1B;TNF"],
    })
    ora.to_csv(tmp_path / "ora.tsv", sep="\t", index=False)
    files = {"gsea": tmp_path / "gsea.tsv", "ora": tmp_path / "ora.tsv"}
    for key in ("gsea_dotplot", "ora_dotplot"):
        files[key] = tmp_path / f"{key}.png"
        Image.new("RGB", (120, 80), "white").save(files[key])
    (tmp_path / "gsea_dotplot.rst").write_text("GSEA of {{ snakemake.config['design'] }}.")
    section = report.enrichment_section("TRD vs responder", files, {"design": "~ group"}, tmp_path)
    assert section["anchor"] == "enrichment-TRD-vs-responder"
    dotplots, go, curated, ora_down, ora_up = section["collections"]  # collections sorted by name
    assert [f["caption"] for f in dotplots["figures"]] == ["GSEA of ~ group.", "ora_dotplot"]
    assert curated["title"] == "GSEA, curated_TRD: top 1 terms by gene-permutation p-value"
    assert curated["table"]["rows"] == [["TRD_NK_CYTOTOXIC", "NK", "29", "-2.1", "1e-05", "0.5", "8e-05",
                                        "GZMB, PRF1"]]
    assert [row[0] for row in go["table"]["rows"]] == ["GO:2", "GO:1"]
    assert ora_down["title"] == "ORA of down-regulated genes, curated_TRD: top 1 terms"
    assert ora_down["table"]["rows"] == [["TRD_NK_CYTOTOXIC", "NK", "29", "6", "9.5", "1e-06", "8e-06",
                                          "GZMB, PRF1"]]
    assert ora_up["table"]["rows"][0][0] == "TRD_INFLAMMATION_INNATE_IMMUNITY"


def prediction_files(tmp_path, best_low=0.62):
    rows = []
    for feature_set, auc in (("clinical", 0.6), ("expression", 0.66), ("combined", 0.71)):
        for learner, shift in (("l2", 0.0), ("hgb", -0.05)):
            rows.append({"feature_set": feature_set, "learner": learner, "n_samples": 48,
                         "auc_mean": auc + shift, "auc_low": auc + shift - 0.1, "auc_high": auc + shift + 0.1,
                         "auc_folds_low": 0.4, "auc_folds_high": 0.9, "auc_pooled": auc - 0.01,
                         "auc_pooled_low": auc - 0.08, "auc_pooled_high": auc + 0.06,
                         "balanced_accuracy": 0.6, "brier": 0.23,
                         "auc_gain_over_clinical": None if feature_set == "clinical" else auc - 0.6,
                         "gain_low": None if feature_set == "clinical" else auc - 0.65,
                         "gain_high": None if feature_set == "clinical" else auc - 0.5,
                         "gain_p": None if feature_set == "clinical" else 0.04,
                         "best": feature_set == "combined" and learner == "l2",
                         "permutation_p": 0.0099 if feature_set == "combined" and learner == "l2" else None})
    comparison = pd.DataFrame(rows)
    comparison.loc[comparison["best"], "auc_low"] = best_low
    comparison.to_csv(tmp_path / "model_comparison.tsv", sep="\t", index=False)
    pd.DataFrame({"site": ["siteA"], "feature_set": ["combined"], "learner": ["l2"], "n_test": [20],
                  "n_test_group": [9], "auc": [0.7], "auc_low": [0.5], "auc_high": [0.9], "brier": [0.22]}).to_csv(
        tmp_path / "site_validation.tsv", sep="\t", index=False)
    pd.DataFrame({"gene_id": ["g1", "g2"], "gene_symbol": ["IL1B", ""], "feature_set": "combined", "learner": "l2",
                  "in_final_model": [True, False], "coefficient": [0.3, None],
                  "selection_frequency": [1.0, 0.4]}).to_csv(tmp_path / "model_genes.tsv", sep="\t", index=False)
    for figure_name in ("roc", "calibration"):
        Image.new("RGB", (60, 60), "white").save(tmp_path / f"{figure_name}.png")
    return {"comparison": tmp_path / "model_comparison.tsv", "site": tmp_path / "site_validation.tsv",
            "genes": tmp_path / "model_genes.tsv", "roc": tmp_path / "roc.png",
            "calibration": tmp_path / "calibration.png"}


def test_prediction_section(tmp_path):
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    section = report.prediction_section("TRD_vs_responder", contrast, prediction_files(tmp_path), {}, tmp_path)
    assert section["heading"] == "TRD prediction"
    assert section["findings"] == [
        "Best model: combined features, l2: out-of-fold AUC 0.71 (95% CI 0.62-0.81), label-permutation p = 0.0099.",
        "Expression adds to the clinical data: combined minus clinical AUC +0.11 (95% CI +0.06 to +0.21, "
        "corrected resampled t p = 0.04; l2).",
    ]
    assert section["comparison"]["columns"][:3] == ["feature_set", "learner", "auc_mean"]
    assert len(section["comparison"]["rows"]) == 6
    assert section["sites"]["rows"][0][:2] == ["siteA", "combined"]
    assert section["genes"]["rows"][0][:2] == ["g1", "IL1B"]
    assert section["genes_model"] == "combined / l2"


def test_prediction_section_says_plainly_when_the_best_interval_includes_one_half(tmp_path):
    contrast = {"variable": "diagnosis", "test": "MDD", "reference": "control"}
    section = report.prediction_section("MDD_vs_control", contrast, prediction_files(tmp_path, best_low=0.48),
                                        {}, tmp_path)
    assert section["heading"] == "Prediction of MDD vs control"
    assert section["findings"][1] == ("The 95% interval of the best model's AUC includes 0.5: these data do "
                                      "not show that MDD can be predicted better than by chance.")
