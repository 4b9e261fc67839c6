"""Predict TRD from blood expression and clinical covariates, with honestly nested cross-validation.

Every step that looks at the labels (gene selection, the regularisation
strength) happens inside the training folds, so the outer-fold AUC estimates
performance on new patients. The VST is blind (it never sees the labels).
"""

import logging

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.feature_selection import SelectKBest, f_classif  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score, roc_curve  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from pipeline_common import save_figure, write_table  # noqa: E402

log = logging.getLogger("trd")


def feature_table(vst: ad.AnnData, covariates: list[str]) -> tuple[pd.DataFrame, int]:
    """Samples x (genes, then encoded clinical covariates), and the number of gene columns.

    Covariates are one-hot encoded here (first level dropped): that uses no labels, and a
    plain numeric matrix keeps the many cross-validation refits fast.
    """
    genes = pd.DataFrame(np.asarray(vst.X), index=vst.obs_names, columns=vst.var_names.astype(str))
    clinical = (pd.get_dummies(vst.obs[covariates], drop_first=True, dtype=float) if covariates
                else pd.DataFrame(index=vst.obs_names))
    return pd.concat([genes, clinical], axis=1), genes.shape[1]


def make_classifier(n_gene_columns: int, n_columns: int, settings: dict, seed: int) -> GridSearchCV:
    """Ridge (L2) logistic regression on the k most group-associated genes plus covariates."""
    genes = Pipeline([("select", SelectKBest(f_classif, k=min(settings["n_genes"], n_gene_columns))),
                      ("scale", StandardScaler())])
    blocks = [("genes", genes, slice(0, n_gene_columns))]
    if n_columns > n_gene_columns:
        blocks.append(("clinical", StandardScaler(), slice(n_gene_columns, n_columns)))
    features = ColumnTransformer(blocks)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    return GridSearchCV(
        Pipeline([("features", features), ("model", model)]),
        {"model__C": settings["c_grid"]},
        scoring="roc_auc",
        cv=StratifiedKFold(settings["inner_folds"], shuffle=True, random_state=seed),
    )


def nested_cv(features: pd.DataFrame, n_gene_columns: int, labels: np.ndarray, settings: dict,
              seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Outer-fold AUCs and the out-of-fold probability of every sample."""
    values = features.to_numpy()
    outer = StratifiedKFold(settings["outer_folds"], shuffle=True, random_state=seed)
    folds, predictions = [], []
    for fold, (train, test) in enumerate(outer.split(values, labels), start=1):
        search = make_classifier(n_gene_columns, values.shape[1], settings, seed)
        search.fit(values[train], labels[train])
        probability = search.predict_proba(values[test])[:, 1]
        folds.append({"fold": fold, "n_test": len(test), "auc": roc_auc_score(labels[test], probability),
                      "best_C": search.best_params_["model__C"]})
        predictions.append(pd.DataFrame({"sample_id": features.index[test], "fold": fold,
                                         "label": labels[test], "probability": probability}))
    return pd.DataFrame(folds), pd.concat(predictions).sort_values("sample_id").reset_index(drop=True)


def summarise(folds: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """Mean outer-fold AUC with its spread, and the pooled out-of-fold AUC."""
    return pd.DataFrame([
        {"metric": "auc_mean_of_folds", "value": folds["auc"].mean()},
        {"metric": "auc_sd_of_folds", "value": folds["auc"].std(ddof=1)},
        {"metric": "auc_pooled_out_of_fold", "value": roc_auc_score(predictions["label"],
                                                                   predictions["probability"])},
    ])


def final_model_genes(features: pd.DataFrame, n_gene_columns: int, labels: np.ndarray, settings: dict,
                      seed: int, var: pd.DataFrame) -> pd.DataFrame:
    """Genes of the model refitted on all samples, by |coefficient| (for interpretation only:
    performance comes from the nested CV)."""
    search = make_classifier(n_gene_columns, features.shape[1], settings, seed)
    search.fit(features.to_numpy(), labels)
    pipeline = search.best_estimator_
    chosen = pipeline.named_steps["features"].named_transformers_["genes"].named_steps["select"].get_support()
    gene_ids = features.columns[:n_gene_columns][chosen]
    table = pd.DataFrame({
        "gene_id": gene_ids,
        "gene_symbol": var.reindex(gene_ids)["gene_symbol"].fillna("").to_numpy(),
        "coefficient": pipeline.named_steps["model"].coef_[0][: len(gene_ids)],
    })
    return table.reindex(table["coefficient"].abs().sort_values(ascending=False, kind="stable").index)


def roc_plot(predictions: pd.DataFrame, auc: float):
    fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
    fpr, tpr, _ = roc_curve(predictions["label"], predictions["probability"])
    ax.plot(fpr, tpr, lw=1.5, label=f"out-of-fold AUC {auc:.2f}")
    ax.plot([0, 1], [0, 1], c="0.6", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("TRD prediction (nested cross-validation)")
    ax.legend(loc="lower right", frameon=False)
    return fig


def main(smk) -> None:
    settings, contrast, seed = dict(smk.params.predict), dict(smk.params.contrast), int(smk.params.seed)
    vst = ad.read_h5ad(smk.input.vst)
    vst = vst[vst.obs[contrast["variable"]].astype(str).isin([contrast["test"], contrast["reference"]])]
    labels = (vst.obs[contrast["variable"]].astype(str) == contrast["test"]).to_numpy().astype(int)
    covariates = [c for c in settings["covariates"] if c in vst.obs.columns]
    features, n_gene_columns = feature_table(vst, covariates)
    log.info("predicting %s = %s vs %s from %d samples, %d genes (top %d chosen in each fold) and %s",
             contrast["variable"], contrast["test"], contrast["reference"], len(labels), vst.n_vars,
             settings["n_genes"], ", ".join(covariates) or "no covariates")
    folds, predictions = nested_cv(features, n_gene_columns, labels, settings, seed)
    metrics = summarise(folds, predictions)
    log.info("outer folds:\n%s\n%s", folds.to_string(index=False), metrics.to_string(index=False))
    genes = final_model_genes(features, n_gene_columns, labels, settings, seed, vst.var)
    write_table(pd.concat([folds.assign(metric="auc").rename(columns={"auc": "value"}), metrics]),
                smk.output.metrics, float_format="%.6g")
    write_table(predictions, smk.output.predictions, float_format="%.6g")
    write_table(genes, smk.output.genes, float_format="%.6g")
    save_figure(roc_plot(predictions, metrics.set_index("metric").loc["auc_pooled_out_of_fold", "value"]),
                smk.output.roc)


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
