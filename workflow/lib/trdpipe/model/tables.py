"""Summaries of a DESeq2 results table, without PyDESeq2 (the report uses them too)."""

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from trdpipe.common import table_output

# Genes per block of write_gene_by_sample_table: at 6,000 samples a block's table is 48 MB of
# float64; the whole table, built at once, took one or two copies of the matrix (880 MB each at
# 6,000 x 18,364: pandas copies it in rename_axis and reset_index).
GENES_PER_BLOCK = 1000


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


def write_gene_by_sample_table(values: np.ndarray, samples, var: pd.DataFrame, path, **kwargs) -> None:
    """gene_by_sample_table written to `path` as write_table writes it, in blocks of genes: the
    same file, without a genes x samples copy of the whole matrix in memory."""
    with table_output(path) as handle:
        for start in range(0, len(var) or 1, GENES_PER_BLOCK):  # a table of no genes keeps its header
            genes = slice(start, start + GENES_PER_BLOCK)
            block = gene_by_sample_table(values[:, genes], samples, var.iloc[genes])
            block.to_csv(handle, sep="\t", index=False, header=start == 0, **kwargs)


def bh(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values. A NaN p-value (one fgsea could not estimate)
    stays NaN and does not count as a test, as with R's p.adjust."""
    pvalues = np.asarray(pvalues, dtype=float)
    adjusted = np.full(pvalues.shape, np.nan)
    estimated = ~np.isnan(pvalues)
    if estimated.any():
        adjusted[estimated] = false_discovery_control(np.clip(pvalues[estimated], 0.0, 1.0), method="bh")
    return adjusted
