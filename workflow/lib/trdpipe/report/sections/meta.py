"""Do the calls replicate across cohorts? The meta-analysis of the cohorts beside the pooled model."""

import pandas as pd

from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.text import anchor_of, table_rows

N_TOP_GENES = 10  # rows of the meta table shown
SHOWN_COLUMNS = [
    "gene_id",
    "gene_symbol",
    "n_cohorts",
    "log2FoldChange",
    "lfcSE",
    "padj",
    "I2",
    "tau2",
    "n_replicating",
]


def replication_sentence(values: pd.Series, alpha: float, nominal_p: float) -> str:
    """In plain words: how many of the pooled model's calls replicate across the cohorts."""
    calls, replicated = int(values["calls_mega"]), int(values["mega_calls_replicated"])
    k, cohorts = int(values["replication_k"]), int(values["cohorts"])
    rule = (
        f"in at least {k} of the {cohorts} cohorts fitted alone, the log2 fold change has the sign of "
        f"the meta-analysis' and p < {nominal_p:g}"
    )
    if calls == 0:
        return (
            f"The pooled model (the mega-analysis) calls no gene at padj < {alpha:g}, so no call can "
            f"replicate; {int(values['genes_replicated'])} genes replicate across cohorts ({rule})."
        )
    return f"Of the {calls} genes the pooled model (the mega-analysis) calls at padj < {alpha:g}, {replicated} replicate across cohorts: {rule}."


def agreement_sentence(values: pd.Series, alpha: float, high_i2: float) -> str:
    """The meta-analysis' own calls, its agreement with the pooled model and the heterogeneity."""
    return (
        f"The meta-analysis calls {int(values['calls_meta'])} genes at padj < {alpha:g} "
        f"({int(values['calls_both'])} of them called by the pooled model too); the log2 fold changes "
        f"of the two correlate with r = {float(values['lfc_r_all']):.2f} over all genes. "
        f"{int(values['genes_high_heterogeneity'])} genes have high heterogeneity between cohorts "
        f"(I² ≥ {high_i2:g}), where {float(values['genes_high_heterogeneity_by_chance']):.0f} would by "
        "chance if the cohorts agreed on every gene."
    )


def left_out_sentence(cohorts: pd.DataFrame) -> str:
    """The cohorts left out of the meta-analysis, with the reason, or ''."""
    out = cohorts[~cohorts["fitted"].astype(bool)]
    return " ".join(f"Cohort {row.cohort} is left out: {row.reason}." for row in out.itertuples())


def meta_section(name: str, files: dict, config: dict, caption_dir) -> dict:
    values = read_tsv(files["meta_concordance"]).set_index("measure")["value"]
    cohorts = pd.read_csv(files["meta_cohorts"], sep="\t", dtype={"cohort": str}, keep_default_na=False)
    meta = pd.read_csv(
        files["meta_table"], sep="\t", dtype={"gene_id": str}, keep_default_na=False, na_values=[""]
    )
    alpha, settings = config["de"]["alpha"], config["meta"]
    return {
        "name": name,
        "anchor": anchor_of("meta", name),
        "verdict": replication_sentence(values, alpha, settings["replication_pvalue"]),
        "agreement": agreement_sentence(values, alpha, settings["high_i2"]),
        "left_out": left_out_sentence(cohorts),
        "column": config["cohorts"],
        "table": table_rows(meta[SHOWN_COLUMNS].head(N_TOP_GENES)),
        "figures": [
            figure(files[key], caption_dir, config) for key in ("meta_forest_top", "meta_forest_candidates")
        ],
    }


def build(run: Run) -> dict | None:
    sections = [
        meta_section(name, run.inputs.contrasts[name], run.config, run.template_dir)
        for name in run.contrasts
        if run.inputs.of(name, "meta_table")
    ]
    if not sections:
        return None
    return {
        "toc": [{"anchor": s["anchor"], "label": f"Across cohorts: {s['name']}"} for s in sections],
        "meta": sections,
    }
