"""Accuracy of the cell-score methods against planted cell proportions.

A simulated cohort directory (counts.tsv.gz, samples.tsv, truth_cells.tsv: the bundled toy
resources/toy/, or one written by the `simulate` target) goes through the pipeline's steps up
to the VST (ingest's gene annotation, the expression filter, the blind VST); each method of
workflow/lib/trdpipe/cells/scores.py (SCORE_METHODS) then scores every sample with the shipped markers.
Printed per cohort and method: the Spearman correlation of each cell type's score with its
planted proportion, their median over the major types (neutrophils, monocytes, B cells, CD4 T,
CD8 T, NK) and over all, the rank-sum of the major types, and the seconds the method took
(scoring only; a timing, not a criterion).

    .venv/bin/python bench/bench_cells.py resources/toy
    .venv/bin/python bench/bench_cells.py resources/toy results/simulated/n300_g20000_seed1
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

from trdpipe.cells.scores import SCORE_METHODS, cell_scores, expression_by_symbol, load_markers, marker_table  # noqa: E402
from trdpipe.io.annotation import annotate_genes, load_annotation  # noqa: E402
from trdpipe.model.filtering import expressed_genes  # noqa: E402
from trdpipe.model.vst import variance_stabilise  # noqa: E402

MARKERS = ROOT / "resources" / "cells" / "blood_cell_markers.gmt"
ANNOTATION = ROOT / "resources" / "annotation" / "genes.tsv.gz"
MAJOR_TYPES = ["neutrophils", "monocytes", "B_cells", "CD4_T", "CD8_T", "NK"]


def cohort_vst(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples x symbols VST expression, planted proportions) of a simulated cohort."""
    counts = pd.read_csv(directory / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(directory / "samples.tsv", sep="\t", index_col="sample_id")
    truth = pd.read_csv(directory / "truth_cells.tsv", sep="\t", index_col="sample_id")
    var, _ = annotate_genes(counts.index, load_annotation(ANNOTATION), None, source=str(directory))
    values = counts.to_numpy().T
    group_size = int(samples["group"].value_counts().min())
    keep = expressed_genes(values, group_size)
    import anndata as ad

    adata = ad.AnnData(
        X=values[:, keep], obs=pd.DataFrame(index=counts.columns.astype(str)), var=var.iloc[keep]
    )
    vst = variance_stabilise(adata, {"fit_type": "parametric", "vst_nsub": 1000}, n_cpus=1)
    return expression_by_symbol(vst, adata.obs_names, adata.var["gene_symbol"].fillna("")), truth


def accuracy(expr: pd.DataFrame, truth: pd.DataFrame, method: str, seed: int = 20250601) -> dict:
    table = marker_table(load_markers(str(MARKERS)), expr.columns, 3)
    start = time.perf_counter()
    scores = cell_scores(expr, table, method, seed)
    seconds = time.perf_counter() - start
    rho = {
        t: stats.spearmanr(scores[t], truth.loc[scores.index, t])[0]
        for t in scores.columns
        if t in truth.columns and scores[t].notna().any()
    }
    major = [rho[t] for t in MAJOR_TYPES if t in rho]
    return {
        "method": method,
        **{t: round(r, 3) for t, r in rho.items()},
        "median_major": round(float(np.median(major)), 3),
        "min_major": round(float(np.min(major)), 3),
        "median_all": round(float(np.median(list(rho.values()))), 3),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("cohorts", nargs="+", type=Path)
    args = parser.parse_args()
    pd.set_option("display.width", 250)
    for directory in args.cohorts:
        expr, truth = cohort_vst(directory)
        rows = pd.DataFrame([accuracy(expr, truth, method) for method in SCORE_METHODS])
        print(
            f"{directory} ({len(expr)} samples, {expr.shape[1]} genes after the filter): Spearman "
            "correlation of score and planted proportion"
        )
        print(rows.set_index("method").T.to_string())
        print()


if __name__ == "__main__":
    main()
