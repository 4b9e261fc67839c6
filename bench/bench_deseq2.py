"""Benchmark the DESeq2 step: PyDESeq2 DefaultInference vs the batched backend (and R DESeq2).

The batched backend is the pipeline's: BatchedInference inside batched_deseq2.dds'
BatchedDeseqDataSet/BatchedDeseqStats; the default one is PyDESeq2 as published.

For each cohort size it simulates one negative-binomial cohort (design
~ site + sex + age + group), fits it with each backend in a fresh child
process (so peak memory is that fit's own ru_maxrss), and prints wall time,
CPU time (the process and its workers), the wall time spent in the Inference methods (the
rest is PyDESeq2's own code, vectorised in the batched backend's subclasses), peak memory, the ratio
default/batched of wall times and of CPU times, and the concordance of the results.
With --repeats N the two Python backends are fitted N times, alternately, so that a
slow spell of a shared machine hits both: times are medians, the ratio is that of the
medians, and speedup_min/speedup_max are the extremes of the N paired ratios.

    .venv/bin/python bench/bench_deseq2.py --sizes 100 300 1000 3000 --genes 20000 \\
        --threads 2 --skip-default-above 1000
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow" / "lib"), str(ROOT / "tests")]

from nb_cohort import DESIGNS, simulate_nb_cohort  # noqa: E402

CONTRAST = ["group", "TRD", "responder"]
ALPHA = 0.05
R_SCRIPT = """
suppressMessages(library(DESeq2))
args <- commandArgs(trailingOnly = TRUE)
counts <- as.matrix(read.delim(args[1], row.names = 1, check.names = FALSE))
meta <- read.delim(args[2], row.names = 1, stringsAsFactors = TRUE)
meta$group <- relevel(meta$group, ref = "responder")
start <- Sys.time()
dds <- DESeqDataSetFromMatrix(t(counts), meta, ~ site + sex + age + group)
dds <- DESeq(dds, quiet = TRUE, parallel = FALSE)
res <- results(dds, contrast = c("group", "TRD", "responder"), alpha = 0.05)
elapsed <- as.numeric(difftime(Sys.time(), start, units = "secs"))
write.table(data.frame(gene = rownames(res), padj = res$padj), args[3], sep = "\\t",
            quote = FALSE, row.names = FALSE)
cat(elapsed, "\\n", file = args[4])
"""


def fit_in_this_process(
    backend: str, n_samples: int, n_genes: int, seed: int, threads: int, out: Path, lfc_shrink: bool = False
) -> None:
    """Child process: fit one backend (then shrink the fold changes, if asked, as the deseq2 rule
    does with deseq2.lfc_shrink), save results and {seconds, shrink_seconds, peak_mib}."""
    from trdpipe.model.engines.pydeseq2 import MODEL_CLASSES, make_inference

    counts, metadata = simulate_nb_cohort(n_samples, n_genes, seed=seed, n_outliers=n_genes // 200)
    # batched: BatchedInference in batched_deseq2.dds' subclasses; default: PyDESeq2 as published
    dataset_class, stats_class = MODEL_CLASSES[backend]
    inference = make_inference(threads, backend)
    in_inference = time_inference_calls(inference)
    warnings.simplefilter("ignore")
    cpu_start = cpu_seconds()
    start = time.perf_counter()
    dds = dataset_class(
        counts=counts, metadata=metadata, design=DESIGNS["full"], inference=inference, quiet=True
    )
    dds.deseq2()
    stats = stats_class(dds, contrast=CONTRAST, alpha=ALPHA, inference=inference, quiet=True)
    stats.summary()
    # the unshrunk estimates, which the concordance with the other backend compares
    stats.results_df[["log2FoldChange", "pvalue", "padj"]].to_parquet(out.with_suffix(".parquet"))
    shrink_start = time.perf_counter()
    if lfc_shrink:
        stats.lfc_shrink(coeff=f"{CONTRAST[0]}[T.{CONTRAST[1]}]")
    shrink_seconds = time.perf_counter() - shrink_start
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    # children's maxrss covers joblib workers of the default backend
    peak_kib = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "inference_seconds": in_inference["seconds"],
                "shrink_seconds": shrink_seconds,
                "peak_mib": peak_kib / 1024,
            }
        )
    )


def time_inference_calls(inference) -> dict:
    """Wrap the Inference methods of `inference` so that the wall time spent in them adds up
    in the returned dict: the rest of the DE step is PyDESeq2's own code (in the batched
    backend, batched_deseq2.dds' vectorised versions of it)."""
    from pydeseq2.inference import Inference

    spent = {"seconds": 0.0}

    def timed(method):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent["seconds"] += time.perf_counter() - start

        return call

    for name in Inference.__abstractmethods__:
        setattr(inference, name, timed(getattr(inference, name)))
    return spent


def cpu_seconds() -> float:
    """User + system CPU time of this process and its children, ended or alive (the default
    backend's joblib workers stay alive between calls, so ru_*time of children misses them)."""
    import psutil

    me = psutil.Process()
    user_and_system = [sum(p.cpu_times()[:2]) for p in (me, *me.children(recursive=True))]
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return sum(user_and_system) + ended.ru_utime + ended.ru_stime


def run_child(backend: str, n_samples: int, args, workdir: Path) -> tuple[dict, pd.DataFrame]:
    out = workdir / f"{backend}_{n_samples}"
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            backend,
            "--sizes",
            str(n_samples),
            "--genes",
            str(args.genes),
            "--seed",
            str(args.seed),
            "--threads",
            str(args.threads),
            "--out",
            str(out),
        ]
        + (["--lfc-shrink"] if args.lfc_shrink else []),
        check=True,
    )
    return json.loads(out.with_suffix(".json").read_text()), pd.read_parquet(out.with_suffix(".parquet"))


def r_deseq2_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    return subprocess.run(["Rscript", "-e", "library(DESeq2)"], capture_output=True).returncode == 0


def run_r(n_samples: int, args, workdir: Path) -> tuple[float, pd.Series]:
    counts, metadata = simulate_nb_cohort(n_samples, args.genes, seed=args.seed, n_outliers=args.genes // 200)
    paths = [workdir / name for name in ("counts.tsv", "meta.tsv", "res.tsv", "time.txt", "de.R")]
    counts.to_csv(paths[0], sep="\t")
    metadata.to_csv(paths[1], sep="\t")
    paths[4].write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(paths[4]), *map(str, paths[:4])], check=True)
    padj = pd.read_csv(paths[2], sep="\t", index_col=0)["padj"]
    return float(paths[3].read_text()), padj


def concordance(new: pd.DataFrame, reference: pd.DataFrame) -> dict:
    """Largest relative differences and DE calls that differ (padj < ALPHA)."""
    tested = reference["pvalue"].notna() & new["pvalue"].notna()

    def max_rel(column):
        a, b = new.loc[tested, column], reference.loc[tested, column]
        return float(((a - b).abs() / b.abs().clip(lower=1e-12)).max())

    return {
        "lfc_max_rel": max_rel("log2FoldChange"),
        "pvalue_max_rel": max_rel("pvalue"),
        "calls_ref": int((reference["padj"] < ALPHA).sum()),
        "calls_differ": call_difference(new["padj"], reference["padj"]),
    }


def call_difference(padj: pd.Series, reference: pd.Series) -> int:
    return int(((padj < ALPHA) != (reference.reindex(padj.index) < ALPHA)).sum())


def summarise_runs(runs: list[tuple[dict, pd.DataFrame]]) -> tuple[dict, float, pd.DataFrame]:
    """Medians of the timings (seconds, cpu_seconds, inference_seconds) of repeated fits of
    one backend, their largest peak MiB, and the first fit's results (fits are deterministic)."""
    timings = [timing for timing, _ in runs]
    medians = {
        key: float(np.median([t[key] for t in timings]))
        for key in ("seconds", "cpu_seconds", "inference_seconds", "shrink_seconds")
    }
    return medians, max(t["peak_mib"] for t in timings), runs[0][1]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000, 3000])
    parser.add_argument("--genes", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--skip-default-above",
        type=int,
        default=10**9,
        help="do not run DefaultInference for cohorts larger than this",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fit each Python backend this many times, alternately; report medians",
    )
    parser.add_argument(
        "--lfc-shrink",
        action="store_true",
        help="shrink the fold changes after the test (deseq2.lfc_shrink); its time is "
        "part of the total and shown alone as *_shrink_s",
    )
    parser.add_argument("--child", choices=["default", "batched"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        fit_in_this_process(
            args.child, args.sizes[0], args.genes, args.seed, args.threads, args.out, args.lfc_shrink
        )
        return

    with_r = r_deseq2_available()
    print(f"genes={args.genes} threads={args.threads} R DESeq2: {'yes' if with_r else 'not installed'}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n_samples in args.sizes:
            row = {"samples": n_samples}
            backends = ["batched"] + (["default"] if n_samples <= args.skip_default_above else [])
            runs = {backend: [] for backend in backends}
            for _ in range(args.repeats):
                for backend in backends:
                    runs[backend].append(run_child(backend, n_samples, args, workdir))
            new, new_mib, new_res = summarise_runs(runs["batched"])
            row.update(
                batched_s=new["seconds"],
                batched_cpu_s=new["cpu_seconds"],
                batched_inference_s=new["inference_seconds"],
                batched_shrink_s=new["shrink_seconds"],
                batched_mib=new_mib,
            )
            if "default" in runs:
                old, old_mib, old_res = summarise_runs(runs["default"])
                row.update(
                    default_s=old["seconds"],
                    default_cpu_s=old["cpu_seconds"],
                    default_inference_s=old["inference_seconds"],
                    default_shrink_s=old["shrink_seconds"],
                    default_mib=old_mib,
                    speedup=old["seconds"] / new["seconds"],
                    cpu_ratio=old["cpu_seconds"] / new["cpu_seconds"],
                    **concordance(new_res, old_res),
                )
                if args.repeats > 1:
                    paired = [
                        default["seconds"] / batched["seconds"]
                        for (batched, _), (default, _) in zip(runs["batched"], runs["default"])
                    ]
                    row.update(speedup_min=min(paired), speedup_max=max(paired))
            if with_r:
                r_seconds, r_padj = run_r(n_samples, args, workdir)
                row.update(r_s=r_seconds, r_calls_differ=call_difference(new_res["padj"], r_padj))
            rows.append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format="%.4g"), flush=True)
    print("\nSummary")
    print(pd.DataFrame(rows).to_string(index=False, float_format="%.4g"))


if __name__ == "__main__":
    main()
