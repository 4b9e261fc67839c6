"""Filter: drop samples excluded by QC, then genes with too few counts (edgeR filterByExpr rule).

Genes are filtered per contrast, with that contrast's own smallest group, so that a contrast's
results do not depend on which other contrasts are configured. The cohort written keeps every
gene that some contrast keeps (the blind VST and what follows it use them all) and says in
var column ``expressed:{contrast}`` which genes each contrast keeps; ``contrast_cohort``
gives the data a contrast is fitted on.
"""

import logging

import anndata as ad
import numpy as np
import pandas as pd

from trdpipe.checks.inputs import check_full_rank, check_group_sizes, check_prediction_inputs
from trdpipe.common import InputError, format_list

log = logging.getLogger("trd")


def min_group_size(obs: pd.DataFrame, contrast: dict) -> int:
    """Size of the smaller of the two groups a contrast compares (edgeR uses the smallest group)."""
    levels = obs[contrast["variable"]].astype(str).value_counts()
    return min(int(levels.get(contrast["test"], 0)), int(levels.get(contrast["reference"], 0)))


def expressed_column(contrast_name: str) -> str:
    """The var column of the filtered cohort marking the genes a contrast keeps."""
    return f"expressed:{contrast_name}"


def contrast_cohort(adata: ad.AnnData, contrast_name: str) -> ad.AnnData:
    """The filtered cohort (results/filter/cohort.h5ad) restricted to what one contrast is fitted on.

    Every sample that QC kept, and the genes that pass the expression filter with this
    contrast's own smallest group (var column ``expressed:{contrast_name}``). Every model of
    a contrast (DESeq2, its calibration, its sensitivity models) starts from this, so its
    results do not change when other contrasts are added to the config.
    """
    column = expressed_column(contrast_name)
    if column not in adata.var.columns:
        raise KeyError(
            f"the filtered cohort has no column '{column}' in var: contrast "
            f"'{contrast_name}' was not configured when the filter rule ran"
        )
    return adata[:, adata.var[column].to_numpy(dtype=bool)].copy()


def expressed_genes(
    counts: np.ndarray,
    group_size: int,
    min_count: float = 10,
    min_total_count: float = 15,
    large_n: int = 10,
    min_prop: float = 0.7,
) -> np.ndarray:
    """Boolean mask of genes kept, as edgeR::filterByExpr computes it.

    A gene is kept when its CPM reaches min_count / median library size (in
    millions) in at least `n` samples, n being the smallest group size (for
    large groups: large_n + (size - large_n) * min_prop), and its total count
    reaches min_total_count. `counts` is samples x genes.
    """
    library_sizes = counts.sum(axis=1)
    n = group_size if group_size <= large_n else large_n + (group_size - large_n) * min_prop
    cpm_cutoff = min_count / np.median(library_sizes) * 1e6
    cpm = counts / library_sizes[:, None] * 1e6
    tolerance = 1e-14
    enough_samples = (cpm >= cpm_cutoff).sum(axis=0) >= n - tolerance
    return enough_samples & (counts.sum(axis=0) >= min_total_count - tolerance)


def samples_to_keep(metrics: pd.DataFrame) -> pd.Index:
    """Samples QC did not exclude (the `excluded` column of qc_metrics.tsv)."""
    excluded = metrics["excluded"].astype(str).str.lower() == "true"
    return metrics.index[~excluded]


def filter_cohort(
    adata: ad.AnnData,
    metrics: pd.DataFrame,
    settings: dict,
    contrasts: dict,
    design: str,
    source: str,
    predict: dict | None = None,
    features: str = "genes",
) -> tuple[ad.AnnData, pd.DataFrame]:
    """The cohort without QC's excluded samples and the features no contrast keeps, and the summary
    of both steps; `features` names them in the summary and messages (miRNAs for a small-RNA assay)."""
    keep_samples = samples_to_keep(metrics)
    adata = adata[adata.obs_names.isin(keep_samples)].copy()
    # Exclusions can leave a group too small or the design singular: stop before fitting.
    check_group_sizes(adata.obs, contrasts, where=f"{source} after QC exclusion", predict=predict)
    if predict:
        check_prediction_inputs(adata.obs, contrasts, design, predict, where=f"{source} after QC exclusion")
    check_full_rank(adata.obs, design, f"{source} after QC exclusion")
    counts = np.asarray(adata.X)
    per_contrast = {
        name: expressed_genes(counts, min_group_size(adata.obs, contrast), **settings)
        for name, contrast in contrasts.items()
    }
    empty = [name for name, keep in per_contrast.items() if not keep.any()]
    if empty:
        raise InputError(
            f"config 'filter': none of the {adata.n_vars} {features} has enough counts to pass the "
            f"expression filter for contrast(s) {format_list(empty)}; lower filter.min_count or "
            "filter.min_total_count."
        )
    keep_genes = np.logical_or.reduce(list(per_contrast.values()))
    summary = pd.DataFrame(
        {
            "step": [
                "samples in",
                "samples excluded by QC",
                "samples kept",
                f"{features} in",
                f"{features} removed (low counts)",
                f"{features} kept",
                *(f"{features} kept for {name}" for name in per_contrast),
            ],
            "n": [
                len(metrics),
                len(metrics) - adata.n_obs,
                adata.n_obs,
                adata.n_vars,
                int((~keep_genes).sum()),
                int(keep_genes.sum()),
                *(int(keep.sum()) for keep in per_contrast.values()),
            ],
        }
    )
    filtered = adata[:, keep_genes].copy()
    for name, keep in per_contrast.items():
        filtered.var[expressed_column(name)] = keep[keep_genes]
    return filtered, summary
