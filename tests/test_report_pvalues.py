"""The report never shows a p-value of 0: an analytic p-value or padj beneath the smallest float
reads as the bound, in every table and in the gene plots' titles."""

import numpy as np
import pandas as pd

from trdpipe.report.sections.de import top_genes
from trdpipe.report.text import statistic_text, table_rows


def test_a_de_pvalue_of_zero_reads_as_a_bound_while_other_zeros_stay_zero():
    table = pd.DataFrame(
        {
            "gene_id": ["ENSG1", "ENSG2", "ENSG3"],
            "gene_symbol": ["IL1B", "TNF", "GZMB"],
            "baseMean": [1520.0, 0.0, 12.5],
            "log2FoldChange": [3.1, 0.0, -0.2],
            "lfcSE": [0.1, 0.3, 0.4],
            "stat": [40.2, 0.0, -0.5],
            "pvalue": [0.0, 1.0, 0.6170],
            "padj": [0.0, 1.0, np.nan],
        }
    )
    shown = table_rows(top_genes(table, 3))
    assert shown["columns"] == list(table.columns)
    assert shown["rows"] == [
        ["ENSG1", "IL1B", "1520", "3.1", "0.1", "40.2", "< 1e-300", "< 1e-300"],
        ["ENSG3", "GZMB", "12.5", "-0.2", "0.4", "-0.5", "0.617", "NA"],
        ["ENSG2", "TNF", "0", "0", "0.3", "0", "1", "1"],
    ]


def test_every_p_value_column_of_the_report_tables_is_floored():
    """The names the report's tables give their p-values: DE, GSEA, ORA, camera, cell scores, QC."""
    names = [
        "pvalue",
        "padj",
        "pvalue (gene perm.)",
        "padj (gene perm.)",
        "fdr",
        "qvalue_perm",
        "gain_p_value",
    ]
    assert [statistic_text(name, 0.0) for name in names] == ["< 1e-300"] * len(names)
    assert [statistic_text(name, 0) for name in ["n_genes", "overlap", "baseMean"]] == ["0", "0", "0"]
    assert statistic_text("padj", 3.2e-12) == "3.2e-12"
