"""Enrichment of one contrast: GSEA and ORA terms, dot plots, running scores, camera."""

import re
from pathlib import Path

import pandas as pd

from trdpipe.common import format_list
from trdpipe.enrichment.analysis import running_score_file
from trdpipe.enrichment.terms import lead_fdr, top_terms_by_direction
from trdpipe.report.embed import caption_text, figure, inline_png
from trdpipe.report.inputs import Run, calibration_permutations, read_tsv
from trdpipe.report.text import (
    anchor_of,
    fdr_text,
    format_value,
    permutation_p_text,
    readable_fdrs,
    table_rows,
)


def shorten_genes(genes: pd.Series, limit: int = 12) -> pd.Series:
    """';'-separated gene lists shortened for reading."""
    return (
        genes.fillna("")
        .astype(str)
        .map(lambda text: format_list([g for g in re.split(r"[;,\s]+", text) if g], limit=limit))
    )


# fgsea's columns come from gene permutations (genes treated as independent): labelled so
GENE_PERMUTATION_LABELS = {
    "NES": "NES (gene perm.)",
    "pvalue": "pvalue (gene perm.)",
    "padj": "padj (gene perm.)",
}


def permutation_columns(table: pd.DataFrame, columns: list[str]) -> list[str]:
    """The label-permutation columns when the table has them (a run with a calibration)."""
    return columns if lead_fdr(table) == "fdr_perm" else []


def similar_terms_text(names: list[str]) -> str:
    """'' or 'and 3 similar terms: a, b, c' (the near-duplicates folded under a term shown)."""
    if not names:
        return ""
    return f"and {len(names)} similar term{'s' if len(names) > 1 else ''}: {format_list(names, limit=3)}"


def gsea_term_table(best: pd.DataFrame, permutations: int | None) -> pd.DataFrame:
    """Terms shown (gsea_terms.top_terms_by_direction: by the label-permutation FDR when computed,
    near-duplicates folded) for reading: the permutation NES, p and FDR first, then fgsea's
    gene-permutation ones (with the log2 error of p, so that a reader can weigh a borderline padj),
    the leading edge shortened and the folded terms. permutations: K of the label permutations."""
    leading = permutation_columns(best, ["NES_perm", "pvalue_perm", "fdr_perm"])
    table = (
        best[["term", "name", "size", *leading, "NES", "pvalue", "log2err", "padj"]]
        .assign(
            leading_edge=shorten_genes(best["leading_edge"]).to_numpy(),
            similar_terms=best["similar_terms"].map(similar_terms_text).to_numpy(),
        )
        .rename(columns=GENE_PERMUTATION_LABELS)
    )
    return readable_fdrs(readable_fdrs(table, ["fdr_perm"], permutations), ["padj (gene perm.)"])


def gsea_pvalue_note(permutations: int) -> str:
    """What bounds a set's label-permutation p-value: it is taken against the permuted scores of its own
    sign only, so its floor differs between sets and cannot be read off the table."""
    return (
        f"pvalue_perm is (b + 1) / (n + 1) over the n of the {permutations} label permutations whose "
        "score has the set's sign: its smallest possible value is 1/(n + 1), at least "
        f"1/{permutations + 1} = {format_value(1 / (permutations + 1))}. fdr_perm pools the permuted "
        f"scores of every set; where none reached a set's it reads < 1/{permutations}."
    )


def top_ora_terms(ora: pd.DataFrame, n: int, permutations: int | None) -> dict[tuple[str, str], pd.DataFrame]:
    """Per collection and direction (up, down), the n most over-represented terms, by
    label-permutation FDR when computed, then hypergeometric p-value; p-values of K label permutations
    at their floor say so, and no FDR reads 0."""
    leading = permutation_columns(ora, ["pvalue_perm", "fdr_perm"])
    order = [lead_fdr(ora), "pvalue", "term"]
    out = {}
    for (collection, direction), terms in ora.groupby(["collection", "direction"], sort=True):
        best = terms.sort_values(order, kind="mergesort").head(n)
        table = best[["term", "name", "size", "overlap", "odds_ratio", *leading, "pvalue", "padj"]].assign(
            overlap_genes=shorten_genes(best["overlap_genes"]).to_numpy()
        )
        if leading:
            table["pvalue_perm"] = [permutation_p_text(v, permutations) for v in table["pvalue_perm"]]
        out[(collection, direction)] = readable_fdrs(
            readable_fdrs(table, ["fdr_perm"], permutations), ["padj"]
        )
    return out


def pathway_findings(gsea: pd.DataFrame, cut: float) -> str:
    """One sentence per contrast: sets called per collection by the FDR the report leads with,
    beside what fgsea's gene-permutation padj calls."""
    fdr = lead_fdr(gsea)
    parts = []
    for collection, terms in gsea.groupby("collection", sort=True):
        n_gene_perm = int((terms["padj"] < cut).sum())
        if fdr == "fdr_perm":
            parts.append(
                f"{collection}: {int((terms['fdr_perm'] < cut).sum())} of {len(terms)} sets at "
                f"label-permutation FDR < {cut:g} ({n_gene_perm} at gene-permutation padj < {cut:g})"
            )
        else:
            parts.append(
                f"{collection}: {n_gene_perm} of {len(terms)} sets at gene-permutation padj < {cut:g}"
            )
    verdict = (
        ""
        if fdr == "fdr_perm"
        else (
            " No label-permutation null was computed: gene-permutation p-values treat genes as "
            "independent and over-call co-expressed sets."
        )
    )
    return "GSEA " + "; ".join(parts) + "." + verdict


def gsea_fdr_label(gsea: pd.DataFrame) -> str:
    """Words for the FDR a GSEA table leads with (terms.lead_fdr)."""
    return "label-permutation FDR" if lead_fdr(gsea) == "fdr_perm" else "gene-permutation padj"


def lead_fdr_text(gsea: pd.DataFrame, value, permutations: int | None) -> str:
    """The lead FDR of a term for reading: bounded by 1/K when it comes from K label permutations."""
    return fdr_text(value, permutations if lead_fdr(gsea) == "fdr_perm" else None)


def running_score_figures(
    directory, collection: str, direction: str, terms: pd.DataFrame, caption: str
) -> list[dict]:
    """The running-score plots the enrichment rule drew for these terms (its first
    enrichment.running_score_terms of the same selection), in rank order."""
    figures = []
    for rank, row in enumerate(terms.itertuples(), start=1):
        path = Path(directory) / running_score_file(collection, direction, rank, row.term)
        if path.exists():
            figures.append(inline_png(path.read_bytes(), f"{row.term}, {row.name}. {caption}"))
    return figures


def enrichment_section(name: str, contrast: dict, files: dict, config: dict, caption_dir) -> dict:
    """Dot plots; per collection the top GSEA terms up and down (leading edge, folded near-duplicates,
    running-score plots) and the top ORA terms (overlap)."""
    settings = config.get("enrichment", {})
    n_terms = settings.get("top_terms", 20)
    gsea = pd.read_csv(files["gsea"], sep="\t", keep_default_na=False, na_values=[""])
    ora = pd.read_csv(files["ora"], sep="\t", keep_default_na=False, na_values=[""])
    anchor = anchor_of("enrichment", name)
    permutations = calibration_permutations(files["calibration"])
    by = "label-permutation FDR" if lead_fdr(gsea) == "fdr_perm" else "gene-permutation p-value"
    rst = Path(caption_dir) / "running_scores.rst"
    caption = caption_text(rst.read_text(encoding="utf-8"), config) if rst.exists() else ""
    words = {
        "up": f"higher in {contrast['test']} (positive NES)",
        "down": f"lower in {contrast['test']} (negative NES)",
    }
    shown = top_terms_by_direction(gsea, n_terms, settings.get("similar_terms_jaccard", 0.5))
    blocks = [
        {
            "title": f"GSEA, {collection}, {words[direction]}: top {len(terms)} terms by {by}",
            "id": anchor_of(anchor, collection, direction),
            "table": table_rows(gsea_term_table(terms, permutations)),
            "note": gsea_pvalue_note(permutations) if lead_fdr(gsea) == "fdr_perm" else "",
            "figures": (
                running_score_figures(files["running_scores"], collection, direction, terms, caption)
                if files.get("running_scores")
                else []
            ),
        }
        for (collection, direction), terms in shown.items()
    ]
    blocks += [
        {
            "title": f"ORA of {direction}-regulated genes, {collection}: top {len(terms)} terms",
            "figures": [],
            "id": anchor_of(anchor, "ora", collection, direction),
            "table": table_rows(terms),
            "note": "",
        }
        for (collection, direction), terms in top_ora_terms(ora, n_terms, permutations).items()
    ]
    dotplots = {
        "title": "Dot plots",
        "id": "",
        "table": None,
        "note": "",
        "figures": [figure(files[key], caption_dir, config) for key in ("gsea_dotplot", "ora_dotplot")],
    }
    cut = settings.get("ora_padj", 0.05)
    return {
        "name": name,
        "anchor": anchor,
        "collections": [dotplots, *blocks],
        "findings": pathway_findings(gsea, cut),
    }


CAMERA_TABLE_COLUMNS = ["term", "name", "n_genes", "correlation", "direction", "pvalue", "fdr"]


def camera_findings(camera: pd.DataFrame, cut: float) -> str:
    """One sentence: sets at camera FDR < cut per collection, up and down."""
    parts = []
    for collection, sets in camera.groupby("collection", sort=True):
        called = sets[sets["fdr"] < cut]
        parts.append(
            f"{collection}: {len(called)} of {len(sets)} sets at FDR < {cut:g} "
            f"({int((called['direction'] == 'up').sum())} up, {int((called['direction'] == 'down').sum())} down)"
        )
    return "camera, each set's inter-gene correlation estimated from the residuals: " + "; ".join(parts) + "."


def camera_blocks(camera: pd.DataFrame, anchor: str, n: int) -> list[dict]:
    """Per collection, the n sets with the smallest camera p-values."""
    return [
        {
            "title": f"camera, {collection}: top {min(n, len(sets))} sets by p-value "
            "(inter-gene correlation estimated per set)",
            "id": anchor_of(anchor, "camera", collection),
            "note": "",
            "table": table_rows(
                sets.sort_values(["pvalue", "term"], kind="mergesort").head(n)[CAMERA_TABLE_COLUMNS]
            ),
            "figures": [],
        }
        for collection, sets in camera.groupby("collection", sort=True)
    ]


def add_camera(section: dict, camera: pd.DataFrame, settings: dict) -> None:
    """camera's sentence after the section's findings and its tables after the GSEA and ORA ones."""
    section["findings"] += " " + camera_findings(camera, settings.get("ora_padj", 0.05))
    section["collections"] += camera_blocks(camera, section["anchor"], settings.get("top_terms", 20))


ENRICHMENT_FILES = ("gsea", "ora", "gsea_dotplot", "ora_dotplot", "running_scores")


def enrichment_files(run: Run, name: str) -> dict:
    files = {key: run.inputs.of(name, key) for key in ENRICHMENT_FILES}
    return {**files, "calibration": run.inputs.of(name, "calibration_summary")}


def build(run: Run) -> dict:
    sections = []
    for name, contrast in run.contrasts.items():
        section = enrichment_section(
            name, contrast, enrichment_files(run, name), run.config, run.template_dir
        )
        camera = run.inputs.of(name, "camera")  # when the run has it (enrichment.camera)
        if camera:
            add_camera(section, read_tsv(camera), run.config["enrichment"])
        sections.append(section)
    return {
        "toc": [{"anchor": s["anchor"], "label": f"Enrichment: {s['name']}"} for s in sections],
        "enrichment": sections,
    }
