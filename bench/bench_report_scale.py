"""Benchmark of the report at 6,000 samples: its size, the time the report rule's script takes to
build it, and the time headless Chromium takes to open it (navigation start to the load event,
as the browser measures it), on the synthetic results folder of tests/report_scale.py: the toy
run's tables with the per-sample inputs (sample sheet, counts, VST, QC metrics and bar charts)
made at --samples samples. --toy is a finished toy run (`snakemake --cores 2` in a copy of the
workflow).

    .venv/bin/python bench/bench_report_scale.py --toy /path/to/toy_run --samples 6000 --opens 3
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from headless_chromium import open_page  # noqa: E402
from report_scale import build_report  # noqa: E402

LOAD_MS = "performance.getEntriesByType('navigation')[0].loadEventEnd"


def hold_fds_3_and_4() -> None:
    """headless_chromium wires its pipes to the browser's fds 3 and 4; under pytest those are taken,
    in a plain script its own pipes would land there and be overwritten in the child."""
    while os.open(os.devnull, os.O_RDONLY) < 4:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", type=Path, required=True, help="a finished toy run's directory")
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--opens", type=int, default=3, help="times the page is opened")
    args = parser.parse_args()
    hold_fds_3_and_4()
    with tempfile.TemporaryDirectory() as dest:
        start, cpu = time.perf_counter(), time.process_time()
        page = build_report(args.toy, Path(dest), args.samples)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"samples: {args.samples}  size: {page.stat().st_size / 1e6:.1f} MB")
        print(f"folder and report built: {wall:.1f} s wall, {cpu:.1f} s CPU")
        for _ in range(args.opens):
            load = open_page(page.as_uri(), evaluate={"load_ms": LOAD_MS})
            print(f"opened in headless Chromium: load event at {load.evaluations['load_ms'] / 1000:.2f} s")


if __name__ == "__main__":
    main()
