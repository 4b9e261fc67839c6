"""Summaries of a DESeq2 results table, without PyDESeq2 (the report uses them too)."""

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control


def count_calls(table: pd.DataFrame, alpha: float, thresholds: list[float]) -> pd.DataFrame:
    """Genes up and down at padj < alpha, overall and beyond each |log2FC| threshold."""
    significant = table["padj"] < alpha
    rows = []
    for threshold in [0.0, *thresholds]:
        big = table["log2FoldChange"].abs() >= threshold
        rows.append(
            {
                "alpha": alpha,
                "min_abs_log2FC": threshold,
                "up": int((significant & big & (table["log2FoldChange"] > 0)).sum()),
                "down": int((significant & big & (table["log2FoldChange"] < 0)).sum()),
            }
        )
    return pd.DataFrame(rows)


def gene_by_sample_table(values: np.ndarray, samples, var: pd.DataFrame) -> pd.DataFrame:
    """A samples x genes matrix as the genes x samples table people read: gene_id and
    gene_symbol first, then one column per sample."""
    table = pd.DataFrame(np.asarray(values).T, index=var.index, columns=list(samples))
    table.insert(0, "gene_symbol", var["gene_symbol"].fillna("").to_numpy())
    return table.rename_axis("gene_id").reset_index()


def bh(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values. A NaN p-value (one fgsea could not estimate)
    stays NaN and does not count as a test, as with R's p.adjust."""
    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(pvalues.shape, np.nan)
    estimated = ~np.isnan(pvalues)
    if estimated.any():
        adjusted[estimated] = false_discovery_control(np.clip(pvalues[estimated], 0.0, 1.0), method="bh")
    return adjusted
