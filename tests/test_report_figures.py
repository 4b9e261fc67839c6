"""The report's figures on small tables: the interactive volcano's data and the per-gene counts."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from nb_cohort import simulate_nb_cohort
from trdpipe.report import figures as rf

DE = pd.DataFrame(
    {
        "gene_id": ["g1", "g2", "g3", "g4", "g5", "g6"],
        "gene_symbol": ["IL1B", "BDNF", "TNF", "", "HTR1A", "MIF"],
        "log2FoldChange": [1.2, -0.6, 0.3, 2.0, 0.1, 0.5],
        "log2FoldChange_shrunk": [1.1, -0.5, 0.1, 0.4, 0.0, np.nan],
        "pvalue": [1e-9, 1e-6, 0.002, 0.04, np.nan, 0.5],
        "padj": [1e-8, 1e-5, 0.01, np.nan, np.nan, 0.7],
    }
)


def test_volcano_points_are_the_tested_genes_of_the_table():
    points = rf.volcano_points(DE, 0.05)
    tested = DE.dropna(subset=["pvalue", "log2FoldChange_shrunk"])
    assert points["gene_id"].tolist() == tested["gene_id"].tolist() == ["g1", "g2", "g3", "g4"]
    assert points["label"].tolist() == ["IL1B", "BDNF", "TNF", "g4"]  # the ID when there is no symbol
    np.testing.assert_allclose(points["x"], tested["log2FoldChange_shrunk"])
    np.testing.assert_allclose(points["y"], -np.log10(tested["pvalue"]))
    assert points["call"].tolist() == ["up", "down", "up", "not significant"]  # g4: padj NA (filtered)
    unshrunk = rf.volcano_points(DE.drop(columns="log2FoldChange_shrunk"), 0.05)
    np.testing.assert_allclose(unshrunk["x"], DE.dropna(subset=["pvalue"])["log2FoldChange"])


def test_volcano_figure_draws_every_point_once_with_its_symbol():
    table = DE.drop(columns="log2FoldChange_shrunk")
    points = rf.volcano_points(table, 0.05)
    fig = rf.volcano_figure(points, 0.05, [0.5, 1.0], "TRD vs responder", "log2 fold change")
    *calls, search = fig.data
    assert [trace.meta for trace in calls] == ["not significant", "up", "down"]
    assert sum(len(trace.x) for trace in calls) == table["pvalue"].notna().sum() == 5
    for trace in calls:
        shown = points[points["call"] == trace.meta]
        assert list(trace.text) == shown["label"].tolist()
        np.testing.assert_allclose(trace.x, shown["x"], atol=5e-4)
        np.testing.assert_allclose(trace.y, shown["y"], atol=5e-4)
    assert list(calls[1].text) == ["IL1B", "TNF"] and list(calls[2].text) == ["BDNF"]
    assert len(search.x) == 0  # the search box fills it
    # the padj cut at the largest p-value called (TNF's 0.002); log2FC 0, +-0.5 and +-1
    shapes = fig.layout.shapes
    assert [shape.y0 for shape in shapes if shape.yref == "y"] == [pytest.approx(-np.log10(0.002))]
    assert sorted(shape.x0 for shape in shapes if shape.xref == "x") == [-1.0, -0.5, 0, 0.5, 1.0]
    html = rf.volcano_html(fig, "de-x-volcano")
    assert 'id="de-x-volcano"' in html and "Plotly.newPlot" in html and "<script src" not in html


def test_normalised_counts_are_counts_over_median_of_ratios_size_factors():
    import anndata as ad

    counts, obs = simulate_nb_cohort(12, 60, seed=3, design="group")
    adata = ad.AnnData(
        counts.to_numpy(dtype=float),
        obs=obs.assign(group=obs["group"].astype(str)),
        var=pd.DataFrame(index=counts.columns),
    )
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    normalised = rf.normalised_counts(adata, "~ group", {"inference": "default"}, contrast)
    # DESeq2's median of ratios, computed here: genes with no zero count give the geometric means
    values = counts.to_numpy(dtype=float)
    complete = (values > 0).all(axis=0)
    log_means = np.log(values[:, complete]).mean(axis=0)
    size_factors = np.exp(np.median(np.log(values[:, complete]) - log_means, axis=1))
    np.testing.assert_allclose(normalised.to_numpy(), values / size_factors[:, None], rtol=1e-10)

    genes = ["G00007", "G00002"]
    long = rf.gene_count_values(normalised, adata.obs, genes, "group")
    levels = rf.group_levels(adata.obs, contrast)
    assert levels == ["responder", "TRD"]
    fig = rf.gene_count_figure(long, levels, {"G00007": "seven"}, "top genes")
    for ax, gene in zip(fig.axes, genes):
        column = counts.columns.get_loc(gene)
        points = [c for c in ax.collections if isinstance(c, PathCollection)]
        for level, dots in zip(levels, points):
            in_level = (obs["group"] == level).to_numpy()
            expected = values[in_level, column] / size_factors[in_level] + 0.5
            np.testing.assert_allclose(np.sort(dots.get_offsets()[:, 1]), np.sort(expected), rtol=1e-10)
        assert ax.get_yscale() == "log"
        labelled = [t for t in ax.get_yticklabels() if t.get_text()]
        assert len([t for t in labelled if ax.get_ylim()[0] <= t.get_position()[1] <= ax.get_ylim()[1]]) >= 2
    assert [ax.get_title() for ax in fig.axes[:2]] == ["seven", "G00002"]
    assert not fig.axes[2].axison  # the grid's unused panels are blank


def test_candidate_genes_come_from_the_config_and_missing_ones_are_named():
    import anndata as ad

    from trdpipe.report.sections import de as de_section

    counts, obs = simulate_nb_cohort(10, 40, seed=1, design="group")
    var = pd.DataFrame({"gene_symbol": [f"SYM{i}" for i in range(40)]}, index=counts.columns)
    adata = ad.AnnData(counts.to_numpy(dtype=float), obs=obs.assign(group=obs["group"].astype(str)), var=var)
    table = pd.DataFrame(
        {
            "gene_id": counts.columns,
            "gene_symbol": adata.var["gene_symbol"].to_numpy(),
            "log2FoldChange": 0.1,
            "pvalue": np.linspace(0.001, 0.9, 40),
            "padj": 0.5,
        }
    )
    config = {
        "design": "~ group",
        "de": {"inference": "default"},
        "report": {"candidate_genes": ["SYM5", "NOTHERE", "SYM2"]},
    }
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    top, candidates = de_section.gene_figures(table, contrast, config, adata)
    assert top["caption"].startswith("The 12 genes with the smallest p-values: counts normalised")
    assert candidates["caption"].endswith("Not in the filtered data: NOTHERE.")
    assert all(f["src"].startswith("data:image/png;base64,") for f in (top, candidates))
