"""The prediction's figures: the ROC and calibration curves of each feature set's best learner."""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from trdpipe.predict.features import FEATURE_SETS


def prediction_figures(result: dict, contrast: dict) -> dict:
    """The ROC and calibration figures of predict_contrast's tables."""
    predictions, comparison = result["predictions"], result["comparison"]
    title = (
        "TRD prediction"
        if contrast["test"] == "TRD"
        else f"Prediction of {contrast['test']} vs {contrast['reference']}"
    )
    return {
        "roc": roc_plot(predictions, comparison, f"{title} (nested cross-validation)"),
        "calibration": calibration_plot(predictions, comparison, f"{title}: calibration"),
    }


def best_learner_predictions(predictions: pd.DataFrame, comparison: pd.DataFrame):
    """Per feature set: its name, its best learner's comparison row and that learner's predictions."""
    for feature_set in FEATURE_SETS:
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
