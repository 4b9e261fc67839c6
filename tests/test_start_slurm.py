"""tests/cluster/start_slurm.sh with a SLURM it did not start, faked by scontrol/sinfo/srun stand-ins:
it uses a healthy one, refuses an unhealthy one with the reason, and never writes slurm.conf."""

import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

START_SLURM = ROOT / "tests" / "cluster" / "start_slurm.sh"


def fake_slurm(bin_dir: Path, ping: str, partitions: str, daemon_pid: str = "") -> None:
    bin_dir.mkdir()
    tools = {
        "scontrol": f'[ "$1" = ping ] && {ping}',
        "pgrep": f"[ \"$2\" = slurmctld ] && [ -n '{daemon_pid}' ] && echo {daemon_pid} || exit 1",
        "sinfo": f"case \"$*\" in *--format=%P) printf '{partitions}' ;; *) echo 'partition debug, 1 node(s), 2 CPUs' ;; esac",
        "srun": "exit 0",
    }
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


def run(command: str, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(START_SLURM), command], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.fixture
def no_test_cluster_of_ours():
    if any(Path("/run/slurm").glob("*.pid")):
        pytest.skip("the test cluster of start_slurm.sh is running on this machine")


def test_a_healthy_running_slurm_is_used_as_it_is(tmp_path, no_test_cluster_of_ours):
    fake_slurm(tmp_path / "bin", ping="echo 'Slurmctld(primary) at head is UP'", partitions="debug\\n")
    conf = Path("/etc/slurm/slurm.conf")
    before = conf.read_bytes() if conf.exists() else None
    started = run("start", tmp_path / "bin")
    assert (started.returncode, started.stdout) == (
        0,
        "using the SLURM already running: partition debug, 1 node(s), 2 CPUs\n",
    )
    assert (conf.read_bytes() if conf.exists() else None) == before
    assert run("status", tmp_path / "bin").returncode == 0


def test_a_running_slurm_without_the_test_partition_is_refused_with_the_reason(
    tmp_path, no_test_cluster_of_ours
):
    fake_slurm(tmp_path / "bin", ping="echo 'Slurmctld(primary) at head is UP'", partitions="")
    started = run("start", tmp_path / "bin")
    assert started.returncode == 1
    assert started.stderr == (
        "start_slurm.sh: a SLURM not started by this script is running (pids: none here), "
        "but it has no partition 'debug' (the test profile submits there); not touching it\n"
    )
    status = run("status", tmp_path / "bin")
    assert (status.returncode, status.stdout) == (
        4,
        "SLURM is running but not usable: it has no partition 'debug' (the test profile submits there)\n",
    )


def test_a_controller_that_does_not_answer_fails_fast(tmp_path, no_test_cluster_of_ours):
    fake_slurm(tmp_path / "bin", ping="exec sleep 60", partitions="debug\\n", daemon_pid="4242")
    started = run("start", tmp_path / "bin")  # the ping's timeout is 10 s, not the test's minutes
    assert started.returncode == 1
    assert started.stderr == (
        "start_slurm.sh: a SLURM not started by this script is running (pids: 4242), but "
        "the controller does not answer 'scontrol ping' within 10s; not touching it\n"
    )
