"""Figures the report draws from existing result tables (no analysis): the top-gene heat map."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402


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


def annotation_codes(obs: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    levels = sorted(obs[column].astype(str).unique())
    return obs[column].astype(str).map({lev: i for i, lev in enumerate(levels)}).to_numpy(), levels


def heatmap_figure(zscores: pd.DataFrame, obs: pd.DataFrame, annotations: list[str], title: str):
    """Genes x samples z-scores with one colour bar per sample annotation above them."""
    n_genes = zscores.shape[0]
    height = 1.2 + 0.16 * n_genes + 0.25 * len(annotations)
    fig, axes = plt.subplots(
        len(annotations) + 1, 1, figsize=(8, height), sharex=True,
        gridspec_kw={"height_ratios": [0.35] * len(annotations) + [0.16 * n_genes]},
    )
    # One run of colours across all annotations, so 'group: TRD' and 'site: siteA' never share one.
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Set3").colors)
    legend_handles, used = [], 0
    for ax, column in zip(axes[:-1], annotations):
        codes, levels = annotation_codes(obs, column)
        colours = [palette[(used + i) % len(palette)] for i in range(len(levels))]
        used += len(levels)
        ax.imshow(codes[None, :], aspect="auto", interpolation="nearest", cmap=ListedColormap(colours),
                  vmin=-0.5, vmax=len(levels) - 0.5)
        ax.set_yticks([0], [column])
        ax.tick_params(length=0)
        legend_handles += [plt.Rectangle((0, 0), 1, 1, color=colour, label=f"{column}: {level}")
                           for colour, level in zip(colours, levels)]
    limit = max(2.0, float(np.nanmax(np.abs(zscores.to_numpy()))))
    image = axes[-1].imshow(zscores.to_numpy(), aspect="auto", interpolation="nearest",
                            cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[-1].set_yticks(range(n_genes), zscores.index, fontsize=7)
    axes[-1].set_xticks([])
    axes[-1].set_xlabel(f"{zscores.shape[1]} samples")
    axes[0].set_title(title)
    fig.colorbar(image, ax=axes, shrink=min(1.0, 6 / height), label="z-score of VST expression")
    axes[-1].legend(handles=legend_handles, loc="upper left", bbox_to_anchor=(0.0, -0.03), ncol=4,
                    fontsize=7, frameon=False)
    return fig


def top_gene_heatmap(table: pd.DataFrame, vst: pd.DataFrame, obs: pd.DataFrame, n_genes: int,
                     annotations: list[str], title: str):
    """Heat map of the n most significant genes: VST values (samples x genes) z-scored per gene.

    Genes are labelled with their symbol (the ID when there is none) and ordered by
    direction (higher in the test group first), then p-value.
    """
    top = top_tested_genes(table, n_genes)
    top = top[top["gene_id"].isin(vst.columns)]
    top = top.assign(up=top["log2FoldChange"] > 0).sort_values(["up", "pvalue"], ascending=[False, True],
                                                                kind="mergesort")
    order = sample_order(obs, annotations)
    values = vst.loc[order, top["gene_id"]].to_numpy().T
    labels = top["gene_symbol"].fillna("").where(top["gene_symbol"].fillna("") != "", top["gene_id"])
    zscores = pd.DataFrame(zscore_rows(values), index=labels.to_numpy(), columns=order)
    return heatmap_figure(zscores, obs.loc[order], annotations, title)
