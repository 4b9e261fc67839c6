"""What the cell-adjusted model keeps at the study's size: regulated genes and composition genes.

A cohort from the project's simulator (workflow/lib/trdpipe/simulate.py, default effects) goes
through the pipeline's steps as the workflow runs them: the expression filter, the blind VST, the
cell scores and their covariates (cells.max_covariates auto: at most (n - rank of the design) // 10),
the primary model `~ site + sex + age + group` and the cell-adjusted model (the primary plus the cell
covariates). Printed per cohort size: the covariates used, the residual degrees of freedom of each
model, the group's R² on the cell covariates, and, among the primary DEGs of each planted class
(`regulated`: a within-cell group effect; `composition`: a marker of a cell type whose share differs
between the groups), the share that stays at padj < 0.05 after adjustment with the same sign, and
the sentence the report says about it. --null draws the cohort from SimulationParameters.null_cohort
(no group effect of any kind): the cell covariates should then explain almost nothing of the group.

    .venv/bin/python bench/bench_cell_adjustment.py --samples 300 48 --genes 6000
    .venv/bin/python bench/bench_cell_adjustment.py --samples 300 48 --genes 6000 --null
"""

import argparse
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

from trdpipe import simulate as sim  # noqa: E402
from trdpipe.cells.composition import composition  # noqa: E402
from trdpipe.io.annotation import annotate_genes, load_annotation  # noqa: E402
from trdpipe.model.deseq2 import run_deseq2  # noqa: E402
from trdpipe.model.filtering import expressed_genes  # noqa: E402
from trdpipe.model.sensitivity import (  # noqa: E402
    cell_adjustment_verdict,
    check_model,
    group_r2,
    model_cohort,
    residual_df,
)
from trdpipe.model.vst import vst_cohort  # noqa: E402

DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
ALPHA = 0.05


def simulated(
    n_samples: int, n_genes: int, seed: int, null: bool, config: dict
) -> tuple[ad.AnnData, pd.DataFrame]:
    """The filtered cohort (counts) and the planted truth per gene."""
    collections = {name: str(ROOT / path) for name, path in config["enrichment"]["collections"].items()}
    annotation = pd.read_csv(ROOT / config["annotation"], sep="\t", dtype=str)
    size = dict(n_samples=n_samples, n_genes=n_genes, seed=seed, hazards=False)
    params = sim.SimulationParameters.null_cohort(**size) if null else sim.SimulationParameters(**size)
    cohort = sim.simulate_cohort(annotation, sim.load_gene_sets(collections), params)
    var, _ = annotate_genes(cohort.counts.index, load_annotation(ROOT / config["annotation"]), source="sim")
    obs = cohort.samples.set_index("sample_id")
    obs.index = obs.index.astype(str)
    adata = ad.AnnData(X=cohort.counts.to_numpy().T.astype(np.int64), obs=obs, var=var)
    keep = expressed_genes(np.asarray(adata.X), int(obs["group"].value_counts().min()))
    return adata[:, keep].copy(), cohort.truth_genes.set_index("gene_id")


def kept_share(primary: pd.DataFrame, adjusted: pd.DataFrame, genes: pd.Index) -> tuple[int, float]:
    """Primary DEGs among `genes`, and the share of them at padj < ALPHA after adjustment, same sign."""
    called = primary.index[(primary["padj"] < ALPHA)].intersection(genes)
    after = adjusted.loc[called]
    same = np.sign(after["log2FoldChange"]) == np.sign(primary.loc[called, "log2FoldChange"])
    return len(called), float(((after["padj"] < ALPHA) & same).mean()) if len(called) else np.nan


def run(n_samples: int, n_genes: int, seed: int, null: bool, threads: int) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    adata, truth = simulated(n_samples, n_genes, seed, null, config)
    cells = {**config["cells"], "resource": str(ROOT / config["cells"]["resource"])}
    result = composition(vst_cohort(adata, config["de"], threads), cells, config["seed"], DESIGN)
    names = list(result["covariates"].columns)
    spec = {"cell_scores": True}
    cohort = model_cohort(adata, spec, result["covariates"])
    design = check_model("cell_adjusted", spec, cohort.obs, DESIGN, {"c": CONTRAST}, "simulated", names)
    primary = run_deseq2(adata, DESIGN, CONTRAST, config["de"], threads).set_index("gene_id")
    adjusted = run_deseq2(cohort, design, CONTRAST, config["de"], threads).set_index("gene_id")
    row = {
        "samples": n_samples,
        "genes": adata.n_vars,
        "covariates": f"{len(names)} {result['choice']['covariates']}",
        "df_primary": residual_df(adata.obs, DESIGN),
        "df_adjusted": residual_df(cohort.obs, design),
        "group_r2_cells": round(group_r2(cohort.obs, CONTRAST, names), 2),
        "degs_primary": int((primary["padj"] < ALPHA).sum()),
        "degs_adjusted": int((adjusted["padj"] < ALPHA).sum()),
    }
    for cls in ("regulated", "composition"):
        n, share = kept_share(primary, adjusted, truth.index[truth["class"] == cls])
        row[f"{cls}_primary_degs"] = n
        row[f"{cls}_kept"] = round(share, 3)
    primary_calls = set(primary.index[primary["padj"] < ALPHA])
    adjusted_calls = set(adjusted.index[adjusted["padj"] < ALPHA])
    degs_primary, overlap = len(primary_calls), len(primary_calls & adjusted_calls)
    verdict_row = {**row, "n_cell_covariates": len(names), "lost": degs_primary - overlap}
    verdict_row.update(residual_df_primary=row["df_primary"], residual_df_model=row["df_adjusted"])
    row["verdict"] = cell_adjustment_verdict(verdict_row, overlap / degs_primary if degs_primary else np.nan)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[300])
    parser.add_argument("--genes", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--null", action="store_true", help="no group effect of any kind")
    args = parser.parse_args()
    rows = [run(n, args.genes, args.seed, args.null, args.threads) for n in args.samples]
    table = pd.DataFrame(rows)
    print(table.drop(columns="verdict").T.to_string(header=False))
    for row in rows:
        print(f"{row['samples']} samples: {row['verdict']}")


if __name__ == "__main__":
    main()
