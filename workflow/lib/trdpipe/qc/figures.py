"""The QC rule's figures: the PCA and its scree plot, the PC-covariate heat map, the sample-distance
heat map with its annotation bars, the bar charts of a metric, and the sex check."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform
from sklearn.metrics.pairwise import euclidean_distances

from trdpipe.common import format_list
from trdpipe.qc.metrics import (
    is_continuous,
    mad_limits,
    normalise_sex_labels,
    sex_call_basis,
    sheet_covariates,
)

# flagged samples named beside a metric's distribution, the furthest first (the rest are counted)
MAX_NAMED = 12


def annotation_codes(obs: pd.DataFrame, column: str) -> tuple[np.ndarray, list[str]]:
    levels = sorted(obs[column].astype(str).unique())
    return obs[column].astype(str).map({lev: i for i, lev in enumerate(levels)}).to_numpy(), levels


def annotation_bars(axes, obs: pd.DataFrame, annotations: list[str]) -> list:
    """One colour bar per sample annotation (obs in the drawn order), one axis each; returns the
    legend handles. One run of colours across all annotations, so 'group: TRD' and 'site: siteA'
    never share one."""
    palette = list(plt.get_cmap("tab10").colors) + list(plt.get_cmap("Set3").colors)
    legend_handles, used = [], 0
    for ax, column in zip(axes, annotations):
        if is_continuous(obs[column]):
            legend_handles.append(continuous_bar(ax, obs[column]))
            continue
        codes, levels = annotation_codes(obs, column)
        colours = [palette[(used + i) % len(palette)] for i in range(len(levels))]
        used += len(levels)
        ax.imshow(
            codes[None, :],
            aspect="auto",
            interpolation="nearest",
            cmap=ListedColormap(colours),
            vmin=-0.5,
            vmax=len(levels) - 0.5,
        )
        ax.set_yticks([0], [column])
        ax.set_xticks([])
        ax.tick_params(length=0)
        legend_handles += [
            plt.Rectangle((0, 0), 1, 1, color=colour, label=f"{column}: {level}")
            for colour, level in zip(colours, levels)
        ]
    return legend_handles


def continuous_bar(ax, values: pd.Series):
    """A continuous annotation (age, say) as a grey ramp, light at its minimum and dark at its
    maximum (a colour per value would need a legend entry per value); returns its legend handle."""
    ax.imshow(
        values.to_numpy(dtype=np.float64)[None, :], aspect="auto", interpolation="nearest", cmap="Greys"
    )
    ax.set_yticks([0], [values.name])
    ax.set_xticks([])
    ax.tick_params(length=0)
    low, high = values.min(), values.max()
    return plt.Rectangle(
        (0, 0), 1, 1, color="0.5", label=f"{values.name}: {low:.3g} (light) to {high:.3g} (dark)"
    )


def colour_covariates(obs: pd.DataFrame, max_levels: int = 12) -> list[str]:
    """Categorical columns worth colouring a PCA by (2 to max_levels levels)."""
    covariates = sheet_covariates(obs)
    return [c for c in covariates if not is_continuous(obs[c]) and 2 <= obs[c].nunique() <= max_levels]


def pca_plot(
    scores: np.ndarray, explained: np.ndarray, obs: pd.DataFrame, covariates: list[str], flagged: pd.Series
):
    """PC1 vs PC2, one panel per covariate; the QC-flagged samples ringed in black."""
    fig, axes = plt.subplots(
        1, len(covariates), figsize=(4.6 * len(covariates), 4.2), squeeze=False, layout="constrained"
    )
    marked = flagged.to_numpy(dtype=bool)
    for ax, covariate in zip(axes[0], covariates):
        labels = obs[covariate].astype(str)
        for level in sorted(labels.unique()):
            hit = (labels == level).to_numpy()
            ax.scatter(scores[hit, 0], scores[hit, 1], s=18, label=level)
        if marked.any():
            ax.scatter(
                scores[marked, 0],
                scores[marked, 1],
                s=70,
                facecolors="none",
                edgecolors="black",
                lw=1.1,
                label=f"QC-flagged ({marked.sum()})",
            )
        ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
        ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
        ax.set_title(f"VST PCA by {covariate}")
        ax.legend(fontsize=8, frameon=False)
    return fig


def scree_plot(explained: np.ndarray, features: str = "genes"):
    fig, ax = plt.subplots(figsize=(5, 3.8), layout="constrained")
    pcs = np.arange(1, len(explained) + 1)
    ax.bar(pcs, explained * 100, color="#5d6d7e")
    ax.plot(pcs, np.cumsum(explained) * 100, "o-", c="#c0392b", ms=3, label="cumulative")
    ax.set_xticks(pcs)
    ax.set_xlabel("principal component")
    ax.set_ylabel(f"% variance (top variable {features})")
    ax.legend(frameon=False, fontsize=8)
    return fig


def association_heatmap(association: pd.DataFrame, alpha: float = 0.05):
    """R squared of each (covariate, PC) pair; '*' marks p < alpha."""
    r2 = association.pivot(index="covariate", columns="pc", values="r_squared")
    pvalues = association.pivot(index="covariate", columns="pc", values="pvalue")
    order = sorted(r2.columns, key=lambda pc: int(pc[2:]))
    r2, pvalues = r2[order], pvalues[order]
    fig, ax = plt.subplots(figsize=(0.55 * len(order) + 2.5, 0.45 * len(r2) + 1.5), layout="constrained")
    image = ax.imshow(r2.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), p in np.ndenumerate(pvalues.to_numpy()):
        if p < alpha:
            ax.text(j, i, "*", ha="center", va="center", color="w" if r2.iat[i, j] < 0.6 else "k")
    ax.set_xticks(range(len(order)), order, rotation=90)
    ax.set_yticks(range(len(r2)), r2.index)
    fig.colorbar(image, ax=ax, label=f"R² (* p < {alpha:g})")
    ax.set_title("PC-covariate association")
    return fig


def sample_clustering(vst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean sample distances of the VST data (square) and their average-linkage tree."""
    # BLAS-based distances: scipy's pdist loops over pairs (minutes at thousands of samples)
    square = euclidean_distances(vst)
    np.fill_diagonal(square, 0.0)
    return square, hierarchy.linkage(squareform(square, checks=False), method="average")


def distance_colour_limits(square: np.ndarray, mad_threshold: float) -> tuple[float, float]:
    """The smallest between-sample distance, and the largest one or, when that is beyond it, the
    QC rule's upper MAD limit of the distances (median + mad_threshold robust SD): an outlying
    sample, its whole row and column far from the rest, then no longer flattens the others'
    colours. A percentile would not do: one outlier of n samples holds 2/n of the distances."""
    between = square[~np.eye(len(square), dtype=bool)]
    return float(between.min()), float(min(between.max(), mad_limits(between, mad_threshold)[1]))


def distance_heatmap(
    vst: np.ndarray, obs: pd.DataFrame, annotations: list[str], mad_threshold: float, max_labels: int = 100
):
    """Sample distances ordered by average-linkage clustering: the dendrogram above, one bar per
    annotation (group, site, sex, ...), the matrix with colours clipped (distance_colour_limits);
    samples are named up to max_labels samples (qc.max_samples_labelled)."""
    square, tree = sample_clustering(vst)
    order = hierarchy.leaves_list(tree)
    names = obs.index[order]
    size = min(4 + 0.12 * len(names), 16)
    fig = plt.figure(figsize=(size + 1.5, size * 0.9 + 1.2 + 0.25 * len(annotations)))
    grid = fig.add_gridspec(
        2 + len(annotations),
        2,
        width_ratios=[1, 0.03],
        wspace=0.03,
        hspace=0.05,
        height_ratios=[size * 0.15] + [0.25] * len(annotations) + [size * 0.9],
    )
    tree_ax = fig.add_subplot(grid[0, 0])
    hierarchy.dendrogram(tree, ax=tree_ax, no_labels=True, color_threshold=0, above_threshold_color="0.3")
    tree_ax.axis("off")
    tree_ax.set_title("Sample distances (average-linkage hierarchical clustering)")
    heat_ax = fig.add_subplot(grid[-1, 0])
    bar_axes = [fig.add_subplot(grid[1 + i, 0]) for i in range(len(annotations))]  # imshow aligns them
    handles = annotation_bars(bar_axes, obs.iloc[order], annotations)
    vmin, vmax = distance_colour_limits(square, mad_threshold)
    image = heat_ax.imshow(
        square[np.ix_(order, order)],
        cmap="magma_r",
        vmin=vmin,
        vmax=vmax,
        aspect="auto",
        interpolation="nearest",
    )
    if len(names) <= max_labels:
        heat_ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        heat_ax.set_yticks(range(len(names)), names, fontsize=6)
    else:
        heat_ax.set_xticks([])
        heat_ax.set_yticks([])
    clipped = vmax < square.max()
    fig.colorbar(
        image,
        cax=fig.add_subplot(grid[-1, 1]),
        extend="max" if clipped else "neither",
        label="Euclidean distance (VST)"
        + (f"; darkest from median + {mad_threshold:g} MAD" if clipped else ""),
    )
    if handles:
        tree_ax.legend(
            handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False
        )
    return fig


def flagged_by(flags: pd.Series, flag: str) -> pd.Series:
    """True for the samples whose flags include this check (the text before a reason's ':')."""
    return flags.fillna("").map(
        lambda text: any(reason.split(":", 1)[0] == flag for reason in text.split("; "))
    )


def metric_bar_chart(
    values: pd.Series, own: pd.Series, other: pd.Series, limit: float | None, ylabel: str, flag: str
):
    """One bar per sample: red when this metric's check (`flag`) flagged it, a black triangle above
    the bar when another check did; the MAD limit as a dashed line."""
    fig, ax = plt.subplots(figsize=(min(3 + 0.18 * len(values), 24), 3.8), layout="constrained")
    x = np.arange(len(values))
    ax.bar(x, values.to_numpy(), color=np.where(own.to_numpy(dtype=bool), "#c0392b", "#85929e"))
    others = other.to_numpy(dtype=bool)
    ax.scatter(x[others], values.to_numpy()[others] * 1.04, marker="v", s=22, c="black", zorder=3)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color="#c0392b", label=f"flagged: {flag} ({int(own.sum())})"),
        plt.Line2D([], [], marker="v", ls="", c="black", label=f"flagged by another check ({others.sum()})"),
    ]
    if limit is not None:
        handles.append(ax.axhline(limit, ls="--", c="k", lw=0.8, label="QC limit"))
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xticks(x, values.index, rotation=90, fontsize=6)
    ax.set_ylabel(ylabel)
    ax.set_title(ylabel)
    return fig


def metric_distribution(
    values: pd.Series, own: pd.Series, other: pd.Series, limit: float | None, xlabel: str, flag: str
):
    """A metric's histogram, for a cohort too large for a bar per sample: the samples this check
    flagged marked below the axis in red and named (the furthest from the median first), those
    another check flagged marked in black; the MAD limit as a dashed line."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8), layout="constrained")
    ax.hist(values.to_numpy(dtype=np.float64), bins=60, color="#85929e")
    own, others = own.to_numpy(dtype=bool), other.to_numpy(dtype=bool)
    for hit, colour in ((others, "black"), (own, "#c0392b")):
        ax.plot(values.to_numpy()[hit], np.zeros(hit.sum()), "|", ms=14, mew=1.2, c=colour, clip_on=False)
    handles = [
        plt.Line2D([], [], marker="|", ls="", c="#c0392b", label=f"flagged: {flag} ({own.sum()})"),
        plt.Line2D([], [], marker="|", ls="", c="black", label=f"flagged by another check ({others.sum()})"),
    ]
    if limit is not None:
        handles.append(ax.axvline(limit, ls="--", c="k", lw=0.8, label="QC limit"))
    named = values[own].sub(values.median()).abs().sort_values(ascending=False).index
    if len(named):
        handles.append(
            plt.Line2D([], [], ls="", label="flagged here: " + format_list(list(named), MAX_NAMED))
        )
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(f"{xlabel}: {len(values)} samples")
    return fig


def metric_chart(values, own, other, limit, label, flag, max_labelled: int):
    """A bar per sample up to `max_labelled` samples (qc.max_samples_labelled), else the distribution."""
    draw = metric_bar_chart if len(values) <= max_labelled else metric_distribution
    return draw(values, own, other, limit, label, flag)


def sex_check_plot(scores: pd.DataFrame, recorded: pd.Series, flags: pd.Series, genes: dict[str, list[str]]):
    """XIST score against Y-gene score, coloured by recorded sex; sex flags labelled; the title
    says which genes the call used (one side only when the other's genes are not in the matrix)."""
    fig, ax = plt.subplots(figsize=(5, 4.5), layout="constrained")
    # the legend's words: 'recorded female', 'recorded male', 'sex not recorded'
    legend = ("recorded " + normalise_sex_labels(recorded)).fillna("sex not recorded")
    for label in sorted(legend.unique()):
        hit = legend == label
        ax.scatter(scores.loc[hit, "xist_score"], scores.loc[hit, "y_score"], s=20, label=label)
    for sample in flags.index[flags.str.contains("sex_", regex=False)]:
        ax.scatter(
            scores.at[sample, "xist_score"],
            scores.at[sample, "y_score"],
            s=90,
            facecolors="none",
            edgecolors="#c0392b",
            lw=1.2,
        )
        ax.annotate(
            sample,
            (scores.at[sample, "xist_score"], scores.at[sample, "y_score"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
            color="#c0392b",
        )
    ax.set_xlabel(f"female score: mean log2(CPM+1) of {format_list(genes['female'], 3) or 'no gene present'}")
    ax.set_ylabel(f"male score: mean log2(CPM+1) of {format_list(genes['male'], 3) or 'no gene present'}")
    ax.set_title("Sex check: " + sex_call_basis(genes), fontsize=9, wrap=True)
    ax.legend(fontsize=8, frameon=False)
    return fig


def not_applicable_plot(what: str, why: str):
    """A figure that says why a check was not run (the sex check of a small-RNA assay), so that
    every assay's QC has the same files."""
    fig, ax = plt.subplots(figsize=(5, 1.5), layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, f"{what}: not run\n{why}", ha="center", va="center", fontsize=10, wrap=True)
    return fig
