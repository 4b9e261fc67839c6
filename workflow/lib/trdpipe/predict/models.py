"""TRD prediction engine: feature sets x learners in repeated nested cross-validation.

Everything that learns from data is fitted on the training samples of a fold and applied to
its test samples. Per outer training set, once (these steps use no label beyond the group
sizes): the gene filter (edgeR's filterByExpr rule), the size factors (median of ratios against
the training samples' geometric means) and the VST's dispersion trend (FoldVST). Per training
set of every inner fold too (they use the labels): gene selection (ANOVA F), scaling and the
learner, tuned on the inner folds. The VST values of an outer split are therefore computed once
and shared by the three feature sets, the learners and the label permutations (which keep the
outer folds; see permuted_labels). With related samples (Cohort.groups: a subject's), every outer
and inner fold keeps each group whole, and the permutations respect the groups (permutation_scheme).
The features (Cohort, FoldVST, the feature sets' columns, the gene selection) are in
predict/features.py.
"""

import logging

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import rankdata
from scipy.stats import t as student_t
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, brier_score_loss
from sklearn.model_selection import (
    LeaveOneGroupOut,
    ParameterGrid,
    RepeatedStratifiedKFold,
    StratifiedGroupKFold,
    StratifiedKFold,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from trdpipe.predict.features import (
    Cohort,
    FoldFeatures,
    feature_sets,
    model_columns,
    split_features,
    top_genes,
)

log = logging.getLogger("trd")


# ---------------------------------------------------------------- learners

# the stacked model's meta-learner: a logistic regression (C = 1) on the layer models' probabilities
META_LEARNER = "stacking"


def make_learner(name: str, settings: dict, seed: int) -> tuple[BaseEstimator, dict]:
    """A scikit-learn classifier and its inner grid (parameter -> values)."""
    if name == "l2":
        return LogisticRegression(max_iter=5000), {"C": list(settings["c_grid"])}
    if name == "elasticnet":
        return (
            LogisticRegression(solver="saga", max_iter=5000, tol=1e-2, random_state=seed),
            {"C": list(settings["elasticnet_c_grid"]), "l1_ratio": list(settings["elasticnet_l1_ratios"])},
        )
    if name == "hgb":
        # few small trees and coarse bins: a few hundred samples carry no more, and a fit stays ~0.05 s
        return (
            HistGradientBoostingClassifier(
                max_iter=30,
                max_leaf_nodes=4,
                max_bins=32,
                min_samples_leaf=10,
                early_stopping=False,
                random_state=seed,
            ),
            {"learning_rate": list(settings["hgb_learning_rates"])},
        )
    if name == META_LEARNER:
        return LogisticRegression(max_iter=5000), {}
    raise ValueError(f"unknown learner {name!r}")


def fit_model(
    values: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    labels: np.ndarray,
    learner: str,
    params: dict,
    settings: dict,
    seed: int,
) -> Pipeline:
    """Scaling and the learner, fitted on `rows` (the scaler learns their means and SDs only)."""
    model, _ = make_learner(learner, settings, seed)
    pipeline = Pipeline([("scale", StandardScaler()), ("model", model.set_params(**params))])
    return pipeline.fit(values[np.ix_(rows, columns)], labels[rows])


def predict_rows(pipeline: Pipeline, values: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """A fitted model's probability of the test group for `rows` (never rows it was fitted on)."""
    return pipeline.predict_proba(values[np.ix_(rows, columns)])[:, 1]


def selected_genes(
    pipeline: Pipeline, columns: np.ndarray, features: FoldFeatures
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IDs and layers of a fitted model's molecular columns (they come first), and their
    coefficients (NaN for trees)."""
    molecular = columns[features.column_layers[columns] != "clinical"]
    model = pipeline.named_steps["model"]
    coefficients = (
        model.coef_[0][: len(molecular)] if hasattr(model, "coef_") else np.full(len(molecular), np.nan)
    )
    return features.column_ids[molecular], features.column_layers[molecular], coefficients


# ---------------------------------------------------------------- folds


def outer_splits(
    labels: np.ndarray, folds: int, repeats: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple]:
    """(repeat, fold, train, test) of the repeated stratified outer folds (1-based numbers); with
    `groups`, each group's samples stay in one fold (grouped_repeats)."""
    if groups is None:
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        splits = splitter.split(np.zeros(len(labels)), labels)
    else:
        splits = grouped_repeats(labels, groups, folds, repeats, seed)
    return [(i // folds + 1, i % folds + 1, train, test) for i, (train, test) in enumerate(splits)]


def grouped_repeats(labels: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int):
    """(train, test) of `repeats` shuffles of StratifiedGroupKFold, one random state drawn through
    all of them (as RepeatedStratifiedKFold repeats StratifiedKFold): a test fold never holds a
    group with samples in its training set, so the model cannot score a subject it has seen."""
    rng = np.random.RandomState(seed)
    for _ in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=rng)
        yield from splitter.split(np.zeros(len(labels)), labels, groups)


def site_splits(sites: np.ndarray) -> list[tuple]:
    """(site, train, test): each site held out once, trained on all the others."""
    return [
        (sites[test[0]], train, test)
        for train, test in LeaveOneGroupOut().split(np.zeros(len(sites)), groups=sites)
    ]


def permutation_scheme(labels: np.ndarray, groups: np.ndarray | None) -> str:
    """How the label permutations keep the null exchangeable with related samples: 'samples'
    without groups; 'within groups' when the label varies within some group (a subject measured
    in both compared levels keeps its own mix, as in a paired test; a group of one label keeps
    it); 'whole groups' when every group has one label (groups swap labels, and a group's samples
    share the one it gets: permuting its samples apart would break the within-group correlation
    that the observed labels have)."""
    if groups is None:
        return "samples"
    varies = pd.Series(labels).groupby(groups).nunique() > 1
    return "within groups" if varies.any() else "whole groups"


def permuted_labels(
    labels: np.ndarray,
    folds: np.ndarray,
    sites: np.ndarray | None,
    n: int,
    seed: int,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """n label vectors, each shuffled within every (outer fold x site) cell, and with groups as
    permutation_scheme says (within every group, or whole groups within the cell).

    Shuffling within the outer folds of the first repeat keeps each fold's number of cases (of
    groups, when whole groups are shuffled), so the permuted runs reuse those folds (still
    stratified) and their VST; within sites keeps the site's case mix, so site effects cannot
    make the permuted labels look predictable.
    """
    rng = np.random.default_rng(seed)
    scheme = permutation_scheme(labels, groups)
    cells = folds.astype(str) if sites is None else np.char.add(folds.astype(str) + "|", sites.astype(str))
    if scheme == "within groups":
        cells = np.char.add(cells + "|", groups.astype(str))
    # the units whose labels are shuffled: whole groups, or single samples
    units = pd.factorize(groups)[0] if scheme == "whole groups" else np.arange(len(labels))
    members = [np.flatnonzero(cells == cell) for cell in np.unique(cells)]
    out = np.tile(labels, (n, 1))
    for row in out:
        for index in members:
            _, first, inverse = np.unique(units[index], return_index=True, return_inverse=True)
            row[index] = labels[index[first]][rng.permutation(len(first))][inverse]
    return out


# ---------------------------------------------------------------- fitting


def inner_folds(
    labels: np.ndarray, train: np.ndarray, n_folds: int, seed: int, groups: np.ndarray | None = None
) -> list[tuple]:
    """(fit rows, validation rows) of the stratified inner folds of a training set; with
    `groups`, each group's samples stay in one fold (tuning on a subject's other samples would
    favour the settings that memorise subjects)."""
    if groups is None:
        parts = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(train, labels[train])
    else:
        splitter = StratifiedGroupKFold(n_folds, shuffle=True, random_state=seed)
        parts = splitter.split(train, labels[train], groups[train])
    return [(train[fit], train[validation]) for fit, validation in parts]


def run_models(
    features: FoldFeatures,
    label_sets: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    models: list[tuple],
    settings: dict,
    seed: int,
    groups: np.ndarray | None = None,
) -> list[dict]:
    """Every (label vector, model): grid point chosen by the mean AUC of the inner folds
    (each layer's features selected, scaler and learner fitted on each inner fit set; each group
    in one inner fold), then selection, scaling and the learner refitted on the whole training set
    and applied to the test samples. The stacked model combines the single-layer models of its
    learner (stacked_model)."""
    folds = [
        inner_folds(labels, train, settings["inner_folds"], seed, groups) + [(train, test)]
        for labels in label_sets
    ]
    masks = np.zeros((len(label_sets), len(folds[0]), features.values.shape[0]), dtype=bool)
    for b, label_folds in enumerate(folds):
        for j, (fit_rows, _) in enumerate(label_folds):
            masks[b, j, fit_rows] = True
    chosen = selected_columns(features, label_sets, masks)
    bases = {
        (base, learner)
        for feature_set, learner in models
        if feature_set == "stacked"
        for base in stack_bases(features)
    }
    results = []
    for b, labels in enumerate(label_sets):
        fitted = {}
        for model in sorted(bases) + [m for m in models if m[0] != "stacked"]:
            if model not in fitted:
                columns = [
                    model_columns(model[0], {name: c[b, j] for name, c in chosen.items()}, features)
                    for j in range(masks.shape[1])
                ]
                fitted[model] = layer_model(
                    features, labels, folds[b], columns, model, settings, seed, model in bases
                )
        for model in models:
            result = (
                stacked_model(features, labels, train, test, fitted, model[1], settings, seed)
                if model[0] == "stacked"
                else fitted[model]
            )
            results.append({key: value for key, value in result.items() if key != "out_of_fold"})
    return results


def selected_columns(features: FoldFeatures, label_sets: np.ndarray, masks: np.ndarray) -> dict:
    """Per layer: the columns of its k best features (ANOVA F) for every (label vector, fit set),
    as an array label vectors x fit sets x k."""
    repeated = np.repeat(label_sets, masks.shape[1], axis=0)
    flat = masks.reshape(-1, masks.shape[2])
    return {
        name: columns[top_genes(features.values[:, columns], repeated, flat, k)].reshape(
            len(label_sets), masks.shape[1], k
        )
        for name, (columns, k) in features.blocks.items()
    }


def stack_bases(features: FoldFeatures) -> list[str]:
    """The single-layer models the stacked model combines: clinical and each layer."""
    return ["clinical", *features.blocks]


def layer_model(
    features: FoldFeatures,
    labels: np.ndarray,
    folds: list[tuple],
    columns: list[np.ndarray],
    model: tuple,
    settings: dict,
    seed: int,
    out_of_fold: bool,
) -> dict:
    """One feature set x learner on one outer split: tuned on the inner folds (folds[:-1]),
    refitted on the training set (folds[-1]) and applied to its test samples; with `out_of_fold`,
    also the tuned model's probabilities of the training samples, each from the inner fold that
    held it out (the stacked model's inputs)."""
    values, (train, test) = features.values, folds[-1]
    params, inner = best_params(
        values, labels, folds[:-1], columns[:-1], model[1], settings, seed, out_of_fold
    )
    pipeline = fit_model(values, train, columns[-1], labels, model[1], params, settings, seed)
    result = {"probability": predict_rows(pipeline, values, test, columns[-1]), "params": params}
    if out_of_fold:
        result["out_of_fold"] = np.zeros(len(values))
        for (_, validation_rows), probability in zip(folds[:-1], inner):
            result["out_of_fold"][validation_rows] = probability
    if model[0] != "clinical":
        result["genes"], result["layers"], result["coefficients"] = selected_genes(
            pipeline, columns[-1], features
        )
    return result


def stacked_model(
    features: FoldFeatures,
    labels: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fitted: dict,
    learner: str,
    settings: dict,
    seed: int,
) -> dict:
    """Late fusion: a logistic regression fitted on the out-of-fold probabilities that each
    single-layer model (of `learner`) gives the training samples, applied to those models'
    probabilities of the test samples (refitted on the training set). Nothing of it sees a test
    sample: the layer models' inner fits use inner fit rows, their refits the training rows."""
    bases = [fitted[base, learner] for base in stack_bases(features)]
    inputs = np.zeros((len(features.values), len(bases)))
    for column, base in enumerate(bases):
        inputs[train, column] = base["out_of_fold"][train]
        inputs[test, column] = base["probability"]
    columns = np.arange(len(bases))
    meta = fit_model(inputs, train, columns, labels, META_LEARNER, {}, settings, seed)
    molecular = [base for base in bases if "genes" in base]
    return {
        "probability": predict_rows(meta, inputs, test, columns),
        "params": {"weights": dict(zip(stack_bases(features), meta.named_steps["model"].coef_[0].round(3)))},
        "genes": np.concatenate([base["genes"] for base in molecular]),
        "layers": np.concatenate([base["layers"] for base in molecular]),
        "coefficients": np.concatenate([base["coefficients"] for base in molecular]),
    }


def best_params(
    values: np.ndarray,
    labels: np.ndarray,
    folds: list[tuple],
    columns: list[np.ndarray],
    learner: str,
    settings: dict,
    seed: int,
    out_of_fold: bool = False,
) -> tuple[dict, list | None]:
    """The grid point with the highest mean validation AUC over the inner folds (the first of
    equals, as GridSearchCV), and its validation probabilities per inner fold when `out_of_fold`
    (else None); a grid of one point needs no inner fits unless those are asked for."""
    _, grid = make_learner(learner, settings, seed)
    candidates = list(ParameterGrid(grid))
    if len(candidates) == 1 and not out_of_fold:
        return candidates[0], None
    scores, probabilities = [], []
    for params in candidates:
        fold_probabilities = []
        for (fit_rows, validation_rows), fold_columns in zip(folds, columns):
            pipeline = fit_model(values, fit_rows, fold_columns, labels, learner, params, settings, seed)
            fold_probabilities.append(predict_rows(pipeline, values, validation_rows, fold_columns))
        scores.append(np.mean([rank_auc(p, labels[v])[0] for p, (_, v) in zip(fold_probabilities, folds)]))
        probabilities.append(fold_probabilities)
    best = int(np.argmax(scores))
    return candidates[best], probabilities[best] if out_of_fold else None


def run_split(
    cohort: Cohort,
    train: np.ndarray,
    test: np.ndarray,
    models: list[tuple],
    settings: dict,
    filter_settings: dict,
    deseq2: dict,
    seed: int,
    label_sets: np.ndarray | None = None,
) -> list[dict]:
    """One outer split: the fold transforms of the layers once, then every (feature set,
    learner) on every label vector of `label_sets` (the cohort's own labels when None). One thread (BLAS and OpenMP):
    the splits run in parallel, and OpenMP's waiting threads slow small fits down on a busy machine."""
    with threadpool_limits(limits=1):
        features = split_features(cohort, train, settings, filter_settings, deseq2)
        label_sets = cohort.labels[None, :] if label_sets is None else label_sets
        return run_models(features, label_sets, train, test, models, settings, seed, cohort.groups)


def model_grid(cohort: Cohort, settings: dict) -> list[tuple]:
    """(feature set, learner) of every model compared: each feature set with each of
    predict.learners, the stacked one with each of predict.stacked_learners."""
    grid = [
        (fs, learner)
        for fs in feature_sets(cohort, settings)
        if fs != "stacked"
        for learner in settings["learners"]
    ]
    return grid + [("stacked", learner) for learner in settings["stacked_learners"]]


def cross_validate(
    cohort: Cohort, settings: dict, filter_settings: dict, deseq2: dict, seed: int, n_jobs: int
) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """Out-of-fold predictions of every model in every repeat, the same outer folds for all;
    the site-held-out predictions; the outer splits (for the permutations) and what each
    split's models selected (for the selection frequencies)."""
    models = model_grid(cohort, settings)
    splits = outer_splits(cohort.labels, settings["outer_folds"], settings["repeats"], seed, cohort.groups)
    sites = site_splits(cohort.sites) if cohort.sites is not None else []
    jobs = [(train, test) for *_, train, test in splits] + [(train, test) for _, train, test in sites]
    log.info(
        "%d outer splits (%d repeats x %d folds) and %d site-held-out splits, %d models each, on %d threads",
        len(splits),
        settings["repeats"],
        settings["outer_folds"],
        len(sites),
        len(models),
        n_jobs,
    )
    results = Parallel(n_jobs=n_jobs)(
        delayed(run_split)(cohort, train, test, models, settings, filter_settings, deseq2, seed)
        for train, test in jobs
    )
    rows, site_rows = [], []
    for (repeat, fold, _, test), split_results in zip(splits, results[: len(splits)]):
        rows += prediction_rows(cohort, test, models, split_results, repeat=repeat, fold=fold)
    for (site, _, test), split_results in zip(sites, results[len(splits) :]):
        site_rows += prediction_rows(cohort, test, models, split_results, site=site)
    return pd.DataFrame(rows), pd.DataFrame(site_rows), splits, results[: len(splits)]


def prediction_rows(
    cohort: Cohort, test: np.ndarray, models: list[tuple], split_results: list[dict], **where
) -> list[dict]:
    rows = []
    for (feature_set, learner), result in zip(models, split_results):
        for sample, label, probability in zip(
            cohort.sample_ids[test], cohort.labels[test], result["probability"]
        ):
            rows.append(
                {
                    "sample_id": sample,
                    **where,
                    "feature_set": feature_set,
                    "learner": learner,
                    "label": label,
                    "probability": probability,
                }
            )
    return rows


def selection_frequency(models: list[tuple], split_results: list[list[dict]], model: tuple) -> pd.Series:
    """Fraction of the outer folds in which each gene was selected by `model`."""
    index = models.index(model)
    chosen = pd.Series(np.concatenate([results[index]["genes"] for results in split_results]))
    return chosen.value_counts() / len(split_results)


def permutation_null(
    cohort: Cohort,
    splits: list,
    model: tuple,
    settings: dict,
    filter_settings: dict,
    deseq2: dict,
    seed: int,
    n_jobs: int,
) -> np.ndarray:
    """Pooled out-of-fold AUC of `model` in the first repeat's folds, on label vectors shuffled
    within fold x site, and as the groups require (permuted_labels); the whole nested procedure reruns on each. A task
    runs a block of permutations on one split, with that split's VST computed once."""
    first = [(train, test) for repeat, _, train, test in splits if repeat == 1]
    folds = np.zeros(len(cohort.labels), dtype=int)
    for number, (_, test) in enumerate(first):
        folds[test] = number
    labels = permuted_labels(
        cohort.labels, folds, cohort.sites, settings["permutations"], seed, cohort.groups
    )
    # blocks of permutations per split, so that both threads stay busy to the end
    blocks = np.array_split(np.arange(len(labels)), max(1, min(len(labels), 4 * n_jobs // len(first) + 1)))
    tasks = [(split, block) for split in range(len(first)) for block in blocks if len(block)]
    log.info(
        "permutation null of %s: %d label permutations x %d folds in %d tasks",
        "/".join(model),
        len(labels),
        len(first),
        len(tasks),
    )
    results = Parallel(n_jobs=n_jobs)(
        delayed(run_split)(
            cohort, *first[split], [model], settings, filter_settings, deseq2, seed, label_sets=labels[block]
        )
        for split, block in tasks
    )
    probabilities = np.zeros(labels.shape)
    for (split, block), block_results in zip(tasks, results):
        probabilities[np.ix_(block, first[split][1])] = [r["probability"] for r in block_results]
    return rank_auc(probabilities, labels)


def permutation_p(observed: float, null: np.ndarray) -> float:
    """(1 + permuted AUCs at least as high) / (1 + permutations)."""
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


# ---------------------------------------------------------------- metrics


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUC of each row of scores (Mann-Whitney: mid-ranks, ties count one half); labels of the
    same shape or one vector for all rows."""
    scores = np.atleast_2d(scores)
    labels = np.broadcast_to(labels, scores.shape).astype(bool)
    ranks = rankdata(scores, axis=-1)
    n_pos = labels.sum(axis=-1)
    n_neg = labels.shape[-1] - n_pos
    return ((ranks * labels).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def bootstrap_indices(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n resamples of the samples, stratified (each keeps the number of cases and controls, as
    pROC's ci.auc does), as rows of indices: the cases first, then the controls."""
    rng = np.random.default_rng(seed)
    cases, controls = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    return np.hstack([rng.choice(cases, (n, len(cases))), rng.choice(controls, (n, len(controls)))])


def bootstrap_auc(probabilities: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """AUC averaged over repeats (rows of probabilities) for every bootstrap resample."""
    resampled_labels = labels[indices[0]]  # the same in every stratified resample
    return np.mean([rank_auc(repeat[indices], resampled_labels) for repeat in probabilities], axis=0)


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def repeat_matrix(predictions: pd.DataFrame, sample_ids: np.ndarray) -> np.ndarray:
    """Out-of-fold probabilities of one model as repeats x samples (in sample_ids order)."""
    wide = predictions.pivot(index="repeat", columns="sample_id", values="probability")
    return wide[sample_ids].to_numpy()


def auc_components(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each case the share of controls it outscores, for each
    control the share of cases that outscore it (ties count one half); each averages to the AUC."""
    cases, controls = scores[labels == 1], scores[labels == 0]
    wins = (cases[:, None] > controls[None, :]) + 0.5 * (cases[:, None] == controls[None, :])
    return wins.mean(axis=1), wins.mean(axis=0)


def delong_variance(scores: np.ndarray, labels: np.ndarray, reference: np.ndarray | None = None) -> float:
    """DeLong et al.'s (1988) variance of the AUC of `scores` over the test samples, or of its
    difference from the AUC of `reference` on the same samples (paired)."""
    v10, v01 = auc_components(scores, labels)
    if reference is not None:
        r10, r01 = auc_components(reference, labels)
        v10, v01 = v10 - r10, v01 - r01
    return float(sum(v.var(ddof=1) / len(v) for v in (v10, v01) if len(v) > 1))


def fold_statistics(group: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per outer test fold of one model, indexed by (repeat, fold): its AUC (minus that of the
    `reference` model on the same fold, when given) and the DeLong variance of that number."""
    references = dict(iter(reference.groupby(["repeat", "fold"]))) if reference is not None else {}
    rows = {}
    for key, fold in group.groupby(["repeat", "fold"]):
        fold = fold.sort_values("sample_id")
        labels, scores = fold["label"].to_numpy(), fold["probability"].to_numpy()
        auc = rank_auc(scores, labels)[0]
        other = None
        if reference is not None:
            other = references[key].sort_values("sample_id")["probability"].to_numpy()
            auc -= rank_auc(other, labels)[0]
        rows[key] = {"auc": float(auc), "variance": delong_variance(scores, labels, other)}
    return pd.DataFrame.from_dict(rows, orient="index")


def corrected_t(
    values: np.ndarray, test_train_ratio: float, null: float = 0.0, variance_floor: float = 0.0
) -> tuple[float, float, float, float]:
    """Mean of the per-fold statistics of repeated k-fold cross-validation, its 95% interval and
    the two-sided p-value of mean = `null`, by Nadeau & Bengio's (2003) corrected resampled t:
    variance (1/J + n_test/n_train) S^2 over the J folds, t with J - 1 degrees of freedom. The
    plain S^2 / J would treat the folds as independent; their training sets overlap.

    S^2 is taken at least `variance_floor`: the folds of one repeat split the same samples, and
    under the null their models anti-learn (a training set has the opposite class excess of its
    test fold), so their spread understates a fold's variance, which cannot be below the
    variance from its test samples alone (the folds' mean DeLong variance)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    variance = max(float(values.var(ddof=1)), variance_floor)
    se = float(np.sqrt((1 / len(values) + test_train_ratio) * variance))
    if se == 0:  # every fold the same, with no test-sample variance: no spread to scale by
        return mean, mean, mean, float(mean == null)
    half = student_t.ppf(0.975, len(values) - 1) * se
    return mean, mean - half, mean + half, float(2 * student_t.sf(abs(mean - null) / se, len(values) - 1))


def fold_size_ratio(predictions: pd.DataFrame, n_samples: int) -> float:
    """Mean outer test-fold size over the mean training-set size (the corrected t's n2 / n1)."""
    n_test = predictions.groupby(["feature_set", "learner", "repeat", "fold"]).size().mean()
    return float(n_test / (n_samples - n_test))


def compare_models(predictions: pd.DataFrame, cohort: Cohort, settings: dict, seed: int) -> pd.DataFrame:
    """model_comparison: per feature set x learner, AUC (mean over the repeats' outer folds of
    the fold AUC) with its corrected resampled t interval (corrected_t), the 2.5-97.5% range of
    the fold AUCs, the pooled out-of-fold AUC (mean over repeats) with its stratified bootstrap
    interval, balanced accuracy and Brier score (means over repeats), and the AUC gain over the
    clinical model of the same learner (per-fold differences on the same folds, corrected t)."""
    labels = cohort.labels
    indices = bootstrap_indices(labels, settings["bootstrap"], seed)
    ratio = fold_size_ratio(predictions, len(labels))
    groups, rows = {}, []
    for (feature_set, learner), group in predictions.groupby(["feature_set", "learner"], sort=False):
        groups[feature_set, learner] = group
        matrix = repeat_matrix(group, cohort.sample_ids)
        folds = fold_statistics(group)
        auc, low, high, _ = corrected_t(folds["auc"], ratio, variance_floor=folds["variance"].mean())
        rows.append(
            {
                "feature_set": feature_set,
                "learner": learner,
                "n_samples": len(labels),
                "auc_mean": auc,
                "auc_low": max(low, 0.0),
                "auc_high": min(high, 1.0),
                **dict(zip(("auc_folds_low", "auc_folds_high"), percentile_interval(folds["auc"]))),
                "auc_pooled": float(np.mean(rank_auc(matrix, labels))),
                **dict(
                    zip(
                        ("auc_pooled_low", "auc_pooled_high"),
                        percentile_interval(bootstrap_auc(matrix, labels, indices)),
                    )
                ),
                "balanced_accuracy": float(
                    np.mean([balanced_accuracy_score(labels, p >= 0.5) for p in matrix])
                ),
                "brier": float(np.mean([brier_score_loss(labels, p) for p in matrix])),
            }
        )
    table = pd.DataFrame(rows)
    gains = [gain_over_clinical(groups, row.feature_set, row.learner, ratio) for row in table.itertuples()]
    table = pd.concat([table, pd.DataFrame(gains)], axis=1)
    table["best"] = table.index == table["auc_mean"].idxmax()
    return table


def gain_over_clinical(groups: dict, feature_set: str, learner: str, ratio: float) -> dict:
    """The gain over the clinical model of the same learner (gain_over), as model_comparison's columns."""
    keys = ("auc_gain_over_clinical", "gain_low", "gain_high", "gain_p")
    if feature_set == "clinical":
        return dict.fromkeys(keys, np.nan)
    return dict(zip(keys, gain_over(groups, feature_set, learner, "clinical", ratio)))


def gain_over(groups: dict, feature_set: str, learner: str, reference: str, ratio: float) -> tuple:
    """Mean per-fold AUC difference from the `reference` feature set's model of the same learner
    (paired: the same outer folds and test samples), its corrected t interval and p-value; NaN
    when that model was not run."""
    if (reference, learner) not in groups:
        return (np.nan,) * 4
    folds = fold_statistics(groups[feature_set, learner], groups[reference, learner])
    return corrected_t(folds["auc"], ratio, variance_floor=folds["variance"].mean())


def layer_gains(predictions: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """What each feature set adds: per feature set x learner, its AUC gain over the clinical model
    and over the primary assay's model of the same learner (gain_over), with the two AUCs."""
    ratio = fold_size_ratio(predictions, len(cohort.labels))
    groups = dict(iter(predictions.groupby(["feature_set", "learner"], sort=False)))
    auc = {key: fold_statistics(group)["auc"].mean() for key, group in groups.items()}
    rows = []
    for reference in ("clinical", cohort.primary):
        for feature_set, learner in groups:
            if feature_set in ("clinical", reference) or (reference, learner) not in groups:
                continue
            gain, low, high, p = gain_over(groups, feature_set, learner, reference, ratio)
            rows.append(
                {
                    "feature_set": feature_set,
                    "learner": learner,
                    "reference": reference,
                    "auc_mean": auc[feature_set, learner],
                    "reference_auc_mean": auc[reference, learner],
                    "auc_gain": gain,
                    "gain_low": low,
                    "gain_high": high,
                    "gain_p": p,
                }
            )
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


GAIN_COLUMNS = [
    "feature_set",
    "learner",
    "reference",
    "auc_mean",
    "reference_auc_mean",
    "auc_gain",
    "gain_low",
    "gain_high",
    "gain_p",
]


def validate_by_site(site_predictions: pd.DataFrame, settings: dict, seed: int) -> pd.DataFrame:
    """Per held-out site and model: AUC (NaN when the site has one group only) with a bootstrap
    interval, Brier score; and all held-out sites pooled."""
    rows = []
    for (site, feature_set, learner), group in site_predictions.groupby(
        ["site", "feature_set", "learner"], sort=False
    ):
        rows.append(site_row(site, feature_set, learner, group, settings, seed))
    for (feature_set, learner), group in site_predictions.groupby(["feature_set", "learner"], sort=False):
        rows.append(site_row("all sites (pooled)", feature_set, learner, group, settings, seed))
    return pd.DataFrame(rows)


def site_row(
    site: str, feature_set: str, learner: str, group: pd.DataFrame, settings: dict, seed: int
) -> dict:
    labels, probability = group["label"].to_numpy(), group["probability"].to_numpy()
    row = {
        "site": site,
        "feature_set": feature_set,
        "learner": learner,
        "n_test": len(labels),
        "n_test_group": int(labels.sum()),
        "auc": np.nan,
        "auc_low": np.nan,
        "auc_high": np.nan,
        "brier": brier_score_loss(labels, probability),
    }
    if 0 < labels.sum() < len(labels):
        indices = bootstrap_indices(labels, settings["bootstrap"], seed)
        row["auc"] = float(rank_auc(probability, labels)[0])
        row["auc_low"], row["auc_high"] = percentile_interval(
            bootstrap_auc(probability[None], labels, indices)
        )
    return row
