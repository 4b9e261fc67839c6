"""The toy run's result tables against a recorded snapshot (nf-test's snapshots, by another name):
a change of code that is meant to change no result, a refactoring say, must leave every table
byte for byte as it was.

tests/data/toy_snapshot.tsv holds the SHA-256 of every table under results/ (TSV and gzipped TSV,
decompressed; not the benchmark timings) and the machine it was recorded on: the CPU's vector
instruction sets and the versions of the numerical packages, because another BLAS kernel or
another release may move a last digit. On another machine the comparison is skipped, saying so.
After a change that is meant to change results, record the snapshot again:

    pytest tests/test_snapshot.py --update-snapshot
"""

import hashlib
import importlib.metadata
import platform
from pathlib import Path

import pytest

from conftest import ROOT, result_tables

SNAPSHOT = ROOT / "tests" / "data" / "toy_snapshot.tsv"
PACKAGES = ("numpy", "scipy", "pandas", "pydeseq2", "numba", "scikit-learn", "gseapy", "anndata", "scanpy")
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni")

pytestmark = pytest.mark.e2e


def machine() -> str:
    """What decides the last digits: the architecture, its vector instruction sets, the packages."""
    flags = set()
    if Path("/proc/cpuinfo").exists():
        line = next(
            (ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), ""
        )
        flags = set(line.split(":", 1)[-1].split())
    cpu = "+".join(f for f in VECTOR_FLAGS if f in flags) or "-"
    versions = " ".join(f"{name}={importlib.metadata.version(name)}" for name in PACKAGES)
    return f"{platform.machine()} {cpu} python={platform.python_version()} {versions}"


def table_digests(workdir: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256(data).hexdigest() for name, data in result_tables(workdir, gzipped=True).items()
    }


def read_snapshot() -> tuple[str, dict[str, str]]:
    lines = SNAPSHOT.read_text().splitlines()
    recorded_on = lines[0].removeprefix("# recorded on: ")
    return recorded_on, dict(line.split("\t") for line in lines[2:])


def write_snapshot(digests: dict[str, str]) -> None:
    rows = "".join(f"{name}\t{digest}\n" for name, digest in digests.items())
    SNAPSHOT.write_text(f"# recorded on: {machine()}\ntable\tsha256\n{rows}")


def test_toy_tables_equal_the_snapshot(toy_run, request):
    digests = table_digests(toy_run)
    assert "de/TRD_vs_responder/deseq2_results.tsv" in digests
    if request.config.getoption("--update-snapshot"):
        write_snapshot(digests)
    recorded_on, snapshot = read_snapshot()
    if recorded_on != machine():
        pytest.skip(f"snapshot recorded on {recorded_on!r}, this machine is {machine()!r}")
    assert digests.keys() == snapshot.keys()
    assert [name for name in snapshot if digests[name] != snapshot[name]] == []
