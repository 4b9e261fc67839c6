"""One sensitivity model of one contrast: the DE fit as the primary one, and its concordance with it.

Outputs (results/sensitivity/{contrast}/{model}/): deseq2_results.tsv (the primary table's
format), model.tsv (how each variable was coded), samples_used.tsv, concordance.tsv and
lfc_scatter.png (log2 fold changes, primary against this model).
"""

import logging

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from de_model import prepare_metadata  # noqa: E402
from deseq2 import run_deseq2  # noqa: E402
from filter import contrast_cohort  # noqa: E402
from pipeline_common import save_figure, write_table  # noqa: E402
from sensitivity_models import (  # noqa: E402
    CONCORDANCE_COLUMNS,
    check_model,
    concordance,
    group_r2,
    model_samples,
)

log = logging.getLogger("trd")


def model_cohort(adata: ad.AnnData, spec: dict, covariates: pd.DataFrame | None) -> ad.AnnData:
    """The model's samples, with the cell covariates joined to their metadata when it uses them."""
    adata = adata[model_samples(adata.obs, spec)].copy()
    if spec.get("cell_scores"):
        adata.obs = adata.obs.join(covariates.loc[adata.obs_names])
    return adata


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


def main(smk) -> None:
    name, model_name = smk.wildcards.contrast, smk.wildcards.model
    contrast, settings, spec = dict(smk.params.contrast), dict(smk.params.deseq2), dict(smk.params.spec)
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), name)
    covariates = (
        pd.read_csv(smk.input.covariates, sep="\t", index_col="sample_id", dtype={"sample_id": str})
        if spec.get("cell_scores")
        else None
    )
    cohort = model_cohort(adata, spec, covariates)
    cell_names = list(covariates.columns) if covariates is not None else []
    # the cell covariates exist only now: check the model again with them before fitting
    design = check_model(
        model_name,
        spec,
        cohort.obs,
        smk.params.design,
        {name: contrast},
        f"{smk.input.h5ad} with {smk.input.covariates or 'no cell covariates'}",
        cell_names,
    )
    log.info("sensitivity model %s of %s: design %s, %d samples", model_name, name, design, cohort.n_obs)
    table = run_deseq2(cohort, design, contrast, settings, smk.threads)
    primary = pd.read_csv(smk.input.primary, sep="\t", dtype={"gene_id": str, "gene_symbol": str})
    row = {
        "contrast": name,
        "model": model_name,
        "design": design,
        "n_samples": cohort.n_obs,
        **concordance(primary, table, settings["alpha"]),
        "group_r2_cells": group_r2(cohort.obs, contrast, cell_names),
    }
    log.info("concordance with the primary model: %s", row)
    _, coding = prepare_metadata(cohort.obs, design, contrast)
    write_table(table, smk.output.table, float_format="%.8g")
    write_table(coding, smk.output.model)
    write_table(cohort.obs, smk.output.samples, index=True)
    write_table(pd.DataFrame([row])[CONCORDANCE_COLUMNS], smk.output.concordance, float_format="%.6g")
    save_figure(
        lfc_scatter(primary, table, settings["alpha"], f"{name}: primary vs {model_name}"), smk.output.scatter
    )


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
