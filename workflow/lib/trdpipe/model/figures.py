"""The figures of the DE models: the volcano and MA plots of a contrast, and the sensitivity rule's
scatter of log2 fold changes of the primary model against one sensitivity model."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from adjustText import adjust_text

UP_COLOUR, DOWN_COLOUR = "#c0392b", "#2471a3"
# most steps adjustText takes to move the volcano's labels apart
REPEL_STEPS = 2000


def plotted_lfc(table: pd.DataFrame) -> str:
    """The fold-change column the figures draw: the shrunk one when the table has it."""
    return "log2FoldChange_shrunk" if "log2FoldChange_shrunk" in table else "log2FoldChange"


def lfc_label(contrast: dict, column: str) -> str:
    shrunk = ", shrunk (apeGLM-like prior)" if column == "log2FoldChange_shrunk" else ""
    return f"log2 fold change, {contrast['test']} vs {contrast['reference']}{shrunk}"


def draw_calls(ax, x: pd.Series, y: pd.Series, lfc: pd.Series, padj: pd.Series, alpha: float) -> None:
    """Grey genes not called, red up and blue down at padj < alpha, each in the legend."""
    significant = padj < alpha
    # the grey cloud of thousands of genes as an image inside the SVG: a small file, vector text
    ax.scatter(x[~significant], y[~significant], s=4, c="0.7", lw=0, label="not significant", rasterized=True)
    for direction, chosen, colour in (("up", lfc > 0, UP_COLOUR), ("down", lfc < 0, DOWN_COLOUR)):
        called = significant & chosen
        ax.scatter(
            x[called],
            y[called],
            s=6,
            c=colour,
            lw=0,
            label=f"{direction} (padj < {alpha:g}): {int(called.sum())}",
        )


def draw_lfc_thresholds(ax, thresholds: list[float], vertical: bool) -> None:
    """Dashed lines at +-each |log2FC| threshold of the calls table (deseq2.lfc_thresholds)."""
    line = ax.axvline if vertical else ax.axhline
    for i, threshold in enumerate(thresholds):
        for value in (-threshold, threshold):
            named = i == 0 and value > 0  # one legend entry for all the lines
            line(
                value,
                c="0.55",
                lw=0.6,
                ls="--",
                label=f"|log2FC| = {', '.join(f'{t:g}' for t in thresholds)}" if named else None,
            )


def pvalue_cutoff(tested: pd.DataFrame, alpha: float) -> float | None:
    """The largest p-value called at padj < alpha (BH's cut on the p-value scale), None if none."""
    called = tested.loc[tested["padj"] < alpha, "pvalue"]
    return float(called.max()) if len(called) else None


def repel_labels(ax, texts: list, x: np.ndarray, y: np.ndarray) -> None:
    """Move the gene labels apart, each with a thin line to its point (adjustText)."""
    if not texts:
        return
    ax.figure.canvas.draw()  # the constrained layout first: labels are moved in display space
    # a number of steps, not adjustText's default of 1 s, which depends on the load: the same figure
    # every run (it stops as soon as no two labels overlap)
    adjust_text(
        texts,
        x=x,
        y=y,
        ax=ax,
        iter_lim=REPEL_STEPS,
        arrowprops={"arrowstyle": "-", "color": "0.4", "lw": 0.5},
    )


def volcano_plot(
    table: pd.DataFrame, alpha: float, contrast: dict, thresholds: list[float] = (), n_labels: int = 12
):
    """-log10 p against the (shrunk, when there) log2 fold change, the top genes labelled."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    tested = table.dropna(subset=["pvalue"])
    column = plotted_lfc(tested)
    y = -np.log10(tested["pvalue"].clip(lower=1e-300))
    draw_calls(ax, tested[column], y, tested[column], tested["padj"], alpha)
    cutoff = pvalue_cutoff(tested, alpha)
    if cutoff is not None:
        ax.axhline(-np.log10(cutoff), c="0.3", lw=0.6, ls=":", label=f"padj = {alpha:g}")
    draw_lfc_thresholds(ax, list(thresholds), vertical=True)
    top = tested.head(n_labels)
    texts = [
        ax.text(row[column], y[i], row["gene_symbol"] or row["gene_id"], fontsize=7)
        for i, row in top.iterrows()
    ]
    ax.axvline(0, c="0.5", lw=0.5)
    label_axes(ax, lfc_label(contrast, column), "-log10 p-value", contrast)
    repel_labels(ax, texts, top[column].to_numpy(), y[top.index].to_numpy())
    return fig


def ma_plot(table: pd.DataFrame, alpha: float, contrast: dict, thresholds: list[float] = ()):
    """The (shrunk, when there) log2 fold change against the mean of normalised counts."""
    fig, ax = plt.subplots(figsize=(6.5, 5.5), layout="constrained")
    tested = table[table["baseMean"] > 0]
    column = plotted_lfc(tested)
    draw_calls(ax, np.log10(tested["baseMean"]), tested[column], tested[column], tested["padj"], alpha)
    ax.axhline(0, c="0.3", lw=0.6)
    draw_lfc_thresholds(ax, list(thresholds), vertical=False)
    label_axes(ax, "log10 mean of normalised counts", lfc_label(contrast, column), contrast)
    return fig


def label_axes(ax, xlabel: str, ylabel: str, contrast: dict) -> None:
    """Axis labels, the contrast as title, and the legend below the axes (never over a label)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{contrast['test']} vs {contrast['reference']}")
    ax.figure.legend(loc="outside lower center", ncols=3, fontsize=7, frameon=False, markerscale=2)


def lfc_scatter(primary: pd.DataFrame, model: pd.DataFrame, alpha: float, title: str):
    both = (
        primary.set_index("gene_id")[["log2FoldChange", "padj"]]
        .join(
            model.set_index("gene_id")[["log2FoldChange", "padj"]],
            lsuffix="_primary",
            rsuffix="_model",
            how="inner",
        )
        .dropna(subset=["log2FoldChange_primary", "log2FoldChange_model"])
    )
    in_primary = (both["padj_primary"] < alpha).to_numpy()
    in_model = (both["padj_model"] < alpha).to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5), layout="constrained")
    x, y = both["log2FoldChange_primary"].to_numpy(), both["log2FoldChange_model"].to_numpy()
    for mask, colour, label in (
        (~in_primary & ~in_model, "0.75", "neither"),
        (in_primary & in_model, "#7d3c98", "DEG in both"),
        (in_primary & ~in_model, "#2471a3", "DEG in primary only"),
        (~in_primary & in_model, "#c0392b", "DEG in this model only"),
    ):
        ax.scatter(x[mask], y[mask], s=5, c=colour, lw=0, label=f"{label} ({int(mask.sum())})")
    limit = float(np.nanmax(np.abs(np.r_[x, y, 0.1])))
    ax.plot([-limit, limit], [-limit, limit], c="0.4", lw=0.6, ls="--")
    ax.axhline(0, c="0.6", lw=0.4)
    ax.axvline(0, c="0.6", lw=0.4)
    ax.set_xlabel("log2 fold change, primary model")
    ax.set_ylabel("log2 fold change, sensitivity model")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False, loc="upper left", markerscale=2)
    return fig


def forest_plot(genes: pd.DataFrame, cohorts: list[str], contrast: dict):
    """One panel per gene of the meta-analysis table: each cohort's log2 fold change with its 95%
    interval, and the random-effects estimate (diamond) with I^2 in the title."""
    n = len(genes)
    columns = min(n, 4) or 1
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(3 * columns, 0.9 + 0.3 * (len(cohorts) + 2) * rows),
        squeeze=False,
        layout="constrained",
    )
    for ax, (_, gene) in zip(axes.flat, genes.iterrows()):
        lfc = np.array([gene[f"log2FoldChange:{c}"] for c in cohorts], dtype=float)
        half = 1.96 * np.array([gene[f"lfcSE:{c}"] for c in cohorts], dtype=float)
        y = np.arange(len(cohorts), 0, -1)
        ax.errorbar(lfc, y, xerr=half, fmt="s", ms=4, c="0.3", lw=1, capsize=2)
        mean, width = gene["log2FoldChange"], 1.96 * gene["lfcSE"]
        ax.fill(
            [mean - width, mean, mean + width, mean],
            [0, 0.25, 0, -0.25],
            c=UP_COLOUR if mean > 0 else DOWN_COLOUR,
        )
        ax.axvline(0, c="0.6", lw=0.5, ls="--")
        ax.set_yticks([*y, 0], [*cohorts, "meta"], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        ax.set_title(f"{gene['gene_symbol'] or gene['gene_id']}  (I² {gene['I2']:.0%})", fontsize=8)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    if not n:
        axes.flat[0].text(0.5, 0.5, "no gene to show", ha="center", va="center", fontsize=8)
    fig.supxlabel(
        f"log2 fold change, {contrast['test']} vs {contrast['reference']} (95% interval)", fontsize=8
    )
    return fig
