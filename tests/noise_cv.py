"""The prediction's nested cross-validation on pure-noise features, for the coverage checks of
its AUC intervals (tests/test_predict.py, small; bench/bench_predict_coverage.py, over many seeds).

Standard normal "genes" and clinical columns, balanced labels unrelated to them: any model
trained on them has a true AUC of 0.5 and no gain over another. The nested procedure is the
prediction's own (prediction.run_models on every outer split: in-fold gene selection, scaling,
inner-fold tuning); only the in-fold VST is skipped, the features being continuous already.
"""

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from trdpipe.predict.features import Cohort, FoldFeatures
from trdpipe.predict.models import (
    compare_models,
    model_grid,
    outer_splits,
    prediction_rows,
    run_models,
)


def noise_cohort(
    n_samples: int, n_genes: int, n_clinical: int, n_selected: int, seed: int
) -> tuple[Cohort, FoldFeatures]:
    """A cohort of balanced labels, and its [genes | clinical] features of pure noise (the genes
    the primary assay's layer, of which each fold selects `n_selected`)."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n_samples) % 2)
    cohort = Cohort(
        sample_ids=np.array([f"S{i:03d}" for i in range(n_samples)]),
        counts=np.zeros((0, 0)),
        gene_ids=np.array([f"g{j}" for j in range(n_genes)]),
        clinical=np.zeros((n_samples, n_clinical)),
        clinical_names=[f"c{j}" for j in range(n_clinical)],
        labels=labels,
        sites=None,
    )
    features = FoldFeatures(
        values=rng.normal(size=(n_samples, n_genes + n_clinical)),
        blocks={cohort.primary: (np.arange(n_genes), min(n_selected, n_genes))},
        column_ids=np.concatenate([cohort.gene_ids, cohort.clinical_names]),
        column_layers=np.array([cohort.primary] * n_genes + ["clinical"] * n_clinical),
        n_clinical=n_clinical,
    )
    return cohort, features


def null_comparison(n_samples: int, n_genes: int, settings: dict, seed: int) -> pd.DataFrame:
    """compare_models of every model's out-of-fold predictions on one noise cohort (one BLAS
    thread, as prediction.run_split: threads only slow such small fits down)."""
    cohort, features = noise_cohort(n_samples, n_genes, 3, settings["n_genes"], seed)
    models = model_grid(cohort, settings)
    rows = []
    with threadpool_limits(limits=1):
        for repeat, fold, train, test in outer_splits(
            cohort.labels, settings["outer_folds"], settings["repeats"], seed
        ):
            results = run_models(features, cohort.labels[None], train, test, models, settings, seed)
            rows += prediction_rows(cohort, test, models, results, repeat=repeat, fold=fold)
    return compare_models(pd.DataFrame(rows), cohort, settings, seed)


def coverage(tables: pd.DataFrame) -> pd.DataFrame:
    """Per model over the seeds' comparison tables: how often the corrected interval and the
    pooled bootstrap interval contain 0.5, their mean half-widths, how often the gain interval
    contains 0 and how often gain_p < 0.05 (empty for the clinical models, which have no gain)."""
    tables = tables.assign(
        corrected_covers=(tables["auc_low"] < 0.5) & (tables["auc_high"] > 0.5),
        bootstrap_covers=(tables["auc_pooled_low"] < 0.5) & (tables["auc_pooled_high"] > 0.5),
        corrected_half=(tables["auc_high"] - tables["auc_low"]) / 2,
        bootstrap_half=(tables["auc_pooled_high"] - tables["auc_pooled_low"]) / 2,
        gain_covers=(tables["gain_low"] < 0) & (tables["gain_high"] > 0),
        gain_p_below_05=tables["gain_p"] < 0.05,
    )
    summary = tables.groupby(["feature_set", "learner"], sort=False)[
        [
            "corrected_covers",
            "bootstrap_covers",
            "corrected_half",
            "bootstrap_half",
            "gain_covers",
            "gain_p_below_05",
        ]
    ].mean()
    summary.loc[summary.index.get_level_values(0) == "clinical", ["gain_covers", "gain_p_below_05"]] = np.nan
    return summary
