"""Differential expression of one contrast with PyDESeq2 (Wald test, BH-adjusted)."""

import logging

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from de_model import make_dataset, prepare_metadata, stats_class  # noqa: E402
from de_tables import count_calls  # noqa: E402
from filter import contrast_cohort  # noqa: E402
from pipeline_common import save_figure, write_table  # noqa: E402

log = logging.getLogger("trd")

RESULT_COLUMNS = ["gene_id", "gene_symbol", "baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]


def shrink_coefficient(contrast: dict) -> str:
    """Name of the design-matrix column of the contrast (formulaic treatment coding)."""
    return f"{contrast['variable']}[T.{contrast['test']}]"


def run_deseq2(adata: ad.AnnData, design: str, contrast: dict, settings: dict, n_cpus: int
               ) -> pd.DataFrame:
    """Fit the model and test the contrast; one row per gene, sorted by p-value."""
    return fit_and_test(make_dataset(adata, design, settings, n_cpus, contrast), contrast, settings,
                        adata.var)


def fit_and_test(dds, contrast: dict, settings: dict, var: pd.DataFrame) -> pd.DataFrame:
    """DESeq2 on a prepared dataset (the label permutations give theirs pinned size factors)."""
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
    stats.summary()
    table = stats.results_df.copy()
    if settings.get("lfc_shrink", False):
        unshrunk = table["log2FoldChange"].copy()
        stats.lfc_shrink(coeff=shrink_coefficient(contrast))
        table["log2FoldChange_shrunk"] = stats.results_df["log2FoldChange"]
        table["log2FoldChange"] = unshrunk
    return results_table(table, var)


def results_table(table: pd.DataFrame, var: pd.DataFrame) -> pd.DataFrame:
    """Add gene IDs and symbols first, sort by p-value (genes without one last, stable)."""
    table = table.rename_axis(None).copy()
    table.insert(0, "gene_id", table.index.astype(str))
    table.insert(1, "gene_symbol", var.loc[table.index, "gene_symbol"].fillna("").to_numpy())
    extra = [c for c in table.columns if c not in RESULT_COLUMNS]
    table = table[RESULT_COLUMNS + extra]
    return table.sort_values(["pvalue", "gene_id"], na_position="last", kind="mergesort").reset_index(drop=True)


def label_axes(ax, xlabel: str, ylabel: str, title: str, legend_loc: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend_loc, fontsize=8, frameon=False)


def volcano_plot(table: pd.DataFrame, alpha: float, title: str, n_labels: int = 12):
    fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    tested = table.dropna(subset=["pvalue"])
    significant = tested["padj"] < alpha
    y = -np.log10(tested["pvalue"].clip(lower=1e-300))
    ax.scatter(tested["log2FoldChange"][~significant], y[~significant], s=4, c="0.7", lw=0,
               label="not significant")
    colours = np.where(tested["log2FoldChange"][significant] > 0, "#c0392b", "#2471a3")
    ax.scatter(tested["log2FoldChange"][significant], y[significant], s=6, c=colours, lw=0,
               label=f"padj < {alpha}")
    for _, row in tested.head(n_labels).iterrows():
        ax.annotate(row["gene_symbol"] or row["gene_id"], (row["log2FoldChange"], -np.log10(max(row["pvalue"], 1e-300))),
                    fontsize=7, xytext=(2, 2), textcoords="offset points")
    ax.axvline(0, c="0.5", lw=0.5)
    label_axes(ax, "log2 fold change (positive = higher in test group)", "-log10 p-value", title,
               "upper left")
    return fig


def ma_plot(table: pd.DataFrame, alpha: float, title: str):
    fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    tested = table[table["baseMean"] > 0]
    significant = tested["padj"] < alpha
    x = np.log10(tested["baseMean"])
    ax.scatter(x[~significant], tested["log2FoldChange"][~significant], s=4, c="0.7", lw=0)
    ax.scatter(x[significant], tested["log2FoldChange"][significant], s=6, c="#c0392b", lw=0,
               label=f"padj < {alpha}")
    ax.axhline(0, c="0.3", lw=0.6)
    label_axes(ax, "log10 mean of normalised counts", "log2 fold change", title, "upper right")
    return fig


def main(smk) -> None:
    contrast, settings = dict(smk.params.contrast), dict(smk.params.deseq2)
    name = smk.wildcards.contrast
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), name)
    log.info("contrast %s: %s = %s vs %s, design %s, alpha %s", name, contrast["variable"],
             contrast["test"], contrast["reference"], smk.params.design, settings["alpha"])
    log.info("samples used (%d): %s", adata.n_obs, ", ".join(adata.obs_names))
    table = run_deseq2(adata, smk.params.design, contrast, settings, smk.threads)
    calls = count_calls(table, settings["alpha"], settings.get("lfc_thresholds", []))
    log.info("calls at padj < %s:\n%s", settings["alpha"], calls.to_string(index=False))
    _, coding = prepare_metadata(adata.obs, smk.params.design, contrast)
    title = f"{contrast['test']} vs {contrast['reference']}"
    write_table(table, smk.output.table, float_format="%.8g")
    write_table(coding, smk.output.model)
    # The samples the model saw (after any QC exclusion), with the covariates it used.
    write_table(adata.obs, smk.output.samples, index=True)
    save_figure(volcano_plot(table, settings["alpha"], title), smk.output.volcano)
    save_figure(ma_plot(table, settings["alpha"], title), smk.output.ma)


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
