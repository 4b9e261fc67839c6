"""The config is checked against the sample sheet before any count file is read, every problem
in one message; the optional parts left at `enabled: auto` switch themselves off, logged, when
the sheet lacks what they need, and the DAG leaves them out."""

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml

import trdpipe.ingest
import trdpipe.io.counts
from conftest import copy_workflow, run_snakemake
from trdpipe.common import InputError
from trdpipe.ingest import decide_optional_parts, ingest

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "tests" / "data" / "formats"
ANNOTATION = ROOT / "resources" / "annotation" / "genes.tsv.gz"
CONTRAST = {"TRD_vs_responder": {"variable": "group", "test": "TRD", "reference": "responder"}}
SHIPPED = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


@pytest.fixture
def minimal_sheet(tmp_path) -> Path:
    """sample_id, group and one htseq-count file per sample: nothing else."""
    sheet = pd.read_csv(FORMATS / "samples.csv")
    sheet["counts_file"] = [str(FORMATS / "htseq" / f"{s}.counts.txt") for s in sheet["sample_id"]]
    path = tmp_path / "samples.tsv"
    sheet.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture
def count_reads(monkeypatch) -> list:
    """Every htseq-count file read, in order, with the config checks' passing marked in between."""
    events = []
    read_htseq = trdpipe.io.counts.read_htseq
    monkeypatch.setattr(trdpipe.io.counts, "read_htseq", lambda path: events.append(path) or read_htseq(path))
    problems = trdpipe.ingest.config_sheet_problems
    monkeypatch.setattr(
        trdpipe.ingest, "config_sheet_problems", lambda *a: events.append("config checked") or problems(*a)
    )
    return events


def run_ingest(sheet: Path, design: str = "~ group", **sections):
    config = {key: SHIPPED[key] for key in ("predict", "sensitivity", "calibration")}
    config["cells"] = {**SHIPPED["cells"], "enabled": False}  # 5 genes: no cell type has its markers
    config.update(sections)
    return ingest("", str(sheet), str(ANNOTATION), design, CONTRAST, collections={}, **config)


def test_a_minimal_sheet_runs_ingest_with_the_optional_parts_switched_off(minimal_sheet, count_reads, caplog):
    with caplog.at_level(logging.INFO, logger="trd"):
        adata = run_ingest(minimal_sheet)
    assert adata.n_obs == 4
    assert count_reads == [
        "config checked",
        *(str(FORMATS / "htseq" / f"{s}.counts.txt") for s in adata.obs_names),
    ]
    notes = [r.message for r in caplog.records if "switched off" in r.message]
    assert notes == [
        f"prediction switched off (predict.enabled: auto): {minimal_sheet}: none of the columns of config "
        "predict.covariates (sex, age, site) is in the sample sheet; set predict.enabled to true to make "
        "this an error",
        *(
            f"sensitivity model '{model}' switched off (enabled: auto): {minimal_sheet}: sensitivity model "
            f"'{model}' names column(s) sex that the sample sheet does not have; its columns are group, "
            f"counts_file; set sensitivity.{model}.enabled to true to make this an error"
            for model in ("female_only", "male_only")
        ),
    ]


def test_every_problem_is_listed_before_any_count_file_is_read(minimal_sheet, count_reads):
    with pytest.raises(InputError) as error:
        run_ingest(
            minimal_sheet,
            design="~ site + group",
            predict={**SHIPPED["predict"], "enabled": True},
            sensitivity={**SHIPPED["sensitivity"], "with_bmi": {"add": ["bmi"]}},
            calibration={**SHIPPED["calibration"], "strata": ["batch"]},
        )
    assert count_reads == ["config checked"]
    assert str(error.value) == (
        f"5 problems of the config and the sample sheet {minimal_sheet}, found before any count file was read:\n"
        f"  1. {minimal_sheet}: design '~ site + group' uses column(s) site that the sample sheet does not "
        "have; its columns are group, counts_file.\n"
        "  2. config calibration.strata names column(s) batch that the sample sheet "
        f"{minimal_sheet} does not have; its columns are group, counts_file.\n"
        f"  3. {minimal_sheet}: none of the columns of config predict.covariates (sex, age, site) is in the "
        "sample sheet, so the clinical model has no features; its columns are group, counts_file.\n"
        f"  4. {minimal_sheet}: contrast 'TRD_vs_responder' has 2 sample(s) with group = 'TRD'; at least 5 "
        "are needed for the TRD prediction's nested cross-validation (config predict.outer_folds 5, "
        "predict.inner_folds 4): lower those, or set predict.enabled to false to skip the prediction.\n"
        f"  5. {minimal_sheet}: sensitivity model 'with_bmi' names column(s) bmi that the sample sheet does "
        "not have; its columns are group, counts_file."
    )


def test_a_model_the_user_enables_stays_an_error(minimal_sheet, count_reads):
    sensitivity = {"female_only": {**SHIPPED["sensitivity"]["female_only"], "enabled": True}}
    with pytest.raises(InputError) as error:
        run_ingest(minimal_sheet, sensitivity=sensitivity)
    assert count_reads == ["config checked"]
    assert str(error.value) == (
        f"{minimal_sheet}: sensitivity model 'female_only' names column(s) sex that the sample sheet does "
        "not have; its columns are group, counts_file."
    )


def test_auto_parts_run_when_the_sheet_has_what_they_need():
    sheet = pd.read_csv(ROOT / "resources" / "toy" / "samples.tsv", sep="\t", index_col=0)
    parts = decide_optional_parts(
        sheet, SHIPPED["design"], CONTRAST, SHIPPED["predict"], SHIPPED["sensitivity"], "toy"
    )
    assert parts.notes == []
    assert parts.predict["enabled"] is True
    assert {name: spec.get("enabled") for name, spec in parts.sensitivity.items()} == {
        "cell_adjusted": None,
        "female_only": True,
        "male_only": True,
    }


def test_the_dag_leaves_out_what_is_switched_off(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    sheet = pd.read_csv(ROOT / "resources" / "toy" / "samples.tsv", sep="\t")[["sample_id", "group"]]
    sheet.to_csv(workdir / "config" / "samples.tsv", sep="\t", index=False)
    result = run_snakemake(workdir, "--dry-run", "--config", "design=~ group")
    jobs = result.stdout
    assert "prediction switched off (predict.enabled: auto)" in result.stdout + result.stderr
    assert "predict/TRD_vs_responder" not in jobs and "female_only" not in jobs.split("Job stats")[-1]
    assert "results/sensitivity/TRD_vs_responder/cell_adjusted/deseq2_results.tsv" in jobs
    assert "results/sensitivity/TRD_vs_responder/male_only" not in jobs
