"""Benchmark the label-permutation calibration (workflow/lib/trdpipe/calibration/permutation.py).

speed: K permutations of a simulated cohort (default 300 x 20,000, the simulator of the `simulate`
rule) refitted as the workflow does on 2 cores: the permutations split into `--workers` blocks,
each a process on one thread (two calibration_block jobs side by side). Prints the wall time of
the refits (simulation and the observed fit excluded), seconds per refit and per-block times.

    .venv/bin/python bench/bench_calibration.py speed --samples 300 --genes 20000 --permutations 100

null: on toy-sized cohorts with no true group difference, the share of seeds in which plain padj
< 0.05 calls any gene, and in which qvalue_perm < 0.05 does (the calibration must call nothing in
at least 95% of them). Each seed shuffles `group` of the bundled toy cohort at random (site, sex and
age stay with the samples, so the design is that of the toy), or, with --source simulator, draws a
cohort from SimulationParameters.null_cohort when the simulator has it. Seeds run in parallel.

    .venv/bin/python bench/bench_calibration.py null --seeds 200 --permutations 20 --workers 2
"""

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib")]

from trdpipe import simulate as sim  # noqa: E402
from trdpipe.calibration import permutation as cal  # noqa: E402
from trdpipe.ingest import ingest  # noqa: E402
from trdpipe.model.deseq2 import run_deseq2  # noqa: E402
from trdpipe.model.filtering import expressed_genes  # noqa: E402

DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
SETTINGS = {"alpha": 0.05, "inference": "batched", "lfc_thresholds": [0.5, 1.0]}
STRATA = ["site", "sex"]
COLLECTIONS = {
    "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
    "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
}

_COHORT: ad.AnnData | None = None  # handed to forked workers


def filtered(adata: ad.AnnData) -> ad.AnnData:
    keep = expressed_genes(np.asarray(adata.X), int(adata.obs["group"].value_counts().min()))
    return adata[:, keep].copy()


def simulated_cohort(params) -> ad.AnnData:
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    cohort = sim.simulate_cohort(annotation, sim.load_gene_sets(COLLECTIONS), params)
    obs = cohort.samples.set_index("sample_id")
    var = cohort.truth_genes.set_index("gene_id")[["gene_symbol"]]
    return filtered(ad.AnnData(X=cohort.counts.T.to_numpy(), obs=obs, var=var))


def toy_cohort() -> ad.AnnData:
    return filtered(
        ingest(
            str(ROOT / "resources/toy/counts.tsv.gz"),
            str(ROOT / "config/samples.tsv"),
            str(ROOT / "resources/annotation/genes.tsv.gz"),
            DESIGN,
            {"c": CONTRAST},
        )
    )


# ---------------------------------------------------------------- speed


def _fit_block_in_worker(labels: pd.DataFrame) -> tuple[float, float]:
    """Wall and CPU seconds of one block (CPU time is what a shared machine does not inflate)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    cal.fit_block(_COHORT, labels, DESIGN, CONTRAST, SETTINGS, 1)
    return time.perf_counter() - start, time.process_time() - cpu_start


def speed(args) -> None:
    global _COHORT
    start = time.perf_counter()
    _COHORT = simulated_cohort(
        sim.SimulationParameters(n_samples=args.samples, n_genes=args.genes, seed=args.seed)
    )
    print(
        f"simulated and filtered {_COHORT.n_obs} x {_COHORT.n_vars} in {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    labels = cal.permute_labels(_COHORT.obs, "group", STRATA, args.permutations, args.seed)
    blocks = [labels[list(part)] for part in np.array_split(np.array(labels.columns), args.workers)]
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        seconds = pool.map(_fit_block_in_worker, blocks)
    wall = time.perf_counter() - start
    k = labels.shape[1]
    cpu_per_refit = sum(cpu for _, cpu in seconds) / k
    print(
        pd.DataFrame(
            [
                {
                    "samples": _COHORT.n_obs,
                    "genes": _COHORT.n_vars,
                    "permutations": k,
                    "workers": args.workers,
                    "wall_s": round(wall, 1),
                    "cpu_s_per_refit": round(cpu_per_refit, 2),
                    # what an idle machine with one core per worker would take
                    "idle_wall_s_estimate": round(cpu_per_refit * k / args.workers, 1),
                    "block_wall_s": " ".join(f"{w:.0f}" for w, _ in seconds),
                }
            ]
        ).to_string(index=False)
    )


# ---------------------------------------------------------------- null calibration


def null_cohort(seed: int, source: str) -> ad.AnnData:
    if source == "simulator":
        return simulated_cohort(sim.SimulationParameters.null_cohort(seed=seed))
    adata = _COHORT.copy()
    adata.obs["group"] = np.random.default_rng(seed).permutation(adata.obs["group"].to_numpy())
    return adata


def one_seed(task) -> dict:
    seed, permutations, source = task
    from threadpoolctl import threadpool_limits

    adata = null_cohort(seed, source)
    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        table = run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1)
    labels = cal.permute_labels(adata.obs, "group", STRATA, permutations, seed)
    null = cal.gather_blocks(
        [cal.fit_block(adata, labels, DESIGN, CONTRAST, SETTINGS, 1)], seed, STRATA, False
    )
    calibrated, _, summary = cal.calibrate(table, null, SETTINGS["alpha"], SETTINGS["lfc_thresholds"])
    values = summary.set_index("statistic")["value"]
    return {
        "seed": seed,
        "padj_calls": int((table["padj"] < 0.05).sum()),
        "qvalue_perm_calls": int((calibrated["qvalue_perm"] < 0.05).sum()),
        "pvalue_observed_degs": float(values["pvalue_observed_degs"]),
        "observed_lambda": round(float(values["observed_lambda"]), 3),
        "seconds": round(time.perf_counter() - start, 1),
    }


def null_calibration(args) -> None:
    global _COHORT
    if args.source == "toy":
        _COHORT = toy_cohort()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        rows = pool.map(one_seed, [(seed, args.permutations, args.source) for seed in seeds], chunksize=1)
    table = pd.DataFrame(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, sep="\t", index=False)
    print(table.to_string(index=False))
    n = len(table)
    print(
        f"\n{n} null cohorts ({args.source}), K = {args.permutations}, {time.perf_counter() - start:.0f} s:"
    )
    print(
        f"  padj < 0.05 calls any gene:        {int((table['padj_calls'] > 0).sum())} of {n} "
        f"({(table['padj_calls'] > 0).mean():.1%})"
    )
    print(
        f"  qvalue_perm < 0.05 calls any gene: {int((table['qvalue_perm_calls'] > 0).sum())} of {n} "
        f"({(table['qvalue_perm_calls'] > 0).mean():.1%})"
    )
    print(
        f"  observed DEG count beyond the null (permutation p <= 0.05): "
        f"{int((table['pvalue_observed_degs'] <= 0.05).sum())} of {n}"
    )
    print(f"  median lambda: {table['observed_lambda'].median():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    speed_args = commands.add_parser("speed")
    speed_args.add_argument("--samples", type=int, default=300)
    speed_args.add_argument("--genes", type=int, default=20000)
    speed_args.add_argument("--permutations", type=int, default=100)
    speed_args.add_argument("--workers", type=int, default=2)
    speed_args.add_argument("--seed", type=int, default=1)
    null_args = commands.add_parser("null")
    null_args.add_argument("--seeds", type=int, default=200)
    null_args.add_argument("--first-seed", type=int, default=1)
    null_args.add_argument("--permutations", type=int, default=20)
    null_args.add_argument("--workers", type=int, default=2)
    null_args.add_argument("--source", choices=["toy", "simulator"], default="toy")
    null_args.add_argument("--out", default="bench/out/calibration_null.tsv")
    args = parser.parse_args()
    speed(args) if args.command == "speed" else null_calibration(args)


if __name__ == "__main__":
    main()
