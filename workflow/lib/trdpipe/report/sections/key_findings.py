"""The key findings of one contrast, every number from the run's tables."""

import math

import pandas as pd

from trdpipe.enrichment.terms import gsea_order, lead_fdr, lead_nes, top_terms_by_direction
from trdpipe.qc.metrics import confounding_alarms
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.sections.assays import assay_findings
from trdpipe.report.sections.calibration import calibration_verdict, numeric_summary, with_confounding_caveat
from trdpipe.report.sections.de import deg_counts
from trdpipe.report.sections.enrichment import gsea_fdr_label, lead_fdr_text
from trdpipe.report.sections.prediction import best_model, best_model_findings, prediction_not_run
from trdpipe.report.text import anchor_of, format_value, sets_text

N_KEY_PATHWAYS = 3  # pathways per direction in the key findings


def top_pathways(shown: dict[tuple[str, str], pd.DataFrame], direction: str, n: int) -> pd.DataFrame:
    """The n best terms of one direction over every collection (each collection's terms as shown,
    near-duplicates folded)."""
    terms = [t for (_, d), t in shown.items() if d == direction]
    if not terms:
        return pd.DataFrame()
    both = pd.concat(terms)
    return both.sort_values(gsea_order(both), kind="mergesort").head(n)


def survival_after_adjustment(
    term: pd.Series,
    nes: float,
    adjusted: pd.DataFrame | None,
    cut: float,
    significant: bool = True,
    permutations: int | None = None,
) -> str:
    """Does a pathway keep its call once cell composition is in the model? Judged by the FDR the
    cell-adjusted GSEA leads with, named (it has no label permutations: gene-permutation padj). A term
    not called in the primary model has no call to keep: its statistic after adjustment is given."""
    if adjusted is None:
        return "no cell-adjusted model in this run"
    hit = adjusted[(adjusted["collection"] == term["collection"]) & (adjusted["term"] == term["term"])]
    if hit.empty:
        return "not tested after cell adjustment"
    after = hit.iloc[0]
    after_nes = float(after[lead_nes(adjusted)])
    if math.copysign(1, after_nes) != math.copysign(1, nes):
        return f"reverses direction after cell adjustment (NES {format_value(after_nes)})"
    fdr = lead_fdr(adjusted)
    value = f"{gsea_fdr_label(adjusted)} {lead_fdr_text(adjusted, after[fdr], permutations)}"
    if not significant:
        return f"{value} after cell adjustment"
    verdict = "survives" if after[fdr] < cut else "does not survive"
    return f"{verdict} cell adjustment ({value})"


def pathway_finding(
    term: pd.Series, gsea: pd.DataFrame, adjusted: pd.DataFrame | None, cut: float, permutations: int | None
) -> dict:
    fdr, nes = lead_fdr(gsea), float(term[lead_nes(gsea)])
    significant = bool(term[fdr] < cut)
    return {
        "term": term["term"],
        "name": term["name"],
        "collection": term["collection"],
        "nes": format_value(nes),
        "fdr": lead_fdr_text(gsea, term[fdr], permutations),
        "significant": significant,
        "n_similar": len(term["similar_terms"]),
        "survival": survival_after_adjustment(term, nes, adjusted, cut, significant, permutations),
    }


def pathway_verdict(n_label: int, n_gene: int, cut: float, n_camera: int | None = None) -> str:
    """The key findings' plain answer about pathways. n_label: sets at label-permutation FDR < cut;
    n_gene: at fgsea's gene-permutation padj < cut; n_camera: at camera's FDR < cut (limma's camera
    with the inter-gene correlation estimated), None when camera was not run. Label permutation and
    camera respect the correlation between genes; gene permutation does not, and over-calls."""
    camera = "" if n_camera is None else f"camera: {n_camera} at FDR < {cut:g}; "
    if n_label:
        return (
            f"{sets_text(n_label)} changed more than random splits of these samples change them "
            f"(label-permutation FDR < {cut:g}; {camera}gene permutation: {n_gene} at padj < {cut:g}); "
            "they lead the lists below."
        )
    if n_camera:
        first = (
            f"No pathway passes label-permutation FDR < {cut:g}, but camera calls {sets_text(n_camera)} "
            f"at FDR < {cut:g}: the two tests that respect gene-gene correlation disagree, so read "
            "camera's sets as leads to confirm."
        )
    else:
        agrees = "; camera agrees" if n_camera == 0 else ""
        first = (
            "No pathway changed more than random splits of these samples change it "
            f"(0 sets at label-permutation FDR < {cut:g}{agrees})."
        )
    if not n_gene:
        return first + " Gene permutation, which treats genes as independent, calls none either."
    return first + (
        f" If genes were independent, {sets_text(n_gene)} would pass, but genes of one pathway rise "
        "and fall together between people, and with shuffled labels that assumption calls hundreds "
        "of sets on real data."
    )


def gene_permutation_verdict(n_gene: int, cut: float) -> str:
    """The pathway answer of a run without label permutations: only fgsea's padj, and its caveat."""
    return (
        f"{sets_text(n_gene)} at gene-permutation padj < {cut:g}. No label-permutation null was "
        "computed: gene permutation treats genes as independent and over-calls co-expressed sets."
    )


def contrast_pathway_verdict(gsea: pd.DataFrame, camera: pd.DataFrame | None, cut: float) -> str:
    """pathway_verdict from the contrast's GSEA table and, when run, its camera table."""
    n_gene = int((gsea["padj"] < cut).sum())
    if lead_fdr(gsea) != "fdr_perm":
        return gene_permutation_verdict(n_gene, cut)
    n_camera = None if camera is None else int((camera["fdr"] < cut).sum())
    return pathway_verdict(int((gsea["fdr_perm"] < cut).sum()), n_gene, cut, n_camera)


def cell_adjusted_finding(concordance: pd.DataFrame | None) -> str:
    if concordance is None:
        return (
            "No cell-adjusted model in this run (cells.enabled or sensitivity.cell_adjusted.enabled "
            "is false)."
        )
    row = concordance.iloc[0]
    return (
        f"With cell composition in the model ({int(row['n_cell_covariates'])} cell covariates, explaining "
        f"R² {row['group_r2_cells']:.2f} of the group; {int(row['residual_df_model'])} residual degrees of "
        f"freedom, the primary model {int(row['residual_df_primary'])}), {int(row['degs_model'])} genes are "
        f"called instead of {int(row['degs_primary'])} ({int(row['overlap'])} of them shared)."
    )


def key_findings(name: str, contrast: dict, tables: dict, config: dict, switched_off: list[str] = ()) -> dict:
    """The page's opening summary of one contrast, every number from the run's tables: the genes
    called with the calibration's verdict, the top pathways up and down with whether they survive
    cell adjustment, the cell-adjusted gene count and the prediction's best model.

    tables: de, calibration (summary.tsv as read), gsea, and adjusted_gsea, concordance (the
    cell_adjusted model's), comparison (model_comparison.tsv), camera (camera.tsv), each None (or,
    camera, absent) when not run. When no set passes the lead FDR the lists are the largest effects,
    for exploration, and the pathway verdict says why gene permutation's calls are not believed."""
    alpha, cut = config["de"]["alpha"], config["enrichment"]["ora_padj"]
    gsea = tables["gsea"]
    shown = top_terms_by_direction(gsea, N_KEY_PATHWAYS, config["enrichment"]["similar_terms_jaccard"])
    summary = numeric_summary(tables["calibration"])
    permutations = int(summary["permutations"])
    pathways = {
        direction: [
            pathway_finding(row, gsea, tables["adjusted_gsea"], cut, permutations)
            for _, row in top_pathways(shown, direction, N_KEY_PATHWAYS).iterrows()
        ]
        for direction in ("up", "down")
    }
    comparison = tables["comparison"]
    prediction = (
        best_model_findings(best_model(comparison), contrast["test"], config["predict"]["permutations"])
        if comparison is not None
        else [prediction_not_run(switched_off)]
    )
    confounding = tables.get("confounding")
    alarms = confounding_alarms(confounding, name) if confounding is not None else []
    return {
        "name": name,
        "anchor": anchor_of("key", name),
        "test": contrast["test"],
        "description": f"{contrast['test']} vs {contrast['reference']}",
        "alpha": format_value(alpha),
        "alarms": alarms,
        "degs": deg_counts(tables["de"], alpha),
        "verdict": with_confounding_caveat(calibration_verdict(summary, alpha), alarms, contrast),
        "pathways": pathways,
        "pathway_verdict": contrast_pathway_verdict(gsea, tables.get("camera"), cut),
        "exploratory": not (gsea[lead_fdr(gsea)] < cut).any(),
        "cut": format_value(cut),
        "fdr_label": gsea_fdr_label(gsea),
        "cell_adjusted": cell_adjusted_finding(tables["concordance"]),
        "prediction": prediction,
    }


def optional_table(path) -> pd.DataFrame | None:
    return read_tsv(path) if path else None


def contrast_tables(run: Run, name: str) -> dict:
    """The tables the key findings of one contrast read, None for a step this run skipped."""
    sensitivity = run.inputs.key_finding_files(name) or {}
    return {
        "de": read_tsv(run.inputs.of(name, "table")),
        "calibration": read_tsv(run.inputs.of(name, "calibration_summary")),
        "gsea": read_tsv(run.inputs.of(name, "gsea")),
        "adjusted_gsea": optional_table(sensitivity.get("gsea")),
        "concordance": optional_table(sensitivity.get("concordance")),
        "comparison": optional_table(run.inputs.of(name, "predict_comparison")),
        "confounding": run.confounding,
        "camera": optional_table(run.inputs.of(name, "camera")),
    }


def build(run: Run) -> dict:
    findings = [
        key_findings(name, contrast, contrast_tables(run, name), run.config, run.switched_off)
        | {"assays": assay_findings(run, name)}
        for name, contrast in run.contrasts.items()
    ]
    return {"toc": [{"anchor": "key-findings", "label": "Key findings"}], "findings": findings}
