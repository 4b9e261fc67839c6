"""Sensitivity models: each a named change to the primary analysis (config `sensitivity:`).

A model may replace the design (`design`), remove terms from it (`remove`), add sample-sheet
columns (`add`) or the cell-composition covariates (`cell_scores: true`), keep only samples
whose column has given values (`keep: {column: [values]}`) and leave out samples by value
(`drop: {column: [values]}`). Ingest checks every model the sample sheet can tell about
(columns, group sizes, rank); the sensitivity rule checks the rank again with the cell
covariates, which exist only after the VST, before it fits.

Also here: the concordance of a model's DE table with the primary one, and the sentence the
report says about it (no PyDESeq2, so ingest and the report can import this module).
"""

import anndata as ad
import numpy as np
import pandas as pd

from trdpipe.checks.inputs import (
    check_design,
    check_full_rank,
    check_group_sizes,
    design_rank,
    design_variables,
    formula_name,
)
from trdpipe.common import InputError, format_list

CONCORDANCE_COLUMNS = [
    "contrast",
    "model",
    "design",
    "n_samples",
    "degs_primary",
    "degs_model",
    "overlap",
    "lost",
    "gained",
    "lfc_r_all",
    "lfc_r_primary_degs",
    "sign_agreement",
    "group_r2_cells",
    "n_cell_covariates",
    "residual_df_primary",
    "residual_df_model",
]
# above this share of the group's variance explained by the cell covariates, the report warns that
# the cell-adjusted group effect is barely estimable
GROUP_R2_WARNING = 0.5
# below it, the cell adjustment "changed little" only when at least this share of the primary DEGs
# stays significant
KEPT_SHARE_LITTLE_CHANGE = 0.7
# a model with fewer residual degrees of freedom is fitted but flagged: each gene's dispersion then
# rests on one or two residuals, and its calls on the prior alone
MIN_RESIDUAL_DF = 3


# ----------------------------------------------------------------------------- the model
def design_terms(design: str) -> list[str]:
    """The right-hand side's terms as written ('~ a + b:c' -> ['a', 'b:c'])."""
    return [t.strip() for t in design.split("~", 1)[1].split("+") if t.strip()]


def model_design(primary: str, spec: dict, cell_covariates: list[str] = ()) -> str:
    """The model's formula: its own design or the primary's, minus `remove`, plus `add` and cells."""
    removed = set(spec.get("remove", []))
    terms = [
        t
        for t in design_terms(spec.get("design") or primary)
        if t not in removed and not set(design_variables(f"~ {t}")) & removed
    ]
    added = list(spec.get("add", [])) + (list(cell_covariates) if spec.get("cell_scores") else [])
    terms += [formula_name(t) for t in added if formula_name(t) not in terms]
    return "~ " + " + ".join(terms)


def model_samples(obs: pd.DataFrame, spec: dict) -> pd.Index:
    """Samples the model keeps: those matching every `keep`, minus those matching any `drop`."""
    mask = pd.Series(True, index=obs.index)
    for column, values in spec.get("keep", {}).items():
        mask &= obs[column].astype(str).isin([str(v) for v in values])
    for column, values in spec.get("drop", {}).items():
        mask &= ~obs[column].astype(str).isin([str(v) for v in values])
    return obs.index[mask.to_numpy()]


def named_columns(spec: dict) -> list[str]:
    """Sample-sheet columns a model names outside its design."""
    return list(dict.fromkeys([*spec.get("add", []), *spec.get("keep", {}), *spec.get("drop", {})]))


def check_model(
    name: str,
    spec: dict,
    obs: pd.DataFrame,
    primary: str,
    contrasts: dict,
    where: str,
    cell_covariates: list[str] = (),
) -> str:
    """Stop with a message naming the model if it cannot be fitted; return its design.

    Without `cell_covariates` (at ingest, before the cell scores exist) the model is checked
    without them; the sensitivity rule checks it again with them.
    """
    prefix = f"sensitivity model '{name}'"
    absent = [c for c in named_columns(spec) if c not in obs.columns]
    if absent:
        raise InputError(
            f"{where}: {prefix} names column(s) {format_list(absent)} that the sample sheet "
            f"does not have; its columns are {format_list(obs.columns, 30)}."
        )
    for column, values in spec.get("keep", {}).items():
        present = obs[column].dropna().astype(str).unique()
        if not set(map(str, values)) & set(present):
            raise InputError(
                f"{where}: {prefix} keeps the samples whose '{column}' is {format_list(values)}, but "
                f"no sample is: the column's values are {format_list(sorted(present))}; write the "
                f"model's keep: with those values."
            )
    design = model_design(primary, spec, cell_covariates)
    variables = design_variables(design)
    for contrast_name, contrast in contrasts.items():
        if contrast["variable"] not in variables:
            raise InputError(
                f"{prefix}: its design '{design}' has no '{contrast['variable']}', the variable "
                f"of contrast '{contrast_name}'; a sensitivity model must keep it."
            )
    samples = model_samples(obs, spec)
    subset = obs.loc[samples]
    try:
        check_group_sizes(subset, contrasts, where=f"{where}, {prefix} ({len(samples)} samples)")
        sheet_variables = [v for v in variables if v not in cell_covariates]
        check_design(subset, "~ " + " + ".join(map(formula_name, sheet_variables)), contrasts, where)
        check_full_rank(subset, design, where)
    except InputError as err:
        message = str(err)
        raise InputError(message if prefix in message else f"{prefix}: {message}") from None
    return design


def active_models(models: dict, cells: dict) -> dict:
    """The models that run: those not switched off (`enabled: false`), and none that needs the
    cell scores when cell composition is off (`cells.enabled: false`)."""
    return {
        name: spec
        for name, spec in models.items()
        if spec.get("enabled", True) and (cells.get("enabled", True) or not spec.get("cell_scores"))
    }


def models_with(models: dict, flag: str) -> list[str]:
    """Names of the models that set one of the schema's flags (`enrichment`, `key_finding`): what a
    model gets is read from its flags, never from its name."""
    return [name for name, spec in models.items() if spec.get(flag)]


def key_finding_model(models: dict) -> str | None:
    """The model the report's key findings follow (`key_finding: true`) among `models` (those that
    run: active_models), None without one. The key findings have one line for it, so two such models
    are a config error."""
    names = models_with(models, "key_finding")
    if len(names) > 1:
        raise InputError(
            f"config sensitivity: key_finding is true for {format_list(names)}; set it on one model at most."
        )
    return names[0] if names else None


def check_models(models: dict, obs: pd.DataFrame, primary: str, contrasts: dict, where: str) -> None:
    """Every configured model, as far as the sample sheet can tell (called by ingest)."""
    for name, spec in models.items():
        check_model(name, dict(spec), obs, primary, contrasts, where)


def group_r2(obs: pd.DataFrame, contrast: dict, covariates: list[str]) -> float:
    """Share of the variance of the contrast's group indicator that the cell covariates explain
    (least squares with an intercept, over the contrast's two groups; NaN without covariates).

    Near 1 the groups differ so much in composition that no model can tell a per-cell change from
    a cell-count shift: the adjusted group effect then has a large standard error, and DEGs lost
    after adjustment say little."""
    if not covariates:
        return np.nan
    labels = obs[contrast["variable"]].astype(str)
    compared = labels.isin([contrast["test"], contrast["reference"]]).to_numpy()
    y = (labels[compared] == contrast["test"]).to_numpy(dtype=float)
    x = np.column_stack([np.ones(compared.sum()), obs.loc[compared, covariates].to_numpy(dtype=float)])
    fitted = x @ np.linalg.lstsq(x, y, rcond=None)[0]
    return float(1 - ((y - fitted) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def residual_df(obs: pd.DataFrame, design: str) -> int:
    """Residual degrees of freedom of a design on these samples: samples minus the rank of its
    model matrix (each cell covariate costs one)."""
    return len(obs) - design_rank(obs, design)


# ----------------------------------------------------------------------------- concordance
def concordance(primary: pd.DataFrame, model: pd.DataFrame, alpha: float) -> dict:
    """DEGs of each, overlap, primary DEGs that lose significance, LFC correlation and sign agreement.

    Genes are matched by gene_id; correlations are Pearson over the genes with a log2 fold
    change in both tables (all of them, and the primary DEGs among them).
    """
    both = primary.set_index("gene_id")[["log2FoldChange", "padj"]].join(
        model.set_index("gene_id")[["log2FoldChange", "padj"]],
        lsuffix="_primary",
        rsuffix="_model",
        how="outer",
    )
    deg_primary = both["padj_primary"] < alpha
    deg_model = both["padj_model"] < alpha
    paired = both.dropna(subset=["log2FoldChange_primary", "log2FoldChange_model"])
    paired_degs = paired[paired["padj_primary"] < alpha]

    def pearson(frame: pd.DataFrame) -> float:
        if len(frame) < 3:
            return np.nan
        return float(np.corrcoef(frame["log2FoldChange_primary"], frame["log2FoldChange_model"])[0, 1])

    same_sign = np.sign(paired_degs["log2FoldChange_primary"]) == np.sign(paired_degs["log2FoldChange_model"])
    return {
        "degs_primary": int(deg_primary.sum()),
        "degs_model": int(deg_model.sum()),
        "overlap": int((deg_primary & deg_model).sum()),
        "lost": int((deg_primary & ~deg_model).sum()),
        "gained": int((deg_model & ~deg_primary).sum()),
        "lfc_r_all": pearson(paired),
        "lfc_r_primary_degs": pearson(paired_degs),
        "sign_agreement": float(same_sign.mean()) if len(paired_degs) else np.nan,
    }


def describe(row: dict) -> str:
    """One plain sentence on what a model changed (for the report)."""
    kept = row["overlap"] / row["degs_primary"] if row["degs_primary"] else np.nan
    text = (
        f"{row['model']} ({row['n_samples']} samples, {row['design']}): {row['degs_model']} DEGs instead "
        f"of {row['degs_primary']}; {row['overlap']} shared"
    )
    if row["degs_primary"]:
        text += (
            f", so {kept:.0%} of the primary DEGs stay significant and {row['lost']} lose significance; "
            f"{row['sign_agreement']:.0%} of the primary DEGs keep their sign"
        )
    text += f"; {row['gained']} new; log2 fold changes correlate at r = {row['lfc_r_all']:.2f} over all genes"
    if row["degs_primary"]:
        text += f" and {row['lfc_r_primary_degs']:.2f} over the primary DEGs"
    text += "."
    if row.get("n_cell_covariates", 0) > 0:
        text += " " + cell_adjustment_verdict(row, kept)
    if row.get("residual_df_model", np.inf) < MIN_RESIDUAL_DF:
        text += (
            f" Only {row['residual_df_model']} residual degrees of freedom remain (fewer than "
            f"{MIN_RESIDUAL_DF}): its dispersions and calls are unreliable."
        )
    return text


def cell_adjustment_verdict(row: dict, kept: float) -> str:
    """What the cell adjustment means: when the cell covariates explain more than GROUP_R2_WARNING
    of the group, the groups differ in composition and the adjusted model cannot tell per-cell
    changes from cell counts; otherwise, when at least KEPT_SHARE_LITTLE_CHANGE of the primary DEGs
    stay significant, it changed little; otherwise the lost DEGs may have lost power (the group
    effect's standard error grows by about 1 / sqrt(1 - R²)) as much as followed the cell counts."""
    r2, k = row["group_r2_cells"], int(row["n_cell_covariates"])
    cost = (
        f"{k} cell covariate{'s' if k > 1 else ''} leave {row['residual_df_model']} residual degrees of "
        f"freedom, the primary model {row['residual_df_primary']}"
    )
    if r2 > GROUP_R2_WARNING:
        return (
            f"The groups differ in cell composition (cell covariates explain R² {r2:.2f} of the group), so "
            "the adjusted model cannot separate per-cell changes from shifts in cell counts, and the "
            f"{row['lost']} primary DEGs it does not call are not evidence against them ({cost})."
        )
    if not row["degs_primary"] or kept >= KEPT_SHARE_LITTLE_CHANGE:
        return f"The adjustment changed little (cell covariates explain R² {r2:.2f} of the group; {cost})."
    return (
        f"The cell covariates explain R² {r2:.2f} of the group, which widens the adjusted group effect's "
        f"standard error about {1 / np.sqrt(1 - r2):.2f}-fold ({cost}): the {row['lost']} primary DEGs it "
        "loses may have lost power as much as followed the cell counts."
    )


# ----------------------------------------------------------------------------- pathways
IMMUNE_TERMS = (
    r"immun|inflamm|interferon|cytokine|cytotox|leukocyte|lymphocyte|T cell|B cell|NK|"
    r"natural killer|antigen|myeloid|neutrophil|monocyte|defen[cs]e response"
)


def pathway_survival(
    primary: pd.DataFrame,
    adjusted: pd.DataFrame,
    padj_cut: float,
    pattern: str = IMMUNE_TERMS,
    primary_stats: tuple[str, str] = ("NES", "padj"),
    adjusted_stats: tuple[str, str] = ("NES", "padj"),
) -> pd.DataFrame:
    """Immune-related gene sets significant in the primary GSEA, with their result after cell adjustment.

    primary_stats and adjusted_stats: the (NES, FDR) columns that decide in each table (the primary
    model's label-permutation ones when it has them; the cell-adjusted model has fgsea's only). A set
    'survives' when it is significant after adjustment too, with the same sign of NES. The columns are
    named by their statistic, with _primary and _cell_adjusted.
    """
    key = ["collection", "term"]
    (nes, fdr), (nes_after, fdr_after) = primary_stats, adjusted_stats
    immune = primary["name"].astype(str).str.contains(pattern, case=False, regex=True) | primary[
        "term"
    ].astype(str).str.contains(pattern, case=False, regex=True)
    hits = primary[immune & (primary[fdr] < padj_cut)]
    before = hits[key + ["name", nes, fdr]].rename(columns={nes: f"{nes}_primary", fdr: f"{fdr}_primary"})
    after = adjusted[key + [nes_after, fdr_after]].rename(
        columns={nes_after: f"{nes_after}_cell_adjusted", fdr_after: f"{fdr_after}_cell_adjusted"}
    )
    table = before.merge(after, on=key, how="left")
    table["survives"] = (table[f"{fdr_after}_cell_adjusted"] < padj_cut) & (
        np.sign(table[f"{nes}_primary"]) == np.sign(table[f"{nes_after}_cell_adjusted"])
    )
    return table.sort_values([f"{fdr}_primary", "term"], kind="mergesort").reset_index(drop=True)


def model_settings(settings: dict, spec: dict) -> dict:
    """The DE settings of a model: the primary model's, with the model's own engine when it names
    one (a second opinion from another engine)."""
    return {**settings, "engine": spec["engine"]} if "engine" in spec else settings


def model_cohort(adata: ad.AnnData, spec: dict, covariates: pd.DataFrame | None) -> ad.AnnData:
    """The model's samples, with the cell covariates joined to their metadata when it uses them."""
    adata = adata[model_samples(adata.obs, spec)].copy()
    if spec.get("cell_scores"):
        adata.obs = adata.obs.join(covariates.loc[adata.obs_names])
    return adata
