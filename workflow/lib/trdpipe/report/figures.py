"""Figures the report draws from existing result tables (no analysis): the top-gene heat map, the
interactive volcano (Plotly) and the normalised counts of single genes."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trdpipe.enrichment.figures import log_axis_ticks
from trdpipe.qc.figures import annotation_bars


def top_tested_genes(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """The n genes with the smallest p-values (ties keep the table's order)."""
    return table.dropna(subset=["pvalue"]).sort_values("pvalue", kind="mergesort").head(n)


def zscore_rows(values: np.ndarray) -> np.ndarray:
    """Each row centred and scaled to unit SD; constant rows become 0."""
    sd = values.std(axis=1, ddof=1, keepdims=True)
    return (values - values.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)


def sample_order(obs: pd.DataFrame, annotations: list[str]) -> pd.Index:
    """Samples sorted by the annotation columns (group first), so blocks are visible."""
    return obs.sort_values(annotations, kind="mergesort").index


def drawn_samples(obs: pd.DataFrame, max_samples: int, seed: int) -> pd.DataFrame:
    """Every sample, or `max_samples` of them drawn at random (report.max_samples_drawn): a heat map
    column per sample does not fit thousands of samples."""
    if len(obs) <= max_samples:
        return obs
    drawn = np.random.default_rng(seed).choice(len(obs), size=max_samples, replace=False)
    return obs.iloc[np.sort(drawn)]


def heatmap_figure(zscores: pd.DataFrame, obs: pd.DataFrame, annotations: list[str], title: str):
    """Genes x samples z-scores with one colour bar per sample annotation above them."""
    n_genes = zscores.shape[0]
    height = 1.2 + 0.16 * n_genes + 0.25 * len(annotations)
    fig, axes = plt.subplots(
        len(annotations) + 1,
        1,
        figsize=(8, height),
        sharex=True,
        gridspec_kw={"height_ratios": [0.35] * len(annotations) + [0.16 * n_genes]},
    )
    legend_handles = annotation_bars(axes[:-1], obs, annotations)
    limit = max(2.0, float(np.nanmax(np.abs(zscores.to_numpy()))))
    image = axes[-1].imshow(
        zscores.to_numpy(), aspect="auto", interpolation="nearest", cmap="RdBu_r", vmin=-limit, vmax=limit
    )
    axes[-1].set_yticks(range(n_genes), zscores.index, fontsize=7)
    axes[-1].set_xticks([])
    axes[-1].set_xlabel(f"{zscores.shape[1]} samples")
    axes[0].set_title(title)
    fig.colorbar(image, ax=axes, shrink=min(1.0, 6 / height), label="z-score of VST expression")
    axes[-1].legend(
        handles=legend_handles,
        loc="upper left",
        bbox_to_anchor=(0.0, -0.03),
        ncol=4,
        fontsize=7,
        frameon=False,
    )
    return fig


def top_gene_heatmap(
    table: pd.DataFrame,
    vst: pd.DataFrame,
    obs: pd.DataFrame,
    n_genes: int,
    annotations: list[str],
    title: str,
):
    """Heat map of the n most significant genes: VST values (samples x genes) z-scored per gene.

    Genes are labelled with their symbol (the ID when there is none) and ordered by
    direction (higher in the test group first), then p-value.
    """
    top = top_tested_genes(table, n_genes)
    top = top[top["gene_id"].isin(vst.columns)]
    top = top.assign(up=top["log2FoldChange"] > 0).sort_values(
        ["up", "pvalue"], ascending=[False, True], kind="mergesort"
    )
    order = sample_order(obs, annotations)
    values = vst.loc[order, top["gene_id"]].to_numpy().T
    labels = top["gene_symbol"].fillna("").where(top["gene_symbol"].fillna("") != "", top["gene_id"])
    zscores = pd.DataFrame(zscore_rows(values), index=labels.to_numpy(), columns=order)
    return heatmap_figure(zscores, obs.loc[order], annotations, title)


# ---------------------------------------------------------------- interactive volcano

# The static volcano's colours (trdpipe.model.figures.volcano_plot): red up, blue down, grey not significant.
VOLCANO_COLOURS = {"not significant": "#b3b3b3", "up": "#c0392b", "down": "#2471a3"}
MIN_PVALUE = 1e-300  # p-values of 0 are drawn at this height


def volcano_x_column(table: pd.DataFrame) -> str:
    """The shrunk log2 fold change when the table has it (lfc_shrink), else the MLE one."""
    return "log2FoldChange_shrunk" if "log2FoldChange_shrunk" in table else "log2FoldChange"


def volcano_points(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """One row per tested gene (a p-value): gene_id, label (symbol, else ID), x, y = -log10 p,
    padj and call; the call is the DE table's (padj < alpha, sign of the unshrunk log2FoldChange)."""
    tested = table.dropna(subset=["pvalue", volcano_x_column(table)])
    significant = (tested["padj"] < alpha).to_numpy()
    lfc = tested["log2FoldChange"].to_numpy()
    symbols = tested["gene_symbol"].fillna("").astype(str)
    return pd.DataFrame(
        {
            "gene_id": tested["gene_id"].to_numpy(),
            "label": symbols.where(symbols != "", tested["gene_id"]).to_numpy(),
            "x": tested[volcano_x_column(table)].to_numpy(dtype=float),
            "y": -np.log10(tested["pvalue"].clip(lower=MIN_PVALUE).to_numpy(dtype=float)),
            "padj": tested["padj"].to_numpy(dtype=float),
            "call": np.select(
                [significant & (lfc > 0), significant & (lfc < 0)], ["up", "down"], "not significant"
            ),
        }
    )


def significance_height(points: pd.DataFrame) -> float | None:
    """-log10 of the largest p-value called (BH makes the calls a p-value cut), None without calls."""
    called = points.loc[points["call"] != "not significant", "y"]
    return float(called.min()) if len(called) else None


def rounded(values: pd.Series, decimals: int) -> list[float]:
    """Plain JSON numbers with few digits: the page carries one of each per tested gene."""
    return [round(float(v), decimals) for v in values]


def significant_digits(values: pd.Series, digits: int) -> list[float | None]:
    return [None if np.isnan(v) else float(f"{v:.{digits}g}") for v in values.to_numpy(dtype=float)]


def volcano_figure(points: pd.DataFrame, alpha: float, lfc_thresholds: list[float], title: str, xlabel: str):
    """Plotly volcano: one WebGL trace per call (rounded coordinates keep the page small), the
    padj cut and the |log2FC| thresholds as lines, and an empty last trace that the page's
    search box fills with the gene it finds (workflow/report/volcano.js)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for call, colour in VOLCANO_COLOURS.items():
        hit = points[points["call"] == call]
        name = call if call == "not significant" else f"{call} (padj < {alpha:g})"
        fig.add_trace(
            go.Scattergl(
                x=rounded(hit["x"], 3),
                y=rounded(hit["y"], 3),
                customdata=significant_digits(hit["padj"], 3),
                text=hit["label"].tolist(),
                meta=call,
                mode="markers",
                name=f"{name}: {len(hit)}",
                marker={"color": colour, "size": 4},
                hovertemplate="<b>%{text}</b><br>log2FC %{x:.3f}<br>-log10 p %{y:.2f}<br>"
                "padj %{customdata:.3g}<extra></extra>",
            )
        )
    fig.add_trace(
        go.Scattergl(
            x=[],
            y=[],
            text=[],
            mode="markers+text",
            name="searched gene",
            textposition="top center",
            hoverinfo="skip",
            showlegend=False,
            marker={"size": 14, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
        )
    )
    height = significance_height(points)
    if height is not None:
        fig.add_hline(
            y=height,
            line={"dash": "dash", "color": "grey", "width": 1},
            annotation_text=f"padj = {alpha:g}",
            annotation_position="top left",
        )
    fig.add_vline(x=0, line={"color": "grey", "width": 0.5})
    for threshold in lfc_thresholds:
        for side in (-threshold, threshold):
            fig.add_vline(x=side, line={"dash": "dot", "color": "grey", "width": 1})
    fig.update_layout(
        template="none",
        title=title,
        height=560,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        xaxis_title=xlabel,
        yaxis_title="-log10 p-value",
        hovermode="closest",
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def volcano_html(fig, div_id: str) -> str:
    """The figure as a <div> and the script that draws it; Plotly's library is on the page once."""
    return fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={"displaylogo": False, "responsive": True},
    )


def plotly_library() -> str:
    """plotly.min.js as shipped in the plotly package (offline: nothing is fetched)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


# ---------------------------------------------------------------- per-gene counts

PSEUDOCOUNT = 0.5  # as DESeq2's plotCounts: zeros are drawn on the log axis


def normalised_counts(adata, design: str, settings: dict, contrast: dict) -> pd.DataFrame:
    """Counts divided by the size factors of the contrast's DE model (samples x genes): the
    dataset the deseq2 rule fits (trdpipe.model.engines.pydeseq2.make_dataset), with its size_factors_fit_type."""
    from trdpipe.model.engines.pydeseq2 import make_dataset

    dds = make_dataset(adata, design, settings, 1, contrast)
    dds.fit_size_factors()
    return pd.DataFrame(
        np.asarray(dds.layers["normed_counts"]), index=adata.obs_names, columns=adata.var_names
    )


def group_levels(obs: pd.DataFrame, contrast: dict) -> list[str]:
    """The compared variable's levels, reference and test first (then any other levels)."""
    others = sorted(set(obs[contrast["variable"]].astype(str)) - {contrast["reference"], contrast["test"]})
    return [contrast["reference"], contrast["test"], *others]


def gene_count_values(
    normalised: pd.DataFrame, obs: pd.DataFrame, gene_ids: list[str], variable: str
) -> pd.DataFrame:
    """Long table of the genes' normalised counts, gene by gene in the given order: gene_id,
    sample, level (of the compared variable), count."""
    long = (
        normalised.loc[:, gene_ids]
        .rename_axis(index="sample", columns="gene_id")
        .melt(ignore_index=False, value_name="count")
        .reset_index()
    )
    long["level"] = obs.loc[long["sample"], variable].astype(str).to_numpy()
    return long[["gene_id", "sample", "level", "count"]]


def gene_count_figure(
    values: pd.DataFrame, levels: list[str], titles: dict[str, str], title: str, seed: int = 0, ncols: int = 6
):
    """One panel per gene (gene_count_values' order, titled by `titles` of its gene_id): box and
    jittered points of normalised count + 0.5 per level, on a log axis."""
    genes = list(dict.fromkeys(values["gene_id"]))
    nrows = -(-len(genes) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(2.1 * ncols, 2.3 * nrows + 0.5), squeeze=False, layout="constrained"
    )
    rng = np.random.default_rng(seed)
    colours = plt.get_cmap("tab10").colors
    for ax, gene_id in zip(axes.flat, genes):
        gene = values[values["gene_id"] == gene_id]
        by_level = [gene.loc[gene["level"] == level, "count"].to_numpy() + PSEUDOCOUNT for level in levels]
        ax.boxplot(
            by_level,
            positions=range(len(levels)),
            widths=0.6,
            showfliers=False,
            medianprops={"color": "black"},
        )
        for i, y in enumerate(by_level):
            ax.scatter(
                i + rng.uniform(-0.18, 0.18, len(y)),
                y,
                s=8,
                color=colours[i % len(colours)],
                alpha=0.7,
                lw=0,
                zorder=3,
            )
        log_axis_ticks(ax, np.concatenate(by_level), which="y")
        ax.set_xticks(range(len(levels)), levels, fontsize=8)
        ax.set_title(titles.get(gene_id, gene_id), fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.flat[len(genes) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("normalised count + 0.5", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig
