"""Benchmark of preranked GSEA libraries on the shipped GO BP collection.

An 18,000-gene ranking of Wald-like statistics (standard normal noise; in the "planted"
ranking, 20 GO BP terms of 20-200 genes have 60% of their genes shifted by +/-1.5) is
scored against resources/genesets/go_bp.gmt.gz (min 10, max 500 genes) by:

  gseapy prerank, method='permutation' (1000 gene-set permutations)
  gseapy prerank, method='multilevel' (fgsea's adaptive multilevel algorithm)
  pipeline: the same fgsea core called in chunks of 500 sets (workflow/lib/trdpipe/enrichment/analysis.py)
  blitzgsea (gamma-approximated null from 1000 permutations)
  decoupler mt.gsea (1000 permutations)

Each method runs in its own process pinned to 2 cores; the parent samples the resident
memory of the process tree every 20 ms (peak reported); the wall time includes the import of
the library; cpu_s is the user+system time of the process and its children (less sensitive
than wall time to other load on a shared machine). A method still running after --timeout
seconds is stopped and reported as such. Accuracy: on the null ranking, the share of sets with p < 0.05
(should be ~5%) and with BH padj < 0.05 (should be ~0); on the planted ranking, how many
planted terms are among the significant ones (padj < 0.05) and in the top 20; between
methods, the Spearman correlation of NES and of -log10 p over all sets.

    .venv/bin/python bench/bench_enrichment.py            # all methods, writes bench/out/enrichment/
    .venv/bin/python bench/bench_enrichment.py --methods gseapy_multilevel blitzgsea

With --seeds S1 S2 ..., the pipeline's GSEA is instead run on the planted ranking once per
seed, in this process and untimed: how many sets reach padj < 0.05 with each seed, how many
do so with some seeds only, and how the spread of log2(p) over seeds compares with fgsea's
own log2err, by band of p-value.

With --label-permutations K, the phenotype-permutation step that the enrichment rule adds when a
pathway null gives it K permuted rankings (workflow/lib/trdpipe/enrichment/phenotype_permutation.py) is timed
instead, in its own process pinned to 2 cores: the ES of every GO BP set on the planted ranking
and on K rankings of independent standard-normal statistics, NES_perm / pvalue_perm / fdr_perm,
and the ORA permutation columns of the up list with permuted DE lists of 2% of the genes each
(score_s / ora_s: that work alone, in the worker, wall and, *_cpu_s, CPU time of all its threads;
wall_s / cpu_s: the process, imports and GMT reading included).

    .venv/bin/python bench/bench_enrichment.py --label-permutations 100

With --null-cohorts K1 K2 ..., the calibration of fdr_perm instead: on 30 synthetic null
cohorts whose set genes share a factor (tests/test_gsea_permutation.py's co_expressed_cohort,
t statistics, no group effect), how many cohorts get any set at fdr_perm < 0.05 with K
permutations, the mean share of sets at pvalue_perm < 0.05, and how many get any set at
fgsea's gene-permutation padj < 0.05; for ORA (DE: BH padj < 0.05 of the t test), how many
cohorts have a DE gene at all, and how many get a set at hypergeometric padj and at ORA
fdr_perm < 0.05. Untimed, in this process.

    .venv/bin/python bench/bench_enrichment.py --null-cohorts 20 50 100
    .venv/bin/python bench/bench_enrichment.py --null-cohorts 100 --cohorts 150 --loading 1.2
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

GMT = ROOT / "resources" / "genesets" / "go_bp.gmt.gz"
METHODS = ["pipeline", "gseapy_multilevel", "blitzgsea", "decoupler", "gseapy_permutation"]
MIN_SIZE, MAX_SIZE, PERMUTATIONS, SEED, CORES = 10, 500, 1000, 42, 2


# ----------------------------------------------------------------------------- data
def make_rankings(n_genes: int, seed: int) -> tuple[pd.Series, pd.Series, list[str]]:
    """(null ranking, planted ranking, planted terms) over n_genes symbols."""
    from trdpipe.io.genesets import read_gmt

    rng = np.random.default_rng(seed)
    sets = read_gmt(GMT)
    go_genes = sorted({g for _, genes in sets.values() for g in genes})
    annotation = pd.read_csv(
        ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str, keep_default_na=False
    )
    others = sorted(set(annotation["gene_symbol"]) - set(go_genes) - {""})
    genes = list(rng.choice(go_genes, size=min(len(go_genes), int(n_genes * 0.85)), replace=False))
    genes += list(rng.choice(others, size=n_genes - len(genes), replace=False))
    null = pd.Series(rng.standard_normal(n_genes), index=genes, name="stat")

    in_data = set(genes)
    candidates = [t for t, (_, g) in sets.items() if 20 <= len(set(g) & in_data) <= 200]
    planted_terms = list(rng.choice(candidates, size=20, replace=False))
    planted = null.copy()
    for i, term in enumerate(planted_terms):
        members = [g for g in sets[term][1] if g in in_data]
        chosen = rng.choice(members, size=int(0.6 * len(members)), replace=False)
        planted[chosen] += 1.5 if i % 2 == 0 else -1.5
    return null, planted, planted_terms


def gene_sets() -> dict[str, list[str]]:
    from trdpipe.io.genesets import read_gmt

    return {term: genes for term, (_, genes) in read_gmt(GMT).items()}


# ----------------------------------------------------------------------------- methods
def run_gseapy(ranking: pd.Series, sets, method: str) -> pd.DataFrame:
    import gseapy

    res = gseapy.prerank(
        rnk=ranking,
        gene_sets=sets,
        min_size=MIN_SIZE,
        max_size=MAX_SIZE,
        permutation_num=PERMUTATIONS,
        threads=CORES,
        seed=SEED,
        no_plot=True,
        outdir=None,
        method=method,
    ).res2d
    return pd.DataFrame(
        {
            "term": res["Term"],
            "ES": res["ES"].astype(float),
            "NES": res["NES"].astype(float),
            "pvalue": res["NOM p-val"].astype(float),
        }
    )


def run_blitz(ranking: pd.Series, sets) -> pd.DataFrame:
    import blitzgsea

    signature = pd.DataFrame({"gene": ranking.index, "value": ranking.to_numpy()})
    res = blitzgsea.gsea(
        signature,
        sets,
        permutations=PERMUTATIONS,
        processes=CORES,
        seed=SEED,
        center=False,
        min_size=MIN_SIZE,
        max_size=MAX_SIZE,
    )
    return pd.DataFrame(
        {
            "term": res.index,
            "ES": res["es"].astype(float),
            "NES": res["nes"].astype(float),
            "pvalue": res["pval"].astype(float),
        }
    )


def run_decoupler(ranking: pd.Series, sets) -> pd.DataFrame:
    import decoupler

    universe = set(ranking.index)
    net = pd.DataFrame(
        [
            (t, g)
            for t, genes in sets.items()
            if MIN_SIZE <= len(universe.intersection(genes)) <= MAX_SIZE
            for g in genes
            if g in universe
        ],
        columns=["source", "target"],
    )
    scores, pvals = decoupler.mt.gsea(
        ranking.to_frame("contrast").T, net, tmin=MIN_SIZE, times=PERMUTATIONS, seed=SEED
    )
    return pd.DataFrame(
        {
            "term": scores.columns,
            "ES": np.nan,
            "NES": scores.iloc[0].to_numpy(float),
            "pvalue": pvals.iloc[0].to_numpy(float),
        }
    )


def run_pipeline(ranking: pd.Series, sets) -> pd.DataFrame:
    from trdpipe.enrichment.analysis import run_gsea

    universe = set(ranking.index)
    restricted = {t: [g for g in genes if g in universe] for t, genes in sets.items()}
    restricted = {t: g for t, g in restricted.items() if MIN_SIZE <= len(g) <= MAX_SIZE}
    return run_gsea(ranking, restricted, PERMUTATIONS, SEED, CORES).drop(columns="leading_edge")


def run_label_permutations(ranking: pd.Series, sets, k: int) -> pd.DataFrame:
    """The enrichment rule's permutation columns (GSEA and one ORA direction) on k random null
    rankings; one row: sets, score_s (GSEA), ora_s, sets at fdr_perm < 0.05."""
    from trdpipe.enrichment import phenotype_permutation as perm

    universe = set(ranking.index)
    restricted = {t: [g for g in genes if g in universe] for t, genes in sets.items()}
    restricted = {t: g for t, g in restricted.items() if MIN_SIZE <= len(g) <= MAX_SIZE}
    rng = np.random.default_rng(SEED)
    null = rng.standard_normal((len(ranking), k))
    start, cpu_start = time.perf_counter(), time.process_time()
    gsea = perm.phenotype_permutation_gsea(ranking, null, restricted, threads=CORES)
    score_s, score_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    genes = list(ranking.index)
    n_de = int(0.02 * len(genes))
    null_de = np.zeros((len(genes), k), dtype=bool)
    np.put_along_axis(null_de, np.argsort(-null, axis=0)[:n_de], True, axis=0)
    observed = rng.uniform(size=len(restricted))
    start, cpu_start = time.perf_counter(), time.process_time()
    perm.ora_permutation(observed, restricted, genes, null_de)
    ora_s, ora_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    return pd.DataFrame(
        [
            {
                "permutations": k,
                "sets": len(restricted),
                "genes": len(genes),
                "score_s": round(score_s, 2),
                "score_cpu_s": round(score_cpu_s, 2),
                "ora_s": round(ora_s, 2),
                "ora_cpu_s": round(ora_cpu_s, 2),
                "fdr_perm_below_0.05": int((gsea["fdr_perm"] < 0.05).sum()),
            }
        ]
    )


def ora_calls(genes, sets, stats: np.ndarray, k: int) -> tuple[bool, bool, bool]:
    """(any DE gene, any set at hypergeometric padj < 0.05, any at ORA fdr_perm < 0.05) of a
    cohort: DE = BH padj < 0.05 of the t statistics' p-values (38 degrees of freedom)."""
    from scipy.stats import t as t_dist

    from trdpipe.enrichment import phenotype_permutation as perm
    from trdpipe.enrichment.analysis import ora_collection
    from trdpipe.io.genesets import restrict_to_universe
    from trdpipe.model.tables import bh

    padj = np.column_stack([bh(2 * t_dist.sf(np.abs(column), 38)) for column in stats[:, : k + 1].T])
    collection = restrict_to_universe(
        "modules", {t: ("", g) for t, g in sets.items()}, genes, MIN_SIZE, MAX_SIZE
    )
    de = hyper = permuted = False
    lists = {
        direction: [genes[i] for i in np.flatnonzero((padj[:, 0] < 0.05) & (np.sign(stats[:, 0]) == sign))]
        for direction, sign in (("up", 1), ("down", -1))
    }
    null_de = perm.null_top_lists(stats[:, 1 : k + 1], len(lists["up"]), len(lists["down"]))
    for direction, listed in lists.items():
        if listed:
            res = ora_collection(collection, genes, listed, direction, null_de[direction])
            de, hyper = True, hyper or bool((res["padj"] < 0.05).any())
            permuted = permuted or bool((res["fdr_perm"] < 0.05).any())
    return de, hyper, permuted


def null_cohort_calls(ks: list[int], n_cohorts: int, loading: float) -> pd.DataFrame:
    """Per K: null cohorts with any fdr_perm < 0.05 (GSEA; ORA) beside the gene-permutation and
    hypergeometric calls."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_gsea_permutation import co_expressed_cohort, label_permutations, t_statistics
    from trdpipe.enrichment import phenotype_permutation as perm
    from trdpipe.enrichment.analysis import run_gsea
    from trdpipe.model.tables import bh

    rows = []
    for seed in range(n_cohorts):
        rng = np.random.default_rng(500 + seed)
        expression, genes, sets, labels = co_expressed_cohort(rng, loading=loading)
        stats = t_statistics(expression, label_permutations(labels, max(ks), rng))
        ranking = pd.Series(stats[:, 0], index=genes)
        fgsea = run_gsea(ranking, sets, PERMUTATIONS, SEED, CORES)
        for k in ks:
            res = perm.phenotype_permutation_gsea(ranking, stats[:, 1 : k + 1], sets)
            de, hyper, permuted = ora_calls(genes, sets, stats, k)
            rows.append(
                {
                    "K": k,
                    "seed": seed,
                    "fdr_perm_calls": int((res["fdr_perm"] < 0.05).sum()),
                    "share_p_perm_below_0.05": float((res["pvalue_perm"] < 0.05).mean()),
                    "gene_perm_calls": int((bh(fgsea["pvalue"].to_numpy()) < 0.05).sum()),
                    "de": de,
                    "ora_hyper": hyper,
                    "ora_perm": permuted,
                }
            )
    per_cohort = pd.DataFrame(rows)
    return (
        per_cohort.groupby("K")
        .agg(
            cohorts=("seed", "size"),
            with_fdr_perm_call=("fdr_perm_calls", lambda c: int((c > 0).sum())),
            mean_share_p_perm_below_5pct=("share_p_perm_below_0.05", "mean"),
            with_gene_perm_call=("gene_perm_calls", lambda c: int((c > 0).sum())),
            median_gene_perm_calls=("gene_perm_calls", "median"),
            with_de_gene=("de", "sum"),
            with_ora_padj_call=("ora_hyper", "sum"),
            with_ora_fdr_perm_call=("ora_perm", "sum"),
        )
        .reset_index()
    )


def worker(method: str, ranking_path: str, out_path: str) -> None:
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:CORES]))
    ranking = pd.read_csv(ranking_path, sep="\t", index_col=0)["stat"]
    sets = gene_sets()
    if method.startswith("label_permutations_"):
        res = run_label_permutations(
            ranking.sort_values(ascending=False), sets, int(method.rsplit("_", 1)[1])
        )
    elif method == "pipeline":
        res = run_pipeline(ranking, sets)
    elif method.startswith("gseapy"):
        res = run_gseapy(ranking, sets, method.split("_", 1)[1])
    elif method == "blitzgsea":
        res = run_blitz(ranking, sets)
    else:
        res = run_decoupler(ranking, sets)
    res.to_csv(out_path, sep="\t", index=False)


# ----------------------------------------------------------------------------- harness
def tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


def measure(method: str, ranking_path: Path, out_path: Path, timeout: float) -> dict:
    import resource

    cmd = [sys.executable, __file__, "--worker", method, str(ranking_path), str(out_path)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        stop.set()
        sampler.join()
        return {
            "method": method,
            "wall_s": f">{timeout:.0f} (stopped)",
            "cpu_s": None,
            "peak_mem_mb": round(peak / 2**20),
        }
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{err[-3000:]}")
    return {
        "method": method,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_mem_mb": round(peak / 2**20),
    }


def accuracy(null_res: pd.DataFrame, planted_res: pd.DataFrame, planted_terms: list[str]) -> dict:
    from trdpipe.model.tables import bh  # the pipeline's BH (NaN p-values left out, as R's p.adjust)

    p_null = null_res["pvalue"].to_numpy()
    planted_res = planted_res.assign(padj=bh(planted_res["pvalue"].to_numpy()))
    significant = set(planted_res.loc[planted_res["padj"] < 0.05, "term"])
    top = planted_res.sort_values(["pvalue", "NES"], key=lambda s: s if s.name == "pvalue" else -s.abs())
    return {
        "null_frac_p<0.05": round(float(np.mean(p_null < 0.05)), 4),
        "null_n_padj<0.05": int((bh(p_null) < 0.05).sum()),
        "planted_significant": f"{len(significant & set(planted_terms))}/{len(planted_terms)}",
        "planted_in_top20": int(len(set(top["term"].head(20)) & set(planted_terms))),
        "n_significant": len(significant),
        "min_p": float(planted_res["pvalue"].min()),
    }


def agreement(results: dict[str, pd.DataFrame]) -> pd.DataFrame:
    rows = []
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            merged = results[a].merge(results[b], on="term", suffixes=("_a", "_b"))
            lp_a = -np.log10(merged["pvalue_a"].clip(lower=1e-300))
            lp_b = -np.log10(merged["pvalue_b"].clip(lower=1e-300))
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "n_terms": len(merged),
                    "spearman_NES": round(merged["NES_a"].corr(merged["NES_b"], method="spearman"), 4),
                    "spearman_log10p": round(lp_a.corr(lp_b, method="spearman"), 4),
                    "max_abs_ES_diff": round(float((merged["ES_a"] - merged["ES_b"]).abs().max()), 6),
                }
            )
    return pd.DataFrame(rows)


def seed_stability(ranking: pd.Series, seeds: list[int]) -> pd.DataFrame:
    """Per band of median p over seeds: sets, the SD of log2 p over seeds, the mean log2err;
    prints the calls per seed and the sets called with some seeds only."""
    from trdpipe.enrichment.analysis import run_gsea
    from trdpipe.model.tables import bh

    universe = set(ranking.index)
    sets = {t: [g for g in genes if g in universe] for t, genes in gene_sets().items()}
    sets = {t: g for t, g in sets.items() if MIN_SIZE <= len(g) <= MAX_SIZE}
    runs = {seed: run_gsea(ranking, sets, PERMUTATIONS, seed, CORES).set_index("term") for seed in seeds}
    pvalues = pd.DataFrame({seed: run["pvalue"] for seed, run in runs.items()})
    called = pd.DataFrame({seed: bh(pvalues[seed].to_numpy()) < 0.05 for seed in seeds}, index=pvalues.index)
    print(
        json.dumps(
            {
                "sets_called_per_seed": called.sum().tolist(),
                "called_with_some_seeds_only": int((called.any(axis=1) & ~called.all(axis=1)).sum()),
            }
        )
    )
    log2err = pd.DataFrame({seed: run["log2err"] for seed, run in runs.items()}).mean(axis=1)
    bands = pd.cut(pvalues.median(axis=1), [0, 1e-6, 1e-3, 0.02, 1], right=False)
    return pd.DataFrame(
        {
            "sets": bands.value_counts(sort=False),
            "sd_log2p_over_seeds": np.log2(pvalues)
            .std(axis=1)
            .groupby(bands, observed=False)
            .mean()
            .round(3),
            "mean_log2err": log2err.groupby(bands, observed=False).mean().round(3),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    ap.add_argument("--genes", type=int, default=18000)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "enrichment"))
    ap.add_argument("--timeout", type=float, default=600, help="seconds per method and ranking")
    ap.add_argument("--seeds", type=int, nargs="+", help="seed stability of the pipeline's GSEA instead")
    ap.add_argument(
        "--null-cohorts",
        type=int,
        nargs="+",
        metavar="K",
        help="calibration of fdr_perm on synthetic co-expressed null cohorts instead",
    )
    ap.add_argument("--cohorts", type=int, default=30, help="with --null-cohorts: how many")
    ap.add_argument("--loading", type=float, default=0.8, help="with --null-cohorts: module factor loading")
    ap.add_argument(
        "--label-permutations",
        type=int,
        metavar="K",
        help="time the phenotype-permutation columns for K permuted rankings instead",
    )
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.null_cohorts:
        print(null_cohort_calls(args.null_cohorts, args.cohorts, args.loading).to_string(index=False))
        return
    null, planted, planted_terms = make_rankings(args.genes, SEED)
    if args.seeds:
        print(seed_stability(planted, args.seeds).to_string())
        return
    for name, ranking in (("null", null), ("planted", planted)):
        ranking.to_frame().to_csv(out / f"ranking_{name}.tsv", sep="\t", index_label="gene")
    if args.label_permutations:
        method = f"label_permutations_{args.label_permutations}"
        m = measure(method, out / "ranking_planted.tsv", out / f"{method}.tsv", args.timeout)
        print(
            json.dumps({**m, **pd.read_csv(out / f"{method}.tsv", sep="\t").iloc[0].to_dict()}, default=str)
        )
        return

    timings, results = [], {}
    for method in args.methods:
        per_ranking = {}
        for name in ("null", "planted"):
            res_path = out / f"{method}_{name}.tsv"
            m = measure(method, out / f"ranking_{name}.tsv", res_path, args.timeout)
            m["ranking"] = name
            timings.append(m)
            print(json.dumps(m), flush=True)
            if m["cpu_s"] is None:
                break
            per_ranking[name] = pd.read_csv(res_path, sep="\t")
        if len(per_ranking) < 2:
            continue
        acc = accuracy(per_ranking["null"], per_ranking["planted"], planted_terms)
        timings[-1].update(acc)
        results[method] = per_ranking["planted"]
        print(json.dumps({"method": method, **acc}), flush=True)

    summary = pd.DataFrame(timings)
    summary.to_csv(out / "summary.tsv", sep="\t", index=False)
    agree = agreement(results)
    agree.to_csv(out / "agreement.tsv", sep="\t", index=False)
    pd.set_option("display.width", 200)
    print(summary.to_string(index=False))
    print(agree.to_string(index=False))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:5])
    else:
        main()
