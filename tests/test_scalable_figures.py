"""Figures of a large cohort: above qc.max_samples_labelled and report.max_samples_drawn samples the
per-sample figures switch to forms whose size does not grow with the samples."""

import numpy as np
import pandas as pd

from trdpipe.qc import figures as qc_figures
from trdpipe.report.figures import drawn_samples
from trdpipe.report.sections.de import drawn_note


def library_sizes(n: int) -> tuple[pd.Series, pd.Series, pd.Series]:
    """n library sizes; s3 and s7 low (flagged by this check), s5 flagged by another."""
    values = pd.Series(np.linspace(9e6, 11e6, n), index=[f"s{i}" for i in range(n)])
    values[["s3", "s7"]] = [1e6, 2e5]
    own = pd.Series(values.index.isin(["s3", "s7"]), index=values.index)
    other = pd.Series(values.index == "s5", index=values.index)
    return values, own, other


def test_metric_chart_is_a_bar_per_sample_up_to_the_threshold():
    values, own, other = library_sizes(20)
    fig = qc_figures.metric_chart(
        values, own, other, 5e6, "library size", "low_library_size", max_labelled=20
    )
    ax = fig.axes[0]
    assert len(ax.patches) == 20
    assert [t.get_text() for t in ax.get_xticklabels()] == list(values.index)


def test_metric_chart_above_the_threshold_is_a_histogram_naming_the_flagged_samples():
    values, own, other = library_sizes(20)
    fig = qc_figures.metric_chart(
        values, own, other, 5e6, "library size", "low_library_size", max_labelled=19
    )
    ax = fig.axes[0]
    assert ax.get_xlabel() == "library size"
    assert sum(bar.get_height() for bar in ax.patches) == 20  # a histogram of the 20 samples
    assert [t.get_text() for t in ax.get_xticklabels() if t.get_text().startswith("s")] == []
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    # s7 is furthest from the median, so named first
    assert legend == [
        "flagged: low_library_size (2)",
        "flagged by another check (1)",
        "QC limit",
        "flagged here: s7, s3",
    ]


def test_distance_heatmap_names_samples_only_up_to_the_threshold():
    rng = np.random.default_rng(1)
    vst = rng.normal(size=(12, 30))
    obs = pd.DataFrame({"group": ["a", "b"] * 6}, index=[f"s{i}" for i in range(12)])

    def labels(max_labels):
        fig = qc_figures.distance_heatmap(vst, obs, ["group"], 5, max_labels=max_labels)
        heat = next(ax for ax in fig.axes if ax.images and ax.images[0].get_array().shape == (12, 12))
        return [t.get_text() for t in heat.get_xticklabels()]

    assert sorted(labels(12)) == sorted(obs.index)
    assert labels(11) == []


def test_top_gene_heatmap_draws_a_random_subset_of_samples_above_the_threshold():
    obs = pd.DataFrame({"group": ["TRD", "responder"] * 50}, index=[f"s{i:03d}" for i in range(100)])
    assert drawn_samples(obs, 100, seed=1) is obs
    drawn = drawn_samples(obs, 30, seed=1)
    assert len(drawn) == 30 and drawn.index.is_unique and drawn.index.isin(obs.index).all()
    assert list(drawn.index) == sorted(drawn.index)  # in the sheet's order
    assert drawn.index.equals(drawn_samples(obs, 30, seed=1).index)
    assert not drawn.index.equals(drawn_samples(obs, 30, seed=2).index)
    assert drawn_note(30, 100, 1) == (
        " 30 of the 100 samples are shown, drawn at random (seed 1; report.max_samples_drawn)."
    )
    assert drawn_note(100, 100, 1) == ""
