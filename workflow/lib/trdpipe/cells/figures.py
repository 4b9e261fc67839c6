"""The cell composition's figure: each cell-type score by group, per contrast."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def scores_figure(scores: pd.DataFrame, obs: pd.DataFrame, contrast: dict, by_group: pd.DataFrame):
    """One panel per estimable score: the two groups as boxes with the samples on top."""
    shown = [c for c in scores.columns if scores[c].notna().any()]
    ncols = min(4, len(shown))
    nrows = int(np.ceil(len(shown) / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.0 * ncols, 2.6 * nrows), squeeze=False, layout="constrained"
    )
    labels = obs.loc[scores.index, contrast["variable"]].astype(str)
    levels = [contrast["reference"], contrast["test"]]
    stats = by_group.set_index("cell_type")
    rng = np.random.default_rng(0)  # jitter only
    for ax, cell_type in zip(axes.flat, shown):
        groups = [scores.loc[labels == level, cell_type].dropna().to_numpy() for level in levels]
        ax.boxplot(groups, tick_labels=levels, widths=0.5, showfliers=False)
        for i, values in enumerate(groups, start=1):
            ax.scatter(
                i + rng.uniform(-0.12, 0.12, len(values)),
                values,
                s=8,
                alpha=0.6,
                c="#c0392b" if i == 2 else "#2471a3",
                lw=0,
            )
        row = stats.loc[cell_type]
        ax.set_title(f"{cell_type}\ng {row['hedges_g']:.2f}, padj {row['padj']:.2g}", fontsize=9)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle(
        f"Cell scores, {contrast['test']} vs {contrast['reference']} (Hedges' g, Welch t-test BH)",
        fontsize=10,
    )
    return fig
