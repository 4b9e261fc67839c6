"""The toy run's result tables against a recorded snapshot (nf-test's snapshots, by another name):
a change of code that is meant to change no result, a refactoring say, must leave every table as
it was. In two parts:

- on every machine, the same tables with the same header and row count, and their values within
  RTOL of the recorded ones (tests/data/toy_snapshot_values.tsv.gz: every column's sum and a fixed
  sample of rows, tests/snapshot_values.py);
- on the machine that recorded the snapshot, every table byte for byte: tests/data/toy_snapshot.tsv
  holds the SHA-256 of every table under results/ (TSV and gzipped TSV, decompressed; not the
  benchmark timings) and that machine: the CPU's vector instruction sets and the versions of the
  numerical packages, because another BLAS kernel or another release may move a last digit. On
  another machine this part is skipped, saying so.

After a change that is meant to change results, record both again:

    pytest tests/test_snapshot.py --update-snapshot
"""

import hashlib
import importlib.metadata
import platform
from pathlib import Path

import pytest

from conftest import ROOT, result_tables
from snapshot_values import differences, read_lines, table_lines, write_lines

SNAPSHOT = ROOT / "tests" / "data" / "toy_snapshot.tsv"
VALUES = ROOT / "tests" / "data" / "toy_snapshot_values.tsv.gz"
# The tolerance of a value recorded on another machine, measured: the toy run with OpenBLAS and
# numba on Sandybridge kernels (AVX, no FMA, no AVX-512) instead of the recording machine's left 40
# of the 46 tables byte for byte equal; outside the prediction no value moved by more than a
# relative 4e-5 (a shrunk log2 fold change near 0.001: apeGLM's optimiser stops at its tolerance),
# so RTOL leaves a factor 25. The prediction's elastic net (saga, tol 1e-2) moved further: the
# clinical model's AUC by 0.002 (0.4%), the p-value of a gain in AUC by 4.5%, hence PREDICT_RTOL.
# A change of results moves far more: a sum over a column, a row of a sample, a row count.
RTOL, PREDICT_RTOL, ATOL = 1e-3, 0.1, 1e-12


def rtol_of(table: str) -> float:
    return PREDICT_RTOL if table.startswith("predict/") else RTOL


PACKAGES = ("numpy", "scipy", "pandas", "pydeseq2", "numba", "scikit-learn", "gseapy", "anndata", "scanpy")
VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni")


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


@pytest.mark.e2e
def test_toy_tables_equal_the_snapshot_within_tolerance(toy_run, request):
    tables = {name: table_lines(data) for name, data in result_tables(toy_run, gzipped=True).items()}
    assert "de/TRD_vs_responder/deseq2_results.tsv" in tables
    if request.config.getoption("--update-snapshot"):
        write_lines(VALUES, tables)
    found = differences(read_lines(VALUES), tables, rtol_of, ATOL)
    assert not found, f"{len(found)} differences from the snapshot:\n" + "\n".join(found[:40])


@pytest.mark.e2e
def test_toy_tables_equal_the_snapshot_digests_on_the_recording_machine(toy_run, request):
    digests = table_digests(toy_run)
    if request.config.getoption("--update-snapshot"):
        write_snapshot(digests)
    recorded_on, snapshot = read_snapshot()
    if recorded_on != machine():
        pytest.skip(f"snapshot recorded on {recorded_on!r}, this machine is {machine()!r}")
    assert digests.keys() == snapshot.keys()
    assert [name for name in snapshot if digests[name] != snapshot[name]] == []


# ---------------------------------------------------------------- the comparison itself
def gene_table(rows: list[tuple[str, float, float]]) -> bytes:
    lines = ["gene_id\tlog2FoldChange\tpvalue", *(f"{g}\t{lfc!r}\t{p!r}" for g, lfc, p in rows)]
    return ("\n".join(lines) + "\n").encode()


GENES = [(f"G{i:03d}", (i - 50) / 10, 10.0 ** (-i / 10)) for i in range(200)]
SAMPLED = [g for g in GENES if g[0] in table_lines(gene_table(GENES))]


def compare(rows, rtol=RTOL) -> list[str]:
    recorded = {"t.tsv": table_lines(gene_table(GENES))}
    return differences(recorded, {"t.tsv": table_lines(gene_table(rows))}, lambda table: rtol, ATOL)


def test_rows_in_another_order_and_last_digits_pass():
    assert 0 < len(SAMPLED) < len(GENES) / 8
    moved = [(g, lfc * (1 + 1e-6), p * (1 - 1e-6)) for g, lfc, p in reversed(GENES)]
    assert compare(moved) == []


def test_a_sampled_value_beyond_the_tolerance_is_named():
    gene, lfc, p = SAMPLED[0]
    changed = [(g, x * 1.01 if g == gene else x, q) for g, x, q in GENES]
    now = lfc * 1.01
    assert compare(changed)[-1] == f"t.tsv [{gene}] log2FoldChange: recorded '{lfc!r}', now '{now!r}'"


def test_an_unsampled_value_moves_its_column_sum():
    gene = next(g for g, *_ in GENES if g not in {s[0] for s in SAMPLED})
    changed = [(g, x * 3 if g == gene else x, q) for g, x, q in GENES]
    assert [line.split(":")[0] for line in compare(changed)] == ["t.tsv [(all rows)] log2FoldChange"]


def test_a_lost_row_and_a_lost_table_are_named():
    assert compare(GENES[:-1])[0].startswith("t.tsv: header (rows, comments, columns) ['200', '', ")
    assert differences({"t.tsv": {}}, {}, lambda table: RTOL, ATOL) == ["t.tsv: missing"]
