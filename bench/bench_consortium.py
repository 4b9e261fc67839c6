"""The whole workflow on a consortium of five simulated cohorts (6,000 x 20,000 by default): every
job's wall time, CPU time and peak memory from Snakemake's benchmark files.

    .venv/bin/python bench/bench_consortium.py --samples 6000 --genes 20000 --workdir /tmp/consortium

The cohort is one run of the project's simulator (`trdpipe.simulate.simulate_cohort`) whose sites
are the five cohorts (`site_sizes` = the cohorts' sizes, `site_trd_share` their shares of TRD): one
set of genes with one truth, and a third of genes shifted per cohort as the simulator shifts them
per site. Each cohort then gets its own sequencing depth (its counts binomially thinned) and, in
four of them, fewer cells of one type (that type's marker counts thinned by the change of its
share, the simulator's marker model). The sample sheet names the cohort in `cohort`; `site` is
dropped (it is the cohort).

The workflow (a copy of this checkout) runs with the default config, the design
`~ cohort + sex + age + group`, the meta-analysis of the five cohorts (`cohorts: cohort`), the
calibration and prediction settings of `SCALE_SETTINGS` (README.md, "Large cohorts") and
`snakemake --cores 2 --resources mem_mb=20000`. Its output and the tables (`bench_table.md`,
`bench_table.tsv`, and each rule's peak in `bench_peaks.tsv`, the rows of
`bench/measured_peaks.tsv`) are in --workdir; --collect-only rebuilds the tables of a finished or
interrupted run.
"""

import argparse
import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from conftest import copy_workflow, snakemake_command  # noqa: E402
from trdpipe.simulate import (  # noqa: E402
    CELL_MARKERS,
    CELL_MEAN_SHARES,
    SimulationParameters,
    load_gene_sets,
    simulate_cohort,
)

# name: (samples at 6,000 in all, scaled to --samples; share of TRD, sequencing depth relative to cohort1, {cell type: share factor})
COHORTS = {
    "cohort1": (2000, 0.55, 1.0, {}),
    "cohort2": (1500, 0.50, 0.6, {"neutrophils": 0.75}),
    "cohort3": (1200, 0.45, 0.8, {"CD4_T": 0.7}),
    "cohort4": (800, 0.50, 0.45, {"monocytes": 0.6}),
    "cohort5": (500, 0.40, 0.7, {"B_cells": 0.6}),
}
# What README.md recommends from a few thousand samples on: the calibration's refits and the
# prediction's repeated nested cross-validation are the costly parts (each a full fit per permutation
# or fold); the cohort column is the prediction's held-out unit.
SCALE_SETTINGS = {
    "calibration": {"permutations": 20, "block_size": 10},
    "predict": {
        "repeats": 1,
        "permutations": 0,
        "covariates": ["sex", "age", "cohort"],
        "group_by": "cohort",
    },
}
BENCHMARK_COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mb"}


def thin(counts: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Binomial thinning: each read kept with probability `keep` (broadcast against counts)."""
    return rng.binomial(counts, np.clip(keep, 0.0, 1.0))


def marker_keep(shares: np.ndarray, cell: str, factor: float, background: float) -> np.ndarray:
    """Share of a marker's reads kept when its cell type's share is multiplied by `factor` (per sample):
    the simulator's marker expression, (1 - background) x relative share + background."""
    relative = shares / CELL_MEAN_SHARES[cell]
    return ((1 - background) * relative * factor + background) / ((1 - background) * relative + background)


def simulate_consortium(
    annotation: pd.DataFrame, gene_sets: dict, n_samples: int, n_genes: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts (genes x samples) and sample sheet of the five cohorts of COHORTS, scaled to n_samples."""
    sizes, trd_shares, depths, cell_factors = zip(*COHORTS.values())
    params = SimulationParameters(
        n_samples=n_samples, n_genes=n_genes, seed=seed, site_sizes=sizes, site_trd_share=trd_shares
    )
    cohort = simulate_cohort(annotation, gene_sets, params)
    site_names = sorted(cohort.samples["site"].unique())
    samples = cohort.samples.assign(cohort=cohort.samples["site"].map(dict(zip(site_names, COHORTS))))
    samples = samples.drop(columns="site")
    rng = np.random.default_rng([seed, 28])
    counts = cohort.counts.to_numpy()
    depth = samples["cohort"].map({name: spec[2] for name, spec in COHORTS.items()}).to_numpy()
    keep = np.broadcast_to(depth[None, :], counts.shape).copy()
    symbols = cohort.truth_genes.set_index("gene_id").loc[cohort.counts.index, "gene_symbol"].to_numpy()
    shares = cohort.truth_cells.set_index("sample_id").loc[samples["sample_id"]]
    for name, factors in zip(COHORTS, cell_factors):
        in_cohort = (samples["cohort"] == name).to_numpy()
        for cell, factor in factors.items():
            rows = np.flatnonzero(np.isin(symbols, CELL_MARKERS[cell]))
            ratio = marker_keep(shares[cell].to_numpy()[in_cohort], cell, factor, params.marker_background)
            keep[np.ix_(rows, np.flatnonzero(in_cohort))] *= ratio[None, :]
    counts = pd.DataFrame(thin(counts, keep, rng), index=cohort.counts.index, columns=cohort.counts.columns)
    return counts, samples


def write_inputs(workdir: Path, n_samples: int, n_genes: int, seed: int) -> None:
    """bench_input/counts.tsv.gz, samples.tsv and the run's config.yaml in workdir."""
    folder = workdir / "bench_input"
    folder.mkdir(parents=True, exist_ok=True)
    counts_path = folder / "counts.tsv.gz"
    if not counts_path.exists():
        annotation = pd.read_csv(ROOT / "resources" / "annotation" / "genes.tsv.gz", sep="\t", dtype=str)
        gene_sets = load_gene_sets(
            {
                "GO_BP": ROOT / "resources" / "genesets" / "go_bp.gmt.gz",
                "curated_TRD": ROOT / "resources" / "genesets" / "curated_trd.gmt",
            }
        )
        counts, samples = simulate_consortium(annotation, gene_sets, n_samples, n_genes, seed)
        samples.to_csv(folder / "samples.tsv", sep="\t", index=False)
        partial = folder / "counts.tsv.gz.part"
        with gzip.open(partial, "wt", compresslevel=1) as handle:
            counts.to_csv(handle, sep="\t")
        partial.rename(counts_path)
    config = {
        "samples": str(folder / "samples.tsv"),
        "counts": str(counts_path),
        "design": "~ cohort + sex + age + group",
        # the meta-analysis of the cohorts fitted one by one, beside the pooled model
        "cohorts": "cohort",
        # the mRNA layer alone: the default config's small-RNA layer and genotypes are the toy's
        "assays": {"mirna": {"enabled": False}},
        "genotypes": {"file": ""},
        **SCALE_SETTINGS,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_workflow(workdir: Path, mem_mb: int) -> tuple[float, int]:
    """snakemake on 2 cores with the default config and the bench's over it; (wall seconds, exit code)."""
    command = snakemake_command(
        workdir,
        "--configfile",
        "config/config.yaml",
        "bench_input/config.yaml",
        "--resources",
        f"mem_mb={mem_mb}",
        "--rerun-incomplete",
    )
    start = time.perf_counter()
    with open(workdir / "bench_snakemake.log", "a") as log:
        code = subprocess.run(command, cwd=workdir, stdout=log, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - start, code


def benchmark_table(workdir: Path) -> pd.DataFrame:
    """One row per job: rule (folder under results/benchmarks/), job (file name), wall and CPU seconds,
    peak RSS in MB, from Snakemake's benchmark files."""
    rows = []
    for path in sorted((workdir / "results" / "benchmarks").rglob("*.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[0]
        relative = path.relative_to(workdir / "results" / "benchmarks")
        rows.append(
            {
                "rule": relative.parts[0],
                "job": str(Path(*relative.parts[1:]).with_suffix("")),
                **{name: measured[column] for column, name in BENCHMARK_COLUMNS.items()},
            }
        )
    return pd.DataFrame(rows)


def rule_peaks(table: pd.DataFrame, samples: int, genes: int) -> pd.DataFrame:
    """Each rule's largest peak over its jobs, as rows of bench/measured_peaks.tsv."""
    peaks = table.groupby("rule", as_index=False)["max_rss_mb"].max().round(0)
    command = f"bench/bench_consortium.py --samples {samples} --genes {genes}"
    return peaks.assign(samples=samples, genes=genes, source=command)[
        ["rule", "samples", "genes", "max_rss_mb", "source"]
    ]


def write_tables(workdir: Path, table: pd.DataFrame, samples: int, genes: int) -> None:
    """bench_table.tsv and .md (every job), bench_peaks.tsv (every rule's peak) in workdir."""
    table.to_csv(workdir / "bench_table.tsv", sep="\t", index=False)
    (workdir / "bench_table.md").write_text(table.to_markdown(index=False, floatfmt=".1f") + "\n")
    rule_peaks(table, samples, genes).to_csv(workdir / "bench_peaks.tsv", sep="\t", index=False)
    print(table.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=6000)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--workdir", type=Path, required=True, help="the run's folder (outside the repository)"
    )
    parser.add_argument("--mem-mb", type=int, default=20000, help="Snakemake's --resources mem_mb")
    parser.add_argument("--simulate-only", action="store_true")
    parser.add_argument("--collect-only", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    if not args.collect_only:
        if not (workdir / "workflow").exists():
            copy_workflow(workdir)
        write_inputs(workdir, args.samples, args.genes, args.seed)
        if args.simulate_only:
            return
        seconds, code = run_workflow(workdir, args.mem_mb)
        print(f"snakemake: {seconds:.0f} s wall, exit code {code}")
    write_tables(workdir, benchmark_table(workdir), args.samples, args.genes)


if __name__ == "__main__":
    main()
