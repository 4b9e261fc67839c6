"""The HTML report: its functions on small tables, the toy run's page against the result tables,
the page in a real headless browser, `snakemake --report`, and a run with two contrasts."""

import hashlib
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


def test_input_checksums_rejoins_nested_paths():
    nested = {"config": {"samples.tsv": "a"}, "resources": {"toy": {"counts.tsv.gz": "b"}}}
    assert report.input_checksums(nested) == {"config/samples.tsv": "a",
                                              "resources/toy/counts.tsv.gz": "b"}


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
        "pvalue": [0.2, 0.01, 0.001], "padj": [0.3, 0.02, 0.003],
        "leading_edge": ["A;B", "C", ";".join(f"G{i}" for i in range(20))],
    })
    terms = report.top_terms(gsea, 5)
    assert list(terms) == ["curated", "go"]
    assert terms["go"]["term"].tolist() == ["GO:2", "GO:1"]
    assert terms["curated"]["leading_edge"].iloc[0].endswith("G11, ... (and 8 more)")


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
                   "lfc_shrink": True},
        "n_samples_in": 48, "n_samples_excluded": 3, "n_samples_kept": 45, "n_genes_in": 6000,
        "n_genes_kept": 5724, "coding": "site (categorical, reference siteA)",
        "contrasts": "TRD vs responder, adjusted for site", "provenance": ["org.Hs.eg.db 3.16.0"],
    }
    text = report.methods_paragraph(run)
    for fragment in ["48 samples", "excluded 3 samples, leaving 45", "reached 10 counts",
                     "larger than 10, 10 plus 0.7", "total count reached 15", "5724 of 6000 genes",
                     "PyDESeq2 0.5.4", "'~ site + group'", "'ratio'", "'parametric'",
                     "at least 7 samples", "without independent filtering", "Cook's-distance outliers",
                     "below 0.05", "apeGLM", "org.Hs.eg.db 3.16.0", "Sirés et al. (2025)", "version abc"]:
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
