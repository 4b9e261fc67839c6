"""Phenotype-permutation p-values for GSEA and ORA, from a statistic of the contrast under K
permutations of its labels within strata: the pathway null (results/enrichment/{contrast}/
label_null.h5ad: the score statistic of the contrast under the model without it, for the observed
labels too, trdpipe.calibration.score_null), or the calibration's refits (their Wald statistics).

Each permuted ranking is a ranking of the real samples under a labelling that keeps the
covariates, so it keeps the correlation between genes that gene-permutation GSEA (fgsea) ignores,
and respects the covariates that the Broad GSEA's label permutation of an expression matrix does
not. The observed ranking is by the same statistic as the permuted ones.

GSEA. The enrichment score (weight 1, the convention of enrichment.running_score) of every set
on the observed ranking and on each of the K permuted rankings. Every permuted ranking uses the
observed ranking's genes (enrichment.tested_genes: the same rows, the same symbol collapsing);
a gene without a statistic under a labelling (a Cook's outlier of a refit) is put at 0,
the middle of the ranking with no weight. As in the Broad GSEA (Subramanian et al. 2005), with
two changes that make it calibrated (below):
  NES_perm    = ES / |mean of the set's ES of the same sign| (>= 0, or < 0) over the observed
                and the K permuted rankings; every null ES is normalised by the same mean;
  pvalue_perm = (b + 1) / (n + 1), n = the set's null ES of the sign of its ES, b = those at
                least as extreme;
  fdr_perm    = the share of all (set, permutation) null |NES| >= |NES*| (at least one of them:
                the resolution of the K permutations), divided by the share of the collection's
                observed |NES| >= |NES*|, capped at 1; made a q-value: the running minimum from
                the least extreme set upwards, so that it is monotone in |NES|, and at least the
                largest pvalue_perm of the sets with |NES_perm| >= |NES*| (never below its own
                p-value, as a BH q-value; never 0);
  fdr_perm_at_resolution = no null |NES| reaches |NES*|: fdr_perm is the resolution of the K
                permutations, an upper bound that more permutations would lower.
A set none of whose null scores has the sign of its ES gets no NES_perm, p or FDR.
The Broad GSEA divides each null ES by a mean over the null scores alone, which includes that
score itself, so the null NES have a shorter tail than the observed one; and it estimates the
FDR of positive and negative NES separately, each at the nominal level. On null cohorts with
co-expressed sets (bench_enrichment.py --null-cohorts, K = 100) its FDR < 0.05 called some set
in 16 of 100 cohorts; with the mean over all K + 1 scores (observed and null scores then
exchangeable under the null) and one FDR over both signs, in 5 of 100.

ORA. For each permutation, up and down lists as long as the observed ones (the genes with the
largest and the smallest statistic under that labelling), within the same universe,
against the same sets. Lists cut at the permuted fit's own padj < alpha would be empty in most
permutations when the groups truly differ, and every observed overlap would then look
significant (on the toy: 1,588 of 3,073 GO sets at fdr_perm < 0.05 with 115 genes up); lists of
the observed length ask whether the observed genes hit a set more often than the same number of
top genes of a fit without the group difference, whose co-expressed genes rise together.
  pvalue_perm = (b + 1) / (K + 1), b = permutations whose hypergeometric p of the set is <= the
                observed one (same direction);
  fdr_perm    = the mean number of sets per permutation with null p <= p* (at least 1/K), divided
                by the number of observed sets with p <= p*, capped at 1 and made a q-value in p as
                GSEA's (pi0 = 1, as in Storey & Tibshirani 2003), per collection and direction;
  fdr_perm_at_resolution = no null p of any set is as small as p*.
"""

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.stats import hypergeom

from trdpipe.common import InputError

log = logging.getLogger("trd")

# (set member x ranking) cells per block of rankings scored at once: bounds memory (~8 arrays
# of this many float64 per block in flight, ~130 MB) while keeping NumPy's calls large.
BLOCK_CELLS = 2_000_000


# ----------------------------------------------------------------------------- input
def load_null_statistics(path, gene_ids) -> pd.DataFrame:
    """The Wald statistic of the given genes under every permutation: genes (gene_id) x
    permutations."""
    import anndata as ad

    try:
        null = ad.read_h5ad(path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(
            f"{path}: cannot read the permutation null statistics ({err}); expected "
            "an AnnData file (obs = permutations, var = genes)."
        ) from err
    missing = pd.Index(gene_ids).difference(null.var_names)
    if len(missing):
        raise InputError(
            f"{path}: {len(missing)} gene(s) of the DESeq2 results are not in the "
            f"permutation null statistics (var), e.g. {', '.join(missing[:5])}; "
            "expected the genes of the contrast's DESeq2 table."
        )
    if null.n_obs < 1:
        raise InputError(f"{path}: the permutation null statistics have no permutation (obs).")
    columns = null.var_names.get_indexer(gene_ids)
    return pd.DataFrame(
        np.asarray(null.X, dtype=float)[:, columns].T, index=pd.Index(gene_ids), columns=null.obs_names
    )


def load_observed_statistic(path, gene_ids) -> pd.Series | None:
    """The null's statistic under the observed labels (var column observed_statistic), by gene_id;
    None when the null holds none (the calibration's refits, whose statistic is the Wald one of
    the DE table)."""
    import anndata as ad

    var = ad.read_h5ad(path, backed="r").var
    if "observed_statistic" not in var.columns:
        return None
    return var["observed_statistic"].astype(float).reindex(pd.Index(gene_ids))


# ----------------------------------------------------------------------------- GSEA
@dataclass
class Membership:
    """Gene sets as one flat array of member genes (indices into the ranking's genes), set by set."""

    terms: list[str]
    genes: np.ndarray  # member gene indices, grouped by set
    set_of: np.ndarray  # set index of each member
    starts: np.ndarray  # first member of each set
    sizes: np.ndarray

    @classmethod
    def of(cls, sets: dict[str, list[str]], genes) -> "Membership":
        terms = list(sets)
        sizes = np.array([len(sets[t]) for t in terms], dtype=np.int64)
        # one lookup of every member: a lookup per set took a sixth of ORA's time on GO BP
        genes_of = pd.Index(genes).get_indexer([g for t in terms for g in sets[t]]).astype(np.int64)
        if (sizes == 0).any() or (genes_of < 0).any():
            raise ValueError("gene sets must be non-empty and restricted to the ranking's genes")
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return cls(terms, genes_of, np.repeat(np.arange(len(terms)), sizes), starts, sizes)


def enrichment_scores(values: np.ndarray, membership: Membership, threads: int = 1) -> np.ndarray:
    """ES (weight 1) of every set on every ranking; values: genes x rankings -> sets x rankings.

    The running score of a set after its j-th hit (0-based, at position p in the ranking) is
    cum_weight_j / total_weight - (p - j) / (n - size); just before it, minus that hit's
    weight. ES is the largest of the after-hit values or the smallest of the before-hit
    values, whichever is further from 0 (fgsea's rule), so only the set's members are visited.
    The members' positions in each ranking are put in order by a counting sort: the sets x genes
    membership matrix with its columns in ranking order, turned from columns into rows (SciPy's
    CSC to CSR), lists each set's members by position; sorting set * n + position instead took
    95% of the time. Blocks of rankings go to `threads` threads (NumPy's loops release the GIL).
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    n_genes, n_rankings = values.shape
    m = membership
    by_gene = sparse.csc_matrix((np.ones(len(m.genes)), (m.set_of, m.genes)), shape=(len(m.terms), n_genes))
    miss_step = 1.0 / (n_genes - m.sizes[m.set_of])  # the running score's step at a miss
    misses_before = np.arange(len(m.genes)) - m.starts[m.set_of]
    block = max(1, BLOCK_CELLS // max(len(m.genes), 1))

    def block_scores(start: int) -> np.ndarray:
        chunk = values[:, start : start + block]
        order = np.argsort(-chunk, axis=0, kind="stable")  # genes by decreasing statistic
        weight_at = np.abs(np.take_along_axis(chunk, order, axis=0)).T  # |statistic| by position
        # rankings x members: each set's members' positions, in order
        pos = np.stack([by_gene[:, order[:, r]].tocsr().indices for r in range(chunk.shape[1])])
        weight = np.take_along_axis(weight_at, pos, axis=1)
        total = np.add.reduceat(weight, m.starts, axis=1)
        if (total <= 0).any():  # every member at statistic 0: equal steps, as running_score takes
            weight[np.repeat(total <= 0, m.sizes, axis=1)] = 1.0
            total = np.add.reduceat(weight, m.starts, axis=1)
        step = weight / np.repeat(total, m.sizes, axis=1)
        after_hit = np.cumsum(step, axis=1)
        after_hit -= np.repeat(after_hit[:, m.starts] - step[:, m.starts], m.sizes, axis=1)
        after_hit -= (pos - misses_before) * miss_step
        top = np.maximum.reduceat(after_hit, m.starts, axis=1)
        after_hit -= step  # now: just before each hit
        bottom = np.minimum.reduceat(after_hit, m.starts, axis=1)
        return np.where(top > -bottom, top, bottom).T

    with ThreadPoolExecutor(max_workers=max(int(threads), 1)) as pool:
        return np.concatenate(list(pool.map(block_scores, range(0, n_rankings, block))), axis=1)


def same_sign_means(es: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Per set, the mean of its null ES of the sign of `es` (NaN when it has none)."""
    positive = null >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pos = np.where(positive, null, 0).sum(1) / positive.sum(1)
        mean_neg = np.where(~positive, null, 0).sum(1) / (~positive).sum(1)
    return np.where(es >= 0, mean_pos, mean_neg)


def normalise(es: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(NES, null NES): every score divided by the absolute mean of its set's scores of the same
    sign over the observed and the permuted rankings."""
    scores = np.column_stack([es, null])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pos = same_sign_means(np.ones(len(es)), scores)[:, None]
        mean_neg = same_sign_means(-np.ones(len(es)), scores)[:, None]
        normalised = np.where(scores >= 0, scores / np.abs(mean_pos), scores / np.abs(mean_neg))
    return normalised[:, 0], normalised[:, 1:]


def permutation_pvalues(es: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(b + 1) / (n + 1) against the set's null scores of the same sign (NaN when n = 0)."""
    positive = es[:, None] >= 0
    same_sign = np.where(positive, null >= 0, null < 0)
    extreme = same_sign & np.where(positive, null >= es[:, None], null <= es[:, None])
    n = same_sign.sum(1)
    return np.where(n > 0, (extreme.sum(1) + 1) / (n + 1), np.nan)


def pooled_fdr(nes: np.ndarray, nes_null: np.ndarray, pvalue: np.ndarray) -> np.ndarray:
    """FDR of every set from the null |NES| pooled over sets, permutations and both signs: a
    q-value in |NES| (q_form), never below the resolution of the pooled null."""
    fdr = np.full(nes.shape, np.nan)
    which = np.isfinite(nes)
    if not which.any():
        return fdr
    level = np.abs(nes[which])
    pooled = np.sort(np.abs(nes_null[np.isfinite(nes_null)]))
    observed = np.sort(level)
    null_count = len(pooled) - np.searchsorted(pooled, level, side="left")
    observed_share = (len(observed) - np.searchsorted(observed, level, side="left")) / len(observed)
    raw = np.minimum(np.maximum(null_count, 1) / len(pooled) / observed_share, 1.0)
    fdr[which] = q_form(raw, level, pvalue[which])
    return fdr


def beyond_null(nes: np.ndarray, nes_null: np.ndarray) -> np.ndarray:
    """True where no null |NES| of any set and permutation reaches the set's |NES|: its FDR is
    then the resolution of the K permutations, an upper bound of what more would estimate."""
    top = np.nanmax(np.abs(nes_null)) if np.isfinite(nes_null).any() else -np.inf
    return np.isfinite(nes) & (np.abs(nes) > top)


def q_form(raw: np.ndarray, extremeness: np.ndarray, pvalue: np.ndarray) -> np.ndarray:
    """FDR estimates made q-values: monotone in the evidence, and never below a p-value.

    The running minimum from the least extreme set upwards (a set's q-value is the smallest FDR
    of a list that includes it, as in Storey & Tibshirani 2003), then bounded below by the
    largest permutation p-value of the sets at least as extreme (a BH q-value is never below
    its own p-value; taking the largest over the more extreme sets keeps the order).
    """
    levels, at = np.unique(extremeness, return_inverse=True)  # tied sets get one value
    lowest, highest_p = np.full(len(levels), np.inf), np.zeros(len(levels))
    np.minimum.at(lowest, at, raw)
    np.fmax.at(highest_p, at, pvalue)
    fdr = np.minimum.accumulate(lowest)[at]
    floor = np.maximum.accumulate(highest_p[::-1])[::-1][at]
    return np.maximum(fdr, floor)


def null_rankings(null_stat: np.ndarray) -> np.ndarray:
    """Permuted statistics with NaN (no statistic under that labelling) put at 0."""
    missing = np.isnan(null_stat)
    if missing.any():
        log.info(
            "permutation null: %d of %d gene x permutation statistics are NaN, ranked as 0",
            int(missing.sum()),
            missing.size,
        )
    return np.where(missing, 0.0, null_stat)


def phenotype_permutation_gsea(
    ranking: pd.Series, null_stat: np.ndarray, sets: dict[str, list[str]], threads: int = 1
) -> pd.DataFrame:
    """Columns term, NES_perm, pvalue_perm, fdr_perm; ranking: observed statistic by symbol,
    null_stat: the same genes' statistic under each permutation (genes x permutations)."""
    membership = Membership.of(sets, ranking.index)
    values = np.column_stack([ranking.to_numpy(dtype=float), null_rankings(null_stat)])
    scores = enrichment_scores(values, membership, threads)
    return gsea_columns(membership.terms, scores[:, 0], scores[:, 1:])


def gsea_columns(terms: list[str], es: np.ndarray, null: np.ndarray) -> pd.DataFrame:
    """The permutation columns of the sets' observed ES and null ES (sets x permutations)."""
    nes, nes_null = normalise(es, null)
    pvalue = permutation_pvalues(es, null)
    nes[np.isnan(pvalue)] = np.nan
    unestimated = int(np.isnan(pvalue).sum())
    if unestimated:
        log.warning(
            "phenotype-permutation GSEA: %d sets have no null score of the sign of their "
            "ES among the %d permutations, so no NES_perm, pvalue_perm or fdr_perm",
            unestimated,
            null.shape[1],
        )
    return pd.DataFrame(
        {
            "term": terms,
            "NES_perm": nes,
            "pvalue_perm": pvalue,
            "fdr_perm": pooled_fdr(nes, nes_null, pvalue),
            "fdr_perm_at_resolution": beyond_null(nes, nes_null),
        }
    )


# ----------------------------------------------------------------------------- ORA
def hypergeometric_pvalues(
    overlap: np.ndarray, sizes: np.ndarray, n_de: np.ndarray, universe: int
) -> np.ndarray:
    """P(X >= overlap) of every set (rows) and DE list (columns); exactly 1 where the overlap
    is 0. SciPy's hypergeometric costs microseconds a call, and a collection x K permutations
    repeats few distinct (overlap, set size, list length): it is evaluated once on the grid of
    the distinct sizes, list lengths and overlaps 0 to the largest, then looked up."""
    size_values, size_at = np.unique(sizes, return_inverse=True)
    length_values, length_at = np.unique(n_de, return_inverse=True)
    k = np.arange(int(overlap.max(initial=0)) + 1)
    table = hypergeom.sf(k - 1, universe, size_values[:, None, None], length_values[None, :, None])
    pvalues = table[size_at[:, None], length_at[None, :], overlap]
    return np.where(overlap > 0, pvalues, 1.0)


def ora_permutation(
    observed: np.ndarray, sets: dict[str, list[str]], universe: list[str], null_de: np.ndarray
) -> pd.DataFrame:
    """Columns term, pvalue_perm, fdr_perm of one collection and direction.

    observed: the observed hypergeometric p of each set (in the order of `sets`); null_de:
    universe genes x permutations, True where the gene is in the permuted DE list.
    """
    m = Membership.of(sets, universe)
    matrix = sparse.csr_matrix(
        (np.ones(len(m.genes)), (m.set_of, m.genes)), shape=(len(m.terms), len(universe))
    )
    # the permuted lists are short: a sparse product counts only their members
    overlap = (matrix @ sparse.csc_matrix(null_de, dtype=float)).toarray().round().astype(np.int64)
    null = hypergeometric_pvalues(overlap, m.sizes, null_de.sum(0), len(universe))
    pvalue = ((null <= observed[:, None]).sum(1) + 1) / (null.shape[1] + 1)
    return pd.DataFrame(
        {
            "term": m.terms,
            "pvalue_perm": pvalue,
            "fdr_perm": pooled_qvalues(observed, null, pvalue),
            "fdr_perm_at_resolution": observed < null.min(initial=1.0),
        }
    )


def pooled_qvalues(observed: np.ndarray, null: np.ndarray, pvalue: np.ndarray) -> np.ndarray:
    """Mean null count per permutation at p <= p* (at least one: the resolution of the K
    permutations) over the observed count, made a q-value in p* (q_form)."""
    pooled = np.sort(null.ravel())
    null_count = np.maximum(np.searchsorted(pooled, observed, side="right"), 1) / null.shape[1]
    obs_count = np.searchsorted(np.sort(observed), observed, side="right")
    return q_form(np.minimum(null_count / obs_count, 1.0), -observed, pvalue)


def null_top_lists(null_stat: np.ndarray, n_up: int, n_down: int) -> dict[str, np.ndarray]:
    """Permuted up and down lists (genes x permutations) as long as the observed ones: in each
    permutation the n_up genes with the largest and the n_down with the smallest statistic
    (genes without one last; ties by gene order)."""
    return {"up": top_genes(null_stat, n_up), "down": top_genes(-null_stat, n_down)}


def top_genes(scores: np.ndarray, n: int) -> np.ndarray:
    """True for the n largest scores of each column (NaN last, ties by row order): the first n
    of a stable sort, found by a partial sort (a full sort of every column cost seconds)."""
    if n <= 0:
        return np.zeros(scores.shape, dtype=bool)
    n = min(n, scores.shape[0])
    filled = np.where(np.isnan(scores), -np.inf, scores)
    by_column = np.negative(filled.T, order="C")  # a row per column: partitioned along it, faster
    by_column.partition(n - 1, axis=1)
    nth = -by_column[:, n - 1]  # the n-th largest score of each column
    above, tied = filled > nth, filled == nth
    chosen = above | tied
    # where more scores tie with the n-th than the list has room for, the first in row order
    crowded = np.flatnonzero(chosen.sum(0) > n)
    if len(crowded):
        room = n - above[:, crowded].sum(0)
        first = np.cumsum(tied[:, crowded], axis=0) <= room
        chosen[:, crowded] = above[:, crowded] | (tied[:, crowded] & first)
    return chosen
