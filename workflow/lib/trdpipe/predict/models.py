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
"""

import logging
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import rankdata
from scipy.stats import t as student_t
from sklearn.base import BaseEstimator, TransformerMixin
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

from trdpipe.model.filtering import expressed_genes
from trdpipe.model.vst import fit_vst

log = logging.getLogger("trd")

FEATURE_SETS = ("clinical", "expression", "combined")


@dataclass
class Cohort:
    """What the prediction needs of the samples of one contrast (rows in the same order)."""

    sample_ids: np.ndarray
    counts: np.ndarray  # raw counts, samples x genes
    gene_ids: np.ndarray
    clinical: np.ndarray  # encoded covariates, samples x columns
    clinical_names: list
    labels: np.ndarray  # 1 = the contrast's test group
    sites: np.ndarray | None  # the group_by column, or None
    groups: np.ndarray | None = None  # the predict.groups column (related samples), or None


def encode_covariates(obs: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Numeric covariates as they are, categorical ones one-hot (first level dropped). This uses
    no labels; scaling, which learns from data, happens inside the folds."""
    return pd.get_dummies(obs[covariates], drop_first=True, dtype=float)


def make_cohort(
    adata: ad.AnnData, contrast: dict, covariates: list[str], group_by: str | None, groups: str | None = None
) -> Cohort:
    """The samples of the contrast's two groups, with their counts, covariates and labels; `groups`
    names the column of related samples (a subject's) that no fold may split."""
    adata = adata[adata.obs[contrast["variable"]].astype(str).isin([contrast["test"], contrast["reference"]])]
    clinical = encode_covariates(adata.obs, covariates)
    return Cohort(
        sample_ids=adata.obs_names.to_numpy().astype(str),
        counts=np.asarray(adata.X),
        gene_ids=adata.var_names.to_numpy().astype(str),
        clinical=clinical.to_numpy(),
        clinical_names=list(clinical.columns),
        labels=(adata.obs[contrast["variable"]].astype(str) == contrast["test"]).to_numpy().astype(int),
        sites=adata.obs[group_by].astype(str).to_numpy() if group_by else None,
        groups=adata.obs[groups].astype(str).to_numpy() if groups else None,
    )


# ---------------------------------------------------------------- in-fold VST


class FoldVST(BaseEstimator, TransformerMixin):
    """Gene filter, size factors and VST learnt from the training samples' raw counts.

    fit: genes passing edgeR's filterByExpr rule in the training samples (smallest group =
    `group_size`), then trdpipe.model.vst.fit_vst on them (PyDESeq2: geometric means and dispersion trend
    of the training samples). transform: any samples' counts, each sample's size factor from
    the training geometric means (so a test sample never influences another one or the fit).
    """

    def __init__(self, filter_settings: dict, vst_settings: dict, group_size: int = 0):
        self.filter_settings = filter_settings
        self.vst_settings = vst_settings
        self.group_size = group_size

    def fit(self, counts: np.ndarray, y=None):
        self.genes_ = expressed_genes(counts, self.group_size, **self.filter_settings)
        kept = ad.AnnData(
            X=counts[:, self.genes_],
            obs=pd.DataFrame(index=[str(i) for i in range(len(counts))]),
            var=pd.DataFrame(index=[str(j) for j in np.flatnonzero(self.genes_)]),
        )
        self.dds_ = fit_vst(kept, self.vst_settings, n_cpus=1)
        return self

    def transform(self, counts: np.ndarray) -> np.ndarray:
        return np.asarray(self.dds_.vst_transform(counts[:, self.genes_].astype(float)))


def vst_settings(deseq2: dict) -> dict:
    """The pipeline's DESeq2 settings for the in-fold VST; size factors always by median of
    ratios, whose geometric means carry over from training to test samples."""
    return {**deseq2, "size_factors_fit_type": "ratio"}


# ---------------------------------------------------------------- learners


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


def top_genes(genes: np.ndarray, labels: np.ndarray, masks: np.ndarray, k: int) -> np.ndarray:
    """For each row of labels and masks (label vector, samples used): the k genes of highest
    ANOVA F among those samples, as scikit-learn's f_classif ranks them.

    The two-group sums for all label vectors and sample sets come from four matrix products,
    so that the selection of every inner fold and label permutation costs little more than one.
    """
    centred = genes - genes.mean(axis=0)  # fewer cancellation errors in the sums of squares
    used = masks.astype(float)
    cases = used * labels
    n, n1 = used.sum(axis=1)[:, None], cases.sum(axis=1)[:, None]
    total, total_sq = used @ centred, used @ centred**2
    sum1 = cases @ centred
    sum0 = total - sum1
    between = sum1**2 / n1 + sum0**2 / (n - n1) - total**2 / n
    within = total_sq - sum1**2 / n1 - sum0**2 / (n - n1)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.nan_to_num(between / (within / (n - 2)), nan=0.0, posinf=np.finfo(float).max)
    return np.sort(np.argpartition(-f, k - 1, axis=1)[:, :k], axis=1)


def selected_genes(
    pipeline: Pipeline, chosen: np.ndarray, gene_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gene IDs of a fitted model's gene columns (first), and their coefficients (NaN for trees)."""
    model = pipeline.named_steps["model"]
    coefficients = model.coef_[0][: len(chosen)] if hasattr(model, "coef_") else np.full(len(chosen), np.nan)
    return gene_ids[chosen], coefficients


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


def split_features(
    cohort: Cohort, train: np.ndarray, settings: dict, filter_settings: dict, deseq2: dict
) -> tuple[np.ndarray, np.ndarray]:
    """[fold VST genes | covariates] of every sample, the VST fitted on `train`; and the genes."""
    group_size = int(np.bincount(cohort.labels[train], minlength=2).min())
    vst = FoldVST(filter_settings, vst_settings(deseq2), group_size).fit(cohort.counts[train])
    values = np.hstack([vst.transform(cohort.counts), cohort.clinical])
    return values, cohort.gene_ids[vst.genes_]


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


def model_columns(feature_set: str, chosen: np.ndarray, n_genes: int, n_clinical: int) -> np.ndarray:
    clinical = np.arange(n_genes, n_genes + n_clinical)
    return {"clinical": clinical, "expression": chosen, "combined": np.concatenate([chosen, clinical])}[
        feature_set
    ]


def run_models(
    values: np.ndarray,
    gene_ids: np.ndarray,
    n_clinical: int,
    label_sets: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    models: list[tuple],
    settings: dict,
    seed: int,
    groups: np.ndarray | None = None,
) -> list[dict]:
    """Every (label vector, model): grid point chosen by the mean AUC of the inner folds
    (genes selected, scaler and learner fitted on each inner fit set; each group in one inner
    fold), then selection, scaling and the learner refitted on the whole training set and
    applied to the test samples."""
    n_genes = len(gene_ids)
    k = min(settings["n_genes"], n_genes)
    folds = [
        inner_folds(labels, train, settings["inner_folds"], seed, groups) + [(train, test)]
        for labels in label_sets
    ]
    masks = np.zeros((len(label_sets), len(folds[0]), values.shape[0]), dtype=bool)
    for b, label_folds in enumerate(folds):
        for j, (fit_rows, _) in enumerate(label_folds):
            masks[b, j, fit_rows] = True
    repeated = np.repeat(label_sets, masks.shape[1], axis=0)
    chosen = top_genes(values[:, :n_genes], repeated, masks.reshape(-1, masks.shape[2]), k).reshape(
        len(label_sets), masks.shape[1], k
    )
    results = []
    for b, labels in enumerate(label_sets):
        for feature_set, learner in models:
            columns = [
                model_columns(feature_set, chosen[b, j], n_genes, n_clinical) for j in range(masks.shape[1])
            ]
            params = best_params(values, labels, folds[b][:-1], columns[:-1], learner, settings, seed)
            pipeline = fit_model(values, train, columns[-1], labels, learner, params, settings, seed)
            result = {
                "probability": pipeline.predict_proba(values[np.ix_(test, columns[-1])])[:, 1],
                "params": params,
            }
            if feature_set != "clinical":
                result["genes"], result["coefficients"] = selected_genes(pipeline, chosen[b, -1], gene_ids)
            results.append(result)
    return results


def best_params(
    values: np.ndarray,
    labels: np.ndarray,
    folds: list[tuple],
    columns: list[np.ndarray],
    learner: str,
    settings: dict,
    seed: int,
) -> dict:
    """The grid point with the highest mean validation AUC over the inner folds (the first of
    equals, as GridSearchCV); a grid of one point needs no inner fits."""
    _, grid = make_learner(learner, settings, seed)
    candidates = list(ParameterGrid(grid))
    if len(candidates) == 1:
        return candidates[0]
    scores = []
    for params in candidates:
        fold_auc = []
        for (fit_rows, validation_rows), fold_columns in zip(folds, columns):
            pipeline = fit_model(values, fit_rows, fold_columns, labels, learner, params, settings, seed)
            probability = pipeline.predict_proba(values[np.ix_(validation_rows, fold_columns)])[:, 1]
            fold_auc.append(rank_auc(probability, labels[validation_rows])[0])
        scores.append(np.mean(fold_auc))
    return candidates[int(np.argmax(scores))]


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
    """One outer split: the fold VST once, then every (feature set, learner) on every label
    vector of `label_sets` (the cohort's own labels when None). One thread (BLAS and OpenMP):
    the splits run in parallel, and OpenMP's waiting threads slow small fits down on a busy machine."""
    with threadpool_limits(limits=1):
        values, genes = split_features(cohort, train, settings, filter_settings, deseq2)
        label_sets = cohort.labels[None, :] if label_sets is None else label_sets
        return run_models(
            values,
            genes,
            cohort.clinical.shape[1],
            label_sets,
            train,
            test,
            models,
            settings,
            seed,
            cohort.groups,
        )


def model_grid(settings: dict) -> list[tuple]:
    return [(feature_set, learner) for feature_set in FEATURE_SETS for learner in settings["learners"]]


def cross_validate(
    cohort: Cohort, settings: dict, filter_settings: dict, deseq2: dict, seed: int, n_jobs: int
) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    """Out-of-fold predictions of every model in every repeat, the same outer folds for all;
    the site-held-out predictions; the outer splits (for the permutations) and what each
    split's models selected (for the selection frequencies)."""
    models = model_grid(settings)
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
    """Mean per-fold AUC difference from the clinical model of the same learner (paired: the
    same outer folds and test samples), its corrected t interval and p-value."""
    keys = ("auc_gain_over_clinical", "gain_low", "gain_high", "gain_p")
    if feature_set == "clinical" or ("clinical", learner) not in groups:
        return dict.fromkeys(keys, np.nan)
    folds = fold_statistics(groups[feature_set, learner], groups["clinical", learner])
    return dict(zip(keys, corrected_t(folds["auc"], ratio, variance_floor=folds["variance"].mean())))


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
