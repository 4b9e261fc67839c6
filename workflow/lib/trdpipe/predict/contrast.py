"""Predict the contrast's test group (TRD) from clinical covariates, each molecular layer (the
primary assay's blood expression, other assays, genotypes) and their combinations.

The feature sets (clinical, each layer, combined, stacked) x the configured learners in repeated
nested cross-validation on the same outer folds and the same samples; site-held-out validation;
corrected resampled t intervals; what each layer adds over the clinical and the primary assay's
model; a label-permutation p-value of the best model; calibration. Everything that learns from
data is fitted inside the folds (see workflow/lib/trdpipe/predict/models.py); the raw counts of
each assay's filtered cohort and the genotype dosages are the input.
"""

import logging

import anndata as ad
import numpy as np
import pandas as pd

from trdpipe.checks.inputs import prediction_group_column, prediction_groups_column
from trdpipe.predict.features import feature_sets, make_cohort
from trdpipe.predict.models import (
    compare_models,
    cross_validate,
    layer_gains,
    model_grid,
    permutation_null,
    permutation_p,
    permutation_scheme,
    rank_auc,
    run_split,
    selection_frequency,
    validate_by_site,
)

log = logging.getLogger("trd")


def best_model(comparison: pd.DataFrame, with_genes: bool = False) -> tuple[str, str]:
    """(feature set, learner) with the highest mean AUC (among those with genes if asked)."""
    rows = comparison[comparison["feature_set"] != "clinical"] if with_genes else comparison
    row = rows.loc[rows["auc_mean"].idxmax()]
    return row["feature_set"], row["learner"]


def first_repeat_auc(predictions: pd.DataFrame, cohort, model: tuple) -> float:
    """Pooled out-of-fold AUC of a model in the first repeat: the permutation test's statistic."""
    rows = (
        predictions[
            (predictions["repeat"] == 1)
            & (predictions["feature_set"] == model[0])
            & (predictions["learner"] == model[1])
        ]
        .set_index("sample_id")
        .loc[cohort.sample_ids]
    )
    return float(rank_auc(rows["probability"].to_numpy(), cohort.labels)[0])


def model_genes(
    cohort,
    splits_results: list,
    model: tuple,
    settings: dict,
    filter_settings: dict,
    deseq2: dict,
    seed: int,
    var: pd.DataFrame,
) -> pd.DataFrame:
    """Genes of `model` refitted on all samples (fold VST and tuning on all of them: for
    interpretation only, performance comes from the cross-validation), with how often each gene
    was selected across the outer folds."""
    everyone = np.arange(len(cohort.labels))
    final = run_split(cohort, everyone, everyone, [model], settings, filter_settings, deseq2, seed)[0]
    frequency = selection_frequency(model_grid(cohort, settings), splits_results, model)
    genes = pd.Index(final["genes"]).union(frequency.index, sort=False)
    coefficient = pd.Series(final["coefficients"], index=final["genes"])
    table = pd.DataFrame(
        {
            "gene_id": genes,
            "gene_symbol": var.reindex(genes)["gene_symbol"].fillna("").to_numpy(),
            "layer": feature_layers(cohort).reindex(genes).fillna("").to_numpy(),
            "feature_set": model[0],
            "learner": model[1],
            "in_final_model": genes.isin(final["genes"]),
            "coefficient": coefficient.reindex(genes).to_numpy(),
            "selection_frequency": frequency.reindex(genes).fillna(0.0).to_numpy(),
        }
    )
    order = np.lexsort(
        (-table["coefficient"].abs().fillna(0).to_numpy(), -table["selection_frequency"].to_numpy())
    )
    return table.iloc[order].reset_index(drop=True)


def feature_layers(cohort) -> pd.Series:
    """The layer of every molecular feature ID of the cohort."""
    return pd.concat(
        [pd.Series(cohort.primary, index=cohort.gene_ids)]
        + [pd.Series(layer.name, index=layer.values.columns.astype(str)) for layer in cohort.layers]
    )


def predict_contrast(
    adata: ad.AnnData,
    contrast: dict,
    settings: dict,
    filter_settings: dict,
    deseq2: dict,
    design: str,
    seed: int,
    n_jobs: int,
    primary: str = "mrna",
    layers: tuple = (),
) -> dict:
    """Every table of the prediction of one contrast (its figures: trdpipe.predict.figures):
    `adata` is the primary assay's filtered cohort (named `primary`), `layers` the others (Layer)."""
    covariates = [c for c in settings["covariates"] if c in adata.obs.columns]
    group_by = prediction_group_column(adata.obs, settings, design, contrast["variable"])
    groups = prediction_groups_column(adata.obs, settings, design, contrast)
    cohort = make_cohort(adata, contrast, covariates, group_by, groups, primary, layers)
    log.info(
        "predicting %s = %s vs %s: %d samples (%d in the test group); features: %s; covariates %s; "
        "sites from %s; feature sets %s",
        contrast["variable"],
        contrast["test"],
        contrast["reference"],
        len(cohort.labels),
        cohort.labels.sum(),
        ", ".join(
            [f"{primary} {len(cohort.gene_ids)}"]
            + [f"{layer.name} {layer.values.shape[1]}" for layer in cohort.layers]
        ),
        ", ".join(covariates),
        group_by or "(none: no site-held-out validation)",
        ", ".join(feature_sets(cohort, settings)),
    )
    log.info(
        "folds keep the samples of each level of %s together; label permutations: %s",
        groups or "(none: no grouping of related samples)",
        permutation_scheme(cohort.labels, cohort.groups),
    )
    predictions, site_predictions, splits, split_results = cross_validate(
        cohort, settings, filter_settings, deseq2, seed, n_jobs
    )
    comparison = compare_models(predictions, cohort, settings, seed)
    gains = layer_gains(predictions, cohort)
    best = best_model(comparison)
    comparison["permutation_p"] = np.nan
    null = np.array([])
    if settings["permutations"]:
        null = permutation_null(cohort, splits, best, settings, filter_settings, deseq2, seed, n_jobs)
        observed = first_repeat_auc(predictions, cohort, best)
        comparison.loc[comparison["best"], "permutation_p"] = permutation_p(observed, null)
        log.info(
            "best model %s: first-repeat AUC %.3f; permuted AUCs mean %.3f, 95th percentile %.3f",
            "/".join(best),
            observed,
            null.mean(),
            np.percentile(null, 95),
        )
    log.info("model comparison:\n%s", comparison.to_string(index=False))
    site = (
        validate_by_site(site_predictions, settings, seed)
        if len(site_predictions)
        else pd.DataFrame(
            columns=[
                "site",
                "feature_set",
                "learner",
                "n_test",
                "n_test_group",
                "auc",
                "auc_low",
                "auc_high",
                "brier",
            ]
        )
    )
    genes = model_genes(
        cohort,
        split_results,
        best_model(comparison, with_genes=True),
        settings,
        filter_settings,
        deseq2,
        seed,
        adata.var,
    )
    return {
        "comparison": comparison,
        "gains": gains,
        "primary": cohort.primary,
        "predictions": predictions,
        "site": site,
        "genes": genes,
        "null": pd.DataFrame({"permutation": np.arange(1, len(null) + 1), "auc": null}),
    }
