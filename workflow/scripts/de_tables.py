"""Summaries of a DESeq2 results table, without PyDESeq2 (the report uses them too)."""

import pandas as pd


def count_calls(table: pd.DataFrame, alpha: float, thresholds: list[float]) -> pd.DataFrame:
    """Genes up and down at padj < alpha, overall and beyond each |log2FC| threshold."""
    significant = table["padj"] < alpha
    rows = []
    for threshold in [0.0, *thresholds]:
        big = table["log2FoldChange"].abs() >= threshold
        rows.append({
            "alpha": alpha,
            "min_abs_log2FC": threshold,
            "up": int((significant & big & (table["log2FoldChange"] > 0)).sum()),
            "down": int((significant & big & (table["log2FoldChange"] < 0)).sum()),
        })
    return pd.DataFrame(rows)
