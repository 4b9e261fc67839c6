"""The results table's contract (trdpipe.model.results) and the engines' registry."""

import numpy as np
import pandas as pd

from trdpipe.model.engines import ENGINES, engine_class
from trdpipe.model.engines.base import DEEngine
from trdpipe.model.results import RESULT_COLUMNS, RESULT_CONTRACT, results_table


def test_the_contract_names_the_columns_every_reader_uses():
    assert RESULT_COLUMNS == [
        "gene_id",
        "gene_symbol",
        "baseMean",
        "log2FoldChange",
        "lfcSE",
        "stat",
        "pvalue",
        "padj",
    ]
    assert {c.dtype for c in RESULT_CONTRACT} == {"str", "float64"}
    assert all(c.meaning for c in RESULT_CONTRACT)


def test_a_column_an_engine_cannot_fill_is_nan_and_extra_columns_follow_the_contract():
    var = pd.DataFrame({"gene_symbol": ["A", None, "C"]}, index=["g1", "g2", "g3"])
    engine_table = pd.DataFrame(
        {
            "extra": [1, 2, 3],
            "pvalue": [0.5, np.nan, 0.01],
            "stat": [1, 0, 3],
            "log2FoldChange": [0.1, 0, 2.0],
        },
        index=var.index,
    )
    table = results_table(engine_table, var)
    assert list(table.columns) == RESULT_COLUMNS + ["extra"]
    assert table["gene_id"].tolist() == ["g3", "g1", "g2"]  # by p-value, none last
    assert table["gene_symbol"].tolist() == ["C", "A", ""]
    assert table[["baseMean", "lfcSE", "padj"]].isna().all().all()
    assert (table[[c.name for c in RESULT_CONTRACT if c.dtype == "float64"]].dtypes == "float64").all()


def test_every_registered_engine_is_a_de_engine_under_its_config_name():
    assert {"pydeseq2", "limma_voom"} <= set(ENGINES)
    for name in ENGINES:
        cls = engine_class(name)
        assert issubclass(cls, DEEngine) and cls.name == name and cls.method
