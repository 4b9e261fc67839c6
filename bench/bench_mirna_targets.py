"""Benchmark of the rule mirna_targets at the everyday scale: its wall time and peak memory.

Inputs are written first, in the rule's formats, then the rule's script runs on them in a child
process, whose wall time and peak resident memory are the rule's (the inputs' making is not
counted):
  mRNA DE table      --genes genes, a tenth of them called (padj < 0.05, half up, half down);
  label_null.h5ad    the genes x --permutations score statistics (float32, as pathway_null writes);
  miRNA DE table     --mirnas miRNAs, a tenth of them called;
  targets GMT        every miRNA with --targets target symbols drawn at random;
  VSTs               --samples samples x genes and x miRNAs.

    .venv/bin/python bench/bench_mirna_targets.py --samples 300 --genes 20000 --mirnas 2000
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, norm

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]


def de_table(ids, symbols, rng) -> pd.DataFrame:
    """A DE table whose first tenth of features is called, alternately up and down."""
    n = len(ids)
    stat = rng.standard_normal(n)
    stat[: n // 10] = np.where(np.arange(n // 10) % 2, 5.0, -5.0)
    pvalue = 2 * norm.sf(np.abs(stat))
    return pd.DataFrame(
        {
            "gene_id": ids,
            "gene_symbol": symbols,
            "baseMean": 100.0,
            "log2FoldChange": stat / 10,
            "stat": stat,
            "pvalue": pvalue,
            "padj": false_discovery_control(pvalue),
        }
    )


def vst_file(path, samples, features, rng) -> None:
    ad.AnnData(
        rng.normal(8, 1, (len(samples), len(features))).astype(np.float32),
        obs=pd.DataFrame(index=samples),
        var=pd.DataFrame(index=features),
    ).write_h5ad(path)


def make_inputs(folder: Path, args) -> dict:
    rng = np.random.default_rng(1)
    genes = [f"ENSG{i:011d}" for i in range(args.genes)]
    symbols = [f"GENE{i}" for i in range(args.genes)]
    mirnas = [f"hsa-miR-{i}-5p" for i in range(args.mirnas)]
    samples = [f"S{i:04d}" for i in range(args.samples)]
    paths = {name: folder / name for name in ("mrna.tsv", "mirna.tsv", "null.h5ad", "targets.gmt")}
    de_table(genes, symbols, rng).to_csv(paths["mrna.tsv"], sep="\t", index=False)
    de_table(mirnas, mirnas, rng).to_csv(paths["mirna.tsv"], sep="\t", index=False)
    ad.AnnData(
        rng.standard_normal((args.permutations, args.genes)).astype(np.float32),
        obs=pd.DataFrame(index=[f"perm{i}" for i in range(args.permutations)]),
        var=pd.DataFrame({"gene_symbol": symbols, "observed_statistic": 0.0}, index=genes),
    ).write_h5ad(paths["null.h5ad"])
    with open(paths["targets.gmt"], "w") as gmt:
        for mirna in mirnas:
            gmt.write("\t".join([mirna, "-", *rng.choice(symbols, args.targets, replace=False)]) + "\n")
    paths["mrna_vst.h5ad"], paths["mirna_vst.h5ad"] = folder / "mrna_vst.h5ad", folder / "mirna_vst.h5ad"
    vst_file(paths["mrna_vst.h5ad"], samples, genes, rng)
    vst_file(paths["mirna_vst.h5ad"], samples, mirnas, rng)
    pd.DataFrame({"sample_id": samples}).to_csv(folder / "samples.tsv", sep="\t", index=False)
    return paths


def run_rule(folder: Path) -> None:
    """The rule's script on the inputs of make_inputs (in the child process)."""
    from rule_scripts import rule_script

    smk = SimpleNamespace(
        input=SimpleNamespace(
            mirna_de=folder / "mirna.tsv",
            mrna_de=folder / "mrna.tsv",
            null=folder / "null.h5ad",
            targets=folder / "targets.gmt",
            mirna_vst=folder / "mirna_vst.h5ad",
            mrna_vst=folder / "mrna_vst.h5ad",
            samples=folder / "samples.tsv",
        ),
        output=SimpleNamespace(
            enrichment=folder / "enrichment.tsv",
            correlation=folder / "correlation.tsv",
            figure=folder / "target_direction.png",
        ),
        params=SimpleNamespace(alpha=0.05),
        wildcards=SimpleNamespace(assay="small_rna", contrast="TRD_vs_responder"),
    )
    rule_script("mirna_targets").main(smk)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--mirnas", type=int, default=2000)
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.run:
        run_rule(args.run)
        return
    with tempfile.TemporaryDirectory() as tmp:
        make_inputs(Path(tmp), args)
        start = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--run", tmp], check=True)
        wall = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        enrichment = pd.read_csv(Path(tmp) / "enrichment.tsv", sep="\t")
        pairs = len(pd.read_csv(Path(tmp) / "correlation.tsv", sep="\t"))
    print(
        f"{args.samples} samples x {args.genes} genes + {args.mirnas} miRNAs, {args.targets} targets each, "
        f"K = {args.permutations}: {len(enrichment)} called miRNAs, {pairs} correlation pairs; "
        f"wall {wall:.1f} s, peak memory {peak_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
