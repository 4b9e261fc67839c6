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
]
# above this share of the group's variance explained by the cell covariates, the report warns that
# the cell-adjusted group effect is barely estimable
GROUP_R2_WARNING = 0.5


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
    if row.get("group_r2_cells", np.nan) > GROUP_R2_WARNING:
        text += (
            f" The cell covariates explain {row['group_r2_cells']:.0%} of the variance of the group, so"
            " the adjusted group effect is poorly estimable: DEGs lost here do not show that they are"
            " a cell-count shift."
        )
    return text


# ----------------------------------------------------------------------------- pathways
IMMUNE_TERMS = (
    r"immun|inflamm|interferon|cytokine|cytotox|leukocyte|lymphocyte|T cell|B cell|NK|"
    r"natural killer|antigen|myeloid|neutrophil|monocyte|defen[cs]e response"
)


def pathway_survival(
    primary: pd.DataFrame, adjusted: pd.DataFrame, padj_cut: float, pattern: str = IMMUNE_TERMS
) -> pd.DataFrame:
    """Immune-related gene sets significant in the primary GSEA, with their result after cell adjustment.

    A set 'survives' when it is significant after adjustment too, with the same sign of NES.
    """
    key = ["collection", "term"]
    immune = primary["name"].astype(str).str.contains(pattern, case=False, regex=True) | primary[
        "term"
    ].astype(str).str.contains(pattern, case=False, regex=True)
    hits = primary[immune & (primary["padj"] < padj_cut)]
    table = hits[key + ["name", "NES", "padj"]].merge(
        adjusted[key + ["NES", "padj"]], on=key, how="left", suffixes=("_primary", "_cell_adjusted")
    )
    table["survives"] = (table["padj_cell_adjusted"] < padj_cut) & (
        np.sign(table["NES_primary"]) == np.sign(table["NES_cell_adjusted"])
    )
    return table.sort_values(["padj_primary", "term"], kind="mergesort").reset_index(drop=True)


def model_cohort(adata: ad.AnnData, spec: dict, covariates: pd.DataFrame | None) -> ad.AnnData:
    """The model's samples, with the cell covariates joined to their metadata when it uses them."""
    adata = adata[model_samples(adata.obs, spec)].copy()
    if spec.get("cell_scores"):
        adata.obs = adata.obs.join(covariates.loc[adata.obs_names])
    return adata
