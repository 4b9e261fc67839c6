"""Speed of the meta-analysis' combining step (trdpipe.model.meta.meta_table: statsmodels'
combine_effects per gene, tau^2 by Paule-Mandel) at --cohorts cohorts x --genes genes: what the
meta_analysis rule adds to reading the cohorts' tables. The cohorts' tables are synthetic (log2 fold
changes with a between-cohort spread for a tenth of the genes, standard errors and Wald p-values);
wall and CPU seconds, median of --repeats.

    .venv/bin/python bench/bench_meta.py --cohorts 5 --genes 20000 --repeats 3
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

from trdpipe.model.meta import meta_table  # noqa: E402


def cohort_tables(n_cohorts: int, n_genes: int, seed: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    genes = [f"G{i:05d}" for i in range(n_genes)]
    effect = rng.normal(0, 0.3, n_genes) * (rng.random(n_genes) < 0.1)
    tables = {}
    for c in range(n_cohorts):
        se = rng.uniform(0.1, 0.5, n_genes)
        lfc = effect + rng.normal(0, 0.2, n_genes) * (rng.random(n_genes) < 0.1) + rng.normal(0, se)
        tables[f"cohort{c + 1}"] = pd.DataFrame(
            {"gene_id": genes, "log2FoldChange": lfc, "lfcSE": se, "pvalue": 2 * norm.sf(np.abs(lfc / se))}
        )
    return tables, pd.DataFrame({"gene_symbol": genes}, index=genes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohorts", type=int, default=5)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tables, var = cohort_tables(args.cohorts, args.genes, seed=1)
    walls, cpus = [], []
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        meta = meta_table(tables, var, 0.05, 2)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print("cohorts\tgenes\twall_s\tcpu_s\tgenes_tau2_positive")
    print(
        f"{args.cohorts}\t{args.genes}\t{np.median(walls):.2f}\t{np.median(cpus):.2f}\t{int((meta['tau2'] > 0).sum())}"
    )


if __name__ == "__main__":
    main()
