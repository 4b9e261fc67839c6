"""One self-contained HTML report built from the result tables and figures (no analysis is re-run).

Everything is inline (CSS, JavaScript, figures as base64 PNG), so the file opens from a
USB stick with no network. The page layout is the Jinja2 template beside the captions
in workflow/report/; this script only turns result tables into the template's values.
"""

import base64
import io
import json
import logging
import math
import re
import struct
from datetime import UTC, datetime
from pathlib import Path

import anndata as ad
import jinja2
import pandas as pd
import yaml
from markupsafe import Markup

from trdpipe.calibration.permutation import calibration_strata
from trdpipe.checks.inputs import contrast_samples, prediction_groups_column, repeated_measures_column
from trdpipe.common import format_list, read_sample_table
from trdpipe.enrichment.analysis import running_score_file
from trdpipe.enrichment.terms import gsea_order, lead_fdr, lead_nes, top_terms_by_direction
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.sensitivity import active_models, describe, pathway_survival
from trdpipe.model.tables import count_calls
from trdpipe.predict.models import permutation_scheme
from trdpipe.qc import alarmed_rows, confounding_alarms
from trdpipe.report.figures import (
    gene_count_figure,
    gene_count_values,
    group_levels,
    normalised_counts,
    plotly_library,
    top_gene_heatmap,
    top_tested_genes,
    volcano_figure,
    volcano_html,
    volcano_points,
    volcano_x_column,
)

log = logging.getLogger("trd")

N_TOP_GENES_TABLE = 200
N_HEATMAP_GENES = 40
N_GENE_PLOTS = 12  # top genes drawn one by one with their normalised counts by group
N_MODEL_GENES = 20
N_TOP_PATHWAYS = 15  # immune gene sets shown in the robustness section
N_KEY_PATHWAYS = 3  # pathways per direction in the key findings
# A figure at least this much wider than tall (three-panel PCA, bar charts), or this wide in pixels
# (dot plots: two would not fit side by side), gets a row of its own.
WIDE_ASPECT = 1.5
WIDE_PIXELS = 900
Z_95 = 1.959964  # two-sided 95% normal quantile, for log2FC +- z * lfcSE

REFERENCES = [
    "Love MI, Huber W, Anders S (2014) Moderated estimation of fold change and dispersion for "
    "RNA-seq data with DESeq2. Genome Biology 15:550. doi:10.1186/s13059-014-0550-8",
    "Muzellec B, Teleńczuk M, Cabeli V, Andreux M (2023) PyDESeq2: a python package for bulk "
    "RNA-seq differential expression analysis. Bioinformatics 39:btad547. "
    "doi:10.1093/bioinformatics/btad547",
    "Chen Y, Lun ATL, Smyth GK (2016) From reads to genes to pathways: differential expression "
    "analysis of RNA-Seq experiments using Rsubread and the edgeR quasi-likelihood pipeline. "
    "F1000Research 5:1438 (filterByExpr)",
    "Mölder F, Jablonski KP, Letcher B, et al. (2021) Sustainable data analysis with Snakemake. "
    "F1000Research 10:33. doi:10.12688/f1000research.29032.2",
    "Fang Z, Liu X, Peltz G (2023) GSEApy: a comprehensive package for performing gene set "
    "enrichment analysis in Python. Bioinformatics 39:btac757. doi:10.1093/bioinformatics/btac757",
    "Korotkevich G, Sukhov V, Budin N, et al. (2021) Fast gene set enrichment analysis. "
    "bioRxiv 060012. doi:10.1101/060012",
    "Subramanian A, Tamayo P, Mootha VK, et al. (2005) Gene set enrichment analysis: a "
    "knowledge-based approach for interpreting genome-wide expression profiles. PNAS "
    "102:15545-15550. doi:10.1073/pnas.0506580102",
    "The Gene Ontology Consortium, Aleksander SA, Balhoff J, et al. (2023) The Gene Ontology "
    "knowledgebase in 2023. Genetics 224:iyad031 (GO is CC BY 4.0)",
    "Pedregosa F, Varoquaux G, Gramfort A, et al. (2011) Scikit-learn: machine learning in "
    "Python. Journal of Machine Learning Research 12:2825-2830",
    "Sirés A, Domínguez-Barragán J, Lorenzon N, et al. (2025) Blood transcriptomic analysis reveals a "
    "distinct molecular subtype of treatment resistant depression compared to non-treatment resistant "
    "depression. Brain, Behavior, and Immunity. doi:10.1016/j.bbi.2025.106103",
    "Tusher VG, Tibshirani R, Chu G (2001) Significance analysis of microarrays applied to the ionizing "
    "radiation response. PNAS 98:5116-5121. doi:10.1073/pnas.091062498",
    "Storey JD, Tibshirani R (2003) Statistical significance for genomewide studies. PNAS 100:9440-9445. "
    "doi:10.1073/pnas.1530509100",
    "Li Y, Ge X, Peng F, Li W, Li JJ (2022) Exaggerated false positives by popular differential expression "
    "methods when analyzing human population samples. Genome Biology 23:79. doi:10.1186/s13059-022-02648-4",
    "Wu D, Smyth GK (2012) Camera: a competitive gene set test accounting for inter-gene correlation. "
    "Nucleic Acids Research 40:e133. doi:10.1093/nar/gks461",
    "Smyth GK (2004) Linear models and empirical Bayes methods for assessing differential expression in "
    "microarray experiments. Statistical Applications in Genetics and Molecular Biology 3:3. "
    "doi:10.2202/1544-6115.1027",
]


# ---------------------------------------------------------------- formatting


def format_value(value) -> str:
    """Numbers as people read them in a table: 3 significant digits, NA for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def fdr_text(value, permutations: int | None = None) -> str:
    """An FDR as people read it, never 0. An FDR of 0 from K permutations means that no permuted
    result reached the observed one, which bounds it by 1/K: it reads '< 1/K'. An analytic one of 0
    (a p-value beneath the smallest float) reads '< 1e-300'."""
    if pd.isna(value):
        return "NA"
    if value == 0:
        return f"< {1 / permutations:.2g} (1/{permutations})" if permutations else "< 1e-300"
    return format_value(float(value))


def at_permutation_floor(pvalue: float, permutations: int) -> bool:
    """True for (b + 1) / (K + 1) with b = 0: no permutation was as extreme."""
    return math.isclose(pvalue, 1 / (permutations + 1), rel_tol=1e-6)


def permutation_p_text(pvalue, permutations: int) -> str:
    """A permutation p-value, (b + 1) / (K + 1); at its floor it says so, as a smaller one cannot be shown
    with K permutations."""
    if pd.isna(pvalue):
        return "NA"
    text = format_value(float(pvalue))
    if at_permutation_floor(float(pvalue), permutations):
        text += f", the smallest possible with {permutations} permutations"
    return text


def table_rows(df: pd.DataFrame) -> dict:
    """A DataFrame as {'columns': [...], 'rows': [[str, ...], ...]} for the template's table macro."""
    records = df.astype(object).where(df.notna(), None).to_numpy().tolist()
    return {
        "columns": [str(c) for c in df.columns],
        "rows": [[format_value(v) for v in row] for row in records],
    }


def join_words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the report's own figures are never written to disk)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def caption_text(rst: str, config: dict, values: dict | None = None) -> str:
    """A `snakemake --report` caption (workflow/report/<name>.rst) as plain text for the HTML report.

    The captions are Jinja templates over `snakemake.config`; rendering them here keeps
    one caption per figure for both reports. values: what the run's tables tell beyond the config
    (the number of PCs shown), which a caption uses when defined (Snakemake's report has only the config).
    """
    text = jinja2.Template(rst).render(snakemake={"config": config}, **(values or {}))
    return " ".join(text.replace("``", "").split())


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header (IHDR is always the first chunk)."""
    return struct.unpack(">II", data[16:24])


def inline_png(data: bytes, caption: str) -> dict:
    """A figure for the template: shown at its own pixel size (the pipeline's figures are drawn at
    110 dpi, so their text is as large as the page's) or the page's width if smaller; a wide one
    (WIDE_ASPECT, WIDE_PIXELS) gets a row of its own."""
    width, height = png_size(data)
    return {
        "src": png_data_uri(data),
        "caption": caption,
        "width": width,
        "wide": width >= WIDE_ASPECT * height or width >= WIDE_PIXELS,
    }


def figure(path, caption_dir, config: dict, caption: str | None = None, values: dict | None = None) -> dict:
    """A PNG inline, captioned by workflow/report/<file name>.rst (rendered with `values`, caption_text)
    unless a caption is given."""
    if caption is None:
        rst = Path(caption_dir) / f"{Path(path).stem}.rst"
        caption = (
            caption_text(rst.read_text(encoding="utf-8"), config, values) if rst.exists() else Path(path).stem
        )
    return inline_png(Path(path).read_bytes(), caption)


# ---------------------------------------------------------------- run summary


def read_software_versions(path) -> dict:
    """results/software_versions.yml (rule software_versions): {workflow: {...}, packages: {...}}."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def version_label(workflow: dict) -> str:
    """'0.1.0.dev0', with the commit when the workflow was run from a git checkout."""
    commit = workflow.get("commit")
    return workflow["version"] + (f" (commit {commit})" if commit else "")


def plain_config(config) -> dict:
    """The config as plain dicts and lists (Snakemake may hand over its own mapping types)."""
    return json.loads(json.dumps(config, default=str))


def resource_provenance(readme_text: str) -> str:
    """The first bullet of a resource README's '## Source...' section, as plain text."""
    section = re.search(r"^## Source[^\n]*\n(.*?)(?=^## |\Z)", readme_text, flags=re.M | re.S)
    if not section:
        return ""
    bullet = re.search(r"^- (.*?)(?=^- |^\s*$|\Z)", section.group(1), flags=re.M | re.S)
    text = bullet.group(1) if bullet else ""
    return " ".join(text.replace("**", "").replace("`", "").split())


def input_checksums(ingest: dict) -> pd.DataFrame:
    """File and md5 of every input, from cohort.h5ad's uns["ingest"]."""
    return pd.DataFrame({"file": list(ingest["input_files"]), "md5": list(ingest["input_md5"])}).sort_values(
        "file", kind="stable"
    )


def compute_resources(paths: list[str]) -> pd.DataFrame:
    """Wall time, CPU time and peak memory of every job, from Snakemake's benchmark files
    (results/benchmarks/<rule>/<name>.tsv), and their sum (the peak: the largest job's)."""
    rows = []
    for path in map(Path, paths):
        rule, name = path.parent.name, path.stem
        measured = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "job": rule if name == rule else f"{rule} {name}",
                "wall time (s)": measured["s"],
                "CPU time (s)": measured["cpu_time"],
                "peak memory (MB)": measured["max_rss"],
            }
        )
    table = pd.DataFrame(rows, columns=["job", "wall time (s)", "CPU time (s)", "peak memory (MB)"])
    total = {
        "job": "all jobs",
        "wall time (s)": table["wall time (s)"].sum(),
        "CPU time (s)": table["CPU time (s)"].sum(),
        "peak memory (MB)": table["peak memory (MB)"].max(),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


# ---------------------------------------------------------------- cohort and QC


def cohort_table(obs: pd.DataFrame, variable: str, categorical: list[str]) -> pd.DataFrame:
    """Samples per level of the contrast variable, split by every other categorical covariate."""
    table = obs.groupby(variable, observed=True).size().rename("n").to_frame()
    for other in categorical:
        if other != variable:
            counts = pd.crosstab(obs[variable], obs[other])
            counts.columns = [f"{other}: {level}" for level in counts.columns]
            table = table.join(counts)
    table.loc["total"] = table.sum()
    return table.reset_index()


def contrast_variables(contrasts: dict) -> list[str]:
    """The variables the contrasts compare, each once, in config order."""
    return list(dict.fromkeys(c["variable"] for c in contrasts.values()))


def cohort_tables(obs: pd.DataFrame, contrasts: dict, models: dict[str, pd.DataFrame]) -> list[dict]:
    """One cohort table per compared variable, split by the categorical covariates of the first
    contrast's model that compares it."""
    tables = []
    for variable in contrast_variables(contrasts):
        first = next(name for name, c in contrasts.items() if c["variable"] == variable)
        table = cohort_table(obs, variable, categorical_covariates(models[first]))
        tables.append({"variable": variable, "id": anchor_of("cohort", variable), "table": table_rows(table)})
    return tables


def balance_by_variable(balance: pd.DataFrame, contrasts: dict) -> list[dict]:
    """qc's covariate_balance.tsv split into one table per compared variable, with the contrasts
    that compare it, and only its own level columns (the file pads the other variables' levels)."""
    tables = []
    for variable in contrast_variables(contrasts):
        rows = balance[balance["grouping"] == variable].drop(columns="grouping")
        if rows.empty:  # a qc table written before this contrast was added
            continue
        names = [name for name, c in contrasts.items() if c["variable"] == variable]
        rows = rows.dropna(axis=1, how="all")
        # blank, not NA, where a row has nothing to say (the level of a continuous covariate)
        tables.append(
            {
                "variable": variable,
                "contrasts": ", ".join(names),
                "id": anchor_of("covariate-balance", variable),
                "table": table_rows(rows.astype(object).where(rows.notna(), "")),
            }
        )
    return tables


def significant_associations(association: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """PC-covariate associations with p < alpha, in PC order (what the model may need to adjust for)."""
    hits = association[association["pvalue"] < alpha]
    columns = ["pc", "variance_explained", "covariate", "test", "r_squared", "pvalue"]
    return hits[[c for c in columns if c in hits]].reset_index(drop=True)


def flagged_samples(metrics: pd.DataFrame) -> pd.DataFrame:
    """QC rows with a flag or an exclusion, with the reasons."""
    flags = metrics["flags"].fillna("").astype(str)
    excluded = metrics["excluded"].astype(str).str.lower() == "true"
    hit = (flags != "") | excluded
    return pd.DataFrame(
        {
            "sample_id": metrics.index[hit],
            "flags": flags[hit].to_numpy(),
            "excluded": excluded[hit].to_numpy(),
        }
    )


# ---------------------------------------------------------------- differential expression


def categorical_covariates(model: pd.DataFrame) -> list[str]:
    return model.loc[model["type"] == "categorical", "variable"].tolist()


def describe_contrast(contrast: dict, model: pd.DataFrame) -> str:
    """'TRD vs responder, adjusted for site, sex and age' from the contrast and the model table."""
    others = [v for v in model["variable"] if v != contrast["variable"]]
    words = f"{contrast['test']} vs {contrast['reference']}"
    return words + (f", adjusted for {join_words(others)}" if others else ", without covariates")


def describe_coding(model: pd.DataFrame) -> str:
    """How each design variable entered the model, in words."""
    parts = []
    for row in model.itertuples():
        if row.type == "continuous":
            parts.append(
                f"{row.variable} (continuous, centred at {row.centre:.3g} and scaled by "
                f"its SD {row.scale:.3g})"
            )
        else:
            parts.append(f"{row.variable} (categorical, reference {row.reference})")
    return join_words(parts)


def calls_table(table: pd.DataFrame, alpha: float, thresholds: list[float]) -> pd.DataFrame:
    calls = count_calls(table, alpha, thresholds)
    return pd.DataFrame(
        {
            "genes": [
                f"padj < {alpha}" + (f", |log2FC| ≥ {t:g}" if t > 0 else "") for t in calls["min_abs_log2FC"]
            ],
            "up": calls["up"],
            "down": calls["down"],
            "total": calls["up"] + calls["down"],
        }
    )


def top_genes(table: pd.DataFrame, n: int) -> pd.DataFrame:
    columns = [
        c
        for c in [
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
        if c in table
    ]
    return top_tested_genes(table, n)[columns]


def candidate_panel(table: pd.DataFrame, alpha: float, genes: list[str]) -> pd.DataFrame:
    """Estimate, 95% CI (log2FC +- 1.96 lfcSE), padj and call of each candidate gene
    (config report.candidate_genes).

    A gene absent from the table (not in the data, or removed by the low-count filter)
    is listed as 'not measured/filtered'; one with padj NA (independent filtering or a
    Cook's outlier) as 'not tested'.
    """
    by_symbol = table.drop_duplicates("gene_symbol").set_index("gene_symbol")
    rows = []
    for gene in genes:
        if gene not in by_symbol.index:
            rows.append((gene, math.nan, math.nan, math.nan, math.nan, "not measured/filtered"))
            continue
        hit = by_symbol.loc[gene]
        lfc, se, padj = hit["log2FoldChange"], hit["lfcSE"], hit["padj"]
        if pd.isna(padj):
            status = "not tested (padj NA)"
        elif padj < alpha:
            status = "significant, " + ("up" if lfc > 0 else "down")
        else:
            status = "not significant"
        rows.append((gene, lfc, lfc - Z_95 * se, lfc + Z_95 * se, padj, status))
    return pd.DataFrame(rows, columns=["gene", "log2FoldChange", "CI95_low", "CI95_high", "padj", "call"])


# ---------------------------------------------------------------- enrichment


def shorten_genes(genes: pd.Series, limit: int = 12) -> pd.Series:
    """';'-separated gene lists shortened for reading."""
    return (
        genes.fillna("")
        .astype(str)
        .map(lambda text: format_list([g for g in re.split(r"[;,\s]+", text) if g], limit=limit))
    )


# fgsea's columns come from gene permutations (genes treated as independent): labelled so
GENE_PERMUTATION_LABELS = {
    "NES": "NES (gene perm.)",
    "pvalue": "pvalue (gene perm.)",
    "padj": "padj (gene perm.)",
}


def permutation_columns(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The label-permutation columns when the table has them (a run with a calibration)."""
    return columns if lead_fdr(table) == "fdr_perm" else []


def similar_terms_text(names: list[str]) -> str:
    """'' or 'and 3 similar terms: a, b, c' (the near-duplicates folded under a term shown)."""
    if not names:
        return ""
    return f"and {len(names)} similar term{'s' if len(names) > 1 else ''}: {format_list(names, limit=3)}"


def readable_fdrs(table: pd.DataFrame, columns: list[str], permutations: int | None = None) -> pd.DataFrame:
    """These FDR columns as text that never reads 0 (fdr_text); permutations: K of a permutation FDR."""
    present = [c for c in columns if c in table]
    return table.assign(**{c: [fdr_text(v, permutations) for v in table[c]] for c in present})


def gsea_term_table(best: pd.DataFrame, permutations: int | None) -> pd.DataFrame:
    """Terms shown (gsea_terms.top_terms_by_direction: by the label-permutation FDR when computed,
    near-duplicates folded) for reading: the permutation NES, p and FDR first, then fgsea's
    gene-permutation ones (with the log2 error of p, so that a reader can weigh a borderline padj),
    the leading edge shortened and the folded terms. permutations: K of the label permutations."""
    leading = permutation_columns(best, ["NES_perm", "pvalue_perm", "fdr_perm"])
    table = (
        best[["term", "name", "size", *leading, "NES", "pvalue", "log2err", "padj"]]
        .assign(
            leading_edge=shorten_genes(best["leading_edge"]).to_numpy(),
            similar_terms=best["similar_terms"].map(similar_terms_text).to_numpy(),
        )
        .rename(columns=GENE_PERMUTATION_LABELS)
    )
    return readable_fdrs(readable_fdrs(table, ["fdr_perm"], permutations), ["padj (gene perm.)"])


def gsea_pvalue_note(permutations: int) -> str:
    """What bounds a set's label-permutation p-value: it is taken against the permuted scores of its own
    sign only, so its floor differs between sets and cannot be read off the table."""
    return (
        f"pvalue_perm is (b + 1) / (n + 1) over the n of the {permutations} label permutations whose "
        "score has the set's sign: its smallest possible value is 1/(n + 1), at least "
        f"1/{permutations + 1} = {format_value(1 / (permutations + 1))}. fdr_perm pools the permuted "
        f"scores of every set; where none reached a set's it reads < 1/{permutations}."
    )


def top_ora_terms(ora: pd.DataFrame, n: int, permutations: int | None) -> dict[tuple[str, str], pd.DataFrame]:
    """Per collection and direction (up, down), the n most over-represented terms, by
    label-permutation FDR when computed, then hypergeometric p-value; p-values of K label permutations
    at their floor say so, and no FDR reads 0."""
    leading = permutation_columns(ora, ["pvalue_perm", "fdr_perm"])
    order = [lead_fdr(ora), "pvalue", "term"]
    out = {}
    for (collection, direction), terms in ora.groupby(["collection", "direction"], sort=True):
        best = terms.sort_values(order, kind="mergesort").head(n)
        table = best[["term", "name", "size", "overlap", "odds_ratio", *leading, "pvalue", "padj"]].assign(
            overlap_genes=shorten_genes(best["overlap_genes"]).to_numpy()
        )
        if leading:
            table["pvalue_perm"] = [permutation_p_text(v, permutations) for v in table["pvalue_perm"]]
        out[(collection, direction)] = readable_fdrs(
            readable_fdrs(table, ["fdr_perm"], permutations), ["padj"]
        )
    return out


def pathway_findings(gsea: pd.DataFrame, cut: float) -> str:
    """One sentence per contrast: sets called per collection by the FDR the report leads with,
    beside what fgsea's gene-permutation padj calls."""
    fdr = lead_fdr(gsea)
    parts = []
    for collection, terms in gsea.groupby("collection", sort=True):
        n_gene_perm = int((terms["padj"] < cut).sum())
        if fdr == "fdr_perm":
            parts.append(
                f"{collection}: {int((terms['fdr_perm'] < cut).sum())} of {len(terms)} sets at "
                f"label-permutation FDR < {cut:g} ({n_gene_perm} at gene-permutation padj < {cut:g})"
            )
        else:
            parts.append(
                f"{collection}: {n_gene_perm} of {len(terms)} sets at gene-permutation padj < {cut:g}"
            )
    verdict = (
        ""
        if fdr == "fdr_perm"
        else (
            " No label-permutation null was computed: gene-permutation p-values treat genes as "
            "independent and over-call co-expressed sets."
        )
    )
    return "GSEA " + "; ".join(parts) + "." + verdict


def anchor_of(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "-", part) for part in parts)


def running_score_figures(
    directory, collection: str, direction: str, terms: pd.DataFrame, caption: str
) -> list[dict]:
    """The running-score plots the enrichment rule drew for these terms (its first
    enrichment.running_score_terms of the same selection), in rank order."""
    figures = []
    for rank, row in enumerate(terms.itertuples(), start=1):
        path = Path(directory) / running_score_file(collection, direction, rank, row.term)
        if path.exists():
            figures.append(inline_png(path.read_bytes(), f"{row.term}, {row.name}. {caption}"))
    return figures


def enrichment_section(name: str, contrast: dict, files: dict, config: dict, caption_dir) -> dict:
    """Dot plots; per collection the top GSEA terms up and down (leading edge, folded near-duplicates,
    running-score plots) and the top ORA terms (overlap)."""
    settings = config.get("enrichment", {})
    n_terms = settings.get("top_terms", 20)
    gsea = pd.read_csv(files["gsea"], sep="\t", keep_default_na=False, na_values=[""])
    ora = pd.read_csv(files["ora"], sep="\t", keep_default_na=False, na_values=[""])
    anchor = anchor_of("enrichment", name)
    permutations = calibration_permutations(files["calibration"])
    by = "label-permutation FDR" if lead_fdr(gsea) == "fdr_perm" else "gene-permutation p-value"
    rst = Path(caption_dir) / "running_scores.rst"
    caption = caption_text(rst.read_text(encoding="utf-8"), config) if rst.exists() else ""
    words = {
        "up": f"higher in {contrast['test']} (positive NES)",
        "down": f"lower in {contrast['test']} (negative NES)",
    }
    shown = top_terms_by_direction(gsea, n_terms, settings.get("similar_terms_jaccard", 0.5))
    blocks = [
        {
            "title": f"GSEA, {collection}, {words[direction]}: top {len(terms)} terms by {by}",
            "id": anchor_of(anchor, collection, direction),
            "table": table_rows(gsea_term_table(terms, permutations)),
            "note": gsea_pvalue_note(permutations) if lead_fdr(gsea) == "fdr_perm" else "",
            "figures": (
                running_score_figures(files["running_scores"], collection, direction, terms, caption)
                if files.get("running_scores")
                else []
            ),
        }
        for (collection, direction), terms in shown.items()
    ]
    blocks += [
        {
            "title": f"ORA of {direction}-regulated genes, {collection}: top {len(terms)} terms",
            "figures": [],
            "id": anchor_of(anchor, "ora", collection, direction),
            "table": table_rows(terms),
            "note": "",
        }
        for (collection, direction), terms in top_ora_terms(ora, n_terms, permutations).items()
    ]
    dotplots = {
        "title": "Dot plots",
        "id": "",
        "table": None,
        "note": "",
        "figures": [figure(files[key], caption_dir, config) for key in ("gsea_dotplot", "ora_dotplot")],
    }
    cut = settings.get("ora_padj", 0.05)
    return {
        "name": name,
        "anchor": anchor,
        "collections": [dotplots, *blocks],
        "findings": pathway_findings(gsea, cut),
    }


# ---------------------------------------------------------------- camera

CAMERA_TABLE_COLUMNS = ["term", "name", "n_genes", "correlation", "direction", "pvalue", "fdr"]


def camera_findings(camera: pd.DataFrame, cut: float) -> str:
    """One sentence: sets at camera FDR < cut per collection, up and down."""
    parts = []
    for collection, sets in camera.groupby("collection", sort=True):
        called = sets[sets["fdr"] < cut]
        parts.append(
            f"{collection}: {len(called)} of {len(sets)} sets at FDR < {cut:g} "
            f"({int((called['direction'] == 'up').sum())} up, {int((called['direction'] == 'down').sum())} down)"
        )
    return "camera, each set's inter-gene correlation estimated from the residuals: " + "; ".join(parts) + "."


def camera_blocks(camera: pd.DataFrame, anchor: str, n: int) -> list[dict]:
    """Per collection, the n sets with the smallest camera p-values."""
    return [
        {
            "title": f"camera, {collection}: top {min(n, len(sets))} sets by p-value "
            "(inter-gene correlation estimated per set)",
            "id": anchor_of(anchor, "camera", collection),
            "note": "",
            "table": table_rows(
                sets.sort_values(["pvalue", "term"], kind="mergesort").head(n)[CAMERA_TABLE_COLUMNS]
            ),
            "figures": [],
        }
        for collection, sets in camera.groupby("collection", sort=True)
    ]


def add_camera(section: dict, camera: pd.DataFrame, settings: dict) -> None:
    """camera's sentence after the section's findings and its tables after the GSEA and ORA ones."""
    section["findings"] += " " + camera_findings(camera, settings.get("ora_padj", 0.05))
    section["collections"] += camera_blocks(camera, section["anchor"], settings.get("top_terms", 20))


def camera_methods(settings: dict) -> str:
    return (
        "Gene sets were also tested with camera (Wu & Smyth 2012), written after R limma's camera() "
        "with inter.gene.cor = NA: a linear model of the blind VST of the contrast's samples and tested "
        "genes with the contrast's design, moderated t statistics (empirical Bayes, Smyth 2004) turned "
        "into z-scores, and each set's mean z compared with the other genes' with its variance inflated "
        "by the set's inter-gene correlation estimated from the residuals (negative estimates taken as 0); "
        f"Benjamini-Hochberg FDR within collection, sets called at FDR < {settings.get('ora_padj', 0.05):g}."
    )


PREDICTION_COLUMNS = [
    "feature_set",
    "learner",
    "auc_mean",
    "auc_low",
    "auc_high",
    "auc_folds_low",
    "auc_folds_high",
    "auc_pooled",
    "auc_pooled_low",
    "auc_pooled_high",
    "balanced_accuracy",
    "brier",
    "auc_gain_over_clinical",
    "gain_low",
    "gain_high",
    "gain_p",
    "permutation_p",
]


def prediction_section(
    name: str, contrast: dict, files: dict, config: dict, caption_dir, obs: pd.DataFrame | None = None
) -> dict:
    """The model comparison, what it says (best model and whether its interval includes 0.5;
    whether expression adds to the clinical data), site-held-out AUCs, figures and genes; with the
    samples' sheet (`obs`), how the folds and permutations treat related samples."""
    comparison = pd.read_csv(files["comparison"], sep="\t")
    sites = pd.read_csv(files["site"], sep="\t")
    genes = pd.read_csv(files["genes"], sep="\t", keep_default_na=False).head(N_MODEL_GENES)
    best = best_model(comparison)
    heading = f"Prediction of {contrast['test']} vs {contrast['reference']}"
    permutations = config["predict"]["permutations"]
    shown = comparison[PREDICTION_COLUMNS].round(3).astype(object)
    # from the unrounded p-value, which tells whether it is the smallest possible
    shown["permutation_p"] = [permutation_p_text(p, permutations) for p in comparison["permutation_p"]]
    return {
        "name": name,
        "anchor": anchor_of("predict", name),
        "heading": heading,
        "findings": prediction_findings(comparison, best, contrast, permutations),
        "comparison": table_rows(shown),
        "sites": table_rows(sites.round(3)) if len(sites) else None,
        "genes": table_rows(genes),
        "genes_model": f"{genes['feature_set'].iloc[0]} / {genes['learner'].iloc[0]}" if len(genes) else "",
        "figures": [figure(files[key], caption_dir, config) for key in ("roc", "calibration")],
        **(
            prediction_grouping(obs, contrast, config)
            if obs is not None
            else {"groups": None, "grouping": ""}
        ),
    }


# how the prediction's label permutations treat a grouping column, by permutation_scheme
PERMUTED_LABELS = {
    "within groups": "within each {column} (the label varies within a {column}: a paired design)",
    "whole groups": "by whole {column}s (every {column} has one label, which all its samples keep)",
}


def prediction_grouping(obs: pd.DataFrame, contrast: dict, config: dict) -> dict:
    """The column whose related samples the folds keep together ('groups', resolved from
    predict.groups as the prediction resolves it), and one sentence on it and on how the label
    permutations treat them ('grouping')."""
    column = prediction_groups_column(obs, config["predict"], config["design"], contrast)
    if column is None:
        return {
            "groups": None,
            "grouping": "Related samples: none declared or found (predict.groups), so the folds split the "
            "samples one by one.",
        }
    compared = contrast_samples(obs, contrast)
    labels = (compared[contrast["variable"]].astype(str) == contrast["test"]).to_numpy().astype(int)
    groups = compared[column].astype(str).to_numpy()
    permuted = PERMUTED_LABELS[permutation_scheme(labels, groups)].format(column=column)
    return {
        "groups": column,
        "grouping": f"Related samples: every outer and inner fold keeps the samples of each {column} "
        f"together ({len(set(groups))} {column}s, predict.groups), so no model is tested on a {column} it "
        f"was trained on; the label permutations permute labels {permuted}.",
    }


def grouping_methods(predictions: list[dict]) -> str:
    """The prediction's grouped contrasts, for the methods paragraph ('' when none is grouped)."""
    grouped = [f"{p['name']}: {p['grouping']}" for p in predictions if p["groups"]]
    if not grouped:
        return ""
    return (
        " Where samples were related, the outer and inner folds were scikit-learn's StratifiedGroupKFold "
        "(each group in one fold) and the label permutations kept the null exchangeable: " + " ".join(grouped)
    )


def best_model_findings(best: pd.Series, test: str, permutations: int) -> list[str]:
    """The best model's AUC with its interval and p-value (of `permutations` label permutations), and a
    plain warning when the interval includes 0.5."""
    permutation = (
        "no label permutations (predict.permutations 0)"
        if pd.isna(best["permutation_p"])
        else f"label-permutation p = {permutation_p_text(best['permutation_p'], permutations)}"
    )
    sentences = [
        f"Best model: {best['feature_set']} features, {best['learner']}: out-of-fold AUC "
        f"{best['auc_mean']:.2f} (95% CI {best['auc_low']:.2f}-{best['auc_high']:.2f}), {permutation}."
    ]
    if best["auc_low"] <= 0.5:
        sentences.append(
            f"The 95% interval of the best model's AUC includes 0.5: these data do not show "
            f"that {test} can be predicted better than by chance."
        )
    return sentences


def best_model(comparison: pd.DataFrame) -> pd.Series:
    return comparison[comparison["best"].astype(str) == "True"].iloc[0]


def prediction_findings(
    comparison: pd.DataFrame, best: pd.Series, contrast: dict, permutations: int
) -> list[str]:
    """Plain sentences: the best model (best_model_findings) and whether expression adds to the
    clinical data (the combined model with the best learner)."""
    sentences = best_model_findings(best, contrast["test"], permutations)
    combined = comparison[comparison["feature_set"] == "combined"]
    row = combined.loc[combined["auc_mean"].idxmax()]
    gain = (
        f"combined minus clinical AUC {row['auc_gain_over_clinical']:+.2f} (95% CI "
        f"{row['gain_low']:+.2f} to {row['gain_high']:+.2f}, corrected resampled t p = {row['gain_p']:.3g}; "
        f"{row['learner']})"
    )
    sentences.append(
        f"Expression adds to the clinical data: {gain}."
        if row["gain_low"] > 0
        else f"Expression does not add detectably to the clinical data: {gain}."
    )
    return sentences


def enrichment_methods(settings: dict, versions: dict, label_permutations: int | None = None) -> str:
    """label_permutations: K of the pathway null (rule pathway_null) that gives the permutation
    p-values."""
    collections = ", ".join(settings["collections"])
    permutation = (
        (
            f" Gene-set p-values and FDRs were then taken from the {label_permutations} permutations of "
            "the contrast's labels within strata (so covariates and the correlation between genes are "
            "kept), genes ranked under the observed and every permuted labelling by the score statistic "
            "of the contrast under the model fitted without it (rank correlation with the Wald "
            "statistic above 0.99): every set's enrichment score on the observed ranking was compared "
            "with its scores on the permuted rankings, NES normalised by the mean of the "
            "set's same-sign scores over the observed and permuted rankings and the FDR taken from the "
            "null |NES| pooled over the collection's sets (phenotype-permutation GSEA after Subramanian "
            "et al. 2005), made a q-value (monotone in |NES|, never below the set's own permutation "
            "p-value); ORA was treated alike, with lists of the observed length from each permuted "
            "ranking. fgsea's gene-permutation padj is reported beside it; it treats "
            "genes as independent and over-calls co-expressed sets."
        )
        if label_permutations
        else ""
    )
    return (
        f"Pathway enrichment was tested per contrast and gene-set collection ({collections}): "
        f"preranked GSEA of the genes ranked by the Wald statistic with gseapy {versions['gseapy']} "
        f"(Fang et al. 2023; multilevel method of fgsea, Korotkevich et al. 2021; "
        f"{settings['permutations']} permutations, seed {settings['seed']}), on gene sets with "
        f"{settings['min_size']} to {settings['max_size']} genes in the data, and over-representation "
        "of the up- and of the down-regulated genes (one-sided hypergeometric test, universe the "
        "tested genes annotated in the collection), each adjusted by the Benjamini-Hochberg method "
        "within collection." + permutation + " The report shows the top terms of positive and of negative "
        "NES separately, ranked by "
        + ("the label-permutation FDR" if label_permutations else "padj")
        + "; a term whose leading edge has a Jaccard index of at least "
        f"{settings.get('similar_terms_jaccard', 0.5):g} with the leading edge of a better-ranked term shown "
        "is folded under it as a similar term."
    )


# ---------------------------------------------------------------- robustness


def calibration_permutations(path) -> int:
    """K, the label permutations the calibration refitted (summary.tsv), whose null gives every
    label-permutation p-value and FDR of the contrast."""
    summary = read_tsv(path).set_index("statistic")["value"]
    return int(summary["permutations"])


def survival_sentence(
    n_survive: int, n: int, primary: pd.DataFrame, adjusted: pd.DataFrame, cut: float
) -> str:
    """How many immune sets called in the primary GSEA keep their call after cell adjustment, naming the
    statistic that calls them in each model."""
    after = gsea_fdr_label(adjusted)
    why = (
        ", as the cell-adjusted model is not label-permuted"
        if lead_fdr(primary) == "fdr_perm" and lead_fdr(adjusted) != "fdr_perm"
        else ""
    )
    return (
        f"{n_survive} of {n} immune-related gene sets significant in the primary GSEA "
        f"({gsea_fdr_label(primary)} < {cut:g}) stay significant, with the same direction, in the "
        f"cell-adjusted model, judged there by its {after} < {cut:g}{why}."
    )


def immune_pathway_survival(
    name: str, primary: pd.DataFrame, adjusted: pd.DataFrame, cut: float, permutations: int
) -> dict:
    """The immune sets called in the primary GSEA and their result after cell adjustment, each model's
    call by the FDR it leads with; an FDR from K permutations is never shown as 0."""
    survival = pathway_survival(
        primary,
        adjusted,
        cut,
        primary_stats=(lead_nes(primary), lead_fdr(primary)),
        adjusted_stats=(lead_nes(adjusted), lead_fdr(adjusted)),
    )
    shown = survival.head(N_TOP_PATHWAYS).astype(object)
    for column, table in (
        (f"{lead_fdr(primary)}_primary", primary),
        (f"{lead_fdr(adjusted)}_cell_adjusted", adjusted),
    ):
        shown[column] = [lead_fdr_text(table, value, permutations) for value in shown[column]]
    return {
        "name": name,
        "n": len(survival),
        "n_survive": int(survival["survives"].sum()),
        "sentence": survival_sentence(int(survival["survives"].sum()), len(survival), primary, adjusted, cut),
        "table": table_rows(shown),
    }


def robustness_section(contrasts: dict, files: dict, config: dict, caption_dir) -> dict:
    """How robust are the findings: cell composition by group, concordance of every sensitivity
    model with the primary one (a sentence each) and the immune pathways after cell adjustment."""

    padj_cut = config["enrichment"]["ora_padj"]
    if files["cell_markers"]:
        markers = pd.read_csv(files["cell_markers"], sep="\t", keep_default_na=False)
        choice = pd.read_csv(files["cell_choice"], sep="\t").iloc[0]
    else:  # cells.enabled false: no scores, no cell-adjusted model
        markers = pd.DataFrame(columns=["cell_type", "note", "estimable"])
        choice = {"covariates": "none", "reason": "cell composition is off (cells.enabled: false)"}
    concordance = pd.concat([pd.read_csv(p, sep="\t") for p in files["concordance"]], ignore_index=True)
    composition = []
    for name, table, png in zip(contrasts, files["cell_by_group"], files["cell_figures"]):
        by_group = pd.read_csv(table, sep="\t")
        composition.append(
            {
                "name": name,
                "table": table_rows(
                    by_group[
                        ["cell_type", "mean_test", "mean_reference", "hedges_g", "pvalue", "padj"]
                    ].dropna(subset=["hedges_g"])
                ),
                "figures": [figure(png, caption_dir, config)],
            }
        )
    pathways = [
        immune_pathway_survival(
            name, read_tsv(primary), read_tsv(adjusted), padj_cut, calibration_permutations(summary)
        )
        for name, primary, adjusted, summary in zip(
            contrasts, files["gsea"], files["cell_adjusted_gsea"], files["calibration_summaries"]
        )
    ]
    return {
        "not_estimable": [
            f"{row.cell_type} ({row.note})" for row in markers.itertuples() if not row.estimable
        ],
        "covariates": f"{choice['covariates']}: {choice['reason']}",
        "composition": composition,
        "concordance": table_rows(concordance),
        "sentences": [describe(row) for row in concordance.to_dict("records")],
        "pathways": pathways,
    }


def robustness_methods(cells: dict, models: dict, choice: str) -> str:
    names = ", ".join(models)
    return (
        "Blood cell-type scores were computed per sample from the blind-VST data from each type's marker "
        f"genes (method '{cells['method']}', config/README.md; markers curated from Abbas et al. 2005, "
        "Becht et al. 2016 and Monaco et al. 2019, among others; a type with fewer than "
        f"{cells['min_markers']} of its markers in the data was not estimated) and compared between "
        "groups by Welch's t-test; sensitivity models "
        f"({names}) refitted the DE model with each change, the cell-adjusted one adding {choice}."
    )


# ---------------------------------------------------------------- calibration

# summary.tsv rows shown in the report, with the words a reader needs
CALIBRATION_ROWS = {
    "observed_degs": "genes called, observed labels",
    "null_degs_mean": "genes called, shuffled labels: mean",
    "null_degs_median": "genes called, shuffled labels: median",
    "null_degs_p95": "genes called, shuffled labels: 95th percentile",
    "frac_permutations_with_degs": "share of shuffled analyses calling at least one gene",
    "pvalue_observed_degs": "permutation p-value of the observed count",
    "smallest_pvalue": "smallest permutation p-value attainable, 1 / (K + 1)",
    "empirical_fdr": "empirical FDR of the observed calls (SAM)",
    "pi0": "share of true nulls (pi0, Storey)",
    "observed_lambda": "inflation lambda, observed labels",
    "null_lambda_median": "inflation lambda, shuffled labels (median)",
    "qvalue_perm_calls": "genes at qvalue_perm below alpha",
}


def false_call_share(empirical_fdr: float, permutations: int) -> str:
    """'about 6%'; an empirical FDR of 0 (no permutation reached the calls' threshold) is bounded by 1/K."""
    if empirical_fdr == 0:
        return f"fewer than {1 / permutations:.0%}"
    return f"about {empirical_fdr:.0%}"


def calibration_table(numeric: pd.Series) -> pd.DataFrame:
    """The summary rows a reader needs (CALIBRATION_ROWS), the count's permutation p-value saying when it is
    the smallest possible and the empirical FDR never reading 0."""
    k = int(numeric["permutations"])
    values = {key: numeric[key] for key in CALIBRATION_ROWS}
    values["pvalue_observed_degs"] = permutation_p_text(numeric["pvalue_observed_degs"], k)
    values["empirical_fdr"] = fdr_text(numeric["empirical_fdr"], k)
    return pd.DataFrame({"statistic": list(CALIBRATION_ROWS.values()), "value": list(values.values())})


def calibration_verdict(values: pd.Series, alpha: float) -> str:
    """One plain sentence: could the observed calls be chance?"""
    observed, k = int(values["observed_degs"]), int(values["permutations"])
    share, median = float(values["frac_permutations_with_degs"]), float(values["null_degs_median"])
    if observed == 0:
        return (
            f"No gene reached padj < {alpha:g}, and shuffled labels gave at least one call in "
            f"{share:.0%} of {k} permutations: there are no calls here that chance would have to explain."
        )
    if 1 / (k + 1) > 0.05:
        return (
            f"The calibration cannot tell whether these {observed} calls are chance: only {k} distinct "
            f"permutations exist (the observed labelling and its mirror image left out), so no permutation "
            f"p-value can fall below 1 / {k + 1} = {1 / (k + 1):.2g}; shuffled labels gave as many calls "
            f"or more in {float(values['pvalue_observed_degs']):.0%} of them."
        )
    if float(values["pvalue_observed_degs"]) <= 0.05:
        return (
            f"The {observed} genes called would not appear by chance: shuffled labels gave a median of "
            f"{median:g} and at most {float(values['null_degs_p95']):g} calls in 95% of {k} permutations, "
            f"and {false_call_share(float(values['empirical_fdr']), k)} of the observed calls are expected "
            "to be false."
        )
    return (
        f"Chance alone could give these {observed} calls: shuffled labels gave as many or more in "
        f"{float(values['pvalue_observed_degs']):.0%} of {k} permutations, so read the gene list by "
        f"qvalue_perm ({int(values['qvalue_perm_calls'])} genes) rather than by padj."
    )


def with_confounding_caveat(verdict: str, alarms: list[str], contrast: dict) -> str:
    """The calibration's verdict, and beside a confounding alarm what the permutations cannot see:
    they shuffle the labels away from the confounder, whose effect the observed labels carry."""
    if not alarms:
        return verdict
    return (
        f"{verdict} The permutations cannot detect confounding: they shuffle {contrast['variable']} "
        "and leave every other column with its samples, so a difference that goes with a confounded "
        "column passes as a group difference."
    )


def calibration_section(
    name: str, files: dict, config: dict, caption_dir, obs: pd.DataFrame | None = None
) -> dict:
    """Observed vs null DEG counts, empirical FDR, lambda, the verdict, the QQ plot and histogram;
    with the samples' sheet (`obs`), whether the permutations pair each subject with itself."""
    summary = pd.read_csv(files["summary"], sep="\t", keep_default_na=False, na_values=[""])
    values = summary.set_index("statistic")["value"]
    numeric = pd.to_numeric(values, errors="coerce")
    # the captions count the permutations that ran: all distinct ones when fewer exist than asked for
    ran = {**config, "calibration": {**config["calibration"], "permutations": int(numeric["permutations"])}}
    return {
        "name": name,
        "anchor": anchor_of("calibration", name),
        "verdict": calibration_verdict(numeric, config["de"]["alpha"]),
        "permutations": int(numeric["permutations"]),
        "strata": values["strata"],
        "table": table_rows(calibration_table(numeric)),
        "figures": [figure(files[key], caption_dir, ran) for key in ("qq", "null_degs")],
        "paired": calibration_pairing(obs, config["contrasts"][name], config) if obs is not None else "",
    }


def calibration_pairing(obs: pd.DataFrame, contrast: dict, config: dict) -> str:
    """'Paired design: ...' when the permutation strata hold the design's column of repeated
    measures (repeated_measures_column: subjects sampled in both compared levels); else ''."""
    subject = repeated_measures_column(obs, config["design"], contrast)
    strata = calibration_strata(obs, config["design"], contrast["variable"], config["calibration"]["strata"])
    if subject is None or subject not in strata:
        return ""
    return (
        f"Paired design: the permutations stay within {subject} ({' x '.join(strata)}), so every {subject} "
        f"keeps its own mix of {contrast['variable']} levels and is compared with itself."
    )


def calibration_methods(settings: dict, sections: list[dict]) -> str:
    strata = "; ".join(f"{s['name']}: {s['strata']}" for s in sections)
    return (
        "Whether the calls could appear by chance was checked per contrast by refitting the whole model "
        f"(same samples, genes, design and DESeq2 settings) under {join_words([str(s['permutations']) for s in sections])} "
        f"permutations of the compared variable within strata ({strata}; continuous covariates stay with "
        f"their samples; seed {settings['seed']}). The null counts of genes called give the permutation "
        "p-value of the observed count, (b + 1) / (K + 1), and the empirical FDR of the observed call list "
        "as in SAM (Tusher et al. 2001): pi0 times the mean number of null p-values at or below the "
        "largest p-value called, over the number called. Calibrated gene p-values (pvalue_perm) compare "
        "each gene's absolute Wald statistic with the pooled null of all genes and permutations, "
        "(b + 1) / (N + 1); q-values (qvalue_perm) and pi0 (lambda = 0.5) follow Storey and Tibshirani "
        "(2003). Inflation lambda is the median squared Wald statistic over 0.455. Label permutation is "
        "the check advised for DESeq2 and edgeR on human population cohorts (Li et al. 2022); the pathway "
        "analogue permutes phenotypes as GSEA does (Subramanian et al. 2005)."
    )


# ---------------------------------------------------------------- key findings


def deg_counts(table: pd.DataFrame, alpha: float) -> dict[str, int]:
    calls = calls_table(table, alpha, []).iloc[0]
    return {"total": int(calls["total"]), "up": int(calls["up"]), "down": int(calls["down"])}


def top_pathways(shown: dict[tuple[str, str], pd.DataFrame], direction: str, n: int) -> pd.DataFrame:
    """The n best terms of one direction over every collection (each collection's terms as shown,
    near-duplicates folded)."""
    terms = [t for (_, d), t in shown.items() if d == direction]
    if not terms:
        return pd.DataFrame()
    both = pd.concat(terms)
    return both.sort_values(gsea_order(both), kind="mergesort").head(n)


def gsea_fdr_label(gsea: pd.DataFrame) -> str:
    """Words for the FDR a GSEA table leads with (terms.lead_fdr)."""
    return "label-permutation FDR" if lead_fdr(gsea) == "fdr_perm" else "gene-permutation padj"


def lead_fdr_text(gsea: pd.DataFrame, value, permutations: int | None) -> str:
    """The lead FDR of a term for reading: bounded by 1/K when it comes from K label permutations."""
    return fdr_text(value, permutations if lead_fdr(gsea) == "fdr_perm" else None)


def survival_after_adjustment(
    term: pd.Series,
    nes: float,
    adjusted: pd.DataFrame | None,
    cut: float,
    significant: bool = True,
    permutations: int | None = None,
) -> str:
    """Does a pathway keep its call once cell composition is in the model? Judged by the FDR the
    cell-adjusted GSEA leads with, named (it has no label permutations: gene-permutation padj). A term
    not called in the primary model has no call to keep: its statistic after adjustment is given."""
    if adjusted is None:
        return "no cell-adjusted model in this run"
    hit = adjusted[(adjusted["collection"] == term["collection"]) & (adjusted["term"] == term["term"])]
    if hit.empty:
        return "not tested after cell adjustment"
    after = hit.iloc[0]
    after_nes = float(after[lead_nes(adjusted)])
    if math.copysign(1, after_nes) != math.copysign(1, nes):
        return f"reverses direction after cell adjustment (NES {format_value(after_nes)})"
    fdr = lead_fdr(adjusted)
    value = f"{gsea_fdr_label(adjusted)} {lead_fdr_text(adjusted, after[fdr], permutations)}"
    if not significant:
        return f"{value} after cell adjustment"
    verdict = "survives" if after[fdr] < cut else "does not survive"
    return f"{verdict} cell adjustment ({value})"


def pathway_finding(
    term: pd.Series, gsea: pd.DataFrame, adjusted: pd.DataFrame | None, cut: float, permutations: int | None
) -> dict:
    fdr, nes = lead_fdr(gsea), float(term[lead_nes(gsea)])
    significant = bool(term[fdr] < cut)
    return {
        "term": term["term"],
        "name": term["name"],
        "collection": term["collection"],
        "nes": format_value(nes),
        "fdr": lead_fdr_text(gsea, term[fdr], permutations),
        "significant": significant,
        "n_similar": len(term["similar_terms"]),
        "survival": survival_after_adjustment(term, nes, adjusted, cut, significant, permutations),
    }


def sets_text(n: int) -> str:
    return f"{n} set{'' if n == 1 else 's'}"


def pathway_verdict(n_label: int, n_gene: int, cut: float, n_camera: int | None = None) -> str:
    """The key findings' plain answer about pathways. n_label: sets at label-permutation FDR < cut;
    n_gene: at fgsea's gene-permutation padj < cut; n_camera: at camera's FDR < cut (limma's camera
    with the inter-gene correlation estimated), None when camera was not run. Label permutation and
    camera respect the correlation between genes; gene permutation does not, and over-calls."""
    camera = "" if n_camera is None else f"camera: {n_camera} at FDR < {cut:g}; "
    if n_label:
        return (
            f"{sets_text(n_label)} changed more than random splits of these samples change them "
            f"(label-permutation FDR < {cut:g}; {camera}gene permutation: {n_gene} at padj < {cut:g}); "
            "they lead the lists below."
        )
    if n_camera:
        first = (
            f"No pathway passes label-permutation FDR < {cut:g}, but camera calls {sets_text(n_camera)} "
            f"at FDR < {cut:g}: the two tests that respect gene-gene correlation disagree, so read "
            "camera's sets as leads to confirm."
        )
    else:
        agrees = "; camera agrees" if n_camera == 0 else ""
        first = (
            "No pathway changed more than random splits of these samples change it "
            f"(0 sets at label-permutation FDR < {cut:g}{agrees})."
        )
    if not n_gene:
        return first + " Gene permutation, which treats genes as independent, calls none either."
    return first + (
        f" If genes were independent, {sets_text(n_gene)} would pass, but genes of one pathway rise "
        "and fall together between people, and with shuffled labels that assumption calls hundreds "
        "of sets on real data."
    )


def gene_permutation_verdict(n_gene: int, cut: float) -> str:
    """The pathway answer of a run without label permutations: only fgsea's padj, and its caveat."""
    return (
        f"{sets_text(n_gene)} at gene-permutation padj < {cut:g}. No label-permutation null was "
        "computed: gene permutation treats genes as independent and over-calls co-expressed sets."
    )


def contrast_pathway_verdict(gsea: pd.DataFrame, camera: pd.DataFrame | None, cut: float) -> str:
    """pathway_verdict from the contrast's GSEA table and, when run, its camera table."""
    n_gene = int((gsea["padj"] < cut).sum())
    if lead_fdr(gsea) != "fdr_perm":
        return gene_permutation_verdict(n_gene, cut)
    n_camera = None if camera is None else int((camera["fdr"] < cut).sum())
    return pathway_verdict(int((gsea["fdr_perm"] < cut).sum()), n_gene, cut, n_camera)


def cell_adjusted_finding(concordance: pd.DataFrame | None) -> str:
    if concordance is None:
        return (
            "No cell-adjusted model in this run (cells.enabled or sensitivity.cell_adjusted.enabled "
            "is false)."
        )
    row = concordance.iloc[0]
    return (
        f"With cell composition in the model ({int(row['n_cell_covariates'])} cell covariates, explaining "
        f"R² {row['group_r2_cells']:.2f} of the group; {int(row['residual_df_model'])} residual degrees of "
        f"freedom, the primary model {int(row['residual_df_primary'])}), {int(row['degs_model'])} genes are "
        f"called instead of {int(row['degs_primary'])} ({int(row['overlap'])} of them shared)."
    )


def prediction_not_run(switched_off: list[str]) -> str:
    """Why the prediction did not run: ingest's note when `predict.enabled: auto` switched it off
    (the sample sheet cannot feed it), else the config's `false`."""
    for note in switched_off:
        if note.startswith("prediction switched off"):
            return f"Not run: {note}."
    return "Not run: the config sets predict.enabled to false."


def key_findings(name: str, contrast: dict, tables: dict, config: dict, switched_off: list[str] = ()) -> dict:
    """The page's opening summary of one contrast, every number from the run's tables: the genes
    called with the calibration's verdict, the top pathways up and down with whether they survive
    cell adjustment, the cell-adjusted gene count and the prediction's best model.

    tables: de, calibration (summary.tsv as read), gsea, and adjusted_gsea, concordance (the
    cell_adjusted model's), comparison (model_comparison.tsv), camera (camera.tsv), each None (or,
    camera, absent) when not run. When no set passes the lead FDR the lists are the largest effects,
    for exploration, and the pathway verdict says why gene permutation's calls are not believed."""
    alpha, cut = config["de"]["alpha"], config["enrichment"]["ora_padj"]
    gsea = tables["gsea"]
    shown = top_terms_by_direction(gsea, N_KEY_PATHWAYS, config["enrichment"]["similar_terms_jaccard"])
    summary = pd.to_numeric(tables["calibration"].set_index("statistic")["value"], errors="coerce")
    permutations = int(summary["permutations"])
    pathways = {
        direction: [
            pathway_finding(row, gsea, tables["adjusted_gsea"], cut, permutations)
            for _, row in top_pathways(shown, direction, N_KEY_PATHWAYS).iterrows()
        ]
        for direction in ("up", "down")
    }
    comparison = tables["comparison"]
    prediction = (
        best_model_findings(best_model(comparison), contrast["test"], config["predict"]["permutations"])
        if comparison is not None
        else [prediction_not_run(switched_off)]
    )
    confounding = tables.get("confounding")
    alarms = confounding_alarms(confounding, name) if confounding is not None else []
    return {
        "name": name,
        "anchor": anchor_of("key", name),
        "test": contrast["test"],
        "description": f"{contrast['test']} vs {contrast['reference']}",
        "alpha": format_value(alpha),
        "alarms": alarms,
        "degs": deg_counts(tables["de"], alpha),
        "verdict": with_confounding_caveat(calibration_verdict(summary, alpha), alarms, contrast),
        "pathways": pathways,
        "pathway_verdict": contrast_pathway_verdict(gsea, tables.get("camera"), cut),
        "exploratory": not (gsea[lead_fdr(gsea)] < cut).any(),
        "cut": format_value(cut),
        "fdr_label": gsea_fdr_label(gsea),
        "cell_adjusted": cell_adjusted_finding(tables["concordance"]),
        "prediction": prediction,
    }


# ---------------------------------------------------------------- methods


def prediction_methods(settings: dict, seed: int, versions: dict) -> str:
    learners = {
        "l2": "L2-penalised logistic regression",
        "elasticnet": "elastic-net logistic regression",
        "hgb": "histogram gradient boosting",
    }
    return (
        f"The test group was predicted from the clinical covariates ({join_words(settings['covariates'])}), "
        f"from expression, and from both, by {join_words([learners[name] for name in settings['learners']])} "
        f"in scikit-learn {versions['scikit-learn']} (Pedregosa et al. 2011), in {settings['repeats']} "
        f"repeats of {settings['outer_folds']}-fold stratified cross-validation, the same folds for every "
        f"model (seed {seed}). Inside each outer training set the raw counts were filtered by the rule of "
        "edgeR's filterByExpr, size factors estimated by the median of ratios against the training "
        "samples' geometric means, and the VST's dispersion trend fitted on the training samples; both "
        "were applied to the test samples. Inside each training set of "
        f"{settings['inner_folds']} inner stratified folds, and again on the whole outer training set, "
        f"the {settings['n_genes']} genes with the highest ANOVA F were selected, the features scaled "
        "and the learner fitted; each learner's hyperparameters were chosen by the mean inner-fold AUC. "
        "Performance is the mean AUC of the outer test folds over all repeats, with a 95% interval from "
        "the corrected resampled t of Nadeau and Bengio (2003): variance (1/J + n_test/n_train) times that "
        "of the J fold AUCs, taken at least their mean DeLong variance, and J - 1 degrees of freedom; the "
        "gain of the combined over the clinical model is the mean of the per-fold differences on the same "
        "folds (paired), with the same interval and its p-value. The pooled out-of-fold AUC is given "
        f"beside it with a stratified bootstrap interval ({settings['bootstrap']} resamples), which "
        "ignores the folds and is too narrow when there is nothing to predict. The best model's p-value "
        "comes from "
        f"{settings['permutations']} label permutations within outer fold and site, each rerunning the whole "
        "nested procedure; it is not adjusted for choosing the best of the models. Site-held-out "
        "validation trained on all sites but one and tested on it, for each site."
    )


def qc_sentence(flagged: int, excluded: int, kept: int) -> str:
    """What QC did to the samples: flagged ones are kept unless qc.action is exclude."""
    if excluded:
        return f"Quality control flagged {flagged} samples and excluded {excluded}, leaving {kept}."
    if flagged:
        return (
            f"Quality control flagged {flagged} samples and kept them (qc.action: flag), "
            f"so all {kept} samples were analysed."
        )
    return f"Quality control flagged no sample; all {kept} samples were analysed."


def methods_sections(run: dict) -> list[dict]:
    """A paper's methods, with every parameter and version that shaped the result, as headed paragraphs
    ({'heading', 'text'}) in the order of the analysis; a step this run skipped has none."""
    f, d, v = run["filter"], run["deseq2"], run["versions"]
    nsub = d["vst_nsub"]
    workflow = [
        f"Raw gene-level counts of {run['n_samples_in']} samples were analysed with the TRD "
        f"differential-expression workflow (version {run['pipeline_version']}) in Python "
        f"{v['python']} and Snakemake {v['snakemake']} (Mölder et al. 2021).",
        "The analysis follows the design of Sirés et al. (2025).",
    ]
    quality = [
        qc_sentence(run["n_samples_flagged"], run["n_samples_excluded"], run["n_samples_kept"]),
        "QC's principal components used a blind variance-stabilising "
        "transformation (DESeq2's vst) whose dispersion trend was fitted "
        + (
            f"on {nsub} genes evenly spaced by mean, as vst(nsub) does (on all genes when fewer "
            "have a mean normalised count above 5)."
            if nsub
            else "on all genes."
        ),
    ]
    filtering = [
        f"Genes were filtered with the rule of edgeR's filterByExpr (Chen et al. 2016): a gene was "
        f"kept when its count per million reached {f['min_count']:g} counts at the median library "
        f"size in at least as many samples as the smallest compared group (for groups larger than "
        f"{f['large_n']}, {f['large_n']} plus {f['min_prop']:g} of the remainder) and its total count "
        f"reached {f['min_total_count']:g}; {run['n_genes_kept']} of {run['n_genes_in']} genes were kept.",
    ]
    de = [
        f"Differential expression was tested with PyDESeq2 {v['pydeseq2']} (Muzellec et al. 2023), "
        f"a Python implementation of DESeq2 (Love et al. 2014), with the design "
        f"'{run['design']}': {run['coding']}.",
        f"Size factors were estimated by the '{d.get('size_factors_fit_type', 'ratio')}' method and the "
        f"dispersion trend by the '{d.get('fit_type', 'parametric')}' fit; "
        + (
            "counts of Cook's-distance outliers were replaced and refitted for groups of at least "
            f"{d.get('min_replicates', 7)} samples"
            if d.get("refit_cooks", True)
            else "Cook's-distance outliers were not refitted"
        )
        + ".",
        f"Each contrast ({run['contrasts']}) was tested with a Wald test; p-values were adjusted by "
        f"the Benjamini-Hochberg method"
        + (
            f" after independent filtering of low-mean genes at alpha = {d['alpha']:g}"
            if d.get("independent_filter", True)
            else " without independent filtering"
        )
        + (
            ", genes with Cook's-distance outliers being given no p-value"
            if d.get("cooks_filter", True)
            else ""
        )
        + f", and genes with an adjusted p-value below {d['alpha']:g} were called differentially "
        "expressed.",
    ]
    if d.get("lfc_shrink"):
        de.append("Log2 fold changes were also shrunk with PyDESeq2's apeGLM-like prior for display.")
    # each entry is a sentence of its README: its own full stop would give ".;" and ".."
    entries = [entry.rstrip(". ") for entry in run.get("provenance", [])]
    sections = [
        ("Workflow", workflow),
        ("Samples and quality control", quality),
        ("Gene filtering", filtering),
        ("Differential expression", de),
        ("Pathway enrichment", [run.get("enrichment"), run.get("camera")]),
        ("Could the calls be chance? Label permutations", [run.get("calibration")]),
        ("Prediction", [run.get("prediction")]),
        ("Cell composition and sensitivity models", [run.get("robustness")]),
        ("Gene annotation and gene sets", ["; ".join(entries) + "." if entries else ""]),
    ]
    return [
        {"heading": heading, "text": " ".join(filter(None, sentences))}
        for heading, sentences in sections
        if any(sentences)
    ]


# ---------------------------------------------------------------- page


def interactive_scripts(template_dir) -> dict:
    """Plotly's library (once per page) and the volcano's search box, inline like the rest."""
    return {
        "plotly_js": Markup(plotly_library()),
        "volcano_js": Markup((Path(template_dir) / "volcano.js").read_text(encoding="utf-8")),
    }


def render_page(context: dict, template_dir) -> str:
    template_dir = Path(template_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("report.html.j2").render(
        css=Markup((template_dir / "report.css").read_text(encoding="utf-8")),
        js=Markup((template_dir / "report.js").read_text(encoding="utf-8")),
        **context,
    )


def interactive_volcano(table: pd.DataFrame, contrast: dict, config: dict, div_id: str) -> Markup:
    """The contrast's volcano as a Plotly figure drawn in the page (every tested gene)."""
    alpha = config["de"]["alpha"]
    shrunk = " (shrunk)" if volcano_x_column(table) == "log2FoldChange_shrunk" else ""
    fig = volcano_figure(
        volcano_points(table, alpha),
        alpha,
        config["de"].get("lfc_thresholds", []),
        f"{contrast['test']} vs {contrast['reference']}",
        f"log2 fold change{shrunk}, {contrast['test']} vs {contrast['reference']}",
    )
    return Markup(volcano_html(fig, div_id))


def gene_figures(table: pd.DataFrame, contrast: dict, config: dict, cohort: ad.AnnData) -> list[dict]:
    """Normalised counts by group of the top genes and of the candidate genes in the data."""
    normalised = normalised_counts(cohort, config["design"], config["de"], contrast)
    levels = group_levels(cohort.obs, contrast)
    symbols = table["gene_symbol"].fillna("").astype(str)
    labels = symbols.where(symbols != "", table["gene_id"])
    titles = {
        gene: f"{label}\npadj {format_value(padj)}"
        for gene, label, padj in zip(table["gene_id"], labels, table["padj"])
    }
    top = top_tested_genes(table, N_GENE_PLOTS)["gene_id"].tolist()
    wanted = list(config["report"]["candidate_genes"])
    by_symbol = (
        table[symbols.isin(wanted).to_numpy()]
        .assign(order=lambda t: t["gene_symbol"].map(wanted.index))
        .sort_values("order", kind="mergesort")
    )
    missing = [gene for gene in wanted if gene not in set(by_symbol["gene_symbol"])]
    panels = [
        (top, f"The {len(top)} genes with the smallest p-values", ""),
        (
            by_symbol["gene_id"].tolist(),
            "The candidate genes",
            f" Not in the filtered data: {', '.join(missing)}." if missing else "",
        ),
    ]
    figures = []
    for genes, what, note in panels:
        if not genes:
            continue
        values = gene_count_values(normalised, cohort.obs, genes, contrast["variable"])
        title = f"{what}: {contrast['test']} vs {contrast['reference']}"
        fig = gene_count_figure(values, levels, titles, title)
        figures.append(
            inline_png(
                figure_png(fig),
                f"{what}: counts normalised by the DE model's size factors, per "
                f"{contrast['variable']} (box: quartiles; log axis, 0.5 added).{note}",
            )
        )
    return figures


def contrast_section(
    name: str,
    contrast: dict,
    files: dict,
    config: dict,
    vst: ad.AnnData,
    caption_dir,
    cohort: ad.AnnData,
    alarmed: list[str] = (),
) -> dict:
    """alarmed: the sample-sheet columns of the contrast's confounding alarms, shown in the heat map."""
    alpha, thresholds = config["de"]["alpha"], config["de"].get("lfc_thresholds", [])
    table = read_tsv(files["table"])
    model = pd.read_csv(files["model"], sep="\t")
    annotations = heatmap_annotations(contrast, model, alarmed)
    heatmap = top_gene_heatmap(
        table,
        vst.to_df(),
        vst.obs,
        N_HEATMAP_GENES,
        annotations,
        f"Top {N_HEATMAP_GENES} genes, {contrast['test']} vs {contrast['reference']}",
    )
    anchor = "de-" + re.sub(r"[^A-Za-z0-9_-]", "-", name)
    return {
        "name": name,
        "anchor": anchor,
        "volcano": interactive_volcano(table, contrast, config, anchor + "-volcano"),
        "alpha": format_value(alpha),
        "gene_figures": gene_figures(table, contrast, config, cohort),
        "description": describe_contrast(contrast, model),
        "test": contrast["test"],
        "n_tested": int(table["padj"].notna().sum()),
        "n_genes": len(table),
        "calls": table_rows(calls_table(table, alpha, thresholds)),
        "model": table_rows(model),
        "figures": [
            figure(files["volcano"], caption_dir, config),
            figure(files["ma"], caption_dir, config),
            inline_png(
                figure_png(heatmap),
                f"The {N_HEATMAP_GENES} genes with the smallest p-values: blind-VST "
                f"expression z-scored per gene; samples ordered by {join_words(annotations)}.",
            ),
        ],
        "candidates": table_rows(
            readable_fdrs(candidate_panel(table, alpha, config["report"]["candidate_genes"]), ["padj"])
        ),
        "top_genes": table_rows(readable_fdrs(top_genes(table, N_TOP_GENES_TABLE), ["padj"])),
    }


def heatmap_annotations(contrast: dict, model: pd.DataFrame, alarmed: list[str]) -> list[str]:
    """The heat map's bars: the contrast's variable, every other design variable (continuous ones
    too), then the columns a confounding alarm names."""
    variables = [contrast["variable"], *model["variable"], *alarmed]
    return list(dict.fromkeys(variables))


def alarmed_columns(confounding: pd.DataFrame, name: str) -> list[str]:
    """Sample-sheet columns of one contrast's confounding alarms (not the design's variance
    inflation row, which names no single column)."""
    rows = alarmed_rows(confounding, name)
    return rows.loc[rows["kind"] != "design", "column"].tolist()


def read_tsv(path) -> pd.DataFrame:
    """A result table as written ('NA' gene symbols stay text; empty cells are missing)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def contrast_tables(name: str, index: int, inputs) -> dict:
    """The tables the key findings of one contrast read, None for a step this run skipped."""
    concordance = [
        p
        for p in inputs.concordance
        if Path(p).parent.name == "cell_adjusted" and Path(p).parent.parent.name == name
    ]
    return {
        "de": read_tsv(inputs.tables[index]),
        "calibration": read_tsv(inputs.calibration_summaries[index]),
        "gsea": read_tsv(inputs.gsea[index]),
        "adjusted_gsea": (read_tsv(inputs.cell_adjusted_gsea[index]) if inputs.cell_adjusted_gsea else None),
        "concordance": read_tsv(concordance[0]) if concordance else None,
        "comparison": read_tsv(inputs.predict_comparison[index]) if inputs.predict_comparison else None,
        "confounding": read_tsv(inputs.confounding),
        "camera": read_tsv(inputs.camera[index]) if inputs.camera else None,
    }


def files_by_contrast(contrasts: dict, inputs, names: dict[str, str]):
    """(contrast, {key: path}) for each contrast, from the rule's per-contrast input lists named by
    `names` ({key: input name}); nothing when the run skipped the step (its lists are empty)."""
    lists = [getattr(inputs, attr) for attr in names.values()]
    for name, *paths in zip(contrasts, *lists):
        yield name, dict(zip(names, paths))


def report_context(inputs, config: dict, template_dir: Path, switched_off: list[str] = ()) -> dict:
    """Everything the page shows, read from the report rule's inputs (Snakemake's named input
    files, or any object with the same attributes): per contrast its DE, enrichment, calibration
    and prediction sections and key findings; cohort, QC, robustness, methods and provenance.
    switched_off: ingest's notes on the optional parts that `enabled: auto` switched off."""
    contrasts = config["contrasts"]
    cohort = ad.read_h5ad(inputs.cohort, backed="r")
    vst = ad.read_h5ad(inputs.vst)
    filtered = ad.read_h5ad(inputs.filtered)
    metrics = read_sample_table(inputs.metrics)
    filter_summary = pd.read_csv(inputs.filter_summary, sep="\t").set_index("step")["n"]
    software = read_software_versions(inputs.software_versions)
    versions, version = software["packages"], version_label(software["workflow"])
    sections = []
    de_files = {"table": "tables", "model": "models", "volcano": "volcanos", "ma": "mas"}
    confounding = read_tsv(inputs.confounding)
    for name, files in files_by_contrast(contrasts, inputs, de_files):
        log.info("contrast %s", name)
        sections.append(
            contrast_section(
                name,
                contrasts[name],
                files,
                config,
                vst,
                template_dir,
                contrast_cohort(filtered, name),
                alarmed_columns(confounding, name),
            )
        )
    findings = [
        key_findings(name, contrasts[name], contrast_tables(name, index, inputs), config, switched_off)
        for index, name in enumerate(contrasts)
    ]
    enrichment_files = {
        "gsea": "gsea",
        "ora": "ora",
        "gsea_dotplot": "gsea_dotplots",
        "ora_dotplot": "ora_dotplots",
        "running_scores": "running_scores",
        "calibration": "calibration_summaries",
    }
    enrichment = [
        enrichment_section(name, contrasts[name], files, config, template_dir)
        for name, files in files_by_contrast(contrasts, inputs, enrichment_files)
    ]
    # camera's tables, when the run has them (enrichment.camera)
    for section, (_, files) in zip(enrichment, files_by_contrast(contrasts, inputs, {"camera": "camera"})):
        add_camera(section, read_tsv(files["camera"]), config["enrichment"])
    prediction_files = {
        "comparison": "predict_comparison",
        "site": "predict_site",
        "genes": "predict_genes",
        "roc": "predict_roc",
        "calibration": "predict_calibration",
    }
    predictions = [
        prediction_section(name, contrasts[name], files, config, template_dir, filtered.obs)
        for name, files in files_by_contrast(contrasts, inputs, prediction_files)
    ]
    robustness = robustness_section(contrasts, inputs, config, template_dir) if inputs.concordance else None
    calibration_files = {
        "summary": "calibration_summaries",
        "qq": "calibration_qq",
        "null_degs": "calibration_null_degs",
    }
    calibration = [
        calibration_section(name, files, config, template_dir, filtered.obs)
        for name, files in files_by_contrast(contrasts, inputs, calibration_files)
    ]
    for section in calibration:
        alarms = confounding_alarms(confounding, section["name"])
        section["verdict"] = with_confounding_caveat(section["verdict"], alarms, contrasts[section["name"]])
    models = {name: pd.read_csv(path, sep="\t") for name, path in zip(contrasts, inputs.models)}
    provenance = [resource_provenance(Path(p).read_text(encoding="utf-8")) for p in inputs.readmes]
    flagged = flagged_samples(metrics)
    association = pd.read_csv(inputs.association, sep="\t")

    run = {
        "pipeline_version": version,
        "versions": versions,
        "design": config["design"],
        "filter": config["filter"],
        "deseq2": config["de"],
        "n_samples_in": int(filter_summary["samples in"]),
        "n_samples_flagged": int((flagged["flags"] != "").sum()),
        "n_samples_excluded": int(filter_summary["samples excluded by QC"]),
        "n_samples_kept": int(filter_summary["samples kept"]),
        "n_genes_in": int(filter_summary["genes in"]),
        "n_genes_kept": int(filter_summary["genes kept"]),
        "coding": describe_coding(next(iter(models.values()))),
        "contrasts": "; ".join(s["description"] for s in sections),
        "provenance": [p for p in provenance if p],
        "enrichment": enrichment_methods(
            config["enrichment"], versions, config["enrichment"]["label_permutations"]
        ),
        "camera": camera_methods(config["enrichment"]) if inputs.camera else "",
        "calibration": calibration_methods(config["calibration"], calibration),
        "prediction": (
            prediction_methods(config["predict"], config["seed"], versions) + grouping_methods(predictions)
            if predictions
            else ""
        ),
        "robustness": (
            robustness_methods(
                config["cells"],
                active_models(config["sensitivity"], config["cells"]),
                robustness["covariates"],
            )
            if robustness
            else ""
        ),
    }
    return {
        "title": config["report"]["title"],
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "pipeline_version": version,
        "versions": versions,
        "config_yaml": yaml.safe_dump(config, sort_keys=False, allow_unicode=True),
        "config_files": software.get("config_files", []),
        "checksums": table_rows(input_checksums(cohort.uns["ingest"])),
        "resources": table_rows(compute_resources(inputs.benchmarks)),
        "key_findings": findings,
        "cohort": cohort_tables(cohort.obs, contrasts, models),
        "n_samples": cohort.n_obs,
        "filter_summary": table_rows(filter_summary.reset_index()),
        "flagged": table_rows(flagged),
        "qc_summary": qc_sentence(run["n_samples_flagged"], run["n_samples_excluded"], run["n_samples_kept"]),
        "balance": balance_by_variable(pd.read_csv(inputs.balance, sep="\t"), contrasts),
        "qc_tables": [
            {
                "title": "Principal components associated with a covariate (p < 0.05)",
                "id": "pc-covariate-association",
                "table": table_rows(significant_associations(association)),
            },
            {
                "title": "Sample-sheet columns against each contrast's variable (confounding alarm)",
                "id": "confounding",
                "table": table_rows(confounding.drop(columns="warning")),
            },
        ],
        "enrichment": enrichment,
        "calibration": calibration,
        "predictions": predictions,
        "prediction_not_run": prediction_not_run(switched_off),
        "robustness": robustness,
        "qc_figures": [
            figure(path, template_dir, config, values={"pcs_shown": association["pc"].nunique()})
            for path in inputs.qc_figures
        ],
        "contrasts": sections,
        "methods": methods_sections(run),
        "references": REFERENCES,
        **interactive_scripts(template_dir),
    }
