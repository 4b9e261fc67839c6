"""The report of 6,000 samples (issue 28): under 30 MB, its per-sample figures in their scalable
forms, and it opens in headless Chromium with every section. Built on a synthetic results folder
(tests/report_scale.py) from the toy run's, not on a 6,000-sample run; its open time is measured
by bench/bench_report_scale.py, not here."""

import base64
import re

import pandas as pd
import pytest

from headless_chromium import chromium_path, open_page
from report_scale import build_report, scale_config
from trdpipe.qc import figures as qc_figures

N_SAMPLES = 6000
MAX_BYTES = 30e6


@pytest.fixture(scope="module")
def scale_report(toy_run, tmp_path_factory):
    return build_report(toy_run, tmp_path_factory.mktemp("report_6000"), N_SAMPLES)


def test_report_of_6000_samples_is_small_and_its_figures_scale(scale_report):
    text = scale_report.read_text(encoding="utf-8")
    assert scale_report.stat().st_size < MAX_BYTES
    # the top-genes heat map draws report.max_samples_drawn of them, and says so
    drawn = scale_config()["report"]["max_samples_drawn"]
    assert f" {drawn} of the {N_SAMPLES} samples are shown, drawn at random" in text
    # no table or label names the samples one by one (the embedded figures' base64 set aside)
    words = re.sub(r"data:[^\"')]+", "", text)
    assert len(set(re.findall(r"\bS\d{5}\b", words))) < 10
    # the QC bar charts in the page are the histograms the qc rule draws above the threshold
    qc = scale_report.parents[1] / "qc"
    metrics = pd.read_csv(qc / "qc_metrics.tsv", sep="\t", index_col=0, keep_default_na=False)
    flagged = metrics["flags"] != ""
    max_labelled = scale_config()["qc"]["max_samples_labelled"]
    chart = qc_figures.metric_chart(
        metrics["library_size"],
        flagged,
        ~flagged & flagged,
        1e6,
        "library size",
        "low_library_size",
        max_labelled,
    )
    assert len(chart.axes[0].patches) < max_labelled < N_SAMPLES
    for name in ("library_size", "detected_genes"):
        assert base64.b64encode((qc / f"{name}.png").read_bytes()).decode() in text


@pytest.mark.browser
@pytest.mark.skipif(chromium_path() is None, reason="Debian's chromium is not installed")
def test_report_of_6000_samples_opens_in_headless_chromium(scale_report):
    load = open_page(
        scale_report.as_uri(),
        evaluate={
            # each section's id and drawn height
            "sections": "Array.from(document.querySelectorAll('section[id]'))"
            ".map(s => [s.id, s.getBoundingClientRect().height])",
            "images": "Array.from(document.querySelectorAll('figure img'))"
            ".filter(i => i.complete && i.naturalWidth > 0).length",
            "all_images": "document.querySelectorAll('figure img').length",
        },
    )
    assert load.console_errors == []
    written = re.findall(r'<section id="([^"]+)"', scale_report.read_text(encoding="utf-8"))
    rendered = load.evaluations["sections"]
    assert [name for name, _ in rendered] == written and "qc" in written
    assert all(height > 0 for _, height in rendered)
    assert load.evaluations["images"] == load.evaluations["all_images"] > 10
