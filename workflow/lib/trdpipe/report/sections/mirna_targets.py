"""Across layers: do the miRNAs a contrast calls move their targets the opposite way among the
mRNA calls? One part per contrast and small-RNA assay with a targets GMT."""

import pandas as pd

from trdpipe.report.embed import figure
from trdpipe.report.inputs import Run, read_tsv
from trdpipe.report.text import anchor_of, join_words, permutation_p_text, readable_fdrs, table_rows

ENRICHMENT_SHOWN = [
    "mirna",
    "mirna_direction",
    "mirna_log2FoldChange",
    "target_direction",
    "n_targets",
    "n_called",
    "null_mean",
    "pvalue_perm",
    "fdr_perm",
    "pvalue_hypergeom",
    "called_targets",
]
CORRELATION_SHOWN = [
    "mirna",
    "gene_symbol",
    "mirna_log2FoldChange",
    "mrna_log2FoldChange",
    "n",
    "spearman_rho",
    "padj",
]
SHOWN_ROWS = 20
NAMED_MIRNAS = 5


def targets_verdict(enrichment: pd.DataFrame, assay: str, contrast: str, fdr: float) -> str:
    """One plain sentence: how many called miRNAs have their targets among the opposite mRNA calls."""
    n = len(enrichment)
    if n == 0:
        return f"No miRNA of {assay} is called in {contrast}, so there are no targets to test."
    hits = enrichment[enrichment["fdr_perm"] < fdr]
    opening = f"Of the {n} miRNA{'s' if n > 1 else ''} of {assay} called in {contrast}"
    tail = (
        "among the mRNAs that move the opposite way more often than shuffled labels give "
        f"(label-permutation FDR < {fdr:g})"
    )
    if hits.empty:
        return f"{opening}, none has its targets {tail}."
    named = [
        f"{row.mirna} ({row.mirna_direction}; {row.n_called} of {row.n_targets} targets called {row.target_direction})"
        for row in hits.head(NAMED_MIRNAS).itertuples()
    ]
    if len(hits) > NAMED_MIRNAS:
        named.append(f"{len(hits) - NAMED_MIRNAS} more")
    has = "has its" if len(hits) == 1 else "have their"
    return f"{opening}, {len(hits)} {has} targets {tail}: {join_words(named)}."


def target_part(contrast: str, assay: str, files: dict, fdr: float, run: Run) -> dict:
    enrichment, correlation = read_tsv(files["enrichment"]), read_tsv(files["correlation"])
    shown = enrichment[ENRICHMENT_SHOWN].head(SHOWN_ROWS)
    shown = shown.assign(
        pvalue_perm=[permutation_p_text(p, files["permutations"]) for p in shown["pvalue_perm"]]
    )
    return {
        "name": f"{assay}, {contrast}",
        "anchor": anchor_of("mirna-targets", assay, contrast),
        "verdict": targets_verdict(enrichment, assay, contrast, fdr),
        "enrichment": table_rows(readable_fdrs(shown, ["fdr_perm"], files["permutations"])),
        "correlation": table_rows(correlation[CORRELATION_SHOWN].head(SHOWN_ROWS)),
        "n_pairs": len(correlation),
        "figures": [figure(files["figure"], run.template_dir, run.config)],
    }


def build(run: Run) -> dict | None:
    fdr = run.config["de"]["alpha"]
    k = run.config["enrichment"]["label_permutations"]
    parts = [
        target_part(contrast, assay, {**files, "permutations": k}, fdr, run)
        for contrast in run.contrasts
        for assay, files in (run.inputs.of(contrast, "mirna_targets") or {}).items()
    ]
    if not parts:
        return None
    return {
        "toc": [{"anchor": p["anchor"], "label": f"miRNA targets: {p['name']}"} for p in parts],
        "parts": parts,
    }
