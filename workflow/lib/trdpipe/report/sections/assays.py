"""Every assay beside the primary mRNA one (config `assays:`): its QC and its DE per contrast, with
the calibration of its calls; and the line each gives the key findings."""

import pandas as pd

from trdpipe.checks.assays import FEATURE_WORDS
from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.sections.calibration import numeric_summary, permutations_with_as_many
from trdpipe.report.sections.de import deg_counts, top_genes
from trdpipe.report.text import anchor_of, format_value, table_rows

N_TOP = 10
QC_FIGURES = ("pca", "library_size", "detected_genes")


def chance_words(summary: pd.DataFrame) -> str:
    """How many of the calibration's permutations called as many features as the observed labels."""
    values = numeric_summary(summary)
    return (
        f"shuffled labels called as many or more in {permutations_with_as_many(values)} of "
        f"{int(values['permutations'])} permutations (median {format_value(values['null_degs_median'])})"
    )


def assay_finding(features: str, table: pd.DataFrame, summary: pd.DataFrame, alpha: float, test: str) -> str:
    """One sentence of an assay's calls in a contrast, for the key findings."""
    degs = deg_counts(table, alpha)
    return (
        f"{degs['total']} of {len(table)} {features} tested at padj < {format_value(alpha)}: {degs['up']} "
        f"higher and {degs['down']} lower in {test}; {chance_words(summary)}."
    )


def qc_summary(metrics: pd.DataFrame, features: str) -> str:
    flagged = metrics.index[metrics["flags"].fillna("") != ""]
    excluded = metrics.index[metrics["excluded"].astype(str) == "True"]
    return (
        f"{len(metrics)} samples; median library size {format_value(float(metrics['library_size'].median()))}, "
        f"median {format_value(float(metrics['detected_genes'].median()))} {features} detected; "
        f"{len(flagged)} flagged ({', '.join(flagged) or 'none'}), {len(excluded)} excluded."
    )


def assay_type(run: Run, name: str) -> str:
    return run.config["assays"][name]["type"]


def assay_section(name: str, files: dict[str, dict], run: Run) -> dict:
    """One assay: QC (from any contrast's manifest: the QC files are the assay's) and DE per contrast."""
    kind = assay_type(run, name)
    features = FEATURE_WORDS[kind]
    alpha = run.config["de"]["alpha"]
    first = next(iter(files.values()))
    contrasts = []
    for contrast, paths in files.items():
        table, summary = read_tsv(paths["table"]), read_tsv(paths["calibration_summary"])
        test = run.contrasts[contrast]["test"]
        contrasts.append(
            {
                "name": contrast,
                "anchor": anchor_of("assay", name, contrast),
                "finding": assay_finding(features, table, summary, alpha, test),
                "top": table_rows(top_genes(table, N_TOP)),
                "figures": [figure(paths["volcano"], run.template_dir, run.config)],
            }
        )
    return {
        "name": name,
        "type": kind,
        "anchor": anchor_of("assay", name),
        "qc": qc_summary(read_tsv(first["qc_metrics"]).set_index("sample_id"), features),
        "qc_figures": [
            figure(first[key], run.template_dir, run.config, values={"assay_type": kind})
            for key in QC_FIGURES
        ],
        "contrasts": contrasts,
    }


def assay_findings(run: Run, contrast: str) -> list[dict]:
    """The key findings' line of every extra assay in one contrast."""
    alpha, test = run.config["de"]["alpha"], run.contrasts[contrast]["test"]
    return [
        {
            "name": name,
            "finding": assay_finding(
                FEATURE_WORDS[assay_type(run, name)],
                read_tsv(paths["table"]),
                read_tsv(paths["calibration_summary"]),
                alpha,
                test,
            ),
        }
        for name, paths in run.inputs.assays(contrast).items()
    ]


def build(run: Run) -> dict | None:
    by_assay: dict[str, dict] = {}
    for contrast in run.contrasts:
        for name, paths in run.inputs.assays(contrast).items():
            by_assay.setdefault(name, {})[contrast] = paths
    if not by_assay:
        return None
    sections = [assay_section(name, files, run) for name, files in by_assay.items()]
    return {
        "toc": [{"anchor": s["anchor"], "label": f"Assay {s['name']}"} for s in sections],
        "assays": sections,
    }
