"""Benchmark the DE engines (trdpipe.model.engines) on one simulated cohort: CPU and wall time of
each engine's fit_contrast, one thread, and the agreement of their calls (the "second opinion").

    nice -n 10 .venv/bin/python bench/bench_engines.py --samples 300 --genes 20000

limma_voom needs pylimma (requirements-extras.txt).
"""

import argparse
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from nb_cohort import simulate_nb_cohort  # noqa: E402
from trdpipe.model.engines import ENGINES, make_engine  # noqa: E402

DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
ALPHA = 0.05


def cohort(n_samples: int, n_genes: int, seed: int) -> ad.AnnData:
    counts, metadata = simulate_nb_cohort(n_samples, n_genes, seed)
    var = pd.DataFrame({"gene_symbol": counts.columns}, index=counts.columns)
    return ad.AnnData(counts.to_numpy(), obs=metadata, var=var)


def timed_fit(engine: str, adata: ad.AnnData) -> tuple[pd.DataFrame, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    table = make_engine({"engine": engine, "alpha": ALPHA}, 1).fit_contrast(adata, DESIGN, CONTRAST).table
    return table.set_index("gene_id"), time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    adata = cohort(args.samples, args.genes, args.seed)
    tables = {}
    for engine in ENGINES:
        tables[engine], wall, cpu = timed_fit(engine, adata)
        calls = int((tables[engine]["padj"] < ALPHA).sum())
        print(f"{engine}: {wall:.1f} s wall, {cpu:.1f} CPU s, {calls} genes at padj < {ALPHA}")
    first, second = (tables[e] for e in ENGINES)
    both = first.index.intersection(second.index)
    called = [set(t.index[t["padj"] < ALPHA]) for t in (first, second)]
    r = np.corrcoef(first.loc[both, "log2FoldChange"], second.loc[both, "log2FoldChange"])[0, 1]
    print(f"calls shared {len(called[0] & called[1])}; log2 fold changes correlate at r = {r:.3f}")


if __name__ == "__main__":
    main()
