"""The enrichment's figures: the dot plots of GSEA and ORA, and a gene set's running score."""

import textwrap

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd

from trdpipe.enrichment.analysis import _short, running_score
from trdpipe.enrichment.terms import lead_fdr


def log_axis_ticks(ax, values: np.ndarray, which: str = "x") -> None:
    """A log axis with labelled ticks at 1, 2 and 5 per decade (at 1 alone over more than two
    decades), over a range of at least a factor 6.25 (2.5 squared, the widest gap between those
    ticks) around the values: at least two ticks are labelled even within one decade."""
    low, high = float(np.min(values)) / 1.15, float(np.max(values)) * 1.15
    widen = np.sqrt(max(6.25 / (high / low), 1.0))
    axis = ax.xaxis if which == "x" else ax.yaxis
    getattr(ax, f"set_{which}scale")("log")
    getattr(ax, f"set_{which}lim")(low / widen, high * widen)
    subs = (1.0,) if high / low > 100 else (1.0, 2.0, 5.0)
    axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def dotplot(table: pd.DataFrame, x: str, top: int, padj_cut: float, title: str, by: list[str]):
    """One panel per group (collection, or collection x direction): top terms by lead_fdr, then
    p-value. Each panel has its own colour scale, from 0 to its largest -log10 FDR: the panels'
    FDRs differ by orders of magnitude (a small curated collection against GO), and one shared
    scale left all but one panel in a single colour. Compare panels by the numbers in the tables."""
    fdr = lead_fdr(table)
    groups = (
        [
            (key, g.sort_values([fdr, "pvalue", "term"], kind="mergesort").head(top))
            for key, g in table.groupby(by, sort=True)
        ]
        if len(table)
        else []
    )
    if not groups:
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.text(0.5, 0.5, "no gene sets tested", ha="center", va="center")
        ax.axis("off")
        return fig
    heights = [max(len(g), 1) * 0.28 + 1.0 for _, g in groups]
    fig, axes = plt.subplots(
        len(groups),
        1,
        figsize=(9, sum(heights)),
        layout="constrained",
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    # a permutation FDR of 0 (no null score as extreme) is drawn at the smallest positive one
    floor = table.loc[table[fdr] > 0, fdr].min() if (table[fdr] > 0).any() else 1e-300
    for ax, (key, g) in zip(axes[:, 0], groups):
        g = g.iloc[::-1]
        labels = [
            f"{_short(str(n))} ({t})" if str(n) != str(t) else str(t) for t, n in zip(g["term"], g["name"])
        ]
        y = np.arange(len(g))
        sig = (g[fdr] < padj_cut).to_numpy()
        colour = -np.log10(g[fdr].clip(lower=floor))
        vmax = max(float(colour.max()), -np.log10(padj_cut))  # the cut is always on the scale
        sc = ax.scatter(
            g[x],
            y,
            s=20 + 180 * g["size"] / max(table["size"].max(), 1),
            c=colour,
            cmap="viridis",
            vmin=0,
            vmax=vmax,
            edgecolors=np.where(sig, "black", "none"),
        )
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_title(" / ".join(np.atleast_1d(key).astype(str)), fontsize=9)
        ax.set_xlabel(x)
        if x == "odds_ratio":
            log_axis_ticks(ax, g[x].to_numpy(dtype=float))
        else:
            ax.axvline(0, color="grey", lw=0.5)
        fig.colorbar(sc, ax=ax, label=f"-log10 {fdr}\n(this panel)", pad=0.01)
    fig.suptitle(
        f"{title} (dot size = set size; black edge = {fdr} < {padj_cut:g}; colour scale per panel)",
        fontsize=10,
    )
    return fig


TITLE_WIDTH = 75  # characters per line of a running-score title, which fits the figure's 6.5 inches


def running_score_title(row: pd.Series) -> str:
    """Collection, term and full name, then the statistics, each wrapped to TITLE_WIDTH."""
    name = f"{row['collection']} {row['term']}: {row['name']}"
    stats = (
        f"label permutations: NES {row['NES_perm']:.2f}, fdr {row['fdr_perm']:.2g}; "
        if pd.notna(row["fdr_perm"])
        else ""
    ) + f"gene permutations: NES {row['NES']:.2f}, padj {row['padj']:.2g}; {row['size']} genes"
    return "\n".join(textwrap.fill(line, TITLE_WIDTH) for line in (name, stats))


def running_score_figure(ranking: pd.Series, genes, row: pd.Series):
    ranking = ranking.sort_values(ascending=False, kind="mergesort")
    scores = running_score(ranking, genes)
    hits = np.flatnonzero(ranking.index.isin(list(genes)))
    fig, (ax1, ax2, ax3) = plt.subplots(
        3, 1, figsize=(6.5, 4.5), sharex=True, layout="tight", gridspec_kw={"height_ratios": [3, 0.6, 1.4]}
    )
    ax1.plot(scores, color="tab:green", lw=1.5)
    ax1.axhline(0, color="grey", lw=0.5)
    peak = int(np.argmax(np.abs(scores)))
    ax1.axvline(peak, color="tab:red", ls="--", lw=0.8)
    ax1.set_ylabel("running ES")
    ax1.set_title(running_score_title(row), fontsize=9)
    ax2.vlines(hits, 0, 1, color="black", lw=0.5)
    ax2.set_yticks([])
    ax3.fill_between(np.arange(len(ranking)), ranking.to_numpy(), color="grey", lw=0)
    ax3.set_ylabel("Wald stat")
    ax3.set_xlabel("gene rank")
    return fig


def mirna_target_figure(enrichment: pd.DataFrame, fdr: float, title: str):
    """Each called miRNA's log2 fold change against the median log2 fold change of its targets in
    the mRNA contrast; filled where its targets are enriched among the opposite mRNA calls
    (fdr_perm < fdr). Repressed targets put the points in the upper left and lower right."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    tested = enrichment.dropna(subset=["median_target_log2FoldChange"])
    called = tested["fdr_perm"] < fdr
    for mask, style, label in (
        (called, dict(color="#b2182b"), f"targets enriched opposite (FDR < {fdr:g})"),
        (~called, dict(facecolors="none", edgecolors="grey"), "not enriched"),
    ):
        ax.scatter(
            tested.loc[mask, "mirna_log2FoldChange"],
            tested.loc[mask, "median_target_log2FoldChange"],
            s=28,
            label=f"{label} ({int(mask.sum())})",
            **style,
        )
    for ax_line in (ax.axhline, ax.axvline):
        ax_line(0, color="black", lw=0.6)
    ax.set_xlabel("miRNA log2 fold change")
    ax.set_ylabel("median log2 fold change of its targets (mRNA)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
