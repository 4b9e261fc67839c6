"""Differential expression of one contrast: calls, design coding, figures, candidates, top genes."""

import logging
import math
import re

import anndata as ad
import pandas as pd
from markupsafe import Markup

from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.tables import count_calls
from trdpipe.qc.metrics import alarmed_rows
from trdpipe.report.embed import figure, figure_png, inline_png
from trdpipe.report.figures import (
    drawn_samples,
    gene_count_figure,
    gene_count_values,
    group_levels,
    normalised_counts,
    top_gene_heatmap,
    top_tested_genes,
    volcano_figure,
    volcano_html,
    volcano_points,
    volcano_x_column,
)
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.text import format_value, join_words, readable_fdrs, statistic_text, table_rows

log = logging.getLogger("trd")

N_TOP_GENES_TABLE = 200
N_HEATMAP_GENES = 40
N_GENE_PLOTS = 12  # top genes drawn one by one with their normalised counts by group
Z_95 = 1.959964  # two-sided 95% normal quantile, for log2FC +- z * lfcSE


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


def deg_counts(table: pd.DataFrame, alpha: float) -> dict[str, int]:
    calls = calls_table(table, alpha, []).iloc[0]
    return {"total": int(calls["total"]), "up": int(calls["up"]), "down": int(calls["down"])}


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
        gene: f"{label}\npadj {statistic_text('padj', padj)}"
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
    shown = drawn_samples(vst.obs, config["report"]["max_samples_drawn"], config["seed"])
    # the heat map's genes and samples only: not a dense copy of the whole VST matrix
    heatmap_genes = vst.var_names.isin(top_tested_genes(table, N_HEATMAP_GENES)["gene_id"])
    heatmap = top_gene_heatmap(
        table,
        vst[shown.index, heatmap_genes].to_df(),
        shown,
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
                f"expression z-scored per gene; samples ordered by {join_words(annotations)}."
                + drawn_note(len(shown), vst.n_obs, config["seed"]),
            ),
        ],
        "candidates": table_rows(
            readable_fdrs(candidate_panel(table, alpha, config["report"]["candidate_genes"]), ["padj"])
        ),
        "top_genes": table_rows(readable_fdrs(top_genes(table, N_TOP_GENES_TABLE), ["padj"])),
    }


def drawn_note(shown: int, total: int, seed: int) -> str:
    """The heat map caption's word on the samples it shows, when not all of them."""
    if shown == total:
        return ""
    return (
        f" {shown} of the {total} samples are shown, drawn at random (seed {seed}; report.max_samples_drawn)."
    )


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


def contrast_files(run: Run, name: str) -> dict:
    return {key: run.inputs.of(name, key) for key in ("table", "model", "volcano", "ma")}


def build(run: Run) -> dict:
    sections = []
    for name, contrast in run.contrasts.items():
        log.info("contrast %s", name)
        sections.append(
            contrast_section(
                name,
                contrast,
                contrast_files(run, name),
                run.config,
                run.vst,
                run.template_dir,
                contrast_cohort(run.filtered, name),
                alarmed_columns(run.confounding, name),
            )
        )
    return {
        "toc": [{"anchor": s["anchor"], "label": f"DE: {s['name']}"} for s in sections],
        "contrasts": sections,
    }
