"""The prediction's features: the samples of a contrast with their layers, covariates and labels
(Cohort; Layer for each layer beyond the primary assay's counts), the fold-wise transforms of the
layers (FoldVST for counts: gene filter, size factors and dispersion trend learnt from a fold's
training samples; mean imputation of genotype dosages), the columns of each feature set, and the
in-fold feature selection (ANOVA F). The learners, folds and statistics that use them are in
predict/models.py.
"""

import logging
from dataclasses import dataclass, field, replace

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer

from trdpipe.model.filtering import expressed_genes
from trdpipe.model.vst import fit_vst

log = logging.getLogger("trd")

GENOTYPES = "genotypes"


@dataclass
class Layer:
    """A layer of the prediction beyond the primary assay: another assay's raw counts (`kind`
    "counts": filter and VST in the folds with its own `filter_settings`) or the genotype dosages
    with the sample sheet's scores (`kind` "genotypes": mean imputation in the folds). `values` is
    samples x features, indexed by sample ID; `n_features` are kept per training fold (ANOVA F)."""

    name: str
    kind: str
    values: pd.DataFrame
    n_features: int
    filter_settings: dict | None = None


@dataclass
class Cohort:
    """What the prediction needs of the samples of one contrast (rows in the same order): the
    primary assay's raw counts, the other layers, the covariates and the labels."""

    sample_ids: np.ndarray
    counts: np.ndarray  # the primary assay's raw counts, samples x genes
    gene_ids: np.ndarray
    clinical: np.ndarray  # encoded covariates, samples x columns
    clinical_names: list
    labels: np.ndarray  # 1 = the contrast's test group
    sites: np.ndarray | None  # the group_by column, or None
    groups: np.ndarray | None = None  # the predict.groups column (related samples), or None
    primary: str = "mrna"  # the primary assay's name: its feature set's
    layers: list = field(default_factory=list)  # the other layers (Layer), rows as sample_ids


@dataclass
class FoldFeatures:
    """One outer split's features of every sample, transformed as learnt from its training
    samples: [each layer's kept features | covariates]; per layer its columns and how many of
    them the selection keeps; the ID and layer of every column."""

    values: np.ndarray
    blocks: dict  # layer name -> (columns, k)
    column_ids: np.ndarray
    column_layers: np.ndarray
    n_clinical: int

    @property
    def clinical(self) -> np.ndarray:
        return np.arange(self.values.shape[1] - self.n_clinical, self.values.shape[1])


def count_layer(name: str, adata: ad.AnnData, n_features: int, filter_settings: dict) -> Layer:
    """An assay's filtered cohort (raw counts) as a layer: filter and VST in the folds."""
    values = pd.DataFrame(np.asarray(adata.X), index=adata.obs_names, columns=adata.var_names)
    return Layer(name, "counts", values, n_features, filter_settings)


def genotype_layer(dosages: pd.DataFrame, obs: pd.DataFrame, scores: list[str], n_features: int) -> Layer:
    """The genotype dosages (samples x variants, indexed by sample ID) and the sample sheet's
    score columns (`scores`, a polygenic score say) of the samples that have dosages, as one layer."""
    return Layer(GENOTYPES, GENOTYPES, dosages.join(obs[scores], how="inner"), n_features)


def read_layers(settings: dict, assay_paths: list, genotypes_path, obs: pd.DataFrame) -> list[Layer]:
    """The layers beyond the primary assay, as the predict rule gives them: each other assay's
    filtered cohort (settings["assays"], in the order of `assay_paths`), then, when
    `genotypes_path` names the dosage table, the genotypes with the sheet's (`obs`) score columns."""
    layers = [
        count_layer(name, ad.read_h5ad(path), settings[name]["n_features"], dict(settings[name]["filter"]))
        for name, path in zip(settings["assays"], assay_paths)
    ]
    if genotypes_path:
        dosages = pd.read_csv(genotypes_path, sep="\t", index_col=0)
        dosages.index = dosages.index.astype(str)
        genotypes = settings[GENOTYPES]
        layers.append(genotype_layer(dosages, obs, list(genotypes["scores"]), genotypes["n_features"]))
    return layers


def encode_covariates(obs: pd.DataFrame, covariates: list[str]) -> pd.DataFrame:
    """Numeric covariates as they are, categorical ones one-hot (first level dropped). This uses
    no labels; scaling, which learns from data, happens inside the folds."""
    return pd.get_dummies(obs[covariates], drop_first=True, dtype=float)


def make_cohort(
    adata: ad.AnnData,
    contrast: dict,
    covariates: list[str],
    group_by: str | None,
    groups: str | None = None,
    primary: str = "mrna",
    layers: tuple = (),
) -> Cohort:
    """The samples of the contrast's two groups present in every layer (the primary assay's
    `adata` and each Layer), with their counts, layers, covariates and labels; `groups` names the
    column of related samples (a subject's) that no fold may split. Every feature set is then
    evaluated on the same samples, so that their differences are paired."""
    adata = adata[adata.obs[contrast["variable"]].astype(str).isin([contrast["test"], contrast["reference"]])]
    adata = adata[common_samples(adata.obs_names, layers)]
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
        primary=primary,
        layers=[replace(layer, values=layer.values.loc[adata.obs_names]) for layer in layers],
    )


def common_samples(samples: pd.Index, layers: tuple) -> pd.Index:
    """The samples (in their order) that every layer has; each layer's shortfall logged."""
    kept = samples
    for layer in layers:
        missing = kept.difference(layer.values.index, sort=False)
        if len(missing):
            log.info(
                "prediction: %d sample(s) of the contrast have no %s data and are left out of every feature "
                "set (so that all are compared on the same samples): %s",
                len(missing),
                layer.name,
                ", ".join(missing),
            )
        kept = kept.intersection(layer.values.index, sort=False)
    return kept


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


def split_features(
    cohort: Cohort, train: np.ndarray, settings: dict, filter_settings: dict, deseq2: dict
) -> FoldFeatures:
    """Every layer transformed as learnt from the `train` samples (counts: fold VST of the genes
    its filter keeps; genotypes: mean imputation), then the covariates; the primary assay keeps
    predict.n_genes features per fold, every other layer its own n_features."""
    group_size = int(np.bincount(cohort.labels[train], minlength=2).min())
    primary = Layer(cohort.primary, "counts", None, settings["n_genes"], filter_settings)
    parts, blocks, ids, layers = [], {}, [], []
    start = 0
    for layer, values, feature_ids in [(primary, cohort.counts, cohort.gene_ids)] + [
        (layer, layer.values.to_numpy(), layer.values.columns.to_numpy().astype(str))
        for layer in cohort.layers
    ]:
        transformed, kept = fold_transform(layer, values, train, group_size, deseq2)
        parts.append(transformed)
        blocks[layer.name] = (
            np.arange(start, start + transformed.shape[1]),
            min(layer.n_features, len(kept)),
        )
        ids.append(feature_ids[kept])
        layers.append(np.full(len(kept), layer.name))
        start += transformed.shape[1]
    return FoldFeatures(
        values=np.hstack(parts + [cohort.clinical]),
        blocks=blocks,
        column_ids=np.concatenate(ids + [np.asarray(cohort.clinical_names, dtype=str)]),
        column_layers=np.concatenate(layers + [np.full(len(cohort.clinical_names), "clinical")]),
        n_clinical=cohort.clinical.shape[1],
    )


def fold_transform(
    layer: Layer, values: np.ndarray, train: np.ndarray, group_size: int, deseq2: dict
) -> tuple[np.ndarray, np.ndarray]:
    """A layer's values of every sample, transformed as learnt from the `train` samples, and the
    indices of the features kept."""
    if layer.kind == GENOTYPES:
        imputer = SimpleImputer(strategy="mean", keep_empty_features=True).fit(values[train])
        return imputer.transform(values), np.arange(values.shape[1])
    vst = FoldVST(layer.filter_settings, vst_settings(deseq2), group_size).fit(values[train])
    return vst.transform(values), np.flatnonzero(vst.genes_)


def feature_sets(cohort: Cohort, settings: dict) -> list[str]:
    """The feature sets of the comparison: clinical, each layer alone (the primary assay first),
    combined (early fusion: covariates and every layer's selected features in one model) and,
    when predict.stacked_learners names any, stacked (late fusion of the single-layer models)."""
    layers = layer_sets(cohort)
    return ["clinical", *layers, "combined"] + (["stacked"] if settings["stacked_learners"] else [])


def layer_sets(cohort: Cohort) -> list[str]:
    """The single-layer feature sets: the primary assay, then the other layers."""
    return [cohort.primary] + [layer.name for layer in cohort.layers]


def model_columns(feature_set: str, chosen: dict, features: FoldFeatures) -> np.ndarray:
    """Columns of a feature set: a layer's selected features, the covariates, or (combined) every
    layer's selected features then the covariates."""
    if feature_set == "clinical":
        return features.clinical
    if feature_set == "combined":
        return np.concatenate([*chosen.values(), features.clinical])
    return chosen[feature_set]


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
