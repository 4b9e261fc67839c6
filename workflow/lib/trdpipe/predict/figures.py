"""The prediction's figures: the layer comparison (AUC of each feature set and what it adds),
and the ROC and calibration curves of each feature set's best learner."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve


def prediction_figures(result: dict, contrast: dict) -> dict:
    """The ROC and calibration figures of predict_contrast's tables."""
    predictions, comparison = result["predictions"], result["comparison"]
    title = (
        "TRD prediction"
        if contrast["test"] == "TRD"
        else f"Prediction of {contrast['test']} vs {contrast['reference']}"
    )
    return {
        "layers": layer_plot(
            result["comparison"], result["gains"], result["primary"], f"{title}: what each layer adds"
        ),
        "roc": roc_plot(predictions, comparison, f"{title} (nested cross-validation)"),
        "calibration": calibration_plot(predictions, comparison, f"{title}: calibration"),
    }


def best_learner_predictions(predictions: pd.DataFrame, comparison: pd.DataFrame):
    """Per feature set: its name, its best learner's comparison row and that learner's predictions."""
    for feature_set in comparison["feature_set"].unique():
        rows = comparison[comparison["feature_set"] == feature_set]
        best = rows.loc[rows["auc_mean"].idxmax()]
        chosen = predictions[
            (predictions["feature_set"] == feature_set) & (predictions["learner"] == best["learner"])
        ]
        yield feature_set, best, chosen


def roc_plot(predictions: pd.DataFrame, comparison: pd.DataFrame, title: str):
    """Pooled out-of-fold ROC curve (all repeats) of each feature set with its best learner."""
    fig, ax = plt.subplots(figsize=(4.8, 4.8), layout="constrained")
    for feature_set, best, chosen in best_learner_predictions(predictions, comparison):
        fpr, tpr, _ = roc_curve(chosen["label"], chosen["probability"])
        ax.plot(
            fpr,
            tpr,
            lw=1.5,
            label=(
                f"{feature_set} ({best['learner']}): AUC {best['auc_mean']:.2f} "
                f"[{best['auc_low']:.2f}, {best['auc_high']:.2f}]"
            ),
        )
    ax.plot([0, 1], [0, 1], c="0.6", lw=0.8, ls="--")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", frameon=False, fontsize=7)
    return fig


def calibration_plot(predictions: pd.DataFrame, comparison: pd.DataFrame, title: str, n_bins: int = 10):
    """Reliability curve (quantile bins of the out-of-fold probabilities) with the Brier score."""
    fig, ax = plt.subplots(figsize=(4.8, 4.8), layout="constrained")
    for feature_set, best, chosen in best_learner_predictions(predictions, comparison):
        observed, predicted = calibration_curve(
            chosen["label"], chosen["probability"], n_bins=n_bins, strategy="quantile"
        )
        ax.plot(
            predicted,
            observed,
            marker="o",
            ms=3,
            lw=1.2,
            label=f"{feature_set} ({best['learner']}): Brier {best['brier']:.3f}",
        )
    ax.plot([0, 1], [0, 1], c="0.6", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability (out of fold)")
    ax.set_ylabel("observed fraction in the test group")
    ax.set_title(title)
    ax.legend(loc="upper left", frameon=False, fontsize=7)
    return fig


def layer_plot(comparison: pd.DataFrame, gains: pd.DataFrame, primary: str, title: str):
    """Left, each feature set's AUC with its 95% interval; right, its AUC gain over the clinical
    and over the primary assay's model with theirs (layer_gains); the models of the learner of
    the best combined model."""
    combined = comparison[comparison["feature_set"] == "combined"]
    learner = combined.loc[combined["auc_mean"].idxmax(), "learner"]
    rows = comparison[comparison["learner"] == learner]
    y = np.arange(len(rows))
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(8, 1.5 + 0.4 * len(rows)), sharey=True, layout="constrained"
    )
    left.errorbar(
        rows["auc_mean"],
        y,
        xerr=[rows["auc_mean"] - rows["auc_low"], rows["auc_high"] - rows["auc_mean"]],
        fmt="o",
        c="k",
        capsize=3,
    )
    left.axvline(0.5, c="0.6", lw=0.8, ls="--")
    left.set_yticks(y, rows["feature_set"])
    left.invert_yaxis()
    left.set_xlabel(f"AUC, mean of the outer folds ({learner}, 95% CI)")
    for offset, reference in ((-0.12, "clinical"), (0.12, primary)):
        chosen = gains[(gains["learner"] == learner) & (gains["reference"] == reference)]
        chosen = chosen.set_index("feature_set").reindex(rows["feature_set"])
        right.errorbar(
            chosen["auc_gain"],
            y + offset,
            xerr=[chosen["auc_gain"] - chosen["gain_low"], chosen["gain_high"] - chosen["auc_gain"]],
            fmt="o",
            capsize=3,
            label=f"over the {reference} model",
        )
    right.axvline(0, c="0.6", lw=0.8, ls="--")
    right.set_xlabel("AUC gain (paired folds, 95% CI)")
    right.legend(frameon=False, fontsize=7)
    fig.suptitle(title)
    return fig
