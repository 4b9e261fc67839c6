"""The prediction's features: the samples of a contrast with their counts, covariates and labels
(Cohort), the fold-wise VST of the counts (FoldVST: gene filter, size factors and dispersion trend
learnt from a fold's training samples), the columns of each feature set, and the in-fold gene
selection (ANOVA F). The learners, folds and statistics that use them are in predict/models.py.
"""

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from trdpipe.model.filtering import expressed_genes
from trdpipe.model.vst import fit_vst

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
) -> tuple[np.ndarray, np.ndarray]:
    """[fold VST genes | covariates] of every sample, the VST fitted on `train`; and the genes."""
    group_size = int(np.bincount(cohort.labels[train], minlength=2).min())
    vst = FoldVST(filter_settings, vst_settings(deseq2), group_size).fit(cohort.counts[train])
    values = np.hstack([vst.transform(cohort.counts), cohort.clinical])
    return values, cohort.gene_ids[vst.genes_]


def model_columns(feature_set: str, chosen: np.ndarray, n_genes: int, n_clinical: int) -> np.ndarray:
    clinical = np.arange(n_genes, n_genes + n_clinical)
    return {"clinical": clinical, "expression": chosen, "combined": np.concatenate([chosen, clinical])}[
        feature_set
    ]


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
