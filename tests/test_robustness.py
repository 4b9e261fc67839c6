"""Robustness: an interrupted run resumes to the same tables, two runs are byte-identical, and
awkward sample IDs and paths work."""

import os
import signal
import subprocess
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

from conftest import copy_workflow, result_tables, run_snakemake, small_cohort_config, snakemake_command

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"snakemake ended ({process.returncode}) before the point to interrupt it")
        if time.monotonic() > deadline:
            pytest.fail("the run did not reach the point to interrupt it")
        time.sleep(0.2)


RESUMED_TARGETS = ("results/de/TRD_vs_responder/deseq2_results.tsv", "results/vst/vst.h5ad")


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory) -> Path:
    """The toy run up to DESeq2 and the VST, killed (SIGKILL to its process group) once either has
    started, then resumed. The steps after them resume the same way; the SLURM test compares every
    table of a whole run with the local one."""
    workdir = copy_workflow(tmp_path_factory.mktemp("interrupted"))
    cmd = snakemake_command(workdir, *RESUMED_TARGETS)
    process = subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for(
            lambda: (
                (workdir / "results/ingest/cohort.h5ad").exists()
                and (any((workdir / "logs").glob("deseq2/*.log")) or (workdir / "logs/vst/vst.log").exists())
            ),
            process,
        )
        time.sleep(1)  # let the job get into its fit
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not all((workdir / target).exists() for target in RESUMED_TARGETS)  # really interrupted midway
    run_snakemake(workdir, "--unlock")  # a killed Snakemake cannot remove its lock
    run_snakemake(workdir, "--rerun-incomplete", *RESUMED_TARGETS)
    return workdir


def test_interrupted_run_resumes_to_the_same_deseq2_results(resumed_run, toy_run):
    for table in sorted((toy_run / "results/de").glob("*/deseq2_results.tsv")):
        resumed = resumed_run / table.relative_to(toy_run)
        assert resumed.read_bytes() == table.read_bytes(), table.relative_to(toy_run)


def test_two_runs_give_byte_identical_tables(resumed_run, toy_run):
    resumed = result_tables(resumed_run)
    assert {
        "qc/qc_metrics.tsv",
        "filter/filter_summary.tsv",
        "de/TRD_vs_responder/deseq2_results.tsv",
        "de/TRD_vs_responder/model.tsv",
    } <= set(resumed)
    reference = result_tables(toy_run)
    assert resumed == {name: reference[name] for name in resumed}


def test_no_temporary_files_left_behind(resumed_run):
    assert [p.name for p in (resumed_run / "results").rglob("*.tmp")] == []


def test_awkward_sample_ids_and_a_space_in_the_path(tmp_path):
    """IDs like 001, 1e5, 2.50 and Unicode names survive up to the filtered cohort, in 'my runs/'."""
    workdir = copy_workflow(tmp_path / "my runs" / "wf")
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0, nrows=600)
    sheet = pd.read_csv(ROOT / "resources/toy/samples.tsv", sep="\t", index_col=0)
    keep = sheet.groupby("group").head(5).index  # 5 TRD, 5 responders
    new_ids = ["001", "1e5", "2.50", "Zoë", "Åsa 2", "007", "1E5", "NA_1", "Łukasz", "10"]
    rename = dict(zip(keep, new_ids))
    counts[list(keep)].rename(columns=rename).to_csv(workdir / "config" / "counts.tsv", sep="\t")
    sheet.loc[keep].rename(index=rename).to_csv(workdir / "config" / "samples.tsv", sep="\t")
    run_snakemake(
        workdir,
        "results/filter/cohort.h5ad",
        *small_cohort_config(workdir),
        "--config",
        "counts=config/counts.tsv",
        "design=~ sex + group",
    )
    filtered = ad.read_h5ad(workdir / "results/filter/cohort.h5ad")
    ingested = ad.read_h5ad(workdir / "results/ingest/cohort.h5ad")
    assert ingested.obs_names.tolist() == new_ids
    assert set(filtered.obs_names) <= set(new_ids) and len(filtered.obs_names) >= 8
    assert ingested["1e5"].X.ravel().tolist() == counts[keep[1]].tolist()
