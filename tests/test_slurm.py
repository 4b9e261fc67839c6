"""The toy workflow through a real one-node SLURM (tests/cluster/start_slurm.sh).

One run with `--profile profiles/slurm --profile tests/cluster/profile`; the
overlay makes deseq2's first attempt ask for too little memory, so the run
also shows SLURM killing a job and Snakemake resubmitting it with more.

The run spends most of its minutes waiting on the scheduler (a job's start-up,
the plugin's status polling), so when SLURM is already up it starts at the
session's start, after the local toy run (conftest.py's `early_cluster_run`),
and the other tests run meanwhile.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml

from conftest import ROOT, copy_workflow, result_tables, run_snakemake, snakemake_command

pytestmark = pytest.mark.slurm

START_SLURM = ROOT / "tests" / "cluster" / "start_slurm.sh"
TEST_PROFILE = ROOT / "tests" / "cluster" / "profile"
SLURMD_LOG = Path("/var/log/slurm/slurmd.log")
# Rules the workflow runs on the submit host (README, "Running on a cluster").
# multiqc runs (on the submit host) when MultiQC is installed (multiqc.enabled: auto)
LOCAL_RULES = {"all", "report", "software_versions"} | (
    {"multiqc"} if importlib.util.find_spec("multiqc") else set()
)
FORCED_FAILURE_RULE = "deseq2"
# the toy split into its three sites: the run adds the meta-analysis, one SLURM job per site
META_CONFIG = ("--config", "cohorts=site")
# The cluster run leaves out the steps that add jobs but no new way of running one (the
# prediction, the cell scores and the sensitivity models they feed, the genotypes): each SLURM job
# costs a Snakemake start-up inside the job and the plugin's status polling, whose interval grows
# by 10 s while no job ends. What it keeps: a group job, both assays' rules, the calibration's
# scattered blocks, the meta-analysis' per-cohort fits and a memory-killed retry.
CLUSTER_CONFIG = (
    "predict={enabled: false}",
    "cells={enabled: false}",
    "sensitivity={female_only: {enabled: false}, male_only: {enabled: false}}",
    "genotypes={file: ''}",
)


@dataclass
class SlurmJob:
    job_id: str
    state: str
    min_memory: str
    comment: str  # the plugin records "rule_<rule or group job>[_wildcards_<values>]" here

    @property
    def job_name(self) -> str:
        """The rule, or for a group job the group and its rules: "prepare_filter_ingest_qc"."""
        return self.comment.removeprefix("rule_").split("_wildcards_")[0]


@dataclass
class ClusterRun:
    workdir: Path
    snakemake_log: str
    jobs: list[SlurmJob]  # this run's SLURM jobs by job id


# Opt-in to installing (apt) and starting a one-node SLURM from the test: a plain `pytest`
# never does; .ci/run starts one before the tests.
START_OPT_IN = "TRD_START_SLURM"
# The cluster run (two layers, the three sites' meta-analysis) takes about a minute locally;
# through SLURM, with the memory-killed retries and a job's start-up each, a few more.
RUN_TIMEOUT_S = 900


def _cluster(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(START_SLURM), command], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A healthy SLURM: one already running, or (with TRD_START_SLURM=1, as root) one started
    here and stopped after."""
    status = _cluster("status")
    if status.returncode == 0:
        yield
        return
    why = (status.stdout or status.stderr).strip().splitlines()[-1:] or ["no answer"]
    if os.environ.get(START_OPT_IN) != "1":
        pytest.skip(
            f"{why[0]}; set {START_OPT_IN}=1 (as root) to let the test install and start a one-node "
            "SLURM with tests/cluster/start_slurm.sh, as .ci/run does"
        )
    if os.geteuid() != 0:
        pytest.skip("starting the test SLURM needs root (tests/cluster/start_slurm.sh)")
    started = _cluster("start")
    if started.returncode != 0:
        pytest.skip(f"SLURM could not be started: {(started.stderr or started.stdout).strip()[-500:]}")
    yield
    _cluster("stop")


def squeue_jobs(job_name: str) -> list[SlurmJob]:
    """All jobs of one Snakemake run, finished ones included (they stay for MinJobAge)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--name", job_name, "--format=%i|%T|%m|%k"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = [SlurmJob(*line.split("|")) for line in out.splitlines()]
    return sorted(jobs, key=lambda job: int(job.job_id))


@dataclass
class StartedRun:
    workdir: Path
    process: subprocess.Popen
    output: Path  # Snakemake's stdout and stderr
    deadline: float  # time.monotonic() by which it must have finished


def cluster_is_up() -> bool:
    return _cluster("status").returncode == 0


def start_cluster_run(folder: Path) -> StartedRun:
    """The toy workflow submitted to SLURM from a fresh copy in folder/workflow, in the background."""
    workdir = copy_workflow(folder / "workflow")
    output = folder / "snakemake.out"
    command = snakemake_command(
        workdir, "--profile", "profiles/slurm", "--profile", str(TEST_PROFILE), *META_CONFIG, *CLUSTER_CONFIG
    )
    with output.open("w") as out:
        process = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    return StartedRun(workdir, process, output, time.monotonic() + RUN_TIMEOUT_S)


def finished(run: StartedRun) -> None:
    """Wait for the run; fail with its output's end, or with squeue's, if it failed or overran."""
    try:
        run.process.wait(timeout=max(run.deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        run.process.kill()
        queue = subprocess.run(["squeue", "--states=all"], capture_output=True, text=True, timeout=30)
        pytest.fail(f"the SLURM run did not finish within {RUN_TIMEOUT_S} s; squeue:\n{queue.stdout[-2000:]}")
    if run.process.returncode != 0:
        pytest.fail(f"snakemake failed ({run.process.returncode}):\n{run.output.read_text()[-6000:]}")


@pytest.fixture(scope="module")
def cluster_run(slurm_cluster, early_cluster_run, tmp_path_factory) -> ClusterRun:
    run = early_cluster_run or start_cluster_run(tmp_path_factory.mktemp("slurm_run"))
    finished(run)
    (log_file,) = (run.workdir / ".snakemake" / "log").glob("*.snakemake.log")
    log = log_file.read_text()
    run_id = re.search(r"^SLURM run ID: (\S+)$", log, re.MULTILINE).group(1)
    return ClusterRun(run.workdir, log, squeue_jobs(run_id))


def submitted_job_ids(snakemake_log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", snakemake_log)


def without_quoted_logs(snakemake_log: str) -> str:
    """The log minus the job logs Snakemake quotes after a failure (framed by lines of "=").

    A failed SLURM job's log holds the Snakemake run inside the job, whose rules
    are "localrule" there; they must not count as run on the submit host.
    """
    return re.sub(r"^Logfile .*:\n=+\n.*?^=+\n", "", snakemake_log, flags=re.MULTILINE | re.DOTALL)


def executed_rules(snakemake_log: str, local: bool) -> set[str]:
    """Rules of the jobs Snakemake started, on the submit host (local) or submitted."""
    prefix = "localrule" if local else "rule"
    own_log = without_quoted_logs(snakemake_log)
    return set(re.findall(rf"^\s*{prefix} (\w+):$", own_log, re.MULTILINE))


def expected_job_names(remote_rules: set[str]) -> set[str]:
    """Ungrouped rules by their own name; a group as its name and its rules in alphabetical order."""
    groups = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["groups"]
    members: dict[str, list[str]] = {}
    for rule in sorted(remote_rules):
        members.setdefault(groups.get(rule, ""), []).append(rule)
    ungrouped = set(members.pop("", []))
    return ungrouped | {f"{group}_{'_'.join(rules)}" for group, rules in members.items()}


def test_every_job_but_the_local_rules_ran_as_a_slurm_job(cluster_run):
    log = cluster_run.snakemake_log
    assert executed_rules(log, local=True) == LOCAL_RULES
    remote_rules = executed_rules(log, local=False)
    completed = {job.job_name for job in cluster_run.jobs if job.state == "COMPLETED"}
    assert completed == expected_job_names(remote_rules)


def test_cohort_fits_and_calibration_blocks_scatter_as_separate_jobs(cluster_run):
    """The toy's three sites (config cohorts: site) are fitted alone, one SLURM job each, as are
    the calibration's blocks (30 permutations, 15 a block, for each of the toy's two assays)."""
    completed = [job for job in cluster_run.jobs if job.state == "COMPLETED"]
    cohort_jobs = sorted(
        job.comment.split("_wildcards_")[1] for job in completed if job.job_name == "meta_cohort"
    )
    assert cohort_jobs == [f"TRD_vs_responder_{site}" for site in ("siteA", "siteB", "siteC")]
    assert [job.job_name for job in completed].count("calibration_block") == 2 * 2


def test_job_ids_agree_between_snakemake_squeue_and_slurmd(cluster_run):
    # Jobs ready together are submitted in parallel, so the log's order may differ.
    ids = sorted(submitted_job_ids(cluster_run.snakemake_log), key=int)
    assert ids == [job.job_id for job in cluster_run.jobs]
    launched = set(re.findall(r"Launching batch job (\d+)", SLURMD_LOG.read_text()))
    assert set(ids) <= launched
    for job_id in ids:
        assert list((cluster_run.workdir / "logs" / "slurm").rglob(f"{job_id}.log")), job_id


def test_memory_killed_job_is_retried_with_more_memory(cluster_run):
    # the DE job of each of the toy's two assays (mRNA, miRNA) is killed once, then retried
    attempts = [job for job in cluster_run.jobs if job.job_name == FORCED_FAILURE_RULE]
    assert sorted((job.state, job.min_memory) for job in attempts) == [
        ("COMPLETED", "4000M"),
        ("COMPLETED", "4000M"),
        ("FAILED", "50M"),
        ("FAILED", "50M"),
    ]
    for failed in (job for job in attempts if job.state == "FAILED"):
        (log,) = (cluster_run.workdir / "logs" / "slurm").rglob(f"{failed.job_id}.log")
        assert "exceeded memory limit" in log.read_text()
    assert "Trying to restart job" in cluster_run.snakemake_log


def local_run_with_meta_analysis(toy_run: Path, workdir: Path) -> Path:
    """The local toy run with the meta-analysis added: a copy of its folder in which only the
    meta-analysis' jobs run (no other rule reads `cohorts`)."""
    shutil.copytree(toy_run, workdir, symlinks=True)
    run_snakemake(workdir, "results/meta/TRD_vs_responder/meta_results.tsv", *META_CONFIG)
    return workdir


def test_result_tables_equal_a_local_run(cluster_run, request, tmp_path):
    # Asked for here, not as an argument: pytest would set up the session-scoped
    # local run first, even when there is no SLURM and the test is skipped.
    local_run = local_run_with_meta_analysis(request.getfixturevalue("toy_run"), tmp_path / "local")
    cluster_tables = result_tables(cluster_run.workdir)
    local_tables = result_tables(local_run)
    assert "de/TRD_vs_responder/deseq2_results.tsv" in local_tables
    # the calibration's blocks ran as separate SLURM jobs; their gathered tables must be the local ones
    calibration = {
        f"calibration/TRD_vs_responder/{name}"
        for name in ("summary.tsv", "permutations.tsv", "permuted_labels.tsv", "calibrated_results.tsv")
    }
    assert calibration <= local_tables.keys()
    # so did the meta-analysis' per-cohort fits, gathered into its tables
    meta = {
        f"meta/TRD_vs_responder/{name}"
        for name in ("meta_results.tsv", "cohorts.tsv", "concordance.tsv", "high_heterogeneity.tsv")
    } | {f"meta/TRD_vs_responder/cohorts/{site}/deseq2_results.tsv" for site in ("siteA", "siteB", "siteC")}
    assert meta <= local_tables.keys()
    # the cluster run is the local one minus the steps CLUSTER_CONFIG leaves out
    assert meta | calibration <= cluster_tables.keys() < local_tables.keys()
    assert not any(name.startswith(("predict/", "genotypes/", "cells/")) for name in cluster_tables)
    differing = [name for name in cluster_tables if cluster_tables[name] != local_tables[name]]
    assert differing == []
    null = "results/calibration/TRD_vs_responder/null_statistics.h5ad"
    cluster_null, local_null = ad.read_h5ad(cluster_run.workdir / null), ad.read_h5ad(local_run / null)
    np.testing.assert_array_equal(cluster_null.X, local_null.X)
    for layer in local_null.layers:
        np.testing.assert_array_equal(cluster_null.layers[layer], local_null.layers[layer])
