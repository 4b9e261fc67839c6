"""The results table of a contrast: the contract every DE engine's table follows.

Declared once here; the rules, the calibration, the enrichment, the sensitivity models and the
report read these columns by name. A column an engine cannot fill is NaN (`DEEngine.unfilled`
names them per engine; config/README.md lists them).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ResultColumn:
    name: str
    dtype: str  # "str" or "float64"
    meaning: str


RESULT_CONTRACT = (
    ResultColumn("gene_id", "str", "the gene's identifier in the cohort (Ensembl ID or symbol)"),
    ResultColumn("gene_symbol", "str", "the gene's symbol, empty when the annotation has none"),
    ResultColumn("baseMean", "float64", "mean of the normalised counts over the contrast's samples"),
    ResultColumn("log2FoldChange", "float64", "maximum-likelihood log2 fold change, test vs reference"),
    ResultColumn("lfcSE", "float64", "standard error of log2FoldChange"),
    ResultColumn("stat", "float64", "the test statistic of the contrast, signed as log2FoldChange"),
    ResultColumn("pvalue", "float64", "two-sided p-value of the contrast"),
    ResultColumn("padj", "float64", "Benjamini-Hochberg adjusted p-value (NaN: not tested)"),
)
RESULT_COLUMNS = [column.name for column in RESULT_CONTRACT]
# optional, after the contract's columns: the shrunk fold change of engines that offer it
SHRUNK_LFC = "log2FoldChange_shrunk"


def results_table(table: pd.DataFrame, var: pd.DataFrame) -> pd.DataFrame:
    """An engine's per-gene table (index = gene IDs) as the contract says: gene IDs and symbols
    first, the contract's columns in order with their types (NaN for those the engine left out),
    any extra columns after them, sorted by p-value (genes without one last, stable)."""
    table = table.rename_axis(None).copy()
    table.insert(0, "gene_id", table.index.astype(str))
    table.insert(1, "gene_symbol", var.loc[table.index, "gene_symbol"].fillna("").to_numpy())
    for column in RESULT_CONTRACT[2:]:
        table[column.name] = table[column.name].astype(float) if column.name in table else np.nan
    extra = [c for c in table.columns if c not in RESULT_COLUMNS]
    table = table[RESULT_COLUMNS + extra]
    return table.sort_values(["pvalue", "gene_id"], na_position="last", kind="mergesort").reset_index(
        drop=True
    )
