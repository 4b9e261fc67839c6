"""The sensitivity rule's figure: log2 fold changes of the primary model against one sensitivity model."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


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
