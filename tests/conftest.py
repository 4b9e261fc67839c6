"""Shared fixtures: a copy of the workflow in a temporary directory, and one toy run per session."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Figures are drawn to files with Agg, as in the workflow's jobs (workflow/rules/common.smk); set
# before any test imports matplotlib
os.environ["MPLBACKEND"] = "Agg"

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("VERSION", "config", "workflow", "resources", "profiles")


def pytest_addoption(parser):
    parser.addoption(
        "--update-snapshot",
        action="store_true",
        help="record the toy run's tables as tests/data/toy_snapshot.tsv (tests/test_snapshot.py)",
    )


def copy_workflow(dest: Path) -> Path:
    """The workflow's files (no results) copied to dest, as a user's fresh checkout would be."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, dest / part)
    return dest


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """`snakemake` with this interpreter on the workflow copy in workdir, on 2 cores."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "2",
        "--directory",
        str(workdir),
        "--snakefile",
        str(workdir / "workflow" / "Snakefile"),
        *args,
    ]


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run `snakemake` with this interpreter in workdir; on failure show its output."""
    cmd = snakemake_command(workdir, *args)
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        )
    return result


def result_tables(workdir: Path, gzipped: bool = False) -> dict[str, bytes]:
    """Every TSV table under results/ by relative path, except the benchmark files (timings); with
    `gzipped`, the gzipped tables too, decompressed."""
    results = workdir / "results"
    paths = [*results.rglob("*.tsv"), *(results.rglob("*.tsv.gz") if gzipped else [])]
    return {
        str(p.relative_to(results)): gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
        for p in sorted(paths)
        if p.relative_to(results).parts[0] != "benchmarks"
    }


def default_config_and(*paths: str) -> tuple[str, ...]:
    """`--configfile` with the default run's config first and the given files over it: a config
    file on the command line replaces the default one (workflow/Snakefile)."""
    return "--configfile", "config/config.yaml", *map(str, paths)


def small_cohort_config(workdir: Path) -> tuple[str, ...]:
    """Snakemake arguments for a cohort too small for the prediction's folds, with too few genes
    for the cell markers, or without a sex column: a config file that turns the prediction, the
    cell composition (and with it the cell-adjusted model), the sex-stratified models, the toy's
    small-RNA layer and its genotypes (whose samples are the toy's) off, over the default config (a
    file, so that it adds to the test's own --config rather than replacing it)."""
    path = workdir / "config" / "small_cohort.yaml"
    path.write_text(
        "predict:\n  enabled: false\ncells:\n  enabled: false\n"
        "sensitivity:\n  female_only: {enabled: false}\n  male_only: {enabled: false}\n"
        "assays:\n  mirna: {enabled: false}\ngenotypes:\n  file: ''\n"
    )
    return default_config_and(path.relative_to(workdir))


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """The whole workflow run once on the bundled toy cohort; returns its directory."""
    workdir = copy_workflow(tmp_path_factory.mktemp("toy_run"))
    run_snakemake(workdir)
    return workdir


@pytest.fixture(scope="session", autouse=True)
def early_cluster_run(request, tmp_path_factory):
    """tests/test_slurm.py's cluster run, started at the session's start when a slurm test is
    selected and SLURM is already up (a SLURM the test starts itself is started later, by that
    test), right after the local toy run it is compared with (which keeps both cores busy): the
    cluster run mostly waits on the scheduler, so the other tests run meanwhile. None otherwise."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield None
        return
    import test_slurm

    if not test_slurm.cluster_is_up():
        yield None
        return
    request.getfixturevalue("toy_run")
    run = test_slurm.start_cluster_run(tmp_path_factory.mktemp("slurm_run"))
    yield run
    if run.process.poll() is None:
        run.process.kill()


@pytest.fixture
def workflow_copy(tmp_path) -> Path:
    """A fresh copy of the workflow for a test that changes config or inputs."""
    return copy_workflow(tmp_path / "wf")
