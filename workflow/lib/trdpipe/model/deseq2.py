"""Differential expression of one contrast with PyDESeq2 (Wald test, BH-adjusted)."""

import logging

import anndata as ad
import pandas as pd
from formulaic import model_matrix

from trdpipe.model.design import (
    FIT_STAGES,
    TEST_STAGES,
    log_stages,
    make_dataset,
    prepare_metadata,
    stats_class,
)

log = logging.getLogger("trd")

RESULT_COLUMNS = ["gene_id", "gene_symbol", "baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]


def shrink_coefficient(contrast: dict) -> str:
    """Name of the design-matrix column of the contrast (formulaic treatment coding)."""
    return f"{contrast['variable']}[T.{contrast['test']}]"


def contrast_model_matrix(obs: pd.DataFrame, design: str, contrast: dict) -> tuple[pd.DataFrame, str]:
    """The design matrix DESeq2 fits on these samples (prepare_metadata's coding, formulaic's
    treatment contrasts) and the name of the contrast's column in it."""
    metadata, _ = prepare_metadata(obs, design, contrast)
    return model_matrix(design, metadata), shrink_coefficient(contrast)


def run_deseq2(adata: ad.AnnData, design: str, contrast: dict, settings: dict, n_cpus: int) -> pd.DataFrame:
    """Fit the model and test the contrast; one row per gene, sorted by p-value."""
    return fit_and_test(
        make_dataset(adata, design, settings, n_cpus, contrast), contrast, settings, adata.var
    )


def fit_and_test(dds, contrast: dict, settings: dict, var: pd.DataFrame) -> pd.DataFrame:
    """DESeq2 on a prepared dataset (the label permutations give theirs pinned size factors),
    each stage's time in the log. With lfc_shrink, log2FoldChange_shrunk is added beside the
    maximum-likelihood log2FoldChange, on which the Wald test and the calls rest."""
    log_stages(dds, FIT_STAGES)
    dds.deseq2()
    stats = stats_class(settings)(
        dds,
        contrast=[contrast["variable"], contrast["test"], contrast["reference"]],
        alpha=settings["alpha"],
        cooks_filter=settings.get("cooks_filter", True),
        independent_filter=settings.get("independent_filter", True),
        inference=dds.inference,  # the backend make_dataset chose from the config
        quiet=True,
    )
    log_stages(stats, TEST_STAGES)
    stats.summary()
    table = stats.results_df.copy()
    if settings.get("lfc_shrink", False):
        stats.lfc_shrink(coeff=shrink_coefficient(contrast))
        table["log2FoldChange_shrunk"] = stats.results_df["log2FoldChange"]
    return results_table(table, var)


def results_table(table: pd.DataFrame, var: pd.DataFrame) -> pd.DataFrame:
    """Add gene IDs and symbols first, sort by p-value (genes without one last, stable)."""
    table = table.rename_axis(None).copy()
    table.insert(0, "gene_id", table.index.astype(str))
    table.insert(1, "gene_symbol", var.loc[table.index, "gene_symbol"].fillna("").to_numpy())
    extra = [c for c in table.columns if c not in RESULT_COLUMNS]
    table = table[RESULT_COLUMNS + extra]
    return table.sort_values(["pvalue", "gene_id"], na_position="last", kind="mergesort").reset_index(
        drop=True
    )
