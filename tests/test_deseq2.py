"""DESeq2 step: helpers on small tables, and the toy run against the planted truth and PyDESeq2 itself."""

import gc
import logging
import re
import weakref

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from pydeseq2.dds import DeseqDataSet
from pydeseq2.ds import DeseqStats

from conftest import ROOT
from nb_cohort import simulate_nb_cohort
from trdpipe.common import write_table
from trdpipe.model import tables
from trdpipe.model.deseq2 import run_deseq2
from trdpipe.model.design import prepare_metadata, shrink_coefficient
from trdpipe.model.engines import pydeseq2 as pydeseq2_engine
from trdpipe.model.engines.pydeseq2 import (
    fit_and_test,
    label_independent_fit,
    make_dataset,
    make_inference,
    refit_permuted,
    stats_class,
)
from trdpipe.model.figures import DOWN_COLOUR, UP_COLOUR, ma_plot, volcano_plot
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.results import results_table
from trdpipe.model.tables import count_calls, gene_by_sample_table, write_gene_by_sample_table

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
# the stages the deseq2 log times, in order (without the shrinkage)
DESEQ2_STAGES = [
    "size factors",
    "genewise dispersions",
    "dispersion trend",
    "dispersion prior",
    "MAP dispersions",
    "log fold changes (IRLS)",
    "Cook's distances",
    "refit of the genes with Cook's outliers",
    "Wald test",
    "Cook's filtering",
    "independent filtering and BH",
]


def test_metadata_scales_continuous_and_puts_reference_first():
    obs = pd.DataFrame(
        {"age": [20.0, 30.0, 40.0], "group": ["TRD", "responder", "TRD"], "site": ["b", "a", "b"]}
    )
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
        {
            "baseMean": [10.0, 20, 30],
            "log2FoldChange": [1.0, -2, 0.5],
            "lfcSE": [0.1] * 3,
            "stat": [10.0, -20, 5],
            "pvalue": [0.01, np.nan, 0.001],
            "padj": [0.02, np.nan, 0.002],
        },
        index=pd.Index(["g1", "g2", "g3"], name="gene_id"),
    )
    var = pd.DataFrame({"gene_symbol": ["A", None, "C"]}, index=["g1", "g2", "g3"])
    table = results_table(raw, var)
    assert list(table.columns[:8]) == [
        "gene_id",
        "gene_symbol",
        "baseMean",
        "log2FoldChange",
        "lfcSE",
        "stat",
        "pvalue",
        "padj",
    ]
    assert table["gene_id"].tolist() == ["g3", "g1", "g2"]
    assert table["gene_symbol"].tolist() == ["C", "A", ""]


def test_count_calls_by_threshold():
    table = pd.DataFrame(
        {"log2FoldChange": [2.0, 0.7, -0.3, -1.5, 3.0], "padj": [0.001, 0.01, 0.04, 0.2, np.nan]}
    )
    calls = count_calls(table, 0.05, [0.5, 1.0]).set_index("min_abs_log2FC")
    assert calls.loc[0.0, ["up", "down"]].tolist() == [2, 1]
    assert calls.loc[0.5, ["up", "down"]].tolist() == [2, 0]
    assert calls.loc[1.0, ["up", "down"]].tolist() == [1, 0]


def test_gene_by_sample_table_written_in_blocks_is_the_whole_tables_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, 50.0, size=(4, 10))
    var = pd.DataFrame(
        {"gene_symbol": [f"S{i}" if i % 3 else None for i in range(10)]}, index=[f"g{i}" for i in range(10)]
    )
    samples = ["s1", "s2", "s3", "s4"]
    write_table(gene_by_sample_table(values, samples, var), tmp_path / "whole.tsv.gz", float_format="%.6g")
    monkeypatch.setattr(tables, "GENES_PER_BLOCK", 3)  # 4 blocks, the last of 1 gene
    write_gene_by_sample_table(values, samples, var, tmp_path / "blocks.tsv.gz", float_format="%.6g")
    assert (tmp_path / "blocks.tsv.gz").read_bytes() == (tmp_path / "whole.tsv.gz").read_bytes()
    write_gene_by_sample_table(values[:, :0], samples, var.iloc[:0], tmp_path / "none.tsv")
    assert (tmp_path / "none.tsv").read_text() == "gene_id\tgene_symbol\ts1\ts2\ts3\ts4\n"


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
    """HTR2B has no planted effect and, as in whole blood, too few counts to be tested: it is in the
    count matrix, not in the DE table. HTR1A carries the toy's planted cis-eQTL (rs6295,
    resources/toy/truth_genotypes.tsv), for which its level was raised: it is tested, with no group
    effect planted, and not called."""
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    truth = pd.read_csv(ROOT / "resources/toy/truth_genes.tsv", sep="\t", index_col="gene_symbol")
    ids = truth.loc[["HTR1A", "HTR2B"], "gene_id"]
    assert (truth.loc[["HTR1A", "HTR2B"], "true_log2FC"] == 0).all() and set(ids) <= set(counts.index)
    htr1a, htr2b = ids["HTR1A"], ids["HTR2B"]
    assert counts.loc[htr2b].median() < 15 and htr2b not in set(toy_results["gene_id"])
    tested = toy_results.set_index("gene_id")
    assert counts.loc[htr1a].median() > 100 and tested.loc[htr1a, "padj"] > 0.05


def test_table_equals_a_direct_pydeseq2_call(toy_run, toy_results):
    """The pipeline adds no drift: the same counts, design and contrast straight into PyDESeq2."""
    cohort = contrast_cohort(ad.read_h5ad(toy_run / "results/filter/cohort.h5ad"), "TRD_vs_responder")
    metadata = cohort.obs[["site", "sex", "age", "group"]].copy()
    metadata["age"] = (metadata["age"] - metadata["age"].mean()) / metadata["age"].std()
    metadata["group"] = pd.Categorical(metadata["group"], categories=["responder", "TRD"])
    counts = pd.DataFrame(cohort.X, index=cohort.obs_names, columns=cohort.var_names)
    dds = DeseqDataSet(
        counts=counts,
        metadata=metadata,
        design="~ site + sex + age + group",
        inference=make_inference(2, "batched"),
        quiet=True,
    )
    dds.deseq2()
    stats = DeseqStats(
        dds,
        contrast=["group", "TRD", "responder"],
        alpha=0.05,
        inference=make_inference(2, "batched"),
        quiet=True,
    )
    stats.summary()
    direct = stats.results_df
    table = toy_results.set_index("gene_id").loc[direct.index]
    for column in ["baseMean", "log2FoldChange", "lfcSE", "stat", "pvalue", "padj"]:
        np.testing.assert_allclose(table[column], direct[column], rtol=1e-6, err_msg=column)


def plotted_table():
    return pd.DataFrame(
        {
            "gene_id": ["g1", "g2", "g3", "g4"],
            "gene_symbol": ["A", "", "C", "D"],
            "baseMean": [100.0, 10.0, 0.0, 50.0],
            "log2FoldChange": [1.5, -2.0, 0.0, 0.1],
            "log2FoldChange_shrunk": [1.2, -1.0, 0.0, 0.05],
            "pvalue": [1e-6, 1e-4, np.nan, 0.5],
            "padj": [1e-5, 1e-3, np.nan, 0.6],
        }
    )


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.figure.legends[0].get_texts()]


def test_volcano_draws_shrunk_changes_up_red_down_blue_with_thresholds():
    fig = volcano_plot(plotted_table(), 0.05, CONTRAST, [0.5, 1.0], n_labels=2)
    ax = fig.axes[0]
    not_significant, up, down = ax.collections
    np.testing.assert_allclose(up.get_offsets(), [[1.2, 6.0]])  # the shrunk fold change
    np.testing.assert_allclose(down.get_offsets(), [[-1.0, 4.0]])
    np.testing.assert_allclose(not_significant.get_offsets(), [[0.05, -np.log10(0.5)]])
    assert to_hex(up.get_facecolor()[0]) == UP_COLOUR and to_hex(down.get_facecolor()[0]) == DOWN_COLOUR
    assert legend_texts(ax) == [
        "not significant",
        "up (padj < 0.05): 1",
        "down (padj < 0.05): 1",
        "padj = 0.05",
        "|log2FC| = 0.5, 1",
    ]
    lines = {(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in ax.get_lines()}
    assert ((0, 1), (4.0, 4.0)) in lines  # at the largest p-value called, 1e-4
    assert {x for (x, _), (_, y) in lines if y == 1} == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert [t.get_text() for t in ax.texts] == ["A", "g2"]  # no symbol: the gene ID
    assert ax.get_xlabel() == "log2 fold change, TRD vs responder, shrunk (apeGLM-like prior)"
    assert ax.get_title() == "TRD vs responder"


def test_volcano_without_shrunk_changes_draws_the_estimates():
    ax = volcano_plot(plotted_table().drop(columns="log2FoldChange_shrunk"), 0.05, CONTRAST).axes[0]
    np.testing.assert_allclose(ax.collections[1].get_offsets(), [[1.5, 6.0]])
    assert ax.get_xlabel() == "log2 fold change, TRD vs responder"


def test_volcano_labels_do_not_overlap():
    # the twelve top genes almost on one point of a wide plot: unrepelled, their labels cover each other
    n, background = 12, 200
    lfc = np.concatenate([2.0 + 0.01 * np.arange(n), np.linspace(-4, 4, background)])
    pvalue = np.concatenate([1e-10 * (1 + 0.05 * np.arange(n)), np.linspace(0.01, 1, background)])
    table = pd.DataFrame(
        {
            "gene_id": [f"ENSG{i:011d}" for i in range(n + background)],
            "gene_symbol": [f"GENE{i}" for i in range(n + background)],
            "baseMean": 100.0,
            "log2FoldChange": lfc,
            "pvalue": pvalue,
            "padj": np.where(pvalue < 1e-9, 1e-8, 0.9),
        }
    )
    fig = volcano_plot(table, 0.05, CONTRAST, n_labels=n)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in fig.axes[0].texts]
    assert len(boxes) == n
    overlapping = [(i, j) for i in range(n) for j in range(i + 1, n) if boxes[i].overlaps(boxes[j])]
    assert overlapping == []


def test_ma_plot_colours_up_red_down_blue_and_leaves_out_unexpressed_genes():
    ax = ma_plot(plotted_table(), 0.05, CONTRAST, [1.0]).axes[0]
    not_significant, up, down = ax.collections
    np.testing.assert_allclose(up.get_offsets(), [[2.0, 1.2]])
    np.testing.assert_allclose(down.get_offsets(), [[1.0, -1.0]])
    np.testing.assert_allclose(not_significant.get_offsets(), [[np.log10(50), 0.05]])
    assert to_hex(up.get_facecolor()[0]) == UP_COLOUR and to_hex(down.get_facecolor()[0]) == DOWN_COLOUR
    assert legend_texts(ax) == [
        "not significant",
        "up (padj < 0.05): 1",
        "down (padj < 0.05): 1",
        "|log2FC| = 1",
    ]
    assert ax.get_ylabel() == "log2 fold change, TRD vs responder, shrunk (apeGLM-like prior)"


def small_cohort(n_outliers: int = 0) -> ad.AnnData:
    counts, metadata = simulate_nb_cohort(40, 150, seed=7, design="group", n_outliers=n_outliers)
    var = pd.DataFrame({"gene_symbol": [f"S{i}" for i in range(counts.shape[1])]}, index=counts.columns)
    return ad.AnnData(X=counts.to_numpy(float), obs=metadata.astype({"group": str}), var=var)


SETTINGS = {"alpha": 0.05, "inference": "batched", "lfc_shrink": False}


def test_staged_fit_logs_every_stage_and_equals_pydeseq2s_own_run(caplog):
    adata = small_cohort(n_outliers=8)
    with caplog.at_level(logging.INFO, logger="trd"):
        table = fit_and_test(
            make_dataset(adata, "~ group", SETTINGS, 1, CONTRAST), CONTRAST, SETTINGS, adata.var
        )
    stages = [m.rsplit(":", 1)[0] for m in caplog.messages]
    assert stages == DESEQ2_STAGES
    assert all(re.fullmatch(r".+: \d+\.\d\d s", m) for m in caplog.messages)
    # the same dataset through PyDESeq2's own deseq2() and summary()
    dds = make_dataset(adata, "~ group", SETTINGS, 1, CONTRAST)
    dds.deseq2()
    stats = stats_class(SETTINGS)(
        dds, contrast=["group", "TRD", "responder"], alpha=0.05, inference=dds.inference, quiet=True
    )
    stats.summary()
    assert dds.var["replaced"].any()  # the refit stage did run
    expected = results_table(stats.results_df, adata.var)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


def test_fit_contrast_frees_its_dataset_before_it_returns(monkeypatch):
    """The dataset (its samples x genes matrices) is not left to a later garbage collection."""
    datasets = []

    def tracked(*args, **kwargs):
        dds = make_dataset(*args, **kwargs)
        datasets.append(weakref.ref(dds))
        return dds

    monkeypatch.setattr(pydeseq2_engine, "make_dataset", tracked)
    adata = small_cohort(n_outliers=8)
    gc.disable()
    try:
        fit = pydeseq2_engine.PyDESeq2Engine(SETTINGS).fit_contrast(adata, "~ group", CONTRAST, shrink=True)
    finally:
        gc.enable()
    assert len(datasets) == 1 and datasets[0]() is None
    assert fit.normalised_counts.shape == adata.shape


def test_shrinkage_adds_a_column_and_keeps_the_estimates(caplog):
    adata = small_cohort()
    plain = run_deseq2(adata, "~ group", CONTRAST, SETTINGS, 1)
    with caplog.at_level(logging.INFO, logger="trd"):
        shrunk = run_deseq2(adata, "~ group", CONTRAST, {**SETTINGS, "lfc_shrink": True}, 1)
    assert "log fold-change shrinkage (apeGLM-like prior)" in caplog.text
    pd.testing.assert_frame_equal(shrunk.drop(columns="log2FoldChange_shrunk"), plain)
    # shrinkage pulls towards 0, most for the noisiest estimates
    ratio = (shrunk["log2FoldChange_shrunk"] / shrunk["log2FoldChange"]).to_numpy()
    assert np.all(ratio[np.isfinite(ratio)] <= 1 + 1e-6)
    noisy = shrunk["lfcSE"] > shrunk["lfcSE"].median()
    assert ratio[noisy].mean() < ratio[~noisy].mean()


def test_permutation_refits_skip_shrinkage(monkeypatch):
    """The calibration's null needs the Wald statistics only: it must not pay for the prior."""
    adata = small_cohort()

    def fail(*args, **kwargs):
        raise AssertionError("lfc_shrink called")

    monkeypatch.setattr(DeseqStats, "lfc_shrink", fail)
    labels = pd.Series(
        np.random.default_rng(1).permutation(adata.obs["group"].to_numpy()), index=adata.obs_names
    )
    table = refit_permuted(
        adata,
        labels,
        "~ group",
        CONTRAST,
        {**SETTINGS, "lfc_shrink": True},
        1,
        label_independent_fit(adata, "~ group", CONTRAST, SETTINGS),
    )
    assert table["stat"].notna().sum() > 100
