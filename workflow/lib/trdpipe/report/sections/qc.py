"""Quality control: samples and genes kept, flagged samples, QC tables and figures."""

import pandas as pd

from trdpipe.common import read_sample_table
from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run
from trdpipe.report.text import table_rows


def significant_associations(association: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """PC-covariate associations with p < alpha, in PC order (what the model may need to adjust for)."""
    hits = association[association["pvalue"] < alpha]
    columns = ["pc", "variance_explained", "covariate", "test", "r_squared", "pvalue"]
    return hits[[c for c in columns if c in hits]].reset_index(drop=True)


def flagged_samples(metrics: pd.DataFrame) -> pd.DataFrame:
    """QC rows with a flag or an exclusion, with the reasons."""
    flags = metrics["flags"].fillna("").astype(str)
    excluded = metrics["excluded"].astype(str).str.lower() == "true"
    hit = (flags != "") | excluded
    return pd.DataFrame(
        {
            "sample_id": metrics.index[hit],
            "flags": flags[hit].to_numpy(),
            "excluded": excluded[hit].to_numpy(),
        }
    )


def qc_sentence(flagged: int, excluded: int, kept: int) -> str:
    """What QC did to the samples: flagged ones are kept unless qc.action is exclude."""
    if excluded:
        return f"Quality control flagged {flagged} samples and excluded {excluded}, leaving {kept}."
    if flagged:
        return (
            f"Quality control flagged {flagged} samples and kept them (qc.action: flag), "
            f"so all {kept} samples were analysed."
        )
    return f"Quality control flagged no sample; all {kept} samples were analysed."


def qc_counts(run: Run) -> dict[str, int]:
    """The samples QC flagged, excluded and kept (filter_summary.tsv and the QC metrics)."""
    summary = run.filter_summary
    flagged = flagged_samples(read_sample_table(run.inputs.metrics))
    return {
        "flagged": int((flagged["flags"] != "").sum()),
        "excluded": int(summary["samples excluded by QC"]),
        "kept": int(summary["samples kept"]),
    }


def build(run: Run) -> dict:
    association = pd.read_csv(run.inputs.association, sep="\t")
    counts = qc_counts(run)
    return {
        "toc": [{"anchor": "qc", "label": "Quality control"}],
        "filter_summary": table_rows(run.filter_summary.reset_index()),
        "flagged": table_rows(flagged_samples(read_sample_table(run.inputs.metrics))),
        "qc_summary": qc_sentence(counts["flagged"], counts["excluded"], counts["kept"]),
        "qc_tables": [
            {
                "title": "Principal components associated with a covariate (p < 0.05)",
                "id": "pc-covariate-association",
                "table": table_rows(significant_associations(association)),
            },
            {
                "title": "Sample-sheet columns against each contrast's variable (confounding alarm)",
                "id": "confounding",
                "table": table_rows(run.confounding.drop(columns="warning")),
            },
        ],
        "qc_figures": [
            figure(path, run.template_dir, run.config, values={"pcs_shown": association["pc"].nunique()})
            for path in run.inputs.qc_figures
        ],
    }
