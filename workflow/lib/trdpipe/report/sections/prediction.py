"""Prediction of one contrast's groups, or why it did not run."""

import pandas as pd

from trdpipe.checks.inputs import contrast_samples, prediction_groups_column
from trdpipe.predict.models import permutation_scheme
from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run
from trdpipe.report.text import anchor_of, permutation_p_text, table_rows

N_MODEL_GENES = 20

PREDICTION_COLUMNS = [
    "feature_set",
    "learner",
    "auc_mean",
    "auc_low",
    "auc_high",
    "auc_folds_low",
    "auc_folds_high",
    "auc_pooled",
    "auc_pooled_low",
    "auc_pooled_high",
    "balanced_accuracy",
    "brier",
    "auc_gain_over_clinical",
    "gain_low",
    "gain_high",
    "gain_p",
    "permutation_p",
]


def prediction_section(
    name: str, contrast: dict, files: dict, config: dict, caption_dir, obs: pd.DataFrame | None = None
) -> dict:
    """The model comparison, what it says (best model and whether its interval includes 0.5;
    whether the molecular data add to the clinical data; which layer adds what), the layer
    comparison (each feature set's gain over the clinical and the primary assay's model),
    site-held-out AUCs, figures and genes; with the samples' sheet (`obs`), how the folds and
    permutations treat related samples."""
    comparison = pd.read_csv(files["comparison"], sep="\t")
    gains = pd.read_csv(files["gains"], sep="\t")
    sites = pd.read_csv(files["site"], sep="\t")
    genes = pd.read_csv(files["genes"], sep="\t", keep_default_na=False).head(N_MODEL_GENES)
    best = best_model(comparison)
    heading = f"Prediction of {contrast['test']} vs {contrast['reference']}"
    permutations = config["predict"]["permutations"]
    shown = comparison[PREDICTION_COLUMNS].round(3).astype(object)
    # from the unrounded p-value, which tells whether it is the smallest possible
    shown["permutation_p"] = [permutation_p_text(p, permutations) for p in comparison["permutation_p"]]
    return {
        "name": name,
        "anchor": anchor_of("predict", name),
        "heading": heading,
        "findings": prediction_findings(comparison, best, contrast, permutations)
        + [layer_sentence(gains, primary_set(comparison), combined_learner(comparison))],
        "comparison": table_rows(shown),
        "gains": table_rows(gains.round(3)),
        "primary": primary_set(comparison),
        "sites": table_rows(sites.round(3)) if len(sites) else None,
        "genes": table_rows(genes),
        "genes_model": f"{genes['feature_set'].iloc[0]} / {genes['learner'].iloc[0]}" if len(genes) else "",
        "figures": [figure(files[key], caption_dir, config) for key in ("layers", "roc", "calibration")],
        **(
            prediction_grouping(obs, contrast, config)
            if obs is not None
            else {"groups": None, "grouping": ""}
        ),
    }


# how the prediction's label permutations treat a grouping column, by permutation_scheme
PERMUTED_LABELS = {
    "within groups": "within each {column} (the label varies within a {column}: a paired design)",
    "whole groups": "by whole {column}s (every {column} has one label, which all its samples keep)",
}


def prediction_grouping(obs: pd.DataFrame, contrast: dict, config: dict) -> dict:
    """The column whose related samples the folds keep together ('groups', resolved from
    predict.groups as the prediction resolves it), and one sentence on it and on how the label
    permutations treat them ('grouping')."""
    column = prediction_groups_column(obs, config["predict"], config["design"], contrast)
    if column is None:
        return {
            "groups": None,
            "grouping": "Related samples: none declared or found (predict.groups), so the folds split the "
            "samples one by one.",
        }
    compared = contrast_samples(obs, contrast)
    labels = (compared[contrast["variable"]].astype(str) == contrast["test"]).to_numpy().astype(int)
    groups = compared[column].astype(str).to_numpy()
    permuted = PERMUTED_LABELS[permutation_scheme(labels, groups)].format(column=column)
    return {
        "groups": column,
        "grouping": f"Related samples: every outer and inner fold keeps the samples of each {column} "
        f"together ({len(set(groups))} {column}s, predict.groups), so no model is tested on a {column} it "
        f"was trained on; the label permutations permute labels {permuted}.",
    }


def best_model_findings(best: pd.Series, test: str, permutations: int) -> list[str]:
    """The best model's AUC with its interval and p-value (of `permutations` label permutations), and a
    plain warning when the interval includes 0.5."""
    permutation = (
        "no label permutations (predict.permutations 0)"
        if pd.isna(best["permutation_p"])
        else f"label-permutation p = {permutation_p_text(best['permutation_p'], permutations)}"
    )
    sentences = [
        f"Best model: {best['feature_set']} features, {best['learner']}: out-of-fold AUC "
        f"{best['auc_mean']:.2f} (95% CI {best['auc_low']:.2f}-{best['auc_high']:.2f}), {permutation}."
    ]
    if best["auc_low"] <= 0.5:
        sentences.append(
            f"The 95% interval of the best model's AUC includes 0.5: these data do not show "
            f"that {test} can be predicted better than by chance."
        )
    return sentences


def best_model(comparison: pd.DataFrame) -> pd.Series:
    return comparison[comparison["best"].astype(str) == "True"].iloc[0]


def combined_learner(comparison: pd.DataFrame) -> str:
    """The learner of the combined model with the highest AUC: the one whose gains the findings quote."""
    combined = comparison[comparison["feature_set"] == "combined"]
    return combined.loc[combined["auc_mean"].idxmax(), "learner"]


def primary_set(comparison: pd.DataFrame) -> str:
    """The primary assay's feature set: the first after the clinical one (feature_sets' order)."""
    return comparison["feature_set"].drop_duplicates().iloc[1]


def prediction_findings(
    comparison: pd.DataFrame, best: pd.Series, contrast: dict, permutations: int
) -> list[str]:
    """Plain sentences: the best model (best_model_findings) and whether the molecular data add
    to the clinical data (the combined model with its best learner)."""
    sentences = best_model_findings(best, contrast["test"], permutations)
    row = comparison[
        (comparison["feature_set"] == "combined") & (comparison["learner"] == combined_learner(comparison))
    ].iloc[0]
    gain = (
        f"combined minus clinical AUC {row['auc_gain_over_clinical']:+.2f} (95% CI "
        f"{row['gain_low']:+.2f} to {row['gain_high']:+.2f}, corrected resampled t p = {row['gain_p']:.3g}; "
        f"{row['learner']})"
    )
    sentences.append(
        f"The molecular data add to the clinical data: {gain}."
        if row["gain_low"] > 0
        else f"The molecular data do not add detectably to the clinical data: {gain}."
    )
    return sentences


# the feature sets that fuse layers: their gains are in the layer table, not in the layer sentence
FUSED = ("combined", "stacked")


def layer_sentence(gains: pd.DataFrame, primary: str, learner: str) -> str:
    """One sentence on which layer adds what, with `learner`'s models: each layer's AUC gain over
    the clinical model (a gain when its 95% interval lies above 0), then which other layers add to
    the primary assay's model."""
    rows = gains[(gains["learner"] == learner) & ~gains["feature_set"].isin(FUSED)]
    over_clinical = rows[rows["reference"] == "clinical"]
    adds = over_clinical[over_clinical["gain_low"] > 0]
    others = over_clinical[over_clinical["gain_low"] <= 0]
    parts = [
        ", ".join(
            f"{r.feature_set} adds {gain_text(r, first=i == 0)}" for i, r in enumerate(adds.itertuples())
        )
    ]
    if len(others):
        verb = "adds" if len(others) == 1 else "add"
        parts.append(
            join_names(
                [f"{r.feature_set} ({r.auc_gain:+.2f}, {interval_text(r)})" for r in others.itertuples()]
            )
            + f" {verb} nothing detectable"
        )
    over_primary = rows[(rows["reference"] == primary) & (rows["gain_low"] > 0)]
    tail = ""
    if (rows["reference"] == primary).any():
        tail = f"; over the {primary} model, " + (
            ", ".join(f"{r.feature_set} adds {gain_text(r)}" for r in over_primary.itertuples())
            if len(over_primary)
            else "no other layer adds detectably"
        )
    return f"Over the clinical model ({learner}), " + "; ".join(p for p in parts if p) + tail + "."


def gain_text(row, first: bool = False) -> str:
    if first:
        return f"{row.auc_gain:+.2f} AUC (95% CI {interval_text(row)})"
    return f"{row.auc_gain:+.2f} ({interval_text(row)})"


def interval_text(row) -> str:
    return f"{row.gain_low:+.2f} to {row.gain_high:+.2f}, p = {row.gain_p:.2g}"


def join_names(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def prediction_not_run(switched_off: list[str]) -> str:
    """Why the prediction did not run: ingest's note when `predict.enabled: auto` switched it off
    (the sample sheet cannot feed it), else the config's `false`."""
    for note in switched_off:
        if note.startswith("prediction switched off"):
            return f"Not run: {note}."
    return "Not run: the config sets predict.enabled to false."


PREDICTION_FILES = {
    "comparison": "predict_comparison",
    "gains": "predict_gains",
    "layers": "predict_layers",
    "site": "predict_site",
    "genes": "predict_genes",
    "roc": "predict_roc",
    "calibration": "predict_calibration",
}


def predicted(run: Run) -> list[str]:
    """The contrasts whose groups the run predicted."""
    return list(run.inputs.each("predict_comparison"))


def groupings(run: Run) -> list[dict]:
    """Per predicted contrast, the column whose related samples the folds keep together and the
    sentence on it (prediction_grouping)."""
    obs, config = run.filtered.obs, run.config
    return [
        {"name": name, **prediction_grouping(obs, run.contrasts[name], config)} for name in predicted(run)
    ]


def predictions(run: Run) -> list[dict]:
    return [
        prediction_section(
            name,
            run.contrasts[name],
            {key: run.inputs.of(name, file) for key, file in PREDICTION_FILES.items()},
            run.config,
            run.template_dir,
            run.filtered.obs,
        )
        for name in predicted(run)
    ]


def build(run: Run) -> dict:
    sections = predictions(run)
    toc = [{"anchor": p["anchor"], "label": f"Prediction: {p['name']}"} for p in sections]
    return {"toc": toc, "predictions": sections, "not_run": prediction_not_run(run.switched_off)}
