"""Time to the first message of a run whose config does not fit its sample sheet, on a cohort of
per-sample count files, beside the time ingest takes to read those files when the config fits.

A cohort of --samples htseq-count files of --genes genes each (Ensembl IDs of the shipped
annotation, Poisson counts) and a sample sheet with `sample_id`, `group` and `counts_file` are
written to a temporary copy of the workflow. Then, on that copy, Snakemake is run to
results/ingest/cohort.h5ad twice:

* `bad config`: the default config with a design of a column the sheet lacks (`site`) and
  calibration strata of another (`batch`): ingest must stop with both problems before it reads a
  count file. The time is Snakemake's start, its DAG, the ingest job's start and the checks.
* `good config`: design `~ group`: ingest reads every count file and writes the cohort.

    .venv/bin/python bench/bench_first_message.py --samples 300 --genes 20000

Each line gives the wall time of the whole `snakemake` command and how it ended.
"""

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from conftest import copy_workflow, run_snakemake  # noqa: E402

HTSEQ_SUMMARY = ("__no_feature", "__ambiguous", "__too_low_aQual", "__not_aligned", "__alignment_not_unique")


def write_cohort(workdir: Path, samples: int, genes: int, seed: int = 1) -> None:
    """htseq-count files under workdir/counts/ and config/samples.tsv naming them."""
    with gzip.open(ROOT / "resources" / "annotation" / "genes.tsv.gz", "rt") as handle:
        gene_ids = pd.read_csv(handle, sep="\t", usecols=["gene_id"])["gene_id"].to_numpy()[:genes]
    rng = np.random.default_rng(seed)
    folder = workdir / "counts"
    folder.mkdir()
    names = [f"S{i:04d}" for i in range(samples)]
    summary = "".join(f"{row}\t0\n" for row in HTSEQ_SUMMARY)
    for name in names:
        counts = rng.poisson(50, len(gene_ids))
        text = "".join(f"{gene}\t{count}\n" for gene, count in zip(gene_ids, counts))
        (folder / f"{name}.counts.txt").write_text(text + summary)
    sheet = pd.DataFrame(
        {
            "sample_id": names,
            "group": ["TRD", "responder"] * (samples // 2) + ["TRD"] * (samples % 2),
            "counts_file": [f"counts/{name}.counts.txt" for name in names],
        }
    )
    sheet.to_csv(workdir / "config" / "samples.tsv", sep="\t", index=False)


def timed_run(workdir: Path, *config: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = run_snakemake(
        workdir, "results/ingest/cohort.h5ad", "--config", "counts=", *config, check=False, timeout=3600
    )
    seconds = time.perf_counter() - start
    log = workdir / "logs" / "ingest" / "ingest.log"
    last = log.read_text().strip().splitlines()[-1] if log.exists() else ""
    return seconds, result.returncode, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = copy_workflow(Path(folder) / "wf")
        write_cohort(workdir, args.samples, args.genes)
        for label, config in [
            ("bad config", ("design=~ site + group", "calibration={strata: [batch]}")),
            ("good config", ("design=~ group",)),
        ]:
            seconds, code, last = timed_run(workdir, *config)
            print(f"{label}: {seconds:.1f} s, exit {code}; ingest log ends: {last[:160]}")


if __name__ == "__main__":
    main()
