"""Pathway enrichment of one DESeq2 contrast: preranked GSEA on the Wald statistic, and ORA of
up- and down-regulated genes, for every configured gene-set collection separately.

Genes used (the "tested" genes): rows of the DESeq2 table with a Wald statistic and a p-value
(genes removed by independent filtering have padj NaN but were tested, so they stay; genes
without a p-value -- all-zero counts or Cook's outliers -- are left out) and a gene symbol.
A symbol on several rows (e.g. a GENCODE _PAR_Y copy) is counted once, through its row with
the largest baseMean.

GSEA: gseapy's fgsea multilevel algorithm (adaptive multilevel p-values, not limited to
1/permutations; chosen in bench/bench_enrichment.py), genes ranked by the Wald statistic
(weight 1), seed and number of permutations (for the NES normalisation) from the config;
padj = BH over the collection's sets; leading edge = the set's genes from the top of the
ranking to the running-score peak (ES > 0), or from the trough to the bottom (ES < 0).

GSEA with a permutation null (the p-values the report leads with): given a statistic of the
contrast under K label permutations (results/enrichment/{contrast}/label_null.h5ad, the score
statistic of the contrast under the model without it, for the observed labels too), NES_perm,
pvalue_perm and fdr_perm compare every set's enrichment score on the observed ranking by that
statistic with its scores on the K permuted rankings
(workflow/lib/trdpipe/enrichment/phenotype_permutation.py). fgsea's NES, pvalue and padj
come from gene permutations, which treat genes as independent; they stay in the table, labelled
gene-permutation. Without a null input the permutation columns are empty (NA).

ORA: the universe of a collection is the tested genes that some set of the collection (before
the size limits) annotates, as in clusterProfiler; the DE lists are the universe's genes with
padj < the contrast's alpha and log2FoldChange > 0 (up) or < 0 (down); one-sided hypergeometric
p = P(X >= overlap); padj = BH within collection and direction; odds ratio of the 2x2 table
(0.5 added to every cell when one is 0). With a null input, pvalue_perm and fdr_perm compare
each set's p with its p on lists of the observed length from the K permuted rankings
(workflow/lib/trdpipe/enrichment/phenotype_permutation.py).
"""

import logging
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy.stats import hypergeom

from trdpipe.common import InputError, format_list
from trdpipe.enrichment import phenotype_permutation as perm
from trdpipe.io.genesets import Collection, load_collection
from trdpipe.model.tables import bh

log = logging.getLogger("trd")

DE_COLUMNS = ["gene_id", "gene_symbol", "baseMean", "log2FoldChange", "stat", "pvalue", "padj"]
GSEA_PERM_COLUMNS = ["NES_perm", "pvalue_perm", "fdr_perm", "fdr_perm_at_resolution"]
GSEA_COLUMNS = [
    "collection",
    "term",
    "name",
    "size",
    "ES",
    *GSEA_PERM_COLUMNS,
    "NES",
    "pvalue",
    "log2err",
    "padj",
    "leading_edge",
]
ORA_PERM_COLUMNS = ["pvalue_perm", "fdr_perm", "fdr_perm_at_resolution"]
ORA_COLUMNS = [
    "collection",
    "direction",
    "term",
    "name",
    "size",
    "overlap",
    "universe",
    "n_de",
    "pvalue",
    "padj",
    *ORA_PERM_COLUMNS,
    "odds_ratio",
    "overlap_genes",
]
# gsea.tsv's order: the permutation answer first; fgsea's p-value orders the sets it ties
GSEA_ORDER = ["fdr_perm", "pvalue_perm", "pvalue", "term"]


# ----------------------------------------------------------------------------- inputs
def load_de_results(path) -> pd.DataFrame:
    try:
        de = pd.read_csv(path, sep="\t", dtype={"gene_id": str, "gene_symbol": str}, keep_default_na=True)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(f"{path}: cannot read the DESeq2 results ({err}).") from err
    missing = [c for c in DE_COLUMNS if c not in de.columns]
    if missing:
        raise InputError(
            f"{path}: DESeq2 results lack column(s) {', '.join(missing)}; expected {', '.join(DE_COLUMNS)}."
        )
    return de


def tested_genes(de: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol among tested genes (rule in the module docstring), sorted by stat."""
    tested = de[de["stat"].notna() & de["pvalue"].notna()].copy()
    tested["gene_symbol"] = tested["gene_symbol"].fillna("").astype(str).str.strip()
    tested = tested[tested["gene_symbol"] != ""]
    tested = tested.sort_values("baseMean", ascending=False, kind="mergesort")
    tested = tested.drop_duplicates("gene_symbol", keep="first")
    return tested.sort_values("stat", ascending=False, kind="mergesort").set_index("gene_symbol")


# ----------------------------------------------------------------------------- GSEA
def running_score(ranking: pd.Series, genes) -> np.ndarray:
    """GSEA running enrichment score (weight 1) along the ranking sorted by decreasing statistic."""
    ranking = ranking.sort_values(ascending=False, kind="mergesort")
    hit = ranking.index.isin(list(genes))
    weights = np.abs(ranking.to_numpy()) * hit
    n_hit = hit.sum()
    step_hit = weights / weights.sum() if weights.sum() > 0 else hit / max(n_hit, 1)
    step_miss = (~hit) / (len(ranking) - n_hit)
    return np.cumsum(step_hit - step_miss)


def leading_edge(values: np.ndarray, hits: np.ndarray, es: float) -> np.ndarray:
    """Positions (in the ranking) of the leading-edge genes, from the running score at the hits.

    values: the statistic sorted decreasingly; hits: sorted positions of the set's genes.
    ES > 0: the hits up to the peak; ES < 0: the hits from the trough to the end.
    """
    n, n_hit = len(values), len(hits)
    weights = np.abs(values[hits])
    total = weights.sum()
    cum = np.cumsum(weights) / total if total > 0 else np.arange(1, n_hit + 1) / n_hit
    after_hit = cum - (hits - np.arange(n_hit)) / (n - n_hit)
    if es >= 0:
        return hits[: int(np.argmax(after_hit)) + 1]
    before_hit = after_hit - (weights / total if total > 0 else 1 / n_hit)
    return hits[int(np.argmin(before_hit)) :]


FGSEA_SAMPLE_SIZE = 101  # fgsea's default sampleSize: random sets per multilevel level
GSEA_CHUNK = 250  # gene sets per call of the fgsea core: bounds memory (it keeps a running score per set)


def run_gsea(
    ranking: pd.Series, sets: dict[str, list[str]], permutations: int, seed: int, threads: int
) -> pd.DataFrame:
    """Columns term, ES, NES, pvalue, log2err, leading_edge.

    log2err is fgsea's standard error of log2(pvalue), so that a reader can tell a p-value
    resolved by the `permutations` random sets from one extrapolated by the multilevel
    sampler (FGSEA_SAMPLE_SIZE samples per level); NaN where fgsea gives no bound.

    gseapy's fgsea-multilevel core (gseapy.gse.fgsea_rs, what gseapy.prerank(method='multilevel')
    runs) is called directly, GSEA_CHUNK sets at a time: prerank itself converts every set's
    running score to Python floats, ~6 GB for GO BP on 18,000 genes (bench/bench_enrichment.py).
    Sets are independent in fgsea (own null per set size), so chunks change nothing but memory
    and the random draws. Chunks hold sets of similar size, because the core samples a null
    for every distinct size in its call (27% less time than chunks of mixed sizes), largest
    sets first so that the slowest chunks do not end the run on one thread.
    The core's own thread count gives no speed-up (measured), but it runs outside the GIL, so
    chunks go to `threads` Python threads; each chunk has the same seed, so the result does
    not depend on their scheduling.
    """
    from gseapy.gse import fgsea_rs

    ranking = ranking.sort_values(ascending=False, kind="mergesort")
    genes, values = list(ranking.index), ranking.to_numpy(dtype=float)
    value_list = values.tolist()
    terms = sorted(sets, key=lambda term: (-len(sets[term]), term))

    def run_chunk(chunk_terms: list[str]) -> list[tuple]:
        chunk = {t: sets[t] for t in chunk_terms}
        sizes = [len(g) for g in chunk.values()]
        result = fgsea_rs(
            genes,
            value_list,
            chunk,
            1.0,
            min(sizes),
            max(sizes),
            FGSEA_SAMPLE_SIZE,
            permutations,
            1e-50,
            1,
            seed,
        )
        rows = []
        for summary in result.summaries:
            hits = np.sort(np.asarray(summary.hits, dtype=int))
            edge = leading_edge(values, hits, summary.es)
            rows.append(
                (
                    summary.term,
                    summary.es,
                    summary.nes,
                    summary.pval,
                    summary.log2err,
                    ";".join(genes[i] for i in edge),
                )
            )
        return rows

    chunks = [terms[start : start + GSEA_CHUNK] for start in range(0, len(terms), GSEA_CHUNK)]
    with ThreadPoolExecutor(max_workers=max(int(threads), 1)) as pool:
        rows = [row for chunk_rows in pool.map(run_chunk, chunks) for row in chunk_rows]
    return pd.DataFrame(rows, columns=["term", "ES", "NES", "pvalue", "log2err", "leading_edge"])


def gsea_collection(
    ranking: pd.Series,
    collection: Collection,
    permutations: int,
    seed: int,
    threads: int,
    null_stat: np.ndarray | None = None,
    null_ranking: pd.Series | None = None,
) -> pd.DataFrame:
    """fgsea's columns and, given the ranking's genes' statistics under each permutation
    (genes x permutations), the phenotype-permutation ones (NA without). null_ranking: the
    observed labels ranked by the null's own statistic (default: the ranking's)."""
    sets = {term: genes for term, (_, genes) in collection.sets.items()}
    if not sets:
        return pd.DataFrame(columns=GSEA_COLUMNS)
    res = run_gsea(ranking, sets, permutations, seed, threads)
    res["collection"] = collection.name
    res["name"] = res["term"].map({t: d for t, (d, _) in collection.sets.items()})
    res["size"] = res["term"].map({t: len(g) for t, g in sets.items()})
    res["padj"] = bh(res["pvalue"].to_numpy())
    warn_unestimated(res, collection.name, permutations)
    if null_stat is None:
        res[GSEA_PERM_COLUMNS] = np.nan
    else:
        observed = ranking if null_ranking is None else null_ranking
        res = res.merge(perm.phenotype_permutation_gsea(observed, null_stat, sets, threads), on="term")
    return res[GSEA_COLUMNS].sort_values(GSEA_ORDER, kind="mergesort")


def warn_unestimated(res: pd.DataFrame, collection: str, permutations: int) -> None:
    """fgsea gives no p-value or NES for a set when fewer than 10 of the random sets of its
    size scored with its sign (a ranking whose statistics are mostly of one sign)."""
    unestimated = res.loc[res["pvalue"].isna(), "term"]
    if len(unestimated):
        log.warning(
            "GSEA %s: %d sets have no p-value, padj or NES (%s): fewer than 10 of the %d "
            "random sets of their size had an enrichment score of their sign, because the "
            "ranking's statistics are mostly of the other sign. A larger "
            "enrichment.permutations may estimate them.",
            collection,
            len(unestimated),
            format_list(sorted(unestimated)),
            permutations,
        )


# ----------------------------------------------------------------------------- ORA
def odds_ratio(overlap: np.ndarray, size: np.ndarray, n_de: int, universe: int) -> np.ndarray:
    a = overlap.astype(float)
    b = (size - overlap).astype(float)  # in set, not DE
    c = (n_de - overlap).astype(float)  # DE, not in set
    d = (universe - size - n_de + overlap).astype(float)
    zero = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a, b, c, d = (x + 0.5 * zero for x in (a, b, c, d))
    return (a * d) / (b * c)


def ora_collection(
    collection: Collection,
    universe: list[str],
    de_genes: list[str],
    direction: str,
    null_de: np.ndarray | None = None,
) -> pd.DataFrame:
    """Hypergeometric test of every set of the collection (already restricted to the universe);
    with null_de (universe genes x permutations, True in a permuted DE list), the permutation
    columns (NA without)."""
    if not collection.sets or not de_genes:
        return pd.DataFrame(columns=ORA_COLUMNS)
    de_set = set(de_genes)
    rank = {g: i for i, g in enumerate(de_genes)}  # overlap genes listed in DE order
    terms = list(collection.sets)
    sizes = np.array([len(collection.sets[t][1]) for t in terms])
    overlaps = [sorted(de_set.intersection(collection.sets[t][1]), key=rank.get) for t in terms]
    k = np.array([len(o) for o in overlaps])
    n_universe, n_de = len(universe), len(de_genes)
    pvalues = hypergeom.sf(k - 1, n_universe, sizes, n_de)
    res = pd.DataFrame(
        {
            "collection": collection.name,
            "direction": direction,
            "term": terms,
            "name": [collection.sets[t][0] for t in terms],
            "size": sizes,
            "overlap": k,
            "universe": n_universe,
            "n_de": n_de,
            "pvalue": pvalues,
            "padj": bh(pvalues),
            "odds_ratio": odds_ratio(k, sizes, n_de, n_universe),
            "overlap_genes": [";".join(o) for o in overlaps],
        }
    )
    if null_de is None:
        res[ORA_PERM_COLUMNS] = np.nan
    else:
        sets = {t: genes for t, (_, genes) in collection.sets.items()}
        res = res.merge(perm.ora_permutation(pvalues, sets, universe, null_de), on="term")
    return res[ORA_COLUMNS].sort_values(["pvalue", "term"], kind="mergesort")


def de_gene_lists(tested: pd.DataFrame, alpha: float) -> dict[str, list[str]]:
    """Up and down genes at padj < alpha, strongest first."""
    significant = tested[tested["padj"] < alpha]
    up = significant[significant["log2FoldChange"] > 0].sort_values("stat", ascending=False)
    down = significant[significant["log2FoldChange"] < 0].sort_values("stat")
    return {"up": list(up.index), "down": list(down.index)}


def _short(text: str, width: int = 55) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def running_score_file(collection: str, direction: str, rank: int, term: str) -> str:
    """File name of a running-score plot in running_scores/ (the report finds the plots by it)."""
    return f"{safe_name(collection)}_{direction}_{rank:02d}_{safe_name(term)}.png"


# ----------------------------------------------------------------------------- driver
def enrichment(
    de: pd.DataFrame,
    collections: dict[str, str],
    annotation: pd.DataFrame | None,
    *,
    alpha: float,
    min_size: int,
    max_size: int,
    permutations: int,
    seed: int,
    threads: int = 1,
    null: pd.DataFrame | None = None,
    null_observed: pd.Series | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, dict[str, Collection]]:
    """(gsea, ora, ranking, collections restricted to the data) for one contrast.

    null: a statistic of the contrast under each permutation, genes (gene_id) x permutations
    (phenotype_permutation.load_null_statistics); None leaves the permutation columns NA.
    null_observed: the same statistic under the observed labels, by gene_id, which the
    permutation columns of GSEA then rank (phenotype_permutation.load_observed_statistic);
    None: the null's statistic is the DE table's Wald statistic.
    """
    tested = tested_genes(de)
    ranking = tested["stat"].astype(float)
    universe = list(tested.index)
    log.info(
        "%d genes tested with a symbol (%d DESeq2 rows; %d without p-value, %d without symbol "
        "or duplicated symbol left out)",
        len(universe),
        len(de),
        int(de["pvalue"].isna().sum()),
        int(de["pvalue"].notna().sum() - len(universe)),
    )
    null_stat, null_ranking = None, None
    if null is not None:
        # the permuted rankings use the observed one's genes: same rows, same symbol collapsing
        null_stat = null.loc[tested["gene_id"]].to_numpy(dtype=float)
        log.info("permutation null: %d permutations", null_stat.shape[1])
    if null_observed is not None:
        null_ranking = pd.Series(
            null_observed.loc[tested["gene_id"]].fillna(0.0).to_numpy(), index=tested.index
        )

    gsea_tables, ora_tables, loaded = [], [], {}
    for name, path in collections.items():
        collection = load_collection(name, path, universe, min_size, max_size, annotation)
        loaded[name] = collection
        log.info("%s", collection.summary())
        gsea_tables.append(
            gsea_collection(ranking, collection, permutations, seed, threads, null_stat, null_ranking)
        )
        annotated = tested.index.isin(collection.annotated)
        de_lists = de_gene_lists(tested[annotated], alpha)
        log.info(
            "ORA %s: universe %d tested genes annotated in the collection; at padj < %g, %d up and %d down",
            name,
            int(annotated.sum()),
            alpha,
            len(de_lists["up"]),
            len(de_lists["down"]),
        )
        null_de = (
            None
            if null_stat is None
            else perm.null_top_lists(null_stat[annotated], len(de_lists["up"]), len(de_lists["down"]))
        )
        for direction, genes in de_lists.items():
            ora_tables.append(
                ora_collection(
                    collection,
                    list(tested.index[annotated]),
                    genes,
                    direction,
                    None if null_de is None else null_de[direction],
                )
            )
    # empty tables (a direction without DE genes) would turn the numeric columns into objects
    gsea_tables, ora_tables = [t for t in gsea_tables if len(t)], [t for t in ora_tables if len(t)]
    gsea = pd.concat(gsea_tables, ignore_index=True) if gsea_tables else pd.DataFrame(columns=GSEA_COLUMNS)
    ora = pd.concat(ora_tables, ignore_index=True) if ora_tables else pd.DataFrame(columns=ORA_COLUMNS)
    return gsea[GSEA_COLUMNS], ora[ORA_COLUMNS], ranking, loaded


def log_top(gsea: pd.DataFrame, ora: pd.DataFrame, padj_cut: float) -> None:
    for name, g in gsea.groupby("collection", sort=False):
        sig = g[g["padj"] < padj_cut]
        log.info(
            "GSEA %s: %d of %d sets at gene-permutation padj < %g (%d up, %d down); %d at "
            "label-permutation fdr_perm < %g",
            name,
            len(sig),
            len(g),
            padj_cut,
            int((sig["NES"] > 0).sum()),
            int((sig["NES"] < 0).sum()),
            int((g["fdr_perm"] < padj_cut).sum()),
            padj_cut,
        )
        for _, row in g.head(5).iterrows():
            log.info(
                "  %s %s NES_perm %.2f fdr_perm %.3g NES %.2f padj %.3g",
                row["term"],
                _short(str(row["name"]), 60),
                row["NES_perm"],
                row["fdr_perm"],
                row["NES"],
                row["padj"],
            )
    for (name, direction), g in ora.groupby(["collection", "direction"], sort=False):
        log.info(
            "ORA %s %s: %d of %d sets at padj < %g; %d at fdr_perm < %g",
            name,
            direction,
            int((g["padj"] < padj_cut).sum()),
            len(g),
            padj_cut,
            int((g["fdr_perm"] < padj_cut).sum()),
            padj_cut,
        )
