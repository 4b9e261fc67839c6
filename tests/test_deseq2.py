"""DESeq2 step: helpers on small tables, and the toy run against the planted truth and PyDESeq2 itself."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from pydeseq2.dds import DeseqDataSet
from pydeseq2.ds import DeseqStats

from conftest import ROOT
from de_model import make_inference, prepare_metadata
from de_tables import count_calls
from deseq2 import ma_plot, results_table, shrink_coefficient, volcano_plot
from filter import contrast_cohort

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}


def test_metadata_scales_continuous_and_puts_reference_first():
    obs = pd.DataFrame({"age": [20.0, 30.0, 40.0], "group": ["TRD", "responder", "TRD"],
                        "site": ["b", "a", "b"]})
    metadata, coding = prepare_metadata(obs, "~ site + age + group", CONTRAST)
    assert metadata["age"].tolist() == pytest.approx([-1.0, 0.0, 1.0])
    assert list(metadata["group"].cat.categories) == ["responder", "TRD"]
    assert list(metadata["site"].cat.categories) == ["a", "b"]
    coding = coding.set_index("variable")
    assert coding.loc["age", ["centre", "scale"]].tolist() == pytest.approx([30.0, 10.0])
    assert coding.loc["group", "reference"] == "responder"


def test_shrink_coefficient_name():
    assert shrink_coefficient(CONTRAST) == "group[T.TRD]"


def test_results_table_orders_columns_and_sorts_by_pvalue():
    raw = pd.DataFrame(
        {"baseMean": [10.0, 20, 30], "log2FoldChange": [1.0, -2, 0.5], "lfcSE": [0.1] * 3,
         "stat": [10.0, -20, 5], "pvalue": [0.01, np.nan, 0.001], "padj": [0.02, np.nan, 0.002]},
        index=pd.Index(["g1", "g2", "g3"], name="gene_id"),
    )
    var = pd.DataFrame({"gene_symbol": ["A", None, "C"]}, index=["g1", "g2", "g3"])
    table = results_table(raw, var)
    assert list(table.columns[:8]) == ["gene_id", "gene_symbol", "baseMean", "log2FoldChange", "lfcSE",
                                       "stat", "pvalue", "padj"]
    assert table["gene_id"].tolist() == ["g3", "g1", "g2"]
    assert table["gene_symbol"].tolist() == ["C", "A", ""]


def test_count_calls_by_threshold():
    table = pd.DataFrame({"log2FoldChange": [2.0, 0.7, -0.3, -1.5, 3.0],
                          "padj": [0.001, 0.01, 0.04, 0.2, np.nan]})
    calls = count_calls(table, 0.05, [0.5, 1.0]).set_index("min_abs_log2FC")
    assert calls.loc[0.0, ["up", "down"]].tolist() == [2, 1]
    assert calls.loc[0.5, ["up", "down"]].tolist() == [2, 0]
    assert calls.loc[1.0, ["up", "down"]].tolist() == [1, 0]


@pytest.fixture(scope="module")
def toy_results(toy_run):
    table = pd.read_csv(toy_run / "results/de/TRD_vs_responder/deseq2_results.tsv", sep="\t")
    truth = pd.read_csv(ROOT / "resources/toy/truth_genes.tsv", sep="\t")
    return table.merge(truth.drop(columns="gene_symbol"), on="gene_id", how="left")


def test_toy_calls_match_the_planted_truth(toy_results):
    called = toy_results[toy_results["padj"] < 0.05]
    false_discoveries = (~called["is_de"]).mean()
    assert len(called) > 200
    assert false_discoveries <= 0.10
    # strong effects within cells are found (composition genes: tests/test_cells.py)
    regulated = toy_results[toy_results["class"] == "regulated"]
    strong = regulated[regulated["true_log2FC"].abs() >= 0.8]
    assert len(strong) >= 20 and (strong["padj"] < 0.05).mean() >= 0.8
    # estimates track the truth and positive means higher in TRD
    de = toy_results[toy_results["is_de"]]
    assert np.corrcoef(de["log2FoldChange"], de["true_log2FC"])[0, 1] > 0.9
    assert (np.sign(called["log2FoldChange"]) == np.sign(called["true_log2FC"]))[called["is_de"]].all()


def test_toy_serotonin_receptor_genes_are_counted_but_filtered_as_in_blood(toy_results):
    """HTR1A and HTR2B have no planted effect and, as in whole blood, too few counts to be
    tested: they are in the count matrix, not in the DE table."""
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    truth = pd.read_csv(ROOT / "resources/toy/truth_genes.tsv", sep="\t", index_col="gene_symbol")
    ids = truth.loc[["HTR1A", "HTR2B"], "gene_id"]
    assert (truth.loc[["HTR1A", "HTR2B"], "true_log2FC"] == 0).all() and set(ids) <= set(counts.index)
    assert (counts.loc[ids].median(axis=1) < 15).all()
    assert not set(ids) & set(toy_results["gene_id"])


def test_table_equals_a_direct_pydeseq2_call(toy_run, toy_results):
    """The pipeline adds no drift: the same counts, design and contrast straight into PyDESeq2."""
    cohort = contrast_cohort(ad.read_h5ad(toy_run / "results/filter/cohort.h5ad"), "TRD_vs_responder")
    metadata = cohort.obs[["site", "sex", "age", "group"]].copy()
    metadata["age"] = (metadata["age"] - metadata["age"].mean()) / metadata["age"].std()
    metadata["group"] = pd.Categorical(metadata["group"], categories=["responder", "TRD"])
    counts = pd.DataFrame(cohort.X, index=cohort.obs_names, columns=cohort.var_names)
    dds = DeseqDataSet(counts=counts, metadata=metadata, design="~ site + sex + age + group",
                       inference=make_inference(2, "batched"), quiet=True)
    dds.deseq2()
    stats = DeseqStats(dds, contrast=["group", "TRD", "responder"], alpha=0.05,
                       inference=make_inference(2, "batched"), quiet=True)
    stats.summary()
    direct = stats.results_df
    table = toy_results.set_index("gene_id").loc[direct.index]
    for column in ["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]:
        np.testing.assert_allclose(table[column], direct[column], rtol=1e-6, err_msg=column)


def plotted_table():
    return pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4"], "gene_symbol": ["A", "", "C", "D"],
                         "baseMean": [100.0, 10.0, 0.0, 50.0], "log2FoldChange": [1.5, -2.0, 0.0, 0.1],
                         "pvalue": [1e-6, 1e-4, np.nan, 0.5], "padj": [1e-5, 1e-3, np.nan, 0.6]})


def test_volcano_marks_significant_genes_and_labels_top_ones():
    fig = volcano_plot(plotted_table(), 0.05, "TRD vs responder", n_labels=2)
    ax = fig.axes[0]
    not_significant, significant = (c.get_offsets() for c in ax.collections)
    np.testing.assert_allclose(significant, [[1.5, 6.0], [-2.0, 4.0]])
    np.testing.assert_allclose(not_significant, [[0.1, -np.log10(0.5)]])
    assert [t.get_text() for t in ax.texts] == ["A", "g2"]  # no symbol: the gene ID
    assert ax.get_title() == "TRD vs responder"


def test_ma_plot_leaves_out_unexpressed_genes():
    ax = ma_plot(plotted_table(), 0.05, "x").axes[0]
    not_significant, significant = (c.get_offsets() for c in ax.collections)
    np.testing.assert_allclose(significant, [[2.0, 1.5], [1.0, -2.0]])
    np.testing.assert_allclose(not_significant, [[np.log10(50), 0.1]])
