"""Benchmark of the predict rule: wall time and memory at a given cohort size, and the
permutation p-value and AUC gain on a null cohort.

A cohort is simulated with the pipeline's simulator (workflow/lib/trdpipe/simulate.py,
default parameters but no QC hazards), its genes filtered as the filter rule does, and the
predict rule's script (predict.main) run on it with the config's defaults (3 feature sets x 3
learners, 5 repeats of 5 outer folds, 4 inner folds, site-held-out validation, 100 permutations
of the best model) and the given threads, writing its outputs to a temporary folder. The time is
that of predict.main (reading the h5ad included; simulation excluded), cpu_s the CPU seconds
of this process and its workers over that call (a measure that a busy shared machine distorts
less than the wall time: wall on an idle machine with T threads is about cpu_s / T), the memory
the peak RSS
of this process plus the largest of its joblib workers (each worker's own peak, read from
/proc before the pool is shut down).

    .venv/bin/python bench/bench_predict.py --samples 300 --genes 20000 --threads 2
    .venv/bin/python bench/bench_predict.py --samples 300 --genes 20000 --threads 2 --permutations 0
    .venv/bin/python bench/bench_predict.py --samples 300 --genes 20000 --mirnas 2000 --threads 2
    .venv/bin/python bench/bench_predict.py --samples 120 --genes 5000 --null --seeds 1 2 3 4 5

--mirnas N adds a small-RNA layer of N features to the same samples (negative-binomial counts,
the first 2% shifted by 0.5 log2 in TRD unless --null; filtered as the filter rule does), so the
rule runs its layer sets too: mirna alone, combined with it, and the stacked model of
predict.stacked_learners over clinical, mRNA and small RNA.

--null simulates the cohort with SimulationParameters.null_cohort (no group effect on genes,
cells or clinical variables, the same correlation structure) and prints, per seed, the best model's AUC interval, its permutation
p-value and the AUC gain of expression over clinical data with its p-value: on such cohorts the
p-values should rarely fall below 0.05.
"""

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]
# the predict rule's script draws its figures to files with Agg, as in the workflow's jobs
os.environ["MPLBACKEND"] = "Agg"

from rule_scripts import rule_script  # noqa: E402
from trdpipe.checks.config_keys import section_settings  # noqa: E402
from trdpipe.model.filtering import expressed_genes, min_group_size  # noqa: E402
from trdpipe.simulate import SimulationParameters, load_gene_sets, simulate_cohort  # noqa: E402

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}


def schema_defaults() -> dict:
    """The config's defaults of the sections the rule reads (the schema's `default:`s); deseq2 the
    `de` keys of the in-fold VST, as the rule's params (trdpipe.checks.config_keys)."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    sections = {}
    for name in ("predict", "filter", "de"):
        properties = schema["properties"][name]["properties"]
        sections[name] = {key: spec["default"] for key, spec in properties.items() if "default" in spec}
    sections["deseq2"] = section_settings({"de": sections.pop("de")}, "de", "in_fold_vst")
    return sections


def simulated_cohort(n_samples: int, n_genes: int, seed: int, null: bool, settings: dict) -> ad.AnnData:
    """A filtered cohort as results/filter/cohort.h5ad holds it."""
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    gene_sets = load_gene_sets(
        {
            "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
            "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
        }
    )
    size = dict(n_samples=n_samples, n_genes=n_genes, seed=seed, hazards=False)
    params = SimulationParameters.null_cohort(**size) if null else SimulationParameters(**size)
    cohort = simulate_cohort(annotation, gene_sets, params)
    obs = cohort.samples.set_index("sample_id")
    counts = cohort.counts.T.loc[obs.index]
    keep = expressed_genes(counts.to_numpy(), min_group_size(obs, CONTRAST), **settings["filter"])
    var = annotation.drop_duplicates("gene_id").set_index("gene_id").reindex(counts.columns[keep])
    return ad.AnnData(X=counts.to_numpy()[:, keep], obs=obs, var=var[["gene_symbol"]].fillna(""))


def small_rna_layer(obs: pd.DataFrame, n_features: int, seed: int, null: bool, settings: dict) -> ad.AnnData:
    """A filtered small-RNA cohort of the same samples: negative-binomial counts (log means
    uniform on 2-10, a dispersion trend DESeq2's parametric fit can find), the first 2% of
    features 0.5 log2 higher in TRD unless `null`."""
    rng = np.random.default_rng(seed + 1000)
    labels = (obs["group"] == CONTRAST["test"]).to_numpy()
    log_mean = rng.uniform(2, 10, n_features)[None, :] + rng.normal(0, 0.2, (len(obs), 1))
    if not null:
        log_mean[:, : n_features // 50] += 0.5 * np.log(2) * labels[:, None]
    mean = np.exp(log_mean)
    shape = 1 / (0.1 + 2 / mean)
    counts = rng.poisson(rng.gamma(shape, mean / shape))
    keep = expressed_genes(counts, min_group_size(obs, CONTRAST), **settings["filter"])
    var = pd.DataFrame(index=[f"hsa-miR-sim-{i}" for i in np.flatnonzero(keep)])
    return ad.AnnData(X=counts[:, keep], obs=obs, var=var)


def workers() -> tuple[float, float]:
    """Largest peak RSS (VmHWM, MB) among this process's children (the joblib workers), and
    their summed CPU seconds (user + system)."""
    peaks, cpu = [], 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            status, stat = (proc / "status").read_text(), (proc / "stat").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if int(fields.get("PPid", "0").strip()) != os.getpid():
            continue
        peaks.append(int(fields.get("VmHWM", "0 kB").split()[0]) / 1024)
        ticks = stat.rsplit(")", 1)[1].split()
        cpu += (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
    return max(peaks, default=0.0), cpu


def run_rule(
    adata: ad.AnnData, small_rna: ad.AnnData | None, settings: dict, threads: int, outdir: Path
) -> dict:
    h5ad = outdir / "cohort.h5ad"
    adata.write_h5ad(h5ad)
    assays = []
    if small_rna is not None:
        assays = [str(outdir / "mirna.h5ad")]
        small_rna.write_h5ad(assays[0])
    layers = {
        "primary": "mrna",
        "assays": ["mirna"] if assays else [],
        "mirna": {"n_features": settings["predict"]["n_genes"], "filter": settings["filter"]},
    }
    names = ("comparison", "gains", "predictions", "site", "genes", "null", "layers", "roc", "calibration")
    suffix = {"roc": ".png", "calibration": ".png", "layers": ".png"}
    smk = SimpleNamespace(
        input=SimpleNamespace(h5ad=str(h5ad), assays=assays, genotypes=[]),
        output={name: str(outdir / f"{name}{suffix.get(name, '.tsv')}") for name in names},
        params=SimpleNamespace(
            predict=settings["predict"],
            contrast=CONTRAST,
            filter=settings["filter"],
            deseq2=settings["deseq2"],
            design="~ site + sex + age + group",
            seed=20250601,
            layers=layers,
        ),
        threads=threads,
    )
    start, start_cpu = time.perf_counter(), time.process_time()
    rule_script("predict").main(smk)
    seconds, main_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    worker_mb, worker_cpu = workers()
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    comparison = pd.read_csv(smk.output["comparison"], sep="\t")
    return {
        "seconds": seconds,
        "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_mb": worker_mb,
        "cpu_s": main_cpu + worker_cpu,
        "comparison": comparison,
        "gains": pd.read_csv(smk.output["gains"], sep="\t"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--permutations", type=int, default=None, help="default: the config's default")
    parser.add_argument("--repeats", type=int, default=None, help="default: the config's default")
    parser.add_argument("--mirnas", type=int, default=0, help="features of a small-RNA layer (0: none)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--null", action="store_true", help="no group effect on expression")
    args = parser.parse_args()
    settings = schema_defaults()
    for key in ("permutations", "repeats"):
        if getattr(args, key) is not None:
            settings["predict"][key] = getattr(args, key)
    rows = []
    for seed in args.seeds:
        adata = simulated_cohort(args.samples, args.genes, seed, args.null, settings)
        small_rna = (
            small_rna_layer(adata.obs, args.mirnas, seed, args.null, settings) if args.mirnas else None
        )
        with tempfile.TemporaryDirectory() as tmp:
            result = run_rule(adata, small_rna, settings, args.threads, Path(tmp))
        comparison = result["comparison"]
        best = comparison[comparison["best"]].iloc[0]
        combined = comparison[(comparison["feature_set"] == "combined") & (comparison["learner"] == "l2")]
        rows.append(
            {
                "seed": seed,
                "samples": adata.n_obs,
                "genes": adata.n_vars,
                "mirnas": small_rna.n_vars if small_rna is not None else 0,
                "threads": args.threads,
                "permutations": settings["predict"]["permutations"],
                "repeats": settings["predict"]["repeats"],
                "seconds": round(result["seconds"], 1),
                "cpu_s": round(result["cpu_s"], 1),
                "main_mb": round(result["main_mb"]),
                "worker_mb": round(result["worker_mb"]),
                "best": f"{best['feature_set']}/{best['learner']}",
                "best_auc": f"{best['auc_mean']:.3f} [{best['auc_low']:.3f}, {best['auc_high']:.3f}]",
                "permutation_p": best["permutation_p"],
                "combined_l2_gain": (
                    f"{combined['auc_gain_over_clinical'].iloc[0]:+.3f} (p {combined['gain_p'].iloc[0]:.3f})"
                    if len(combined)
                    else ""
                ),
            }
        )
        print(comparison.drop(columns=["n_samples"]).to_string(index=False, float_format="%.3f"), flush=True)
        print(result["gains"].to_string(index=False, float_format="%.3f"), flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
