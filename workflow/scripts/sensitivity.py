"""Rule sensitivity: one sensitivity model of one contrast: the DE fit as the primary one, and its
concordance with it. The work is done in trdpipe.model.sensitivity
and trdpipe.model.engines."""

import logging

import anndata as ad
import pandas as pd

from trdpipe.common import read_sample_table, run_script, save_figure, write_table
from trdpipe.model.design import prepare_metadata
from trdpipe.model.engines import make_engine
from trdpipe.model.figures import lfc_scatter
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.sensitivity import (
    CONCORDANCE_COLUMNS,
    MIN_RESIDUAL_DF,
    check_model,
    concordance,
    group_r2,
    model_cohort,
    model_settings,
    residual_df,
)

log = logging.getLogger("trd")


def main(smk) -> None:
    name, model_name = smk.wildcards.contrast, smk.wildcards.model
    contrast, settings, spec = dict(smk.params.contrast), dict(smk.params.deseq2), dict(smk.params.spec)
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), name)
    covariates = read_sample_table(smk.input.covariates) if spec.get("cell_scores") else None
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
    engine = make_engine(model_settings(settings, spec), smk.threads)
    log.info(
        "sensitivity model %s of %s: design %s, %d samples, %s",
        model_name,
        name,
        design,
        cohort.n_obs,
        engine.method,
    )
    table = engine.fit_contrast(cohort, design, contrast).table
    primary = pd.read_csv(smk.input.primary, sep="\t", dtype={"gene_id": str, "gene_symbol": str})
    row = {
        "contrast": name,
        "model": model_name,
        "design": design,
        "n_samples": cohort.n_obs,
        **concordance(primary, table, settings["alpha"]),
        "group_r2_cells": group_r2(cohort.obs, contrast, cell_names),
        "n_cell_covariates": len(cell_names),
        "residual_df_primary": residual_df(adata.obs, smk.params.design),
        "residual_df_model": residual_df(cohort.obs, design),
    }
    if row["residual_df_model"] < MIN_RESIDUAL_DF:
        log.warning(
            "model %s has %d residual degrees of freedom (fewer than %d): the report flags its calls",
            model_name,
            row["residual_df_model"],
            MIN_RESIDUAL_DF,
        )
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
    run_script(main, snakemake)  # noqa: F821
