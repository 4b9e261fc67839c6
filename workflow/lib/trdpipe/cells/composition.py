"""Cell composition: per-sample blood cell-type scores from the VST data, by group and against the PCs.

Outputs (results/cells/): cell_scores.tsv (samples x cell types, measured counts included),
markers.tsv (markers found per type; types that cannot be estimated are listed there, not
dropped), score_pc_association.tsv, covariates.tsv and covariate_choice.tsv (what the
cell-adjusted model adds), and per contrast scores_by_group.tsv and scores_by_group.png.
"""

import logging

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trdpipe.cells.scores import (
    cell_covariates,
    cell_scores,
    check_estimable,
    covariate_cap,
    expression_by_symbol,
    gene_table,
    load_markers,
    marker_files,
    marker_table,
    measured_counts,
)
from trdpipe.checks.inputs import design_rank
from trdpipe.common import format_list
from trdpipe.qc.metrics import pc_covariate_association, top_variable_pca

log = logging.getLogger("trd")


def composition(vst: ad.AnnData, settings: dict, seed: int, design: str) -> dict:
    """Marker table, scores (estimated and measured) and the cell covariates of one cohort; their
    number capped for the primary `design` on the cohort's samples (the model the cell-adjusted
    one extends)."""
    markers = load_markers(settings["resource"], settings.get("markers", []), gene_table(vst.var))
    expr = expression_by_symbol(vst.X, vst.obs_names, vst.var["gene_symbol"].fillna(""))
    table = marker_table(markers, expr.columns, settings["min_markers"])
    # ingest checked the markers on all genes; the expression filter may have removed some
    check_estimable(
        table,
        f"{format_list(marker_files(settings))} (config cells.resource, cells.markers) on "
        f"the {vst.n_vars} genes kept by the filter",
        settings["min_markers"],
    )
    for row in table[~table["estimable"]].itertuples():
        log.warning("cell type %s %s", row.cell_type, row.note)
    scores = cell_scores(expr, table, settings["method"], seed)
    measured = measured_counts(vst.obs, list(settings.get("measured", [])), "sample sheet")
    scores = scores.join(measured)
    cap = covariate_cap(vst.n_obs, design_rank(vst.obs, design), settings["max_covariates"])
    covariates, choice = cell_covariates(scores, settings["max_vif"], settings["pc_variance"], cap)
    log.info("cell covariates: %s (%s)", choice["covariates"], choice["reason"])
    return {"markers": table, "scores": scores, "covariates": covariates, "choice": choice}


def score_pc_table(vst: ad.AnnData, scores: pd.DataFrame, n_top_genes: int, n_pcs: int) -> pd.DataFrame:
    """Association of each score with the top PCs of the VST data (as QC tests the sheet's columns)."""
    pcs, explained = top_variable_pca(np.asarray(vst.X, dtype=float), n_top_genes, n_pcs)
    table = pc_covariate_association(pcs, explained, scores.dropna(axis=1, how="all"))
    return table.rename(columns={"covariate": "cell_type"})


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
