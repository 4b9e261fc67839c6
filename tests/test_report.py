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
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markupsafe import Markup
from PIL import Image

from conftest import ROOT, copy_workflow, run_snakemake
from headless_chromium import BrowserError, chromium_path, open_page
from report_scale import report_sections
from trdpipe.enrichment.terms import top_terms_by_direction
from trdpipe.predict.models import GAIN_COLUMNS
from trdpipe.report import embed as report_embed
from trdpipe.report import figures as report_figures
from trdpipe.report import page as report_page
from trdpipe.report import text as report_text
from trdpipe.report.sections import calibration as calibration_section
from trdpipe.report.sections import cohort as cohort_section
from trdpipe.report.sections import de as de_section
from trdpipe.report.sections import enrichment as enrichment_section
from trdpipe.report.sections import key_findings as key_findings_section
from trdpipe.report.sections import methods as methods_section
from trdpipe.report.sections import prediction as prediction_section
from trdpipe.report.sections import provenance as provenance_section
from trdpipe.report.sections import qc as qc_section
from trdpipe.report.sections import robustness as robustness_section

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
    return pd.read_csv(
        workdir / f"results/de/{contrast}/deseq2_results.tsv", sep="\t", keep_default_na=False, na_values=[""]
    )


# ---------------------------------------------------------------- unit tests


@pytest.mark.parametrize(
    "value, text",
    [
        (1.23456e-5, "1.23e-05"),
        (0.049999, "0.05"),
        (3.0, "3"),
        (12, "12"),
        (float("nan"), "NA"),
        (None, "NA"),
        (True, "yes"),
        ("siteA", "siteA"),
        (-0.12345, "-0.123"),
    ],
)
def test_format_value(value, text):
    assert report_text.format_value(value) == text


def test_join_words():
    assert report_text.join_words(["site"]) == "site"
    assert report_text.join_words(["site", "sex"]) == "site and sex"
    assert report_text.join_words(["site", "sex", "age"]) == "site, sex and age"


MODEL = pd.DataFrame(
    {
        "variable": ["site", "sex", "age", "group"],
        "type": ["categorical", "categorical", "continuous", "categorical"],
        "levels": ["siteA,siteB", "female,male", "", "responder,TRD"],
        "reference": ["siteA", "female", "", "responder"],
        "centre": [np.nan, np.nan, 44.5, np.nan],
        "scale": [np.nan, np.nan, 12.25, np.nan],
    }
)


def test_describe_contrast_and_coding():
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    assert de_section.describe_contrast(contrast, MODEL) == "TRD vs responder, adjusted for site, sex and age"
    only_group = MODEL[MODEL["variable"] == "group"]
    assert de_section.describe_contrast(contrast, only_group) == "TRD vs responder, without covariates"
    coding = de_section.describe_coding(MODEL)
    assert "age (continuous, centred at 44.5 and scaled by its SD 12.2)" in coding
    assert coding.startswith("site (categorical, reference siteA), sex (categorical, reference female)")
    assert cohort_section.categorical_covariates(MODEL) == ["site", "sex", "group"]


DE = pd.DataFrame(
    {
        "gene_id": ["g1", "g2", "g3", "g4", "g5"],
        "gene_symbol": ["IL1B", "BDNF", "TNF", "HTR1A", ""],
        "baseMean": [100.0, 50.0, 20.0, 5.0, 1.0],
        "log2FoldChange": [1.2, -0.6, 0.3, 0.1, 2.0],
        "lfcSE": [0.2, 0.1, 0.25, 0.5, 1.0],
        "stat": [6.0, -6.0, 1.2, 0.2, 2.0],
        "pvalue": [1e-9, 1e-9, 0.2, 0.8, 0.04],
        "padj": [1e-8, 1e-8, 0.04, 0.9, np.nan],
    }
)


def test_calls_table_counts_up_and_down_per_threshold():
    calls = de_section.calls_table(DE, 0.05, [0.5, 1.0])
    assert calls["genes"].tolist() == [
        "padj < 0.05",
        "padj < 0.05, |log2FC| ≥ 0.5",
        "padj < 0.05, |log2FC| ≥ 1",
    ]
    assert calls[["up", "down", "total"]].to_numpy().tolist() == [[2, 1, 3], [1, 1, 2], [1, 0, 1]]


def test_candidate_panel():
    panel = de_section.candidate_panel(DE, 0.05, ["IL1B", "BDNF", "TNF", "HTR1A", "IL6"]).set_index("gene")
    assert panel.loc["IL1B", "CI95_low"] == pytest.approx(1.2 - 1.959964 * 0.2)
    assert panel.loc["BDNF", "CI95_high"] == pytest.approx(-0.6 + 1.959964 * 0.1)
    assert panel["call"].tolist() == [
        "significant, up",
        "significant, down",
        "significant, up",
        "not significant",
        "not measured/filtered",
    ]
    assert math.isnan(panel.loc["IL6", "log2FoldChange"])
    assert panel.loc["HTR1A", "padj"] == 0.9


def test_candidate_panel_gene_without_padj():
    table = DE.assign(gene_symbol=["IL1B", "BDNF", "TNF", "HTR1A", "IL6"])
    assert de_section.candidate_panel(table, 0.05, ["IL6"])["call"].tolist() == ["not tested (padj NA)"]


def test_top_genes_by_pvalue():
    top = de_section.top_genes(DE, 3)
    assert top["gene_id"].tolist() == ["g1", "g2", "g5"]
    assert "log2FoldChange_shrunk" not in top
    with_shrunk = de_section.top_genes(DE.assign(log2FoldChange_shrunk=0.0), 2)
    assert with_shrunk.columns.tolist() == [
        "gene_id",
        "gene_symbol",
        "baseMean",
        "log2FoldChange",
        "log2FoldChange_shrunk",
        "lfcSE",
        "stat",
        "pvalue",
        "padj",
    ]


def test_table_rows_formats_cells():
    rows = report_text.table_rows(DE.head(2)[["gene_symbol", "pvalue", "padj"]])
    assert rows == {
        "columns": ["gene_symbol", "pvalue", "padj"],
        "rows": [["IL1B", "1e-09", "1e-08"], ["BDNF", "1e-09", "1e-08"]],
    }


def test_input_checksums_sorted_by_file():
    ingest = {
        "input_files": np.array(["resources/toy/counts.tsv.gz", "config/samples.tsv"]),
        "input_md5": np.array(["b", "a"]),
    }
    assert provenance_section.input_checksums(ingest).to_dict("list") == {
        "file": ["config/samples.tsv", "resources/toy/counts.tsv.gz"],
        "md5": ["a", "b"],
    }


def test_cohort_table():
    obs = pd.DataFrame(
        {"group": ["TRD", "TRD", "responder"], "site": ["A", "B", "B"], "sex": ["female", "male", "male"]}
    )
    table = cohort_section.cohort_table(obs, "group", ["site", "sex", "group"]).set_index("group")
    assert table.columns.tolist() == ["n", "site: A", "site: B", "sex: female", "sex: male"]
    assert table.loc["TRD"].tolist() == [2, 1, 1, 1, 1]
    assert table.loc["total"].tolist() == [3, 1, 2, 1, 2]


def test_cohort_and_balance_tables_per_compared_variable():
    obs = pd.DataFrame(
        {
            "group": ["TRD", "TRD", "responder", "responder"],
            "site": ["A", "B", "B", "B"],
            "sex": ["female", "male", "male", "female"],
        }
    )
    contrasts = {
        "trd": {"variable": "group", "test": "TRD", "reference": "responder"},
        "site": {"variable": "site", "test": "B", "reference": "A"},
        "trd_again": {"variable": "group", "test": "TRD", "reference": "responder"},
    }
    model = pd.DataFrame({"variable": ["site", "sex", "group"], "type": "categorical"})
    cohort = cohort_section.cohort_tables(obs, contrasts, {"trd": model, "site": model, "trd_again": model})
    assert [(c["variable"], c["id"]) for c in cohort] == [("group", "cohort-group"), ("site", "cohort-site")]
    assert cohort[1]["table"]["columns"] == [
        "site",
        "n",
        "sex: female",
        "sex: male",
        "group: TRD",
        "group: responder",
    ]
    assert cohort[1]["table"]["rows"] == [
        ["A", "1", "1", "0", "1", "0"],
        ["B", "3", "1", "2", "1", "2"],
        ["total", "4", "2", "2", "2", "2"],
    ]
    # qc's file: one block per compared variable, each padded with the other's level columns
    balance = pd.DataFrame(
        {
            "grouping": ["group", "group", "site", "site"],
            "covariate": ["n", "sex", "n", "sex"],
            "level": [np.nan, "female", np.nan, "female"],
            "statistic": "count",
            "TRD": [2, 1, np.nan, np.nan],
            "responder": [2, 1, np.nan, np.nan],
            "A": [np.nan, np.nan, 1, 1],
            "B": [np.nan, np.nan, 3, 1],
            "all": [4, 2, 4, 2],
            "test": [np.nan, "chi2", np.nan, "chi2"],
            "test_statistic": [np.nan, 0.0, np.nan, 1.33],
            "pvalue": [np.nan, 1.0, np.nan, 0.25],
        }
    )
    tables = cohort_section.balance_by_variable(balance, contrasts)
    assert [(t["variable"], t["contrasts"], t["id"]) for t in tables] == [
        ("group", "trd, trd_again", "covariate-balance-group"),
        ("site", "site", "covariate-balance-site"),
    ]
    assert tables[1]["table"] == {
        "columns": ["covariate", "level", "statistic", "A", "B", "all", "test", "test_statistic", "pvalue"],
        "rows": [
            ["n", "", "count", "1", "3", "4", "", "", ""],
            ["sex", "female", "count", "1", "1", "2", "chi2", "1.33", "0.25"],
        ],
    }


def numbers(text: str) -> list[str]:
    """The numbers a sentence states, in order: what a test of report prose checks, not its wording."""
    return re.findall(r"\d+(?:\.\d+)?(?:e-?\d+)?", text)


def test_each_section_is_a_module_and_a_template_part():
    """Adding a section is its module, its template part and its name in report.smk: no other list."""
    modules = {p.stem for p in (ROOT / "workflow/lib/trdpipe/report/sections").glob("*.py")} - {"__init__"}
    parts = {p.name.removesuffix(".html.j2") for p in (TEMPLATE_DIR / "sections").glob("*.html.j2")}
    assert sorted(report_sections()) == sorted(modules) == sorted(parts)
    assert report_sections()[0] == "key_findings" and report_sections()[-2:] == ["methods", "provenance"]


def test_qc_sentence_says_what_was_flagged_and_kept():
    kept = qc_section.qc_sentence(3, 0, 48)
    assert numbers(kept) == ["3", "48"] and "kept" in kept and "qc.action: flag" in kept
    excluded = qc_section.qc_sentence(3, 3, 45)
    assert numbers(excluded) == ["3", "3", "45"] and "excluded" in excluded
    none = qc_section.qc_sentence(0, 0, 48)
    assert numbers(none) == ["48"] and "no sample" in none


def test_flagged_samples():
    metrics = pd.DataFrame(
        {"flags": ["", "sex mismatch", np.nan], "excluded": [False, False, True]},
        index=pd.Index(["s1", "s2", "s3"], name="sample_id"),
    )
    flagged = qc_section.flagged_samples(metrics)
    assert flagged.to_dict("list") == {
        "sample_id": ["s2", "s3"],
        "flags": ["sex mismatch", ""],
        "excluded": [False, True],
    }


def test_gsea_term_table_per_collection_and_direction():
    gsea = pd.DataFrame(
        {
            "collection": ["go", "go", "curated"],
            "term": ["GO:1", "GO:2", "SET"],
            "name": ["a", "b", "c"],
            "size": [10, 20, 30],
            "ES": [0.5, -0.4, 0.7],
            "NES": [1.5, -1.2, 2.0],
            "pvalue": [0.2, 0.01, 0.001],
            "log2err": [0.1, 0.3, 0.35],
            "padj": [0.3, 0.02, 0.003],
            "leading_edge": ["A;B", "C", ";".join(f"G{i}" for i in range(20))],
        }
    )
    shown = top_terms_by_direction(gsea, 5, 0.5)
    assert list(shown) == [("curated", "up"), ("go", "up"), ("go", "down")]
    table = enrichment_section.gsea_term_table(shown[("curated", "up")], None)
    assert table.columns.tolist() == [
        "term",
        "name",
        "size",
        "NES (gene perm.)",
        "pvalue (gene perm.)",
        "log2err",
        "padj (gene perm.)",
        "leading_edge",
        "similar_terms",
    ]
    assert table["leading_edge"].iloc[0].endswith("G11, ... (and 8 more)")
    assert enrichment_section.gsea_term_table(shown[("go", "down")], None)["term"].tolist() == ["GO:2"]


def test_gsea_term_table_leads_with_the_label_permutation_fdr_and_names_folded_terms():
    gsea = pd.DataFrame(
        {
            "collection": "go",
            "term": ["GO:1", "GO:2", "GO:3", "GO:4"],
            "name": ["a", "b", "c", "d"],
            "size": [10, 20, 30, 12],
            "ES": [0.5, -0.4, 0.7, 0.6],
            "NES_perm": [1.9, -1.1, 1.4, 1.8],
            "pvalue_perm": [0.01, 0.3, 0.02, 0.01],
            "fdr_perm": [0.02, 0.6, 0.04, 0.03],
            "NES": [2.5, -1.2, 3.0, 2.0],
            "pvalue": [1e-6, 0.01, 1e-9, 1e-5],
            "log2err": [0.6, 0.3, 0.8, 0.5],
            "padj": [1e-6, 0.01, 3e-9, 1e-5],
            "leading_edge": ["A;B;C", "B", "C;D", "A;B"],
        }
    )
    up = enrichment_section.gsea_term_table(top_terms_by_direction(gsea, 5, 0.5)[("go", "up")], 100)
    # by fdr_perm, not by fgsea's p; GO:4's leading edge (J = 2/3 with GO:1's) is folded under GO:1
    assert up["term"].tolist() == ["GO:1", "GO:3"]
    assert up["similar_terms"].tolist() == ["and 1 similar term: d", ""]
    assert up.columns.tolist()[3:10] == [
        "NES_perm",
        "pvalue_perm",
        "fdr_perm",
        "NES (gene perm.)",
        "pvalue (gene perm.)",
        "log2err",
        "padj (gene perm.)",
    ]
    findings = enrichment_section.pathway_findings(gsea, 0.05)
    # per collection: sets at the label-permutation FDR, of those tested, beside gene permutation's
    assert findings.startswith("GSEA go: ") and numbers(findings) == ["3", "4", "0.05", "4", "0.05"]
    assert findings.index("label-permutation FDR") < findings.index("gene-permutation padj")
    without = gsea.assign(NES_perm=np.nan, pvalue_perm=np.nan, fdr_perm=np.nan)
    up = enrichment_section.gsea_term_table(top_terms_by_direction(without, 5, 0.5)[("go", "up")], None)
    assert up["term"].tolist() == ["GO:3", "GO:1"]
    assert enrichment_section.pathway_findings(without, 0.05).startswith(
        "GSEA go: 4 of 4 sets at gene-permutation padj < 0.05. No label-permutation null was computed"
    )
    assert (
        enrichment_section.similar_terms_text(["x", "y", "z", "w"])
        == "and 4 similar terms: x, y, z, ... (and 1 more)"
    )


def test_resource_provenance_of_the_shipped_readmes():
    annotation = provenance_section.resource_provenance((ROOT / "resources/annotation/README.md").read_text())
    genesets = provenance_section.resource_provenance((ROOT / "resources/genesets/README.md").read_text())
    assert annotation.startswith("Bioconductor org.Hs.eg.db 3.16.0 as packaged by Debian")
    assert "GO release 2022-07-01" in genesets and "**" not in genesets
    assert provenance_section.resource_provenance("# title\nno source section\n") == ""


def test_version_label():
    assert provenance_section.version_label({"name": "trd-deseq2", "version": "0.1.0"}) == "0.1.0"
    assert (
        provenance_section.version_label({"version": "0.1.0", "commit": "abc123"}) == "0.1.0 (commit abc123)"
    )


def test_figures_keep_their_pixel_width_and_wide_ones_are_marked(tmp_path):
    for name, size in (("pca", (1518, 462)), ("volcano", (660, 550)), ("dotplot", (990, 1020))):
        Image.new("RGB", size, "white").save(tmp_path / f"{name}.png")
    assert report_embed.figure(tmp_path / "dotplot.png", tmp_path, {})["wide"]
    (tmp_path / "volcano.rst").write_text("Volcano of {{ snakemake.config['design'] }}.")
    pca = report_embed.figure(tmp_path / "pca.png", tmp_path, {})
    volcano = report_embed.figure(tmp_path / "volcano.png", tmp_path, {"design": "~ group"})
    assert (pca["width"], pca["wide"], pca["caption"]) == (1518, True, "pca")
    assert (volcano["width"], volcano["wide"], volcano["caption"]) == (660, False, "Volcano of ~ group.")
    assert base64_png(volcano["src"]).size == (660, 550)


def methods_paragraphs(settings: dict) -> dict[str, str]:
    """The methods section (workflow/report/sections/methods.html.j2) rendered from these settings, as
    {heading: paragraph text}."""
    section = {"template": "sections/methods.html.j2", "settings": settings, "references": []}
    page = report_page.template_environment(TEMPLATE_DIR).get_template(section["template"]).render(s=section)
    body = re.search(r'<div id="methods-text">(.*?)</div>', page, re.S).group(1)
    return {
        html.unescape(h): html.unescape(p)
        for h, p in re.findall(r"<h3>(.*?)</h3>\s*<p>(.*?)</p>", body, re.S)
    }


ENRICHMENT_SETTINGS = {
    "collections": {"GO_BP": "go.gmt", "curated_TRD": "c.gmt"},
    "permutations": 1000,
    "seed": 42,
    "min_size": 10,
    "max_size": 500,
    "label_permutations": 0,
    "ora_padj": 0.05,
}


def test_methods_state_every_parameter_under_a_heading_per_step(tmp_path):
    readmes = []
    for i, source in enumerate(["org.Hs.eg.db 3.16.0 (Debian).", "GO release 2022-07-01."]):
        readmes.append(tmp_path / f"README{i}.md")
        readmes[-1].write_text(f"# A resource\n\n## Source\n\n- {source}\n")
    run = {
        "pipeline_version": "abc",
        "versions": {"python": "3.11.7", "snakemake": "9.1", "pydeseq2": "0.5.4", "gseapy": "1.3.1"},
        "design": "~ site + group",
        "filter": {"min_count": 10, "min_total_count": 15, "large_n": 10, "min_prop": 0.7},
        "de": {
            "alpha": 0.05,
            "cooks_filter": True,
            "independent_filter": False,
            "refit_cooks": True,
            "min_replicates": 7,
            "fit_type": "parametric",
            "size_factors_fit_type": "ratio",
            "lfc_shrink": True,
            "vst_nsub": 1000,
        },
        "n_samples_in": 48,
        "qc_summary": qc_section.qc_sentence(3, 3, 45),
        "n_genes_in": 6000,
        "n_genes_kept": 5724,
        "coding": "site (categorical, reference siteA)",
        "contrasts": "TRD vs responder, adjusted for site",
        "provenance": methods_section.provenance_entries(readmes),
        "enrichment": None,
        "camera": False,
        "calibration": None,
        "prediction": None,
        "robustness": None,
    }
    methods = methods_paragraphs(run)
    # headed paragraphs in the order of the analysis; steps this run did not take have none
    assert list(methods) == [
        "Workflow",
        "Samples and quality control",
        "Gene filtering",
        "Differential expression",
        "Gene annotation and gene sets",
    ]
    text = " ".join(methods.values())
    # each provenance entry ends its own sentence: joined, they must not give ".;" or ".."
    assert ".;" not in text and ".." not in text
    assert methods["Gene annotation and gene sets"] == "org.Hs.eg.db 3.16.0 (Debian); GO release 2022-07-01."
    assert methods["Gene filtering"].startswith("Genes were filtered with the rule of edgeR's filterByExpr")
    assert (
        "apeGLM" in methods["Differential expression"]
        and "'~ site + group'" in methods["Differential expression"]
    )
    calibration = {"seed": 7, "contrasts": [{"name": "a", "strata": "site", "permutations": 200}]}
    with_steps = methods_paragraphs({**run, "enrichment": ENRICHMENT_SETTINGS, "calibration": calibration})
    assert list(with_steps)[4:6] == ["Pathway enrichment", "Could the calls be chance? Label permutations"]
    assert "under 200 permutations" in with_steps["Could the calls be chance? Label permutations"]
    assert "(a: site; continuous covariates" in with_steps["Could the calls be chance? Label permutations"]
    for fragment in [
        "48 samples",
        "flagged 3 samples and excluded 3, leaving 45",
        "reached 10 counts",
        "larger than 10, 10 plus 0.7",
        "total count reached 15",
        "5724 of 6000 genes",
        "PyDESeq2 0.5.4",
        "'~ site + group'",
        "'ratio'",
        "'parametric'",
        "at least 7 samples",
        "without independent filtering",
        "Cook's-distance outliers",
        "below 0.05",
        "apeGLM",
        "fitted on 1000 genes",
        "Sirés et al. (2025)",
        "version abc",
    ]:
        assert fragment in text, fragment


def test_zscore_rows():
    z = report_figures.zscore_rows(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(z, [[-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])


def test_top_gene_heatmap_orders_genes_and_samples():
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {"group": ["TRD", "responder", "TRD", "responder"], "site": ["A", "A", "B", "B"]},
        index=["s1", "s2", "s3", "s4"],
    )
    vst = pd.DataFrame(rng.normal(size=(4, 5)), index=obs.index, columns=DE["gene_id"])
    fig = report_figures.top_gene_heatmap(DE, vst, obs, 4, ["group", "site"], "t")
    labels = [t.get_text() for t in fig.axes[2].get_yticklabels()]
    # the 4 smallest p-values (g5 has no padj but a p-value; HTR1A is 5th), up first, then down
    assert labels == ["IL1B", "g5", "TNF", "BDNF"]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["group"]
    assert fig.axes[2].images[0].get_array().shape == (4, 4)


def test_caption_text_renders_the_snakemake_caption():
    rst = 'Top {{ snakemake.config["qc"]["n_top_genes"] }} genes, design ``{{ snakemake.config["design"] }}``.\n'
    assert (
        report_embed.caption_text(rst, {"qc": {"n_top_genes": 500}, "design": "~ group"})
        == "Top 500 genes, design ~ group."
    )


def test_pc_association_caption_gives_the_number_of_pcs_shown(tmp_path):
    png = tmp_path / "pc_covariate_association.png"
    Image.new("RGB", (300, 200), "white").save(png)
    config = {"qc": {"n_pcs": 10}}
    shown = report_embed.figure(png, ROOT / "workflow/report", config, values={"pcs_shown": 6})
    assert shown["caption"].startswith("Association of the first 6 principal components (VST")
    # Snakemake's own report knows the config only
    rst = (ROOT / "workflow/report/pc_covariate_association.rst").read_text()
    assert report_embed.caption_text(rst, config).startswith(
        "Association of the leading (at most 10, qc.n_pcs) principal components"
    )


def test_significant_associations():
    association = pd.DataFrame(
        {
            "pc": ["PC1", "PC1", "PC2"],
            "variance_explained": [0.3, 0.3, 0.1],
            "covariate": ["site", "age", "group"],
            "test": ["anova", "pearson", "anova"],
            "statistic": [9.0, 0.1, 5.0],
            "r_squared": [0.4, 0.01, 0.2],
            "pvalue": [1e-4, 0.6, 0.03],
        }
    )
    hits = qc_section.significant_associations(association)
    assert hits["covariate"].tolist() == ["site", "group"]
    assert "statistic" not in hits


# ---------------------------------------------------------------- the toy run's report


def contrast_checks(workdir: Path, parser: ReportParser, contrast: str, config: dict) -> None:
    """The contrast's numbers in the page equal those computed here from its result table."""
    table = read_de(workdir, contrast)
    alpha = config["de"]["alpha"]
    anchor = f"de-{contrast}"
    assert anchor in parser.sections
    significant = table["padj"] < alpha
    calls = as_frame(parser.tables[f"{anchor}-calls"])
    for row, threshold in zip(calls.itertuples(), [0.0, *config["de"]["lfc_thresholds"]]):
        big = table["log2FoldChange"].abs() >= threshold
        assert int(row.up) == (significant & big & (table["log2FoldChange"] > 0)).sum()
        assert int(row.down) == (significant & big & (table["log2FoldChange"] < 0)).sum()
    assert len(calls) == 1 + len(config["de"]["lfc_thresholds"])

    top = as_frame(parser.tables[f"{anchor}-top"])
    expected = table.dropna(subset=["pvalue"]).sort_values("pvalue", kind="mergesort").head(200)
    assert top["gene_id"].tolist() == expected["gene_id"].tolist()
    assert top["padj"].tolist() == [f"{p:.3g}" for p in expected["padj"]]

    candidates = as_frame(parser.tables[f"{anchor}-candidates"]).set_index("gene")
    assert candidates.index.tolist() == config["report"]["candidate_genes"]
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
    for rule, name, seconds, rss, cpu in [
        ("qc", "qc", 12.5, 640.2, 15.0),
        ("deseq2", "TRD_vs_responder", 8.25, 1049.0, 14.5),
    ]:
        path = tmp_path / rule / f"{name}.tsv"
        path.parent.mkdir()
        path.write_text(header + f"{seconds}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t100\t{cpu}\n")
        paths.append(str(path))
    table = provenance_section.compute_resources(paths)
    assert table["job"].tolist() == ["qc", "deseq2 TRD_vs_responder", "all jobs"]
    assert table["wall time (s)"].tolist() == [12.5, 8.25, 20.75]
    assert table["CPU time (s)"].tolist() == [15.0, 14.5, 29.5]
    assert table["peak memory (MB)"].tolist() == [640.2, 1049.0, 1049.0]


def test_toy_report_sections_and_numbers(toy_run):
    text, parser = parse_report(toy_run / "results/report/report.html")
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())
    assert parser.sections[:2] == ["key-findings", "cohort"]
    assert parser.sections[-2:] == ["methods", "provenance"]
    for section in ("qc", "robustness"):
        assert section in parser.sections
    contrast_checks(toy_run, parser, CONTRAST, config)
    if (toy_run / "results/enrichment").exists():
        assert f"enrichment-{CONTRAST}" in parser.sections

    # the candidates the toy cohort plants as strongly changed are called in the page
    candidates = as_frame(parser.tables[f"de-{CONTRAST}-candidates"]).set_index("gene")
    assert candidates.loc["IL1B", "call"] == "significant, up"
    # HTR2B has too few counts, as in blood; HTR1A carries the toy's planted cis-eQTL (raised to be
    # testable, resources/toy/README.md) and no group effect
    assert candidates.loc["HTR2B", "call"] == "not measured/filtered"
    assert candidates.loc["HTR1A", "call"] == "not significant"

    # provenance: versions (from software_versions.yml), checksums of the inputs, the config as run
    software = dict(parser.tables["software"])
    versions = yaml.safe_load((toy_run / "results/software_versions.yml").read_text())
    assert software == {name: str(version) for name, version in versions["packages"].items()}
    assert software["pydeseq2"] == importlib.metadata.version("pydeseq2")
    version = (ROOT / "VERSION").read_text().strip()
    assert re.search(r'<span id="pipeline-version">(.*?)</span>', text).group(1) == version
    assert f"(version {version})" in text
    checksums = dict(parser.tables["checksums"][1:])
    counts = "resources/toy/counts.tsv.gz"
    assert checksums[counts] == hashlib.md5((toy_run / counts).read_bytes()).hexdigest()
    assert set(checksums) == {counts, "config/samples.tsv", "resources/annotation/genes.tsv.gz"}
    config_md5 = hashlib.md5((toy_run / "config/config.yaml").read_bytes()).hexdigest()
    assert f"<tr><th>Config files</th><td>config/config.yaml (md5 {config_md5})</td></tr>" in text
    resources = as_frame(parser.tables["resources"]).set_index("job")
    jobs = [
        "ingest",
        "qc",
        "filter",
        "vst",
        f"deseq2 {CONTRAST}",
        f"enrichment {CONTRAST}",
        f"pathway_null {CONTRAST}",
        f"camera {CONTRAST}",
        f"calibration_permutations {CONTRAST}",
        f"calibration_block {CONTRAST}_1-of-2",
        f"calibration_block {CONTRAST}_2-of-2",
        f"calibration {CONTRAST}",
        f"predict {CONTRAST}",
        "cell_composition",
        *(f"sensitivity {CONTRAST}.{model}" for model in config["sensitivity"]),
        f"sensitivity_enrichment {CONTRAST}.cell_adjusted",
        "genotypes",
        "genotype_eqtl",
        f"genotype_association {CONTRAST}",
        "software_versions",
    ]
    # the toy's small-RNA layer (config assays: mirna), its jobs labelled with the assay
    mirna_jobs = [
        *(f"{rule} (mirna)" for rule in ("ingest", "qc", "filter", "vst")),
        f"deseq2 {CONTRAST} (mirna)",
        f"calibration_permutations {CONTRAST} (mirna)",
        f"calibration_block {CONTRAST}_1-of-2 (mirna)",
        f"calibration_block {CONTRAST}_2-of-2 (mirna)",
        f"calibration {CONTRAST} (mirna)",
        f"mirna_targets {CONTRAST} (mirna)",
    ]
    assert resources.index.tolist() == [*jobs, *mirna_jobs, "all jobs"]
    deseq2_run = pd.read_csv(toy_run / f"results/benchmarks/deseq2/{CONTRAST}.tsv", sep="\t").iloc[0]
    assert resources.loc[f"deseq2 {CONTRAST}", "wall time (s)"] == report_text.format_value(
        float(deseq2_run["s"])
    )
    shown_config = yaml.safe_load(
        html.unescape(re.search(r'<pre id="config">(.*?)</pre>', text, re.S).group(1))
    )
    assert shown_config["design"] == config["design"]
    assert shown_config["de"]["alpha"] == config["de"]["alpha"]

    # cohort and QC tables equal the sample sheet and the filter summary
    samples = pd.read_csv(toy_run / "config/samples.tsv", sep="\t")
    cohort = as_frame(parser.tables["cohort-group"]).set_index("group")
    assert int(cohort.loc["TRD", "n"]) == (samples["group"] == "TRD").sum()
    assert (
        int(cohort.loc["responder", "site: siteA"])
        == ((samples["group"] == "responder") & (samples["site"] == "siteA")).sum()
    )
    summary = pd.read_csv(toy_run / "results/filter/filter_summary.tsv", sep="\t")
    assert as_frame(parser.tables["filter-summary"])["n"].astype(int).tolist() == summary["n"].tolist()
    metrics = pd.read_csv(toy_run / "results/qc/qc_metrics.tsv", sep="\t", index_col=0)
    flagged = as_frame(parser.tables["flagged-samples"])
    flagged_or_excluded = (metrics["flags"].fillna("") != "") | metrics["excluded"].astype(bool)
    assert sorted(flagged["sample_id"]) == sorted(metrics.index[flagged_or_excluded])
    balance = pd.read_csv(toy_run / "results/qc/covariate_balance.tsv", sep="\t")
    shown_balance = as_frame(parser.tables["covariate-balance-group"])
    assert shown_balance["covariate"].tolist() == balance["covariate"].tolist()
    assert shown_balance["pvalue"].tolist() == [
        report_text.format_value(v) if pd.notna(v) else "" for v in balance["pvalue"]
    ]
    n_flagged = int((metrics["flags"].fillna("") != "").sum())
    assert n_flagged == 3  # the toy's planted hazards, flagged and kept
    qc_summary = re.search(r'<p id="qc-summary">(.*?)</p>', text).group(1)
    assert numbers(qc_summary) == [str(n_flagged), "48"] and "kept them" in qc_summary

    methods_html = re.search(r'<div id="methods-text">(.*?)</div>', text, re.S).group(1)
    assert re.findall(r"<h3>(.*?)</h3>", methods_html)[:3] == [
        "Workflow",
        "Samples and quality control",
        "Gene filtering",
    ]
    methods = html.unescape(" ".join(re.findall(r"<p>(.*?)</p>", methods_html, re.S)))
    assert ".;" not in methods and ".." not in methods
    assert f"Quality control flagged {n_flagged} samples and kept them" in methods
    assert "Jaccard index of at least 0.5" in methods
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
        row = pd.read_csv(toy_run / f"results/sensitivity/{CONTRAST}/{model}/concordance.tsv", sep="\t").iloc[
            0
        ]
        assert int(shown.loc[model, "degs_model"]) == row["degs_model"]
        assert int(shown.loc[model, "lost"]) == row["lost"]
        assert (
            f"{model} ({row['n_samples']} samples, {row['design']}): {row['degs_model']} DEGs instead of "
            f"{row['degs_primary']}" in html.unescape(text)
        )
    by_group = pd.read_csv(toy_run / f"results/cells/{CONTRAST}/scores_by_group.tsv", sep="\t").dropna(
        subset=["hedges_g"]
    )
    assert (
        as_frame(parser.tables["cell-composition-1"])["cell_type"].tolist() == by_group["cell_type"].tolist()
    )
    assert "pathway-survival-table-1" in parser.tables or "0 of 0 immune-related" in text


def plot_key(plot: Path) -> tuple[str, ...]:
    """(collection, direction, rank, term) of a running-score plot, from its file name."""
    return re.fullmatch(r"(GO_BP|curated_TRD)_(up|down)_(\d+)_(.+)\.png", plot.name).groups()


def test_toy_report_shows_no_fdr_of_0_and_names_permutation_floors(toy_run):
    """Over every table of the page: no FDR or padj column shows 0; the empirical FDR is at most 1; the
    prediction's p of 1/21 says it is the smallest possible with the toy's 20 permutations."""
    text, parser = parse_report(toy_run / "results/report/report.html")
    fdr_columns = 0
    for rows in parser.tables.values():
        header = rows[0]
        for column, name in enumerate(header):
            if re.search(r"fdr|padj", name, re.I):
                fdr_columns += 1
                assert "0" not in {row[column] for row in rows[1:] if len(row) == len(header)}, name
    assert fdr_columns >= 10  # GSEA, ORA, survival, DE and candidate tables
    calibration = dict(parser.tables[f"calibration-{CONTRAST}-summary"][1:])
    empirical = calibration["empirical FDR of the observed calls (SAM)"]
    assert empirical.startswith("<") or 0 < float(empirical) <= 1
    comparison = as_frame(parser.tables[f"predict-{CONTRAST}-comparison"])
    best = pd.read_csv(toy_run / f"results/predict/{CONTRAST}/model_comparison.tsv", sep="\t")
    best = best[best["best"]].iloc[0]
    assert best["permutation_p"] == pytest.approx(1 / 21)  # no permuted AUC as high, with 20 permutations
    assert "0.0476, the smallest possible with 20 permutations" in comparison["permutation_p"].tolist()
    key = html.unescape(re.search(r'<td data-key="prediction">(.*?)</td>', text, re.S).group(1))
    assert "label-permutation p = 0.0476, the smallest possible with 20 permutations." in key


def test_toy_report_is_self_contained_with_every_figure(toy_run):
    text, parser = parse_report(toy_run / "results/report/report.html")
    qc_figures = len(list((toy_run / "results/qc").glob("*.png")))
    plots = sorted((toy_run / f"results/enrichment/{CONTRAST}/running_scores").glob("*.png"))
    # each running-score plot is of the term shown at its rank, in its collection and direction
    for plot in plots:
        collection, direction, rank, term = plot_key(plot)
        shown = parser.tables[f"enrichment-{CONTRAST}-{collection}-{direction}"][int(rank)]
        assert shown[0].replace(":", "_") == term
    # only the terms shown that pass the label-permutation FDR are drawn
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())["enrichment"]
    gsea = pd.read_csv(toy_run / f"results/enrichment/{CONTRAST}/gsea.tsv", sep="\t")
    shown = top_terms_by_direction(gsea, config["running_score_terms"], config["similar_terms_jaccard"])
    called = {
        (collection, direction, rank)
        for (collection, direction), terms in shown.items()
        for rank, fdr in enumerate(terms["fdr_perm"], start=1)
        if fdr < config["ora_padj"]
    }
    assert called and {(c, d, int(r)) for c, d, r, _ in map(plot_key, plots)} == called
    # every QC figure, then per contrast volcano, MA and heat map, the counts of the top and of the
    # candidate genes, 2 enrichment dot plots and every running-score plot, the calibration's QQ plot
    # and null-count histogram, the ROC, reliability and layer-gain figures, the cell scores by
    # group; the toy's miRNA assay (its 3 QC figures and a volcano), its targets' directions, and
    # the candidate genes' eQTL
    assert len(parser.images) == qc_figures + 3 + 2 + 2 + len(plots) + 2 + 3 + 1 + (3 + 1) + 1 + 1
    # Plotly's library is inline, once, for the interactive volcano
    assert text.count("* plotly.js v") == 1 and 'id="de-TRD_vs_responder-volcano"' in text
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64_png(src).size[0] > 100
    # every figure has a caption in words, not its file's name ("roc")
    captions = [html.unescape(c) for c in re.findall(r"<figcaption>(.*?)</figcaption>", text, re.S)]
    assert len(captions) == len(parser.images)
    assert [c for c in captions if len(c.split()) < 4] == []
    # nothing is fetched: no external scripts, styles, images or links
    assert all(link.startswith(("data:", "#")) for link in parser.links), parser.links
    assert "<script src" not in text and 'rel="stylesheet"' not in text
    # every in-page link (the contents, one entry per section) leads to a section of the page
    anchors = [link[1:] for link in parser.links if link.startswith("#")]
    assert {"key-findings", "cohort", "qc", f"predict-{CONTRAST}", "methods", "provenance"} <= set(anchors)
    assert all(f'id="{anchor}"' in text for anchor in anchors)


def base64_png(src: str):
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


# JavaScript run in the loaded page (headless Chromium) to read back what a reader sees
KEY_FINDINGS_JS = f"""(() => {{
  const box = document.getElementById('key-{CONTRAST}');
  const text = key => box.querySelector('[data-key="' + key + '"]').textContent;
  const list = direction => box.querySelectorAll('[data-key="pathways-' + direction + '"] li');
  const items = direction => Array.from(list(direction)).map(
    li => [li.dataset.term, li.querySelector('[data-key="fdr"]').textContent,
           li.querySelector('[data-key="survival"]').textContent]);
  return {{first_section: document.querySelector('main section').id, degs: text('degs'), up: text('up'),
           down: text('down'), verdict: text('verdict'), cells: text('cell-adjusted'),
           prediction: text('prediction'), pathways_up: items('up'), pathways_down: items('down')}};
}})()"""
# every figure: its rendered and natural widths, and whether it is marked wide
FIGURES_JS = """Array.from(document.querySelectorAll('figure.fig img')).map(i => ({
  alt: i.alt.slice(0, 60), width: i.getBoundingClientRect().width, natural: i.naturalWidth,
  wide: i.closest('figure').classList.contains('wide')}))"""
LIGHTBOX_JS = """(() => { const figureImage = document.querySelector('figure.fig img');
  figureImage.click(); const box = document.getElementById('lightbox');
  const shown = !box.hidden && box.querySelector('img').src === figureImage.src;
  const width = box.querySelector('img').getBoundingClientRect().width;
  box.click(); return {shown: shown, width: width, figure: figureImage.getBoundingClientRect().width,
                       closed: box.hidden}; })()"""
# every address the page refers to, after its scripts ran
ADDRESSES_JS = """Array.from(document.querySelectorAll('[src], [href]')).map(
  e => e.getAttribute('src') || e.getAttribute('href'))"""


def expected_survival(adjusted: pd.DataFrame, collection_terms: pd.DataFrame, term: str, cut: float) -> str:
    """The survival words of a key-findings pathway, from the cell-adjusted GSEA table (gene-permutation
    padj only), computed here."""
    primary = collection_terms.set_index("term").loc[term]
    after = adjusted[(adjusted["collection"] == primary["collection"]) & (adjusted["term"] == term)].iloc[0]
    if np.sign(after["NES"]) != np.sign(primary["NES_perm"]):
        return f"reverses direction after cell adjustment (NES {after['NES']:.3g})"
    if not primary["fdr_perm"] < cut:
        return f"gene-permutation padj {after['padj']:.3g} after cell adjustment"
    verdict = "survives" if after["padj"] < cut else "does not survive"
    return f"{verdict} cell adjustment (gene-permutation padj {after['padj']:.3g})"


@pytest.mark.browser
@pytest.mark.skipif(
    chromium_path() is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)",
)
def test_toy_report_in_headless_chromium(toy_run):
    """At 1400 px: the key findings hold the run's numbers, every figure is readable and enlarges on
    a click, the tables sort and search, and the page asks for nothing beyond itself."""
    page = toy_run / "results/report/report.html"
    config = yaml.safe_load((toy_run / "config/config.yaml").read_text())
    alpha, cut = config["de"]["alpha"], config["enrichment"]["ora_padj"]
    de = read_de(toy_run, CONTRAST)
    tested = de.dropna(subset=["pvalue"])
    table = tested.head(200)
    top = f"de-{CONTRAST}-top"
    column = 3  # log2FoldChange
    volcano = f"de-{CONTRAST}-volcano"
    # one gene with a call and one without, by symbol in lower case
    with_symbol = tested[tested["gene_symbol"].fillna("") != ""]
    searched = [with_symbol.iloc[3], with_symbol[~(with_symbol["padj"] < 0.05)].iloc[-1]]
    load = open_page(
        page.as_uri(),
        width=1400,
        evaluate={
            "key": KEY_FINDINGS_JS,
            "figures": FIGURES_JS,
            # the figures' images (the lightbox holds one more, empty until a figure is clicked)
            "images": "Array.from(document.querySelectorAll('figure img'))"
            ".filter(i => i.complete && i.naturalWidth > 0).length",
            "all_images": "document.querySelectorAll('figure img').length",
            "addresses": ADDRESSES_JS,
            "lightbox": LIGHTBOX_JS,
            # the points Plotly holds and those it drew (its full data), per trace, the search ring last
            "volcano_points": f"document.getElementById('{volcano}').data.map(t => t.x.length)",
            "volcano_drawn": f"document.getElementById('{volcano}')._fullData.map(t => t._length)",
            "volcano_canvases": f"document.querySelectorAll('#{volcano} canvas').length",
            "volcano_search": f"""{[gene["gene_symbol"].lower() for gene in searched]}.map(symbol => {{
            const box = document.querySelector('input[data-plot="{volcano}"]');
            box.value = symbol; box.dispatchEvent(new Event('input'));
            const ring = document.getElementById('{volcano}').data.at(-1);
            return [document.getElementById('{volcano}-found').textContent, ring.x, ring.text]; }})""",
            "sorted_first": f"""(() => {{ const t = document.getElementById('{top}');
            t.tHead.rows[0].cells[{column}].click();
            return t.tBodies[0].rows[0].cells[{column}].textContent; }})()""",
            "sorted_first_descending": f"""(() => {{ const t = document.getElementById('{top}');
            t.tHead.rows[0].cells[{column}].click();
            return t.tBodies[0].rows[0].cells[{column}].textContent; }})()""",
            "search_hits": f"""(() => {{ const box = document.querySelector('input[data-table="{top}"]');
            box.value = '{table["gene_id"].iloc[4]}'; box.dispatchEvent(new Event('input'));
            return Array.from(document.getElementById('{top}').tBodies[0].rows).filter(r => !r.hidden).length; }})()""",
            # the interactive volcano's check (its points drawn) goes here
        },
    )
    assert load.console_errors == []

    # the key findings open the page and hold the numbers of the run's tables
    key = load.evaluations["key"]
    assert key["first_section"] == "key-findings"
    significant = de["padj"] < alpha
    summary = pd.read_csv(toy_run / f"results/calibration/{CONTRAST}/summary.tsv", sep="\t").set_index(
        "statistic"
    )["value"]
    assert int(key["degs"]) == significant.sum() == int(summary["observed_degs"])
    assert int(key["up"]) == (significant & (de["log2FoldChange"] > 0)).sum()
    assert int(key["down"]) == (significant & (de["log2FoldChange"] < 0)).sum()
    assert f"shuffled labels gave a median of {float(summary['null_degs_median']):g}" in key["verdict"]
    gsea = pd.read_csv(toy_run / f"results/enrichment/{CONTRAST}/gsea.tsv", sep="\t")
    cell_adjusted = toy_run / f"results/sensitivity/{CONTRAST}/cell_adjusted"
    adjusted = pd.read_csv(cell_adjusted / "enrichment/gsea.tsv", sep="\t")
    for direction, sign in (("up", 1), ("down", -1)):
        shown = key[f"pathways_{direction}"]
        assert len(shown) == 3
        ranked = gsea[gsea["NES_perm"] * sign > 0].sort_values(["fdr_perm", "pvalue_perm", "pvalue", "term"])
        best = ranked.iloc[0]
        k = int(summary["permutations"])
        assert shown[0][:2] == [best["term"], report_text.fdr_text(best["fdr_perm"], k)]
        for term, fdr, survival in shown:
            assert fdr == report_text.fdr_text(gsea.set_index("term").loc[term, "fdr_perm"], k)
            assert survival == expected_survival(adjusted, gsea, term, cut)
    concordance = pd.read_csv(cell_adjusted / "concordance.tsv", sep="\t").iloc[0]
    assert (
        f"{concordance['degs_model']} genes are called instead of {concordance['degs_primary']}"
        in key["cells"]
    )
    comparison = pd.read_csv(toy_run / f"results/predict/{CONTRAST}/model_comparison.tsv", sep="\t")
    best = comparison[comparison["best"]].iloc[0]
    assert (
        f"out-of-fold AUC {best['auc_mean']:.2f} (95% CI {best['auc_low']:.2f}-{best['auc_high']:.2f})"
        in key["prediction"]
    )
    assert ("includes 0.5" in key["prediction"]) == (best["auc_low"] <= 0.5)

    # no figure is shrunk below 70% of its pixel size (its text below ~70%), wide ones span >= 600 px
    figures = load.evaluations["figures"]
    assert len(figures) == load.evaluations["all_images"] == load.evaluations["images"] > 20
    assert [f["alt"] for f in figures if f["width"] < 0.7 * f["natural"]] == []
    assert [f["alt"] for f in figures if f["wide"] and f["width"] < 600] == []
    assert any(f["wide"] for f in figures) and all(f["width"] <= f["natural"] for f in figures)
    lightbox = load.evaluations["lightbox"]
    assert lightbox["shown"] and lightbox["closed"] and lightbox["width"] > lightbox["figure"]

    # the page makes no request beyond itself, and refers to nothing outside it
    assert load.failed_requests == []
    assert [url for url in load.requests if not url.startswith("data:")] == [page.as_uri()]
    assert all(address.startswith(("data:", "#")) for address in load.evaluations["addresses"])

    assert load.evaluations["sorted_first"] == f"{table['log2FoldChange'].min():.3g}"
    assert load.evaluations["sorted_first_descending"] == f"{table['log2FoldChange'].max():.3g}"
    assert load.evaluations["search_hits"] == 1
    # the interactive volcano: every tested gene drawn once, the found gene ringed where it lies
    *points, ring = load.evaluations["volcano_points"]
    assert sum(points) == len(tested) and ring == 0
    assert load.evaluations["volcano_drawn"] == load.evaluations["volcano_points"]
    assert load.evaluations["volcano_canvases"] > 0
    for gene, found in zip(searched, load.evaluations["volcano_search"]):
        # drawn at the shrunk fold change, called by the sign of the unshrunk one (as the DE table)
        symbol, lfc, x = gene["gene_symbol"], gene["log2FoldChange"], gene["log2FoldChange_shrunk"]
        call = "not significant" if not gene["padj"] < 0.05 else "up" if lfc > 0 else "down"
        assert found == [f"{symbol}: {call}", [round(x, 3)], [symbol]]
    pixels = np.asarray(Image.open(io.BytesIO(load.screenshot)).convert("L"), dtype=float)
    assert pixels.shape[1] == 1400
    assert pixels.std() > 20  # text, tables and figures, not a blank page


def test_browser_that_does_not_answer_fails_fast(tmp_path):
    """A 'browser' that never answers the DevTools pipe makes open_page fail within seconds."""
    silent = tmp_path / "silent-browser"
    silent.write_text("#!/bin/sh\nexec sleep 600\n")
    silent.chmod(0o755)
    dead = tmp_path / "dead-browser"
    dead.write_text("#!/bin/sh\nexit 3\n")
    dead.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(BrowserError, match="exited \\(code 3\\)"):
        open_page("about:blank", binary=str(dead))
    assert time.monotonic() - started < 5
    with pytest.raises(BrowserError, match="did not answer Target.createTarget in time"):
        open_page("about:blank", binary=str(silent), startup_timeout=2)
    assert time.monotonic() - started < 20


TEMPLATE_DIR = ROOT / "workflow/report"


def render_macros(source: str, **values) -> str:
    """A snippet of HTML using the report's macros (workflow/report/macros.j2), rendered as the page is."""
    env = report_page.template_environment(TEMPLATE_DIR)
    return env.from_string('{% from "macros.j2" import table, key_finding %}' + source).render(**values)


def wide_table_page(path: Path) -> None:
    """A page with the report's CSS and table macro: a 17-column model comparison in the main column."""
    wide = report_text.table_rows(
        pd.DataFrame({f"auc_pooled_column_{i}": [0.123456 * i, 0.5] for i in range(17)})
    )
    page = render_macros(
        "<html><head><style>{{ css }}</style></head><body><main>"
        "<p>Model comparison</p>{{ table(wide, 'comparison') }}</main></body></html>",
        css=Markup((TEMPLATE_DIR / "report.css").read_text()),
        wide=wide,
    )
    path.write_text(page, encoding="utf-8")


def test_the_table_macro_wraps_every_table_in_a_box_that_scrolls_sideways(tmp_path):
    wide_table_page(tmp_path / "wide.html")
    page = (tmp_path / "wide.html").read_text()
    assert '<div class="table-wrap"><table id="comparison" class="data">' in page
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", page)


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")
def test_a_wide_table_scrolls_inside_the_page_column(tmp_path):
    """At 900 px the table is wider than the column: it scrolls inside its box, and the page itself does
    not run past its right edge."""
    wide_table_page(tmp_path / "wide.html")
    measure = """(() => { const box = document.querySelector('.table-wrap');
      return {page: document.documentElement.scrollWidth, window: document.documentElement.clientWidth,
              table: document.getElementById('comparison').scrollWidth, box: box.clientWidth}; })()"""
    shown = open_page((tmp_path / "wide.html").as_uri(), {"wide": measure}, width=900).evaluations["wide"]
    assert shown["table"] > shown["box"]  # wider than the column
    assert shown["page"] <= shown["window"]  # yet nothing beyond the page's right edge


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")
def test_a_padj_below_the_smallest_float_reads_as_a_bound_and_sorts_first(tmp_path):
    genes = pd.DataFrame({"gene_symbol": ["IL1B", "TNF", "GZMB", "MX1"], "padj": [0.01, 0.0, np.nan, 2e-50]})
    shown = report_text.readable_fdrs(genes, ["padj"])
    assert shown["padj"].tolist() == ["0.01", "< 1e-300", "NA", "2e-50"]
    page = render_macros(
        "<html><body>{{ table(genes, 'genes', sortable=True) }}<script>{{ js }}</script></body></html>",
        genes=report_text.table_rows(shown),
        js=Markup((TEMPLATE_DIR / "report.js").read_text()),
    )
    (tmp_path / "genes.html").write_text(page, encoding="utf-8")
    click = """(() => { document.querySelectorAll('#genes th')[1].click();
      return Array.from(document.querySelectorAll('#genes tbody tr')).map(r => r.cells[0].textContent); })()"""
    order = open_page((tmp_path / "genes.html").as_uri(), {"order": click}).evaluations["order"]
    assert order == ["TNF", "MX1", "IL1B", "GZMB"]


def test_snakemake_native_report(toy_run):
    run_snakemake(toy_run, "--report", "report.zip")
    with zipfile.ZipFile(toy_run / "report.zip") as archive:
        names = archive.namelist()
        main_page = archive.read("report/report.html").decode()
    expected = [
        "report.html",
        "deseq2_results.tsv",
        "volcano.png",
        "ma.png",
        "pca.png",
        "qc_metrics.tsv",
        "covariate_balance.tsv",
        "sex_check.png",
    ]
    for name in expected:
        assert any(n.startswith("report/data/raw/") and n.endswith("/" + name) for n in names), name
    assert "Differential expression" in main_page and "Quality control" in main_page


def test_report_of_two_contrasts(toy_run, tmp_path):
    """A second contrast (site B vs A) on the toy run's results. QC tables the covariate balance of
    every compared variable and genes are filtered per contrast, so qc and the filter run again
    (forced: the copied results have no Snakemake metadata to show that their params changed) and
    with them what reads their output."""
    workdir = copy_workflow(tmp_path / "two")
    shutil.copytree(toy_run / "results", workdir / "results")
    config_path = workdir / "config/config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["contrasts"]["siteB_vs_siteA"] = {"variable": "site", "test": "siteB", "reference": "siteA"}
    # the report's shape is under test here, not the numbers: the fewest permutations and repeats
    config["calibration"].update(permutations=10, block_size=10)
    config["predict"].update(repeats=1, learners=["l2"], permutations=10)
    # the toy has one man at site B: the site contrast's male-only model would be (rightly) refused
    for model in ("female_only", "male_only"):
        config["sensitivity"][model]["enabled"] = False
    # the mRNA layer alone, without the cell scores and the cell-adjusted model (each with its own
    # figures per contrast): the toy report's tests check those sections
    config["assays"]["mirna"]["enabled"] = False
    config["genotypes"]["file"] = ""
    config["cells"]["enabled"] = False
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    # Snakemake does not look behind an up-to-date target for inputs it could still make.
    (workdir / "results/report/report.html").unlink()
    run_snakemake(
        workdir, "results/report/report.html", "--rerun-triggers", "mtime", "--forcerun", "qc", "filter"
    )
    text, parser = parse_report(workdir / "results/report/report.html")
    for contrast in (CONTRAST, "siteB_vs_siteA"):
        contrast_checks(workdir, parser, contrast, config)
    assert "siteB vs siteA, adjusted for sex, age and group" in text
    assert "TRD vs responder, adjusted for site, sex and age" in text
    # each compared variable its own cohort and covariate-balance table, with its own levels only
    samples = pd.read_csv(workdir / "config/samples.tsv", sep="\t")
    by_site = as_frame(parser.tables["cohort-site"]).set_index("site")
    assert by_site["n"].drop("total").astype(int).to_dict() == samples["site"].value_counts().to_dict()
    site_a_trd = ((samples["site"] == "siteA") & (samples["group"] == "TRD")).sum()
    assert int(by_site.loc["siteA", "group: TRD"]) == site_a_trd
    site_balance = as_frame(parser.tables["covariate-balance-site"])
    assert {"siteA", "siteB", "siteC"} <= set(site_balance.columns) and "TRD" not in site_balance.columns
    assert "siteA" not in as_frame(parser.tables["covariate-balance-group"]).columns
    # a key-findings block per contrast; the site contrast's prediction is not called a TRD prediction
    findings = set(re.findall(r'<div class="finding" id="([^"]+)"', text))
    assert {f"key-{CONTRAST}", "key-siteB_vs_siteA"} <= findings
    assert "<h2>Prediction of siteB vs siteA: siteB_vs_siteA</h2>" in text and "TRD prediction" not in text
    # per contrast: volcano, MA, heat map, 2 per-gene count figures, 2 enrichment dot plots,
    # 2 calibration figures, ROC, reliability and layer-gain figures; and the running-score plots
    running_scores = len(list((workdir / "results/enrichment").glob("*/running_scores/*.png")))
    assert len(parser.images) == (
        len(list((workdir / "results/qc").glob("*.png"))) + 2 * (3 + 2 + 2 + 2 + 3) + running_scores
    )


# the methods' settings of a small run that took no optional step
METHODS_SETTINGS = {
    "pipeline_version": "abc",
    "versions": {
        "python": "3.11",
        "snakemake": "9.1",
        "pydeseq2": "0.5",
        "gseapy": "1.3.1",
        "scikit-learn": "1.5",
    },
    "design": "~ group",
    "filter": {"min_count": 10, "min_total_count": 15, "large_n": 10, "min_prop": 0.7},
    "de": {"alpha": 0.05, "vst_nsub": 0},
    "n_samples_in": 8,
    "qc_summary": "",
    "n_genes_in": 100,
    "n_genes_kept": 90,
    "coding": "group (categorical, reference b)",
    "contrasts": "a vs b",
    "provenance": [],
    "enrichment": None,
    "camera": False,
    "calibration": None,
    "prediction": None,
    "robustness": None,
}


def enrichment_paragraph(enrichment: dict, camera: bool = False) -> str:
    """The methods' enrichment paragraph of a run with these enrichment settings."""
    return methods_paragraphs({**METHODS_SETTINGS, "enrichment": enrichment, "camera": camera})[
        "Pathway enrichment"
    ]


def test_enrichment_methods_states_the_settings():
    text = enrichment_paragraph(ENRICHMENT_SETTINGS)
    for fragment in [
        "(GO_BP, curated_TRD)",
        "gseapy 1.3.1",
        "1000 permutations, seed 42",
        "10 to 500 genes",
        "Wald statistic",
        "hypergeometric",
        "annotated in the collection",
        "ranked by padj",
    ]:
        assert fragment in text, fragment
    assert "permutations of the contrast's labels" not in text and "camera" not in text
    calibrated = enrichment_paragraph({**ENRICHMENT_SETTINGS, "label_permutations": 100})
    assert "taken from the 100 permutations of the contrast's labels" in calibrated
    assert "Subramanian et al. 2005" in calibrated and "ranked by the label-permutation FDR" in calibrated


def test_prediction_methods_name_the_learners_folds_and_grouped_contrasts():
    predict = {
        "covariates": ["age", "sex"],
        "learners": ["l2", "hgb"],
        "stacked_learners": ["l2"],
        "repeats": 5,
        "outer_folds": 4,
        "inner_folds": 3,
        "n_genes": 200,
        "bootstrap": 500,
        "permutations": 40,
    }
    grouped = {"name": "a_vs_b", "groups": "subject", "grouping": "Related samples: kept together."}
    settings = methods_section.prediction_settings(predict, 11, [grouped, {"name": "c", "groups": None}])
    base = {**METHODS_SETTINGS, "prediction": settings}
    text = methods_paragraphs(base)["Prediction"]
    assert "(age and sex)" in text
    assert "L2-penalised logistic regression and histogram gradient boosting" in text
    assert "(seed 11)" in text and "scikit-learn 1.5" in text
    assert "5 repeats of 4-fold" in text and "3 inner stratified folds" in text and "the 200 genes" in text
    assert "(500 resamples)" in text and "40 label permutations" in text
    assert (
        "The stacked model (late fusion; with L2-penalised logistic regression) is a logistic regression"
        in text
    )
    # the grouped contrast is named with its sentence; the ungrouped one is not
    assert text.endswith(
        "StratifiedGroupKFold (each group in one fold) and the label permutations kept "
        "the null exchangeable: a_vs_b: Related samples: kept together."
    )
    assert "c:" not in text
    ungrouped = methods_section.prediction_settings(predict, 11, [])
    assert "StratifiedGroupKFold" not in methods_paragraphs({**base, "prediction": ungrouped})["Prediction"]


def test_report_methods_name_camera_its_correlation_and_cut():
    text = enrichment_paragraph({**ENRICHMENT_SETTINGS, "ora_padj": 0.1}, camera=True)
    assert "camera (Wu & Smyth 2012)" in text and "inter.gene.cor = NA" in text
    assert text.endswith("sets called at FDR < 0.1.")


def test_enrichment_section(tmp_path):
    gsea = pd.DataFrame(
        {
            "collection": ["GO_BP", "GO_BP", "curated_TRD"],
            "term": ["GO:1", "GO:2", "TRD_NK_CYTOTOXIC"],
            "name": ["a", "b", "NK"],
            "size": [10, 20, 29],
            "ES": [0.5, -0.4, -0.7],
            "NES": [1.5, -1.2, -2.1],
            "pvalue": [0.2, 0.01, 1e-5],
            "log2err": [0.1, 0.3, 0.5],
            "padj": [0.3, 0.02, 8e-5],
            "leading_edge": ["A;B", "C", "GZMB;PRF1"],
        }
    )
    gsea.to_csv(tmp_path / "gsea.tsv", sep="\t", index=False)
    ora = pd.DataFrame(
        {
            "collection": ["curated_TRD", "curated_TRD"],
            "direction": ["down", "up"],
            "term": ["TRD_NK_CYTOTOXIC", "TRD_INFLAMMATION_INNATE_IMMUNITY"],
            "name": ["NK", "inflammation"],
            "size": [29, 29],
            "overlap": [6, 7],
            "universe": [5000, 5000],
            "n_de": [180, 190],
            "pvalue": [1e-6, 2e-7],
            "padj": [8e-6, 1e-6],
            "odds_ratio": [9.5, 11.25],
            "overlap_genes": ["GZMB;PRF1", "IL1B;TNF"],
        }
    )
    ora.to_csv(tmp_path / "ora.tsv", sep="\t", index=False)
    files = {
        "gsea": tmp_path / "gsea.tsv",
        "ora": tmp_path / "ora.tsv",
        "calibration": tmp_path / "summary.tsv",
    }
    pd.DataFrame({"statistic": ["permutations"], "value": [30]}).to_csv(
        files["calibration"], sep="\t", index=False
    )
    for key in ("gsea_dotplot", "ora_dotplot"):
        files[key] = tmp_path / f"{key}.png"
        Image.new("RGB", (120, 80), "white").save(files[key])
    (tmp_path / "gsea_dotplot.rst").write_text("GSEA of {{ snakemake.config['design'] }}.")
    (tmp_path / "running_scores.rst").write_text("Running score.")
    files["running_scores"] = tmp_path / "running_scores"
    files["running_scores"].mkdir()
    plot = files["running_scores"] / "curated_TRD_down_01_TRD_NK_CYTOTOXIC.png"
    Image.new("RGB", (715, 495), "white").save(plot)
    section = enrichment_section.enrichment_section(
        "TRD vs responder", TRD, files, {"design": "~ group"}, tmp_path
    )
    assert section["anchor"] == "enrichment-TRD-vs-responder"
    # collections sorted by name, each up then down
    dotplots, go_up, go_down, curated, ora_down, ora_up = section["collections"]
    assert [f["caption"] for f in dotplots["figures"]] == ["GSEA of ~ group.", "ora_dotplot"]
    assert curated["title"].startswith("GSEA, curated_TRD, lower in TRD (negative NES)")
    assert numbers(curated["title"]) == ["1"] and "gene-permutation p-value" in curated["title"]
    assert curated["table"]["rows"] == [
        ["TRD_NK_CYTOTOXIC", "NK", "29", "-2.1", "1e-05", "0.5", "8e-05", "GZMB, PRF1", ""]
    ]
    assert [f["caption"] for f in curated["figures"]] == ["TRD_NK_CYTOTOXIC, NK. Running score."]
    assert go_up["title"].startswith("GSEA, GO_BP, higher in TRD (positive NES): top 1 terms")
    assert [row[0] for row in go_up["table"]["rows"]] == ["GO:1"] and go_up["figures"] == []
    assert [row[0] for row in go_down["table"]["rows"]] == ["GO:2"]
    assert ora_down["title"] == "ORA of down-regulated genes, curated_TRD: top 1 terms"
    assert ora_down["table"]["rows"] == [
        ["TRD_NK_CYTOTOXIC", "NK", "29", "6", "9.5", "1e-06", "8e-06", "GZMB, PRF1"]
    ]
    assert ora_up["table"]["rows"][0][0] == "TRD_INFLAMMATION_INNATE_IMMUNITY"


def prediction_files(tmp_path, best_low=0.62):
    rows = []
    for feature_set, auc in (("clinical", 0.6), ("mrna", 0.66), ("combined", 0.71)):
        for learner, shift in (("l2", 0.0), ("hgb", -0.05)):
            rows.append(
                {
                    "feature_set": feature_set,
                    "learner": learner,
                    "n_samples": 48,
                    "auc_mean": auc + shift,
                    "auc_low": auc + shift - 0.1,
                    "auc_high": auc + shift + 0.1,
                    "auc_folds_low": 0.4,
                    "auc_folds_high": 0.9,
                    "auc_pooled": auc - 0.01,
                    "auc_pooled_low": auc - 0.08,
                    "auc_pooled_high": auc + 0.06,
                    "balanced_accuracy": 0.6,
                    "brier": 0.23,
                    "auc_gain_over_clinical": None if feature_set == "clinical" else auc - 0.6,
                    "gain_low": None if feature_set == "clinical" else auc - 0.65,
                    "gain_high": None if feature_set == "clinical" else auc - 0.5,
                    "gain_p": None if feature_set == "clinical" else 0.04,
                    "best": feature_set == "combined" and learner == "l2",
                    "permutation_p": 0.0099 if feature_set == "combined" and learner == "l2" else None,
                }
            )
    comparison = pd.DataFrame(rows)
    comparison.loc[comparison["best"], "auc_low"] = best_low
    comparison.to_csv(tmp_path / "model_comparison.tsv", sep="\t", index=False)
    pd.DataFrame(
        {
            "site": ["siteA"],
            "feature_set": ["combined"],
            "learner": ["l2"],
            "n_test": [20],
            "n_test_group": [9],
            "auc": [0.7],
            "auc_low": [0.5],
            "auc_high": [0.9],
            "brier": [0.22],
        }
    ).to_csv(tmp_path / "site_validation.tsv", sep="\t", index=False)
    pd.DataFrame(
        {
            "gene_id": ["g1", "g2"],
            "gene_symbol": ["IL1B", ""],
            "feature_set": "combined",
            "learner": "l2",
            "in_final_model": [True, False],
            "coefficient": [0.3, None],
            "selection_frequency": [1.0, 0.4],
        }
    ).to_csv(tmp_path / "model_genes.tsv", sep="\t", index=False)
    pd.DataFrame(
        [
            ("mrna", "l2", "clinical", 0.66, 0.6, 0.06, -0.05, 0.16, 0.2),
            ("combined", "l2", "clinical", 0.71, 0.6, 0.11, 0.06, 0.21, 0.04),
        ],
        columns=GAIN_COLUMNS,
    ).to_csv(tmp_path / "layer_gains.tsv", sep="\t", index=False)
    for figure_name in ("roc", "calibration", "layers"):
        Image.new("RGB", (60, 60), "white").save(tmp_path / f"{figure_name}.png")
    return {
        "comparison": tmp_path / "model_comparison.tsv",
        "gains": tmp_path / "layer_gains.tsv",
        "layers": tmp_path / "layers.png",
        "site": tmp_path / "site_validation.tsv",
        "genes": tmp_path / "model_genes.tsv",
        "roc": tmp_path / "roc.png",
        "calibration": tmp_path / "calibration.png",
    }


PREDICT_CONFIG = {"predict": {"permutations": 100}}


def test_prediction_section(tmp_path):
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    section = prediction_section.prediction_section(
        "TRD_vs_responder", contrast, prediction_files(tmp_path), PREDICT_CONFIG, tmp_path
    )
    assert section["heading"] == "Prediction of TRD vs responder"
    assert section["findings"] == [
        "Best model: combined features, l2: out-of-fold AUC 0.71 (95% CI 0.62-0.81), label-permutation p = 0.0099.",
        "The molecular data add to the clinical data: combined minus clinical AUC +0.11 (95% CI +0.06 to "
        "+0.21, corrected resampled t p = 0.04; l2).",
        "Over the clinical model (l2), mrna (+0.06, -0.05 to +0.16, p = 0.2) adds nothing detectable.",
    ]
    assert section["comparison"]["columns"][:3] == ["feature_set", "learner", "auc_mean"]
    assert len(section["comparison"]["rows"]) == 6
    assert section["sites"]["rows"][0][:2] == ["siteA", "combined"]
    assert section["genes"]["rows"][0][:2] == ["g1", "IL1B"]
    assert section["genes_model"] == "combined / l2"


def test_prediction_section_says_plainly_when_the_best_interval_includes_one_half(tmp_path):
    contrast = {"variable": "diagnosis", "test": "MDD", "reference": "control"}
    section = prediction_section.prediction_section(
        "MDD_vs_control", contrast, prediction_files(tmp_path, best_low=0.48), PREDICT_CONFIG, tmp_path
    )
    assert section["heading"] == "Prediction of MDD vs control"
    assert section["findings"][1] == (
        "The 95% interval of the best model's AUC includes 0.5: these data do "
        "not show that MDD can be predicted better than by chance."
    )


def key_finding_tables(tmp_path, best_low=0.62, cells=True, prediction=True) -> dict:
    summary = pd.DataFrame(
        {
            "statistic": [
                "permutations",
                "strata",
                "observed_degs",
                "null_degs_median",
                "null_degs_p95",
                "frac_permutations_with_degs",
                "pvalue_observed_degs",
                "empirical_fdr",
                "qvalue_perm_calls",
            ],
            "value": ["30", "site x sex", "3", "0", "1", "0.2", "0.0323", "0.08", "3"],
        }
    )
    gsea = pd.DataFrame(
        {
            "collection": ["GO_BP", "GO_BP", "GO_BP", "GO_BP", "curated", "curated", "GO_BP"],
            "term": ["GO:1", "GO:2", "GO:3", "GO:4", "SET_UP", "SET_DOWN", "GO:5"],
            "name": [
                "antigen presentation",
                "antigen presentation II",
                "interferon",
                "cilium",
                "inflammation",
                "NK cells",
                "spindle",
            ],
            "NES_perm": [-2.1, -2.0, -1.9, 1.6, 1.8, -1.7, 1.2],
            "pvalue_perm": [0.01, 0.01, 0.02, 0.05, 0.01, 0.03, 0.2],
            "fdr_perm": [0.01, 0.02, 0.03, 0.2, 0.02, 0.04, 0.6],
            "NES": [-2.5, -2.4, -2.0, 1.5, 2.0, -1.8, 1.1],
            "pvalue": [1e-6, 1e-6, 1e-5, 0.01, 1e-4, 1e-3, 0.3],
            "padj": [1e-5, 1e-5, 1e-4, 0.05, 1e-3, 0.01, 0.6],
            "leading_edge": [
                "HLA-A;HLA-B;B2M",
                "HLA-A;HLA-B;B2M;CD74",
                "IFI6;MX1",
                "DNAH5",
                "IL1B;TNF",
                "GZMB;PRF1",
                "KIF11",
            ],
        }
    )
    adjusted = gsea[["collection", "term", "name"]].assign(
        NES=[-1.9, -1.8, 0.9, 1.4, 1.7, -1.2, 1.0], padj=[0.01, 0.02, 0.5, 0.3, 0.04, 0.2, 0.9]
    )
    concordance = pd.DataFrame(
        {
            "contrast": [CONTRAST],
            "model": ["cell_adjusted"],
            "design": ["~ x"],
            "n_samples": [48],
            "degs_primary": [3],
            "degs_model": [1],
            "overlap": [1],
            "lost": [2],
            "gained": [0],
            "group_r2_cells": [0.583],
            "n_cell_covariates": [5],
            "residual_df_primary": [28],
            "residual_df_model": [23],
        }
    )
    comparison = (
        pd.read_csv(prediction_files(tmp_path, best_low)["comparison"], sep="\t") if prediction else None
    )
    return {
        "de": DE,
        "calibration": summary,
        "gsea": gsea,
        "adjusted_gsea": adjusted if cells else None,
        "concordance": concordance if cells else None,
        "comparison": comparison,
    }


KEY_CONFIG = {
    "de": {"alpha": 0.05},
    "enrichment": {"ora_padj": 0.05, "similar_terms_jaccard": 0.5},
    **PREDICT_CONFIG,
}
TRD = {"variable": "group", "test": "TRD", "reference": "responder"}


def test_key_findings_from_the_run_tables(tmp_path):
    tables = key_finding_tables(tmp_path)
    findings = key_findings_section.key_findings("TRD_vs_responder", TRD, tables, KEY_CONFIG)
    significant = DE["padj"] < 0.05
    assert (
        findings["degs"]
        == {
            "total": int(significant.sum()),
            "up": int((significant & (DE["log2FoldChange"] > 0)).sum()),
            "down": int((significant & (DE["log2FoldChange"] < 0)).sum()),
        }
        == {"total": 3, "up": 2, "down": 1}
    )
    assert findings["verdict"].startswith(
        "The 3 genes called would not appear by chance: shuffled labels gave "
        "a median of 0 and at most 1 calls in 95% of 30 permutations"
    )
    # up: SET_UP (FDR 0.02), GO:4 (0.2), GO:5 (0.6), over both collections
    up = findings["pathways"]["up"]
    assert [(t["term"], t["fdr"], t["nes"], t["significant"]) for t in up] == [
        ("SET_UP", "0.02", "1.8", True),
        ("GO:4", "0.2", "1.6", False),
        ("GO:5", "0.6", "1.2", False),
    ]
    # down: GO:1, then GO:2 folded under it (leading edges J = 3/4), GO:3, SET_DOWN
    down = findings["pathways"]["down"]
    assert [(t["term"], t["n_similar"]) for t in down] == [("GO:1", 1), ("GO:3", 0), ("SET_DOWN", 0)]
    # the cell-adjusted GSEA has no label permutations: its statistic is named
    assert [t["survival"] for t in down] == [
        "survives cell adjustment (gene-permutation padj 0.01)",
        "reverses direction after cell adjustment (NES 0.9)",
        "does not survive cell adjustment (gene-permutation padj 0.2)",
    ]
    assert up[0]["survival"] == "survives cell adjustment (gene-permutation padj 0.04)"
    # GO:4 was not called: nothing to survive, its statistic after adjustment is given
    assert up[1]["survival"] == "gene-permutation padj 0.3 after cell adjustment"
    assert findings["pathway_verdict"] == (
        "5 sets changed more than random splits of these samples change them (label-permutation "
        "FDR < 0.05; gene permutation: 5 at padj < 0.05); they lead the lists below."
    )
    assert not findings["exploratory"]
    assert findings["cell_adjusted"] == (
        "With cell composition in the model (5 cell covariates, explaining R² 0.58 of the group; 23 "
        "residual degrees of freedom, the primary model 28), 1 genes are called instead of 3 (1 of them "
        "shared)."
    )
    assert findings["prediction"] == [
        "Best model: combined features, l2: out-of-fold AUC 0.71 (95% CI 0.62-0.81), "
        "label-permutation p = 0.0099."
    ]
    assert findings["fdr_label"] == "label-permutation FDR"


def test_key_findings_say_plainly_what_was_not_shown_or_not_run(tmp_path):
    findings = key_findings_section.key_findings(
        CONTRAST, TRD, key_finding_tables(tmp_path, best_low=0.45), KEY_CONFIG
    )
    assert findings["prediction"][1] == (
        "The 95% interval of the best model's AUC includes 0.5: these data do "
        "not show that TRD can be predicted better than by chance."
    )
    off = key_findings_section.key_findings(
        CONTRAST, TRD, key_finding_tables(tmp_path, cells=False, prediction=False), KEY_CONFIG
    )
    assert off["prediction"] == ["Not run: the config sets predict.enabled to false."]
    # switched off by predict.enabled: auto, the report gives ingest's reason, not the config's
    note = (
        "prediction switched off (predict.enabled: auto): config/samples.tsv: none of the columns of "
        "config predict.covariates (sex, age) is in the sample sheet; set predict.enabled to true to "
        "make this an error"
    )
    tables = key_finding_tables(tmp_path, cells=False, prediction=False)
    auto_off = key_findings_section.key_findings(
        CONTRAST, TRD, tables, KEY_CONFIG, ["sensitivity model 'x' switched off", note]
    )
    assert auto_off["prediction"] == [f"Not run: {note}."]
    assert off["pathways"]["up"][0]["survival"] == "no cell-adjusted model in this run"
    assert off["cell_adjusted"].startswith("No cell-adjusted model in this run")
    missing = key_finding_tables(tmp_path)
    missing["adjusted_gsea"] = missing["adjusted_gsea"][missing["adjusted_gsea"]["term"] != "SET_UP"]
    findings = key_findings_section.key_findings("TRD_vs_responder", TRD, missing, KEY_CONFIG)
    assert findings["pathways"]["up"][0]["survival"] == "not tested after cell adjustment"


def test_running_score_figures_of_the_terms_shown(tmp_path):
    shown = pd.DataFrame({"term": ["GO:1", "GO:7", "GO:3"], "name": ["a", "b", "c"]})
    for rank, term in ((1, "GO:1"), (3, "GO:3"), (2, "GO:9")):  # GO:9: a plot of another selection
        name = f"GO_BP_down_{rank:02d}_{term.replace(':', '_')}.png"
        Image.new("RGB", (715, 495), "white").save(tmp_path / name)
    figures = enrichment_section.running_score_figures(tmp_path, "GO_BP", "down", shown, "Running score.")
    assert [f["caption"] for f in figures] == ["GO:1, a. Running score.", "GO:3, c. Running score."]
    assert enrichment_section.running_score_figures(tmp_path, "GO_BP", "up", shown, "") == []


def test_pathway_verdict_when_only_gene_permutation_calls_sets():
    """The whole-blood case: label permutation and camera call nothing, gene permutation hundreds."""
    reason = (
        " If genes were independent, 597 sets would pass, but genes of one pathway rise and fall "
        "together between people, and with shuffled labels that assumption calls hundreds of sets on "
        "real data."
    )
    assert key_findings_section.pathway_verdict(0, 597, 0.05, n_camera=0) == (
        "No pathway changed more than random splits of these samples change it (0 sets at "
        "label-permutation FDR < 0.05; camera agrees)." + reason
    )
    # without camera the sentence leaves it out
    assert key_findings_section.pathway_verdict(0, 597, 0.05) == (
        "No pathway changed more than random splits of these samples change it (0 sets at "
        "label-permutation FDR < 0.05)." + reason
    )
    assert key_findings_section.pathway_verdict(0, 0, 0.05, n_camera=0).endswith(
        "Gene permutation, which treats genes as independent, calls none either."
    )
    assert key_findings_section.pathway_verdict(0, 40, 0.05, n_camera=3).startswith(
        "No pathway passes label-permutation FDR < 0.05, but camera calls 3 sets at FDR < 0.05"
    )
    assert key_findings_section.pathway_verdict(1, 40, 0.1, n_camera=2) == (
        "1 set changed more than random splits of these samples change them (label-permutation FDR < 0.1; "
        "camera: 2 at FDR < 0.1; gene permutation: 40 at padj < 0.1); they lead the lists below."
    )


def correlated_null_gsea(n_sets: int = 40, n_gene_called: int = 25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GSEA and camera tables of a cohort where co-expressed sets move together between people: gene
    permutation calls n_gene_called sets, label permutation and camera none."""
    rng = np.random.default_rng(7)
    nes = rng.choice([-1, 1], n_sets) * rng.uniform(1.2, 2.4, n_sets)
    padj = np.where(np.arange(n_sets) < n_gene_called, rng.uniform(1e-8, 0.04, n_sets), 0.5)
    gsea = pd.DataFrame(
        {
            "collection": "GO_BP",
            "term": [f"GO:{i:03d}" for i in range(n_sets)],
            "name": [f"process {i}" for i in range(n_sets)],
            "NES_perm": nes * 0.6,
            "pvalue_perm": rng.uniform(0.02, 0.9, n_sets),
            "fdr_perm": rng.uniform(0.23, 0.71, n_sets),
            "NES": nes,
            "pvalue": padj / 10,
            "padj": padj,
            "leading_edge": [f"G{i}a;G{i}b" for i in range(n_sets)],
        }
    )
    camera = gsea[["collection", "term"]].assign(
        n_genes=30, correlation=0.08, direction="Up", pvalue=0.2, fdr=rng.uniform(0.3, 1.0, n_sets)
    )
    return gsea, camera


def test_key_findings_lead_with_the_correlation_aware_answer_when_only_gene_permutation_calls(tmp_path):
    tables = key_finding_tables(tmp_path)
    tables["gsea"], tables["camera"] = correlated_null_gsea()
    tables["adjusted_gsea"] = tables["gsea"][["collection", "term", "name"]].assign(
        NES=tables["gsea"]["NES"], padj=1e-11
    )
    findings = key_findings_section.key_findings(CONTRAST, TRD, tables, KEY_CONFIG)
    assert findings["pathway_verdict"] == (
        "No pathway changed more than random splits of these samples change it (0 sets at "
        "label-permutation FDR < 0.05; camera agrees). If genes were independent, 25 sets would pass, "
        "but genes of one pathway rise and fall together between people, and with shuffled labels that "
        "assumption calls hundreds of sets on real data."
    )
    assert findings["exploratory"]
    # the largest effects are still listed, by the label-permutation FDR, none called
    shown = [t for direction in ("up", "down") for t in findings["pathways"][direction]]
    assert len(shown) == 6 and not any(t["significant"] for t in shown)
    gsea = tables["gsea"].set_index("term")
    assert [t["fdr"] for t in shown] == [
        report_text.format_value(gsea.loc[t["term"], "fdr_perm"]) for t in shown
    ]
    # a set not called has nothing to survive: no "survives cell adjustment" on a gene-permutation padj
    assert {t["survival"] for t in shown} == {"gene-permutation padj 1e-11 after cell adjustment"}
    without_camera = key_findings_section.key_findings(CONTRAST, TRD, {**tables, "camera": None}, KEY_CONFIG)
    assert "camera" not in without_camera["pathway_verdict"]


def test_immune_pathway_survival_calls_each_model_by_its_own_statistic():
    """Primary calls by label-permutation FDR (not fgsea's padj, which calls GO:3 too); the cell-adjusted
    model, not label-permuted, by its gene-permutation padj, and the sentence says so."""
    primary = pd.DataFrame(
        {
            "collection": "GO_BP",
            "term": ["GO:1", "GO:2", "GO:3", "GO:4"],
            "name": ["interferon response", "T cell activation", "antigen presentation", "cilium"],
            "NES_perm": [2.0, -1.8, 1.5, 2.2],
            "fdr_perm": [0.0, 0.03, 0.4, 0.001],
            "NES": [2.4, -2.0, 1.9, 2.5],
            "padj": [1e-9, 1e-4, 1e-3, 1e-6],
        }
    )
    adjusted = primary[["collection", "term", "name"]].assign(
        NES=[1.7, 1.1, 1.2, 2.0], padj=[1.7e-11, 0.01, 0.02, 0.001], fdr_perm=np.nan
    )
    shown = robustness_section.immune_pathway_survival(CONTRAST, primary, adjusted, 0.05, permutations=30)
    assert (shown["n"], shown["n_survive"]) == (2, 1)  # GO:2 reverses direction; GO:4 is not immune
    table = as_frame([shown["table"]["columns"], *shown["table"]["rows"]])
    assert table.columns.tolist() == [
        "collection",
        "term",
        "name",
        "NES_perm_primary",
        "fdr_perm_primary",
        "NES_cell_adjusted",
        "padj_cell_adjusted",
        "survives",
    ]
    # an FDR of 0 from 30 label permutations is shown as below 1/30, not as 0
    assert table[["term", "fdr_perm_primary", "padj_cell_adjusted", "survives"]].values.tolist() == [
        ["GO:1", "< 0.033 (1/30)", "1.7e-11", "yes"],
        ["GO:2", "0.03", "0.01", "no"],
    ]
    # each model called by its own statistic, named
    sentence = shown["sentence"]
    assert numbers(sentence) == ["1", "2", "0.05", "0.05"]
    assert sentence.index("label-permutation FDR") < sentence.index("gene-permutation padj")
    assert "not label-permuted" in sentence


def test_displayed_tables_show_no_fdr_of_0_and_say_when_a_permutation_p_is_at_its_floor(tmp_path):
    # calibration, 30 permutations: no shuffled analysis called as many genes, none at the calls' threshold
    numeric = pd.Series(
        {
            "permutations": 30,
            "observed_degs": 369,
            "null_degs_mean": 0.4,
            "null_degs_median": 0.0,
            "null_degs_p95": 1.0,
            "frac_permutations_with_degs": 0.2,
            "pvalue_observed_degs": 1 / 31,
            "smallest_pvalue": 1 / 31,
            "empirical_fdr": 0.0,
            "pi0": 0.9,
            "observed_lambda": 1.4,
            "null_lambda_median": 1.0,
            "qvalue_perm_calls": 352,
        }
    )
    shown = calibration_section.calibration_table(numeric).set_index("statistic")["value"]
    assert (
        shown["permutation p-value of the observed count"]
        == "0.0323, the smallest possible with 30 permutations"
    )
    assert shown["empirical FDR of the observed calls (SAM)"] == "< 0.033 (1/30)"
    assert (
        "and fewer than 3% of the observed calls are expected to be false"
        in calibration_section.calibration_verdict(numeric, 0.05)
    )
    # b = 2: not the floor, the plain number
    not_floor = calibration_section.calibration_table(
        numeric.where(numeric.index != "pvalue_observed_degs", 3 / 31)
    )
    assert (
        not_floor.set_index("statistic").loc["permutation p-value of the observed count", "value"] == "0.0968"
    )

    # prediction, 20 permutations: p = 1/21 is the smallest possible
    files = prediction_files(tmp_path)
    comparison = pd.read_csv(files["comparison"], sep="\t")
    comparison.loc[comparison["best"], "permutation_p"] = 1 / 21
    comparison.to_csv(files["comparison"], sep="\t", index=False)
    section = prediction_section.prediction_section(
        CONTRAST, TRD, files, {"predict": {"permutations": 20}}, tmp_path
    )
    assert (
        "label-permutation p = 0.0476, the smallest possible with 20 permutations." in section["findings"][0]
    )
    table = as_frame([section["comparison"]["columns"], *section["comparison"]["rows"]])
    assert table["permutation_p"].tolist() == ["NA"] * 4 + [
        "0.0476, the smallest possible with 20 permutations",
        "NA",
    ]

    # enrichment, 30 permutations: an FDR of 0 is below 1/30, not 0; ORA's p of 1/31 is its floor
    gsea, _ = correlated_null_gsea(n_sets=4, n_gene_called=2)
    gsea = gsea.assign(
        size=20, log2err=0.5, fdr_perm=[0.0, 0.3, 0.0, 0.5], pvalue_perm=[0.0526, 0.2, 0.03, 0.6]
    )
    for terms in top_terms_by_direction(gsea, 5, 0.5).values():
        shown = enrichment_section.gsea_term_table(terms, 30)
        fdrs = dict(zip(shown["term"], shown["fdr_perm"]))
        assert all(fdrs[t] == "< 0.033 (1/30)" for t in ("GO:000", "GO:002") if t in fdrs)
        assert "0" not in set(shown["fdr_perm"]) | set(shown["padj (gene perm.)"])
    ora = pd.DataFrame(
        {
            "collection": "GO_BP",
            "direction": ["up", "up"],
            "term": ["GO:1", "GO:2"],
            "name": ["a", "b"],
            "size": [20, 30],
            "overlap": [6, 2],
            "odds_ratio": [9.5, 1.2],
            "pvalue_perm": [1 / 31, 0.4],
            "fdr_perm": [0.0, 0.7],
            "pvalue": [1e-6, 0.3],
            "padj": [0.0, 0.6],
            "overlap_genes": ["A;B", "C"],
        }
    )
    (shown_ora,) = enrichment_section.top_ora_terms(ora, 5, 30).values()
    assert shown_ora[["pvalue_perm", "fdr_perm", "padj"]].values.tolist() == [
        ["0.0323, the smallest possible with 30 permutations", "< 0.033 (1/30)", "< 1e-300"],
        ["0.4", "0.7", "0.6"],
    ]
    assert enrichment_section.gsea_pvalue_note(30).startswith(
        "pvalue_perm is (b + 1) / (n + 1) over the n of the 30 label permutations whose score has the "
        "set's sign: its smallest possible value is 1/(n + 1), at least 1/31 = 0.0323."
    )


def test_key_findings_head_the_uncalled_sets_as_exploration(tmp_path):
    tables = key_finding_tables(tmp_path)
    called = render_macros(
        "{{ key_finding(k) }}", k=key_findings_section.key_findings(CONTRAST, TRD, tables, KEY_CONFIG)
    )
    headings = re.findall(r"<tr><th>([^<]*)</th>", called)
    assert headings[2:5] == ["Pathways", "Top pathways higher in TRD", "Top pathways lower in TRD"]
    assert called.count("not significant at 0.05") == 2  # GO:4 and GO:5, listed below a called set
    tables["gsea"], tables["camera"] = correlated_null_gsea()
    tables["adjusted_gsea"] = None
    findings = key_findings_section.key_findings(CONTRAST, TRD, tables, KEY_CONFIG)
    uncalled = render_macros("{{ key_finding(k) }}", k=findings)
    assert re.findall(r"<tr><th>([^<]*)</th>", uncalled)[3:5] == [
        "Largest effects higher in TRD, for exploration only",
        "Largest effects lower in TRD, for exploration only",
    ]
    assert "not significant" not in uncalled  # the heading says it once
    verdict = re.search(r'<td data-key="pathway-verdict">(.*?)</td>', uncalled).group(1)
    assert html.unescape(verdict) == findings["pathway_verdict"]
