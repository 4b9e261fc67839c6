"""Benchmark of the pathway tests' label-permutation null (rule pathway_null): its cost, its
false-positive rate on correlated null cohorts, and the cohort size a pathway answer needs.

Cohorts come from the project's simulator (workflow/lib/trdpipe/simulate.py): negative binomial
counts with co-expression modules on GO BP sets and broad latent factors (its defaults, set to
the gene-gene correlation of real blood), genes with a mean count below 10 left out. The null is
trdpipe.calibration.score_null (the score statistic of the contrast under the model without it,
K labellings within site x sex), the GSEA columns trdpipe.enrichment.phenotype_permutation's.

time: one cohort of --samples x --genes; the DESeq2 fit of the primary model (what the
  enrichment needs without the null, for reference), the score null (its fit, then K
  statistics), the permutation GSEA of GO BP on the K rankings and ORA's permutation columns of
  both directions, wall and CPU seconds (CPU: of the whole process, all threads).

    .venv/bin/python bench/bench_pathway_null.py time --samples 300 --genes 20000

null: --cohorts null cohorts (SimulationParameters.null_cohort: no group effect of any kind):
  how many get any GO BP set at GSEA fdr_perm < 0.05, and any at ORA fdr_perm < 0.05 (the up and
  down lists of the observed DESeq2 fit at padj < 0.05, lists of their length from the null).

    .venv/bin/python bench/bench_pathway_null.py null --cohorts 100 --samples 60 --genes 3000

  With --as-observed J, each cohort also gives the share of its first J labellings (the observed
  one, then permuted ones) that call any GSEA set when taken as the observed one, the others as
  its null: under the null the labellings are exchangeable, so that share is the cohort's
  false-positive rate, a number where one labelling gives a 0 or a 1 (ORA is then left out).

    .venv/bin/python bench/bench_pathway_null.py null --cohorts 40 --samples 40 --genes 1000 --as-observed 100

power: at each of --sizes samples, --cohorts cohorts with one GO BP term shifted (--term, by
  --shift log2 at signature strength 1, scaled per patient as the simulator does) and the same
  cohorts without it: the share in which each method calls the planted term (fdr < 0.05, right
  sign) and the share in which it calls any set without the shift. A method is one function of
  METHODS: (cohort AnnData, GO BP sets restricted to its genes) -> DataFrame term, NES, fdr.

    .venv/bin/python bench/bench_pathway_null.py power --sizes 50 100 200 300 --cohorts 10
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

from trdpipe import simulate as sim  # noqa: E402
from trdpipe.calibration.score_null import score_null  # noqa: E402
from trdpipe.enrichment import phenotype_permutation as perm  # noqa: E402
from trdpipe.enrichment.camera import camera_from_counts  # noqa: E402

GO_BP = ROOT / "resources/genesets/go_bp.gmt.gz"
CURATED = ROOT / "resources/genesets/curated_trd.gmt"  # the simulator's null themes are curated sets
DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
SETTINGS = {"alpha": 0.05, "inference": "batched"}
STRATA = ["site", "sex"]
K, SEED, MIN_SIZE, MAX_SIZE, FDR = 1000, 20250601, 10, 500, 0.05


def cohort(params: sim.SimulationParameters):
    """(AnnData samples x genes with gene_symbol, the GO BP sets restricted to its genes)."""
    import anndata as ad

    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    gene_sets = sim.load_gene_sets({"GO_BP": GO_BP, "curated_TRD": CURATED})
    simulated = sim.simulate_cohort(annotation, gene_sets, params)
    counts = simulated.counts[simulated.counts.mean(axis=1) >= 10]
    symbols = simulated.truth_genes.set_index("gene_id").loc[counts.index, "gene_symbol"].to_numpy()
    adata = ad.AnnData(
        counts.T.to_numpy(),
        obs=simulated.samples.set_index("sample_id"),
        var=pd.DataFrame({"gene_symbol": symbols}, index=counts.index),
    )
    present = set(symbols)
    sets = {t: [g for g in genes if g in present] for t, genes in gene_sets["GO_BP"].items()}
    return adata, {t: g for t, g in sets.items() if MIN_SIZE <= len(g) <= MAX_SIZE}


def label_null(adata, k: int = K):
    """(observed ranking by symbol, permuted rankings genes x K) of the score-statistic null."""
    null = score_null(adata, DESIGN, CONTRAST, SETTINGS, STRATA, k, SEED)
    observed = pd.Series(null.var["observed_statistic"].to_numpy(), index=adata.var["gene_symbol"])
    return observed.fillna(0.0), np.asarray(null.X, dtype=float).T


def label_permutation(adata, sets) -> pd.DataFrame:
    """The pipeline's answer: phenotype-permutation GSEA on the score-statistic null."""
    observed, null = label_null(adata)
    res = perm.phenotype_permutation_gsea(observed, null, sets)
    return res.rename(columns={"NES_perm": "NES", "fdr_perm": "fdr"})[["term", "NES", "fdr"]]


def camera_estimated(adata, sets) -> pd.DataFrame:
    """camera with each set's inter-gene correlation estimated from the residuals, on the blind VST
    (trdpipe.enrichment.camera); the sign of NES is camera's direction."""
    counts = pd.DataFrame(adata.X, index=adata.obs_names, columns=adata.var["gene_symbol"].to_numpy())
    counts = counts.loc[:, ~counts.columns.duplicated()]
    res = camera_from_counts(counts, adata.obs, DESIGN, CONTRAST, sets)
    return res.assign(NES=np.where(res["direction"] == "up", 1.0, -1.0))[["term", "NES", "fdr"]]


METHODS = {"label_permutation": label_permutation, "camera": camera_estimated}


# ----------------------------------------------------------------------------- time
def timed(function, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, round(time.perf_counter() - wall, 1), round(time.process_time() - cpu, 1)


def time_null(samples: int, genes: int, k: int) -> pd.DataFrame:
    from trdpipe.model.deseq2 import run_deseq2

    adata, sets = cohort(sim.SimulationParameters(n_samples=samples, n_genes=genes, hazards=False, seed=1))
    rows = []
    _, wall, cpu = timed(run_deseq2, adata, DESIGN, CONTRAST, SETTINGS, 1)
    rows.append(("DESeq2 fit and Wald test of the primary model (reference)", wall, cpu))
    (observed, null), wall, cpu = timed(label_null, adata, k)
    rows.append((f"score null: fit without the contrast, then {k} labellings", wall, cpu))
    _, wall, cpu = timed(perm.phenotype_permutation_gsea, observed, null, sets, 2)
    rows.append((f"permutation GSEA: {len(sets)} GO BP sets x {k + 1} rankings, 2 threads", wall, cpu))
    _, wall, cpu = timed(ora_both_directions, observed, null, sets)
    rows.append(("permutation ORA, up and down: lists of 2% of the genes each", wall, cpu))
    table = pd.DataFrame(rows, columns=["step", "wall_s", "cpu_s"])
    table.attrs["shape"] = f"{adata.n_obs} samples x {adata.n_vars} genes"
    return table


def ora_both_directions(observed: pd.Series, null: np.ndarray, sets) -> list[pd.DataFrame]:
    """ORA's permutation columns of an up and a down list, each of the 2% genes with the most
    extreme statistic, with their null lists as the enrichment rule makes them."""
    from scipy.stats import hypergeom

    n_de = int(0.02 * len(observed))
    null_de = perm.null_top_lists(null, n_de, n_de)
    sizes = np.array([len(genes) for genes in sets.values()])
    tables = []
    for direction, ascending in (("up", False), ("down", True)):
        de = set(observed.sort_values(ascending=ascending).index[:n_de])
        overlap = np.array([len(de.intersection(genes)) for genes in sets.values()])
        p = hypergeom.sf(overlap - 1, len(observed), sizes, n_de)
        tables.append(perm.ora_permutation(p, sets, list(observed.index), null_de[direction]))
    return tables


# ----------------------------------------------------------------------------- null cohorts
def ora_any_call(adata, sets, observed: pd.Series, null: np.ndarray) -> bool:
    """Any set at ORA fdr_perm < 0.05 in either direction, the pipeline's lists (padj < 0.05 of
    the observed DESeq2 fit; null lists of their length)."""
    from trdpipe.enrichment.analysis import de_gene_lists, ora_collection, tested_genes
    from trdpipe.io.genesets import restrict_to_universe
    from trdpipe.model.deseq2 import run_deseq2

    tested = tested_genes(run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1))
    universe = list(tested.index)
    collection = restrict_to_universe("GO_BP", {t: ("", g) for t, g in sets.items()}, universe, 1, 10**6)
    annotated = tested.index.isin(collection.annotated)
    lists = de_gene_lists(tested[annotated], SETTINGS["alpha"])
    rows = pd.Index(observed.index).get_indexer(tested.index[annotated])
    null_de = perm.null_top_lists(null[rows], len(lists["up"]), len(lists["down"]))
    return any(
        (
            ora_collection(collection, list(tested.index[annotated]), genes, d, null_de[d])["fdr_perm"] < FDR
        ).any()
        for d, genes in lists.items()
        if genes
    )


def share_of_labellings_calling(observed: pd.Series, null: np.ndarray, sets, labellings: int) -> float:
    """The share of the cohort's first `labellings` rankings (the observed one, then permuted
    ones) that call any set at fdr_perm < FDR when taken as the observed ranking, the others as
    its null. Under the null the observed labelling is one of K + 1 exchangeable ones, so this is
    the cohort's false-positive rate itself, where one labelling per cohort gives a 0 or a 1."""
    membership = perm.Membership.of(sets, observed.index)
    values = np.column_stack([observed.to_numpy(dtype=float), perm.null_rankings(null)])
    scores = perm.enrichment_scores(values, membership)
    calls = 0
    for j in range(labellings):
        others = np.delete(scores, j, axis=1)
        calls += bool((perm.gsea_columns(membership.terms, scores[:, j], others)["fdr_perm"] < FDR).any())
    return calls / labellings


def null_cohorts(n_cohorts: int, samples: int, genes: int, labellings: int) -> pd.DataFrame:
    rows = []
    for seed in range(n_cohorts):
        params = sim.SimulationParameters.null_cohort(
            n_samples=samples, n_genes=genes, hazards=False, seed=seed
        )
        adata, sets = cohort(params)
        observed, null = label_null(adata)
        gsea = perm.phenotype_permutation_gsea(observed, null, sets)
        rows.append(
            {
                "seed": seed,
                "sets": len(sets),
                "gsea_calls": int((gsea["fdr_perm"] < FDR).sum()),
                "gsea_min_fdr": float(gsea["fdr_perm"].min()),
                "ora_any_call": ora_any_call(adata, sets, observed, null) if not labellings else np.nan,
                "share_calling": share_of_labellings_calling(observed, null, sets, labellings)
                if labellings
                else np.nan,
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- power
def power(sizes: list[int], n_cohorts: int, genes: int, term: str, shift: float) -> pd.DataFrame:
    rows = []
    for n in sizes:
        for seed in range(n_cohorts):
            for planted in (True, False):
                params = sim.SimulationParameters.null_cohort(
                    n_samples=n,
                    n_genes=genes,
                    hazards=False,
                    seed=1000 * n + seed,
                    pathways=(("GO_BP", term, shift),) if planted else (),
                )
                adata, sets = cohort(params)
                for name, method in METHODS.items():
                    res = method(adata, sets).set_index("term")
                    called = res["fdr"] < FDR
                    hit = bool(called.get(term, False) and np.sign(res.loc[term, "NES"]) == np.sign(shift))
                    rows.append(
                        {"samples": n, "seed": seed, "planted": planted, "method": name}
                        | {"planted_called": hit, "any_call": bool(called.any()), "calls": int(called.sum())}
                    )
                    print(rows[-1], flush=True)
    per_cohort = pd.DataFrame(rows)
    with_shift = per_cohort[per_cohort["planted"]].groupby(["method", "samples"])
    without = per_cohort[~per_cohort["planted"]].groupby(["method", "samples"])
    return pd.DataFrame(
        {
            "cohorts": with_shift.size(),
            "power": with_shift["planted_called"].mean(),
            "median_calls_with_shift": with_shift["calls"].median(),
            "false_positive_rate": without["any_call"].mean(),
        }
    ).reset_index()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["time", "null", "power"])
    ap.add_argument("--samples", type=int, default=60)
    ap.add_argument("--genes", type=int, default=3000)
    ap.add_argument("--permutations", type=int, default=K, help="with time: K")
    ap.add_argument("--cohorts", type=int, default=100)
    ap.add_argument(
        "--as-observed",
        type=int,
        default=0,
        help="with null: also the share of this many labellings per cohort that call a set when "
        "taken as the observed one (ORA then skipped)",
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 300])
    ap.add_argument("--term", default="GO:0002495", help="with power: the GO BP term shifted")
    ap.add_argument("--shift", type=float, default=-0.25, help="with power: its log2 shift")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    if args.mode == "time":
        table = time_null(args.samples, args.genes, args.permutations)
        print(table.attrs["shape"])
        print(table.to_string(index=False))
    elif args.mode == "null":
        table = null_cohorts(args.cohorts, args.samples, args.genes, args.as_observed)
        print(
            f"{len(table)} null cohorts of {args.samples} samples x {args.genes} genes, "
            f"{table['sets'].median():.0f} GO BP sets (median): any GSEA fdr_perm < {FDR}: "
            f"{int((table['gsea_calls'] > 0).sum())}"
            + ("" if args.as_observed else f"; any ORA fdr_perm < {FDR}: {int(table['ora_any_call'].sum())}")
        )
        if args.as_observed:
            share = table["share_calling"]
            print(
                f"share of {args.as_observed} labellings per cohort, each taken as observed, calling "
                f"any GSEA set: mean {share.mean():.4f} (standard error {share.std() / np.sqrt(len(share)):.4f}), "
                f"cohorts range {share.min():.3f}-{share.max():.3f}"
            )
    else:
        print(power(args.sizes, args.cohorts, args.genes, args.term, args.shift).to_string(index=False))


if __name__ == "__main__":
    main()
