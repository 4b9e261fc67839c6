"""Cell composition: per-sample blood cell-type scores from the VST data, by group and against the PCs.

Outputs (results/cells/): cell_scores.tsv (samples x cell types, measured counts included),
markers.tsv (markers found per type; types that cannot be estimated are listed there, not
dropped), score_pc_association.tsv, covariates.tsv and covariate_choice.tsv (what the
cell-adjusted model adds), and per contrast scores_by_group.tsv and scores_by_group.png.
"""

import logging

import anndata as ad
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
