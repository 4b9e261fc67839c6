"""Expression by genotype: one panel per tested gene x variant, the design's covariates regressed out."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

# panels per figure: the eQTL table's smallest p-values first
MAX_PANELS = 12


def eqtl_figure(panels: list[tuple[pd.Series, pd.DataFrame]]):
    """panels: (the eQTL table's row, trdpipe.genotypes.eqtl.adjusted_expression of it)."""
    n = max(len(panels), 1)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False, layout="constrained"
    )
    rng = np.random.default_rng(0)
    for ax, (row, values) in zip(axes.flat, panels, strict=False):
        labels = genotype_labels(row)
        groups = [values.loc[values["genotype"] == g, "residual"].to_numpy() for g in range(3)]
        ax.boxplot(groups, positions=range(3), widths=0.5, showfliers=False)
        for g, points in enumerate(groups):
            ax.scatter(g + rng.uniform(-0.15, 0.15, len(points)), points, s=8, alpha=0.5, color="tab:blue")
        ax.set_xticks(
            range(3), [f"{label}\n(n={len(points)})" for label, points in zip(labels, groups, strict=True)]
        )
        ax.set_title(
            f"{row['gene']} ~ {row['variant_id']}\nbeta {row['beta']:.2f}, p {row['pvalue']:.2g}", fontsize=9
        )
        ax.set_ylabel("VST, covariates regressed out", fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    if not panels:
        axes.flat[0].text(0.5, 0.5, "no candidate gene was tested", ha="center", va="center")
    return fig


def genotype_labels(row: pd.Series) -> list[str]:
    ref, alt = row["ref"], row["alt"]
    return [f"{ref}/{ref}", f"{ref}/{alt}", f"{alt}/{alt}"]
