"""The confounding alarm: every sample-sheet column against each contrast's variable (qc), the stop
at ingest, and the report's key findings that lead with it. Sample sheets come from the simulator
with a planted batch, and from the real Lemay et al. (2019) cohort, balanced by design."""

import html
import logging
import math
import re
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from conftest import ROOT, small_cohort_config
from rule_scripts import rule_script
from test_bad_inputs import assert_fails_in_ingest, small_workflow  # noqa: F401 - a fixture
from test_report import KEY_CONFIG, TRD, key_finding_tables, render_macros
from trdpipe import simulate as sim
from trdpipe.common import InputError
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.qc import figures as qc_figures
from trdpipe.qc import metrics as qc
from trdpipe.report import inputs as report_inputs
from trdpipe.report.sections import de as de_section
from trdpipe.report.sections import key_findings as key_findings_section

CONTRAST = "TRD_vs_responder"
SETTINGS = {
    "confounding": "warn",
    "confounding_association": 0.5,
    "confounding_pvalue": 0.001,
    "confounding_max_vif": 5,
}
LEMAY = ROOT / "tests" / "data" / "lemay2019_whole_blood"


def simulated_sheet(n_samples: int, batch_confounding: float) -> pd.DataFrame:
    """The simulator's sample sheet of a cohort without group effects, with its planted batch."""
    params = sim.SimulationParameters.null_cohort(n_samples=n_samples, batch_confounding=batch_confounding)
    samples = sim.simulate_samples(params, np.random.default_rng(params.seed))
    samples["batch"] = sim.simulate_batch(samples, batch_confounding, sim.batch_rng(params))
    return samples.set_index("sample_id")


def bias_corrected_v(table: np.ndarray) -> float:
    """Bergsma's (2013) bias-corrected Cramér's V, written out from the paper's formulas."""
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    phi2 = ((table - expected) ** 2 / expected).sum() / n
    r, k = table.shape
    phi2 = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    return math.sqrt(phi2 / min(k - (k - 1) ** 2 / (n - 1) - 1, r - (r - 1) ** 2 / (n - 1) - 1))


# --- the simulator's batch ---------------------------------------------------------------------------


def test_the_simulator_plants_the_batch_as_set():
    confounded = simulated_sheet(31, 0.875)
    # TRD in batch A: 15 x (1 + 0.875) / 2 = 14.06 -> 14; responders: 16 x 0.0625 = 1
    assert pd.crosstab(confounded["batch"], confounded["group"]).to_dict() == {
        "TRD": {"A": 14, "B": 1},
        "responder": {"A": 1, "B": 15},
    }
    balanced = simulated_sheet(31, 0.0)
    # 7.5 -> 8 of 15 TRD and 8 of 16 responders in A
    assert pd.crosstab(balanced["batch"], balanced["group"]).to_dict() == {
        "TRD": {"A": 8, "B": 7},
        "responder": {"A": 8, "B": 8},
    }


# --- the alarm -----------------------------------------------------------------------------------------


def test_a_confounded_batch_raises_the_alarm_in_plain_words():
    samples = simulated_sheet(31, 0.875)
    table = qc.confounding_table(samples, "~ sex + group", CONTRAST, TRD, SETTINGS)
    batch = table.set_index("column").loc["batch"]
    counts = np.array([[14, 1], [1, 15]])
    assert batch["value"] == pytest.approx(bias_corrected_v(counts))
    # 2 x 2 with every expected count above 5: chi2 with Yates' correction
    assert (batch["test"], batch["pvalue"]) == ("chi2", pytest.approx(stats.chi2_contingency(counts)[1]))
    assert table.loc[table["alarm"], "column"].tolist() == ["batch"]
    assert qc.confounding_alarms(table) == [
        "group is confounded with batch (batch A: 14 of 15 TRD, 1 of 16 responder; batch B: 1 of 15 TRD, "
        "15 of 16 responder; Cramér's V 0.87, chi2 p = 7.2e-06): a difference between TRD and responder "
        "cannot be told apart from a difference between the levels of batch. Adding batch to the design "
        "separates the two, at a cost: TRD and responder are then compared only within batch A (14 TRD, "
        "1 responder) and batch B (1 TRD, 15 responder)."
    ]
    # the design's only other column, sex, is unrelated to the group here: no inflation to speak of
    vif = table[table["measure"] == "vif"].iloc[0]
    assert (vif["column"], bool(vif["alarm"])) == ("design: sex", False) and vif["value"] < 1.2


def test_a_batch_that_is_the_group_cannot_be_added_to_the_design():
    samples = simulated_sheet(31, 1.0)
    warning = qc.confounding_alarms(qc.confounding_table(samples, "~ group", CONTRAST, TRD, SETTINGS))[0]
    assert warning.endswith(
        "batch cannot be added to the design: no level of it holds both TRD and responder, so only a "
        "cohort with both in the same batch can separate the two."
    )


def test_a_balanced_batch_raises_no_alarm():
    samples = simulated_sheet(31, 0.0)
    table = qc.confounding_table(samples, "~ sex + group", CONTRAST, TRD, SETTINGS)
    assert not table["alarm"].any() and qc.confounding_alarms(table) == []
    batch = table.set_index("column").loc["batch"]
    # chi2 of [[8, 8], [7, 8]] is 0.03, below its bias (1/30): V is 0
    assert batch["value"] == 0.0 and batch["pvalue"] > 0.5


def test_the_alarm_rarely_fires_on_independent_columns():
    """The null: a batch and a continuous covariate drawn independently of the groups (24 + 24)."""
    rng = np.random.default_rng(11)
    labels = pd.Series(["TRD", "responder"] * 24)
    fired, draws = 0, 300
    for _ in range(draws):
        for column in (
            pd.Series(rng.choice(["A", "B", "C"], 48), name="batch"),
            pd.Series(rng.normal(0, 1, 48), name="score"),
        ):
            row = {**qc.column_association(column, labels, TRD), "in_design": False}
            fired += qc.is_alarm(row, SETTINGS)
    # each column: P(p < 0.001) = 0.001 and |V| or |r| >= 0.5 rarer still at 48 samples
    assert fired / (2 * draws) < 0.01


def test_a_column_of_one_level_per_sample_is_no_alarm():
    """Plain Cramér's V of an identifier is 1; the bias-corrected V sees no association."""
    labels = pd.Series(["TRD", "responder"] * 10)
    identifier = pd.Series([f"lane{i}" for i in range(20)], name="lane")
    table = pd.crosstab(identifier, labels)
    assert stats.contingency.association(table, method="cramer") == pytest.approx(1.0)
    row = {**qc.column_association(identifier, labels, TRD), "in_design": False}
    assert row["value"] == 0.0 and not qc.is_alarm(row, SETTINGS)


def test_a_continuous_column_gets_r_and_its_t_test():
    labels = pd.Series(["TRD"] * 5 + ["responder"] * 5)
    age = pd.Series([60.0, 62, 58, 65, 61, 30, 35, 28, 33, 31], name="age")
    row = qc.column_association(age, labels, TRD)
    indicator = (labels == "TRD").astype(float)
    r, p = stats.pearsonr(indicator, age)
    assert (row["measure"], row["value"], row["test"]) == ("r", pytest.approx(r), "t")
    assert row["pvalue"] == pytest.approx(p)  # Student's t of r is the two-sample t-test
    assert row["cross_table"] == "age: mean 61.2 (SD 2.6) in TRD, 31.4 (SD 2.7) in responder"
    warning = qc.confounding_warning({**row, "column": "age", "in_design": False}, TRD, SETTINGS, 1.0)
    assert warning.endswith(
        "a difference between TRD and responder cannot be told apart from an effect of age. Adding age to "
        f"the design separates the two, at a cost: the group effect is then estimated from what age does "
        f"not predict, its variance {1 / (1 - r**2):.2g} times as large."
    )


def test_a_design_column_is_named_when_it_nearly_determines_the_group():
    samples = simulated_sheet(31, 0.875)
    table = qc.confounding_table(samples, "~ batch + group", CONTRAST, TRD, SETTINGS)
    # the group's coefficient with batch in the model: 1 / (1 - R²) of its indicator on batch
    trd = (samples["group"] == "TRD").to_numpy(dtype=float)
    r = np.corrcoef(trd, (samples["batch"] == "B").to_numpy(dtype=float))[0, 1]
    rows = table.set_index("column")
    assert rows.loc["batch", "value"] == pytest.approx(bias_corrected_v(np.array([[14, 1], [1, 15]])))
    assert rows.loc["batch", "alarm"] and rows.loc["batch", "in_design"]
    assert rows.loc["batch", "warning"].endswith(
        "batch is in the design, so it is adjusted for, but TRD and responder are then compared only "
        f"through the samples that break the pattern and the estimates are imprecise (variance inflation "
        f"factor {1 / (1 - r**2):.2g}). Removing batch from the design would buy precision at the cost of "
        "confounding; only a cohort balanced for batch avoids both."
    )


def test_the_design_s_other_columns_together_raise_the_vif_alarm():
    """Two covariates, neither alone near the threshold, whose sum gives the group away."""
    rng = np.random.default_rng(3)
    trd = np.repeat([1.0, 0.0], 15)
    u = rng.normal(0, 2, 30)
    obs = pd.DataFrame(
        {"group": np.where(trd == 1, "TRD", "responder"), "u": u, "w": trd - u + rng.normal(0, 0.1, 30)},
        index=[f"S{i}" for i in range(30)],
    )
    table = qc.confounding_table(obs, "~ u + w + group", CONTRAST, TRD, SETTINGS).set_index("column")
    assert (table.loc[["u", "w"], "value"].abs() < 0.5).all() and not table.loc[["u", "w"], "alarm"].any()
    design = np.column_stack([np.ones(30), u, obs["w"]])
    residual = trd - design @ np.linalg.lstsq(design, trd, rcond=None)[0]
    vif = ((trd - trd.mean()) ** 2).sum() / (residual**2).sum()
    assert vif > 5
    assert table.loc["design: u + w", "value"] == pytest.approx(vif)
    assert table.loc["design: u + w", "warning"] == (
        f"group is nearly determined by the design's other columns (u + w) together: the variance "
        f"inflation factor of the TRD vs responder coefficient is {vif:.2g} (qc.confounding_max_vif 5), "
        "so its estimates are imprecise and rest on the samples that break the pattern. Removing one of "
        "them from the design would buy precision at the cost of leaving it unadjusted."
    )


def test_bookkeeping_columns_are_not_covariates():
    samples = simulated_sheet(31, 1.0)
    samples["counts_file"] = [f"counts/{s}.tab" for s in samples.index]
    samples["counts_column"] = samples["batch"] + "_" + samples.index
    table = qc.confounding_table(samples, "~ group", CONTRAST, TRD, SETTINGS)
    assert "counts_file" not in set(table["column"]) and "counts_column" not in set(table["column"])


# --- a real cohort, balanced by design ------------------------------------------------------------------


def test_the_lemay_cohort_balanced_by_design_raises_no_alarm():
    """5 subjects x 3 arms x 3 timepoints (SOURCE.md): every subject, arm, study day and sex holds as
    many 6hr samples as Fast ones, so each cross-table has equal columns (V 0, chi2 p 1), and the
    timepoint is orthogonal to subject and arm: its 6hr coefficient is inflated only by the third
    level, two dummies of 1/3 each correlated -0.5, VIF 1 / (1 - 0.25) = 4/3."""
    sheet = read_sample_sheet(LEMAY / "samples.tsv")
    contrast = {"variable": "timepoint", "test": "6hr", "reference": "Fast"}
    design = "~ subject + arm + timepoint"
    table = qc.confounding_table(sheet, design, "6hr_vs_Fast", contrast, SETTINGS).set_index("column")
    tested = ["subject", "study_day", "arm", "sex_from_expression"]
    assert table.index.tolist() == [*tested, "design: subject + arm"]
    assert table.loc[tested, "value"].tolist() == [0.0] * 4
    assert table.loc[tested, "pvalue"].tolist() == pytest.approx([1.0] * 4)
    assert table.loc["design: subject + arm", "value"] == pytest.approx(4 / 3)
    assert not table["alarm"].any()
    qc.check_confounding(sheet, design, {"6hr_vs_Fast": contrast}, {**SETTINGS, "confounding": "stop"}, "x")


# --- stop at ingest ---------------------------------------------------------------------------------------


def test_stop_ends_the_run_with_the_alarmed_rows():
    samples = simulated_sheet(31, 0.875)
    with pytest.raises(InputError) as err:
        qc.check_confounding(
            samples,
            "~ sex + group",
            {CONTRAST: TRD},
            {**SETTINGS, "confounding": "stop"},
            "config/samples.tsv",
        )
    assert str(err.value) == (
        "config/samples.tsv: 1 confounding alarm(s) and config qc.confounding is 'stop', so nothing was "
        "fitted:\n  contrast 'TRD_vs_responder', column 'batch': group is confounded with batch (batch A: "
        "14 of 15 TRD, 1 of 16 responder; batch B: 1 of 15 TRD, 15 of 16 responder; Cramér's V 0.87, chi2 "
        "p = 7.2e-06): a difference between TRD and responder cannot be told apart from a difference "
        "between the levels of batch. Adding batch to the design separates the two, at a cost: TRD and "
        "responder are then compared only within batch A (14 TRD, 1 responder) and batch B (1 TRD, 15 "
        "responder).\nSet qc.confounding to 'warn' to run with the warning leading the report's key "
        "findings."
    )
    # warn: the same check lets the run go on
    qc.check_confounding(samples, "~ sex + group", {CONTRAST: TRD}, SETTINGS, "config/samples.tsv")


@pytest.mark.e2e
def test_the_workflow_stops_at_ingest_on_a_confounded_batch(small_workflow):  # noqa: F811
    sheet = small_workflow / "config" / "samples.tsv"
    samples = pd.read_csv(sheet, sep="\t")
    samples["batch"] = samples["group"].map({"TRD": "run1", "responder": "run2"})
    samples.to_csv(sheet, sep="\t", index=False)
    assert_fails_in_ingest(
        small_workflow,
        "config/samples.tsv: 1 confounding alarm(s) and config qc.confounding is 'stop', so nothing was "
        "fitted:\n  contrast 'TRD_vs_responder', column 'batch': group is confounded with batch (batch "
        "run1: 3 of 3 TRD, 0 of 3 responder; batch run2: 0 of 3 TRD, 3 of 3 responder; Cramér's V 1.00, "
        "fisher p = 0.1): a difference between TRD and responder cannot be told apart from a difference "
        "between the levels of batch. batch cannot be added to the design: no level of it holds both TRD "
        "and responder, so only a cohort with both in the same batch can separate the two.\nSet "
        "qc.confounding to 'warn' to run with the warning leading the report's key findings.",
        "qc={confounding: stop}",
        *small_cohort_config(small_workflow),
    )


def test_the_deseq2_log_repeats_the_warning_in_one_line(tmp_path, caplog):
    """The deseq2 rule's script on a small cohort (the simulator's sheet with its planted batch,
    negative binomial counts of 300 genes): its log holds the warning, one line."""
    samples = simulated_sheet(31, 0.875)
    rng = np.random.default_rng(5)
    counts = rng.negative_binomial(5, 5 / (5 + rng.uniform(50, 500, 300)), (31, 300))
    var = pd.DataFrame(
        {"gene_symbol": [f"G{i}" for i in range(300)], f"expressed:{CONTRAST}": True},
        index=[f"ENSG{i:011d}" for i in range(300)],
    )
    path = tmp_path / "cohort.h5ad"
    ad.AnnData(counts.astype(np.int64), obs=samples.astype({"age": float}), var=var).write_h5ad(path)
    out = tmp_path / "de"
    names = ["table", "model", "samples", "normalised", "volcano", "ma"]
    files = [
        "deseq2_results.tsv",
        "model.tsv",
        "samples_used.tsv",
        "normalised_counts.tsv.gz",
        "volcano.png",
        "ma.png",
    ]
    smk = SimpleNamespace(
        input=SimpleNamespace(h5ad=str(path)),
        output=SimpleNamespace(**{name: str(out / file) for name, file in zip(names, files)}),
        params=SimpleNamespace(
            design="~ sex + group",
            contrast=TRD,
            deseq2={
                "alpha": 0.05,
                "inference": "batched",
                "fit_type": "mean",
                "lfc_shrink": False,
                "lfc_thresholds": [],
            },
        ),
        config={"qc": SETTINGS},
        threads=1,
        wildcards=SimpleNamespace(contrast=CONTRAST),
    )
    with caplog.at_level(logging.WARNING, logger="trd"):
        rule_script("deseq2").main(smk)
    expected = qc.confounding_alarms(qc.confounding_table(samples, "~ sex + group", CONTRAST, TRD, SETTINGS))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"confounding alarm: {expected[0]}"
    ]
    assert "\n" not in expected[0]


# --- the report --------------------------------------------------------------------------------------------


def test_the_key_findings_lead_with_the_alarm(tmp_path):
    tables = key_finding_tables(tmp_path)
    tables["confounding"] = qc.confounding_table(
        simulated_sheet(31, 0.875), "~ sex + group", CONTRAST, TRD, SETTINGS
    )
    findings = key_findings_section.key_findings(CONTRAST, TRD, tables, KEY_CONFIG)
    assert findings["alarms"] == qc.confounding_alarms(tables["confounding"])
    assert findings["alarms"][0].startswith("group is confounded with batch (batch A: 14 of 15 TRD")
    # the verdict beside it says what the permutations cannot see
    assert findings["verdict"].startswith("The 3 genes called would not appear by chance")
    assert findings["verdict"].endswith(
        "The permutations cannot detect confounding: they shuffle group and leave every other column "
        "with its samples, so a difference that goes with a confounded column passes as a group difference."
    )
    balanced = {
        **tables,
        "confounding": qc.confounding_table(
            simulated_sheet(31, 0.0), "~ sex + group", CONTRAST, TRD, SETTINGS
        ),
    }
    clean = key_findings_section.key_findings(CONTRAST, TRD, balanced, KEY_CONFIG)
    assert clean["alarms"] == [] and "confounding" not in clean["verdict"]


def test_the_page_puts_the_alarm_above_the_genes_called(tmp_path):
    tables = key_finding_tables(tmp_path)
    tables["confounding"] = qc.confounding_table(
        simulated_sheet(31, 0.875), "~ sex + group", CONTRAST, TRD, SETTINGS
    )
    findings = key_findings_section.key_findings(CONTRAST, TRD, tables, KEY_CONFIG)
    page = render_macros("{{ key_finding(k) }}", k=findings)
    rows = re.findall(r"<tr[^>]*><th>([^<]+)</th><td[^>]*>(.*?)</td></tr>", page)
    assert [header for header, _ in rows[:3]] == [
        "Confounding alarm",
        "Genes called",
        "Could they be chance?",
    ]
    assert html.unescape(rows[0][1]) == findings["alarms"][0]


def test_the_alarm_is_read_back_from_its_table(tmp_path):
    """The report reads results/qc/confounding.tsv as the qc rule writes it."""
    table = qc.confounding_table(simulated_sheet(31, 0.875), "~ sex + group", CONTRAST, TRD, SETTINGS)
    path = tmp_path / "confounding.tsv"
    table.to_csv(path, sep="\t", index=False, float_format="%.6g")
    read = report_inputs.read_tsv(path)
    assert qc.confounding_alarms(read, CONTRAST) == qc.confounding_alarms(table)
    assert qc.confounding_alarms(read, "other") == []
    assert de_section.alarmed_columns(read, CONTRAST) == ["batch"]


def test_the_heat_map_shows_every_design_variable_and_the_alarmed_columns():
    model = pd.DataFrame({"variable": ["site", "sex", "age", "group"]})
    assert de_section.heatmap_annotations(TRD, model, ["batch"]) == ["group", "site", "sex", "age", "batch"]
    assert de_section.heatmap_annotations(TRD, model, ["age"]) == ["group", "site", "sex", "age"]


def test_a_continuous_bar_is_a_grey_ramp_with_one_legend_entry():
    import matplotlib.pyplot as plt

    obs = pd.DataFrame(
        {"group": ["TRD", "responder", "TRD", "responder"], "age": [30.0, 62.0, 45.0, 51.0]},
        index=["s1", "s2", "s3", "s4"],
    )
    fig, axes = plt.subplots(2, 1)
    handles = qc_figures.annotation_bars(axes, obs, ["group", "age"])
    assert [h.get_label() for h in handles] == [
        "group: TRD",
        "group: responder",
        "age: 30 (light) to 62 (dark)",
    ]
    # the ramp holds the ages themselves, in the samples' order
    assert axes[1].images[0].get_array().tolist() == [[30.0, 62.0, 45.0, 51.0]]
    assert axes[1].images[0].get_cmap().name == "Greys"
    plt.close(fig)


def test_the_report_title_names_no_disease_unless_the_config_does():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    default = schema["properties"]["report"]["properties"]["title"]["default"]
    assert default == "Blood-transcriptome differential expression"
    toy = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert toy["report"]["title"] == "TRD blood-transcriptome differential expression"


@pytest.mark.e2e
def test_the_toy_run_tables_its_columns_without_an_alarm(toy_run):
    """The toy's sites are only partly confounded with the group (siteA 15 TRD, 9 responders), bmi,
    RIN and the weakly planted polygenic score barely: no alarm, and the report has none."""
    table = pd.read_csv(toy_run / "results/qc/confounding.tsv", sep="\t", keep_default_na=False)
    samples = pd.read_csv(ROOT / "config/samples.tsv", sep="\t", index_col="sample_id")
    expected = qc.confounding_table(samples, "~ site + sex + age + group", CONTRAST, TRD, SETTINGS)
    assert (
        table["column"].tolist()
        == expected["column"].tolist()
        == [
            "site",
            "sex",
            "age",
            "bmi",
            "RIN",
            "neutrophil_fraction",
            "prs",
            "design: site + sex + age",
        ]
    )
    assert table["value"].tolist() == pytest.approx(expected["value"].tolist(), rel=1e-5)
    assert table["alarm"].tolist() == [False] * 8
    page = (toy_run / "results/report/report.html").read_text(encoding="utf-8")
    assert "<title>TRD blood-transcriptome differential expression</title>" in page
    assert "Confounding alarm" not in page and "cannot detect confounding" not in page
    assert "samples ordered by group, site, sex and age." in page
    # the quality-control section tables every row, without the (empty) warnings
    shown = re.search(r'<table id="confounding".*?</table>', page, re.S).group(0)
    assert re.findall(r"<th>([^<]+)</th>", shown) == [c for c in qc.CONFOUNDING_COLUMNS if c != "warning"]
    assert shown.count("<tr><td>") == 8
