"""How robust are the findings: cell composition, sensitivity models, immune pathways after cell adjustment."""

import pandas as pd

from trdpipe.enrichment.terms import lead_fdr, lead_nes
from trdpipe.model.sensitivity import describe, pathway_survival
from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, calibration_permutations, read_tsv
from trdpipe.report.sections.enrichment import gsea_fdr_label, lead_fdr_text
from trdpipe.report.text import table_rows

N_TOP_PATHWAYS = 15  # immune gene sets shown in the robustness section


def survival_sentence(
    n_survive: int, n: int, primary: pd.DataFrame, adjusted: pd.DataFrame, cut: float
) -> str:
    """How many immune sets called in the primary GSEA keep their call after cell adjustment, naming the
    statistic that calls them in each model."""
    after = gsea_fdr_label(adjusted)
    why = (
        ", as the cell-adjusted model is not label-permuted"
        if lead_fdr(primary) == "fdr_perm" and lead_fdr(adjusted) != "fdr_perm"
        else ""
    )
    return (
        f"{n_survive} of {n} immune-related gene sets significant in the primary GSEA "
        f"({gsea_fdr_label(primary)} < {cut:g}) stay significant, with the same direction, in the "
        f"cell-adjusted model, judged there by its {after} < {cut:g}{why}."
    )


def immune_pathway_survival(
    name: str, primary: pd.DataFrame, adjusted: pd.DataFrame, cut: float, permutations: int
) -> dict:
    """The immune sets called in the primary GSEA and their result after cell adjustment, each model's
    call by the FDR it leads with; an FDR from K permutations is never shown as 0."""
    survival = pathway_survival(
        primary,
        adjusted,
        cut,
        primary_stats=(lead_nes(primary), lead_fdr(primary)),
        adjusted_stats=(lead_nes(adjusted), lead_fdr(adjusted)),
    )
    shown = survival.head(N_TOP_PATHWAYS).astype(object)
    for column, table in (
        (f"{lead_fdr(primary)}_primary", primary),
        (f"{lead_fdr(adjusted)}_cell_adjusted", adjusted),
    ):
        shown[column] = [lead_fdr_text(table, value, permutations) for value in shown[column]]
    return {
        "name": name,
        "n": len(survival),
        "n_survive": int(survival["survives"].sum()),
        "sentence": survival_sentence(int(survival["survives"].sum()), len(survival), primary, adjusted, cut),
        "table": table_rows(shown),
    }


def cell_scores(run: Run) -> tuple[pd.DataFrame, dict]:
    """The cell types' markers (with whether each was estimable) and the covariates the cell-adjusted
    model chose, with the reason."""
    if run.inputs.cell_markers:
        markers = pd.read_csv(run.inputs.cell_markers, sep="\t", keep_default_na=False)
        return markers, pd.read_csv(run.inputs.cell_choice, sep="\t").iloc[0].to_dict()
    # cells.enabled false: no scores, no cell-adjusted model
    markers = pd.DataFrame(columns=["cell_type", "note", "estimable"])
    return markers, {"covariates": "none", "reason": "cell composition is off (cells.enabled: false)"}


def covariates_chosen(run: Run) -> str:
    _, choice = cell_scores(run)
    return f"{choice['covariates']}: {choice['reason']}"


def concordance_files(run: Run) -> list[str]:
    """Every contrast's and sensitivity model's concordance table, contrast by contrast."""
    return [files["concordance"] for name in run.contrasts for files in run.inputs.sensitivity(name).values()]


def composition_by_group(run: Run, name: str) -> dict:
    by_group = pd.read_csv(run.inputs.of(name, "cell_by_group"), sep="\t")
    shown = by_group[["cell_type", "mean_test", "mean_reference", "hedges_g", "pvalue", "padj"]]
    return {
        "name": name,
        "table": table_rows(shown.dropna(subset=["hedges_g"])),
        "figures": [figure(run.inputs.of(name, "cell_figure"), run.template_dir, run.config)],
    }


def adjusted_pathways(run: Run, name: str) -> dict | None:
    """The immune sets of one contrast after adjustment by the key findings' sensitivity model, when
    that model has its enrichment."""
    files = run.inputs.key_finding_files(name)
    if not files or "gsea" not in files:
        return None
    return immune_pathway_survival(
        name,
        read_tsv(run.inputs.of(name, "gsea")),
        read_tsv(files["gsea"]),
        run.config["enrichment"]["ora_padj"],
        calibration_permutations(run.inputs.of(name, "calibration_summary")),
    )


def build(run: Run) -> dict | None:
    """How robust are the findings: cell composition by group, concordance of every sensitivity
    model with the primary one (a sentence each) and the immune pathways after cell adjustment;
    None when the run has no sensitivity model."""
    paths = concordance_files(run)
    if not paths:
        return None
    markers, _ = cell_scores(run)
    concordance = pd.concat([pd.read_csv(p, sep="\t") for p in paths], ignore_index=True)
    pathways = [adjusted_pathways(run, name) for name in run.contrasts]
    return {
        "toc": [{"anchor": "robustness", "label": "How robust are the findings?"}],
        "not_estimable": [
            f"{row.cell_type} ({row.note})" for row in markers.itertuples() if not row.estimable
        ],
        "covariates": covariates_chosen(run),
        "composition": [composition_by_group(run, name) for name in run.inputs.each("cell_by_group")],
        "concordance": table_rows(concordance),
        "sentences": [describe(row) for row in concordance.to_dict("records")],
        "pathways": [p for p in pathways if p],
    }
