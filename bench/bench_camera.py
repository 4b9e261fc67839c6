"""Calibration of camera (workflow/lib/trdpipe/enrichment/camera.py) on null cohorts with
co-expressed genes: how many cohorts get any set at camera FDR < 0.05 with each set's
inter-gene correlation estimated from the residuals (the pipeline's camera), and with R limma's
preset correlation of 0.01 beside it.

  synthetic: tests/test_gsea_permutation.py's co_expressed_cohort (40 samples, 30 modules of 30
             genes sharing a per-sample factor of loading --loading, 600 free genes, standard
             normal expression, no group effect); the 30 modules are the sets; design ~ group.
  simulated: the simulator's null cohort (SimulationParameters.null_cohort: negative binomial
             counts, GO BP modules and broad factors, cell shares; no group effect) of --samples x
             --genes, genes with a mean count of at least 10, through camera_from_counts (the
             blind VST, design ~ site + sex + age + group, TRD vs responder) on GO BP.

Per cohort kind and correlation: cohorts, cohorts with any set at FDR < 0.05, median sets called,
the mean share of sets at p < 0.05. Untimed but for the total, in this process.

    .venv/bin/python bench/bench_camera.py --synthetic 100 --simulated 100

With --speed SAMPLES GENES, the time of camera() alone (what the rule adds to reading the VST) on
a standard normal matrix of that size against every GO BP set of 10 to 500 of its genes, design
~ group + 3 covariates; wall and CPU seconds, and the peak memory of this process.

    .venv/bin/python bench/bench_camera.py --speed 300 20000
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))
sys.path.insert(0, str(ROOT / "tests"))

GO_BP = ROOT / "resources" / "genesets" / "go_bp.gmt.gz"
CORRELATIONS = {"estimated": None, "preset 0.01": 0.01}


def summary_row(kind: str, correlation: str, table: pd.DataFrame) -> dict:
    return {
        "kind": kind,
        "correlation": correlation,
        "calls": int((table["fdr"] < 0.05).sum()),
        "share_p_below_0.05": float((table["pvalue"] < 0.05).mean()),
    }


def synthetic_rows(n_cohorts: int, loading: float) -> list[dict]:
    from test_gsea_permutation import co_expressed_cohort
    from trdpipe.enrichment.camera import camera

    rows = []
    for seed in range(n_cohorts):
        expression, _, sets, labels = co_expressed_cohort(np.random.default_rng(500 + seed), loading=loading)
        design = np.column_stack([np.ones(len(labels)), labels.astype(float)])
        positions = {term: np.array([int(g[1:]) for g in genes]) for term, genes in sets.items()}
        for name, value in CORRELATIONS.items():
            table = camera(expression.T, positions, design, np.r_[0.0, 1.0], value)
            rows.append(summary_row("synthetic", name, table))
    return rows


def simulated_rows(n_cohorts: int, n_samples: int, n_genes: int) -> list[dict]:
    from trdpipe import simulate as sim
    from trdpipe.enrichment.camera import camera_from_counts
    from trdpipe.io.genesets import read_gmt, restrict_to_universe

    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    modules = sim.load_gene_sets({"GO_BP": GO_BP, "curated_TRD": GO_BP.with_name("curated_trd.gmt")})
    contrast = {"variable": "group", "test": "TRD", "reference": "responder"}
    rows = []
    for seed in range(n_cohorts):
        params = sim.SimulationParameters.null_cohort(
            n_samples=n_samples, n_genes=n_genes, hazards=False, seed=1000 + seed
        )
        cohort = sim.simulate_cohort(annotation, modules, params)
        counts = cohort.counts[cohort.counts.mean(axis=1) >= 10]
        symbols = cohort.truth_genes.set_index("gene_id").loc[counts.index, "gene_symbol"]
        counts = counts.set_axis(symbols).T
        collection = restrict_to_universe("GO_BP", read_gmt(GO_BP), counts.columns, 10, 500)
        sets = {term: genes for term, (_, genes) in collection.sets.items()}
        samples = cohort.samples.set_index("sample_id")
        for name, value in CORRELATIONS.items():
            table = camera_from_counts(
                counts, samples, "~ site + sex + age + group", contrast, sets, inter_gene_cor=value
            )
            rows.append(summary_row("simulated", name, table))
    return rows


def speed(n_samples: int, n_genes: int) -> dict:
    import resource

    from trdpipe.enrichment.camera import camera, gene_positions
    from trdpipe.io.genesets import read_gmt, restrict_to_universe

    sets = read_gmt(GO_BP)
    in_sets = sorted({g for _, members in sets.values() for g in members})[:n_genes]
    genes = pd.Index(in_sets + [f"OTHER{i}" for i in range(n_genes - len(in_sets))])  # genes in no set
    collection = restrict_to_universe("GO_BP", sets, genes, 10, 500)
    positions = gene_positions(genes, {t: members for t, (_, members) in collection.sets.items()})
    rng = np.random.default_rng(1)
    expression = rng.standard_normal((len(genes), n_samples))
    design = np.column_stack(
        [np.ones(n_samples), np.arange(n_samples) % 2, rng.standard_normal((n_samples, 3))]
    )
    wall, cpu = time.perf_counter(), time.process_time()
    camera(expression, positions, design, np.r_[0.0, 1.0, 0.0, 0.0, 0.0])
    return {
        "samples": n_samples,
        "genes": len(genes),
        "sets": len(positions),
        "wall_s": round(time.perf_counter() - wall, 2),
        "cpu_s": round(time.process_time() - cpu, 2),
        "peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--synthetic", type=int, default=100, help="synthetic null cohorts")
    ap.add_argument("--simulated", type=int, default=0, help="simulator null cohorts")
    ap.add_argument("--loading", type=float, default=0.8, help="synthetic: module factor loading")
    ap.add_argument("--samples", type=int, default=40, help="simulated: samples")
    ap.add_argument("--genes", type=int, default=3000, help="simulated: genes")
    ap.add_argument("--speed", type=int, nargs=2, metavar=("SAMPLES", "GENES"), help="time camera() instead")
    args = ap.parse_args()
    if args.speed:
        print(speed(*args.speed))
        return
    start = time.perf_counter()
    rows = synthetic_rows(args.synthetic, args.loading)
    rows += simulated_rows(args.simulated, args.samples, args.genes)
    per_cohort = pd.DataFrame(rows)
    table = (
        per_cohort.groupby(["kind", "correlation"], sort=False)
        .agg(
            cohorts=("calls", "size"),
            with_call=("calls", lambda c: int((c > 0).sum())),
            median_calls=("calls", "median"),
            mean_share_p_below_5pct=("share_p_below_0.05", "mean"),
        )
        .reset_index()
    )
    print(table.to_string(index=False, float_format="%.3f"))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
