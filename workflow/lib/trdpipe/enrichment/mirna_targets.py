"""Across layers: do the miRNAs a contrast calls move their predicted targets the opposite way?

A miRNA represses its targets, so a miRNA called up in the test group predicts its targets down
among the mRNA calls, and a miRNA called down predicts them up.

Targets: a GMT of miRNA name -> target genes, read by trdpipe.io.mirna_targets. No miRNA-target
resource found has a permissive licence (resources/mirna_targets/README.md), so the user gives it.

Enrichment (target_enrichment.tsv), per called miRNA (padj < alpha of the small-RNA contrast):
  universe     the mRNA genes the contrast tested (a Wald statistic and a p-value), by gene_id;
  list         the mRNA calls in the direction opposite to the miRNA (padj < alpha and the sign of
               log2FoldChange, as the pathway ORA's lists);
  n_called     the miRNA's targets in that list;
  pvalue_perm  (b + 1) / (K + 1), b = the label permutations of the mRNA contrast whose list of
               the same length (the genes with the most extreme score statistic in that direction
               under the permuted labels: results/enrichment/{contrast}/label_null.h5ad, the
               pathway tests' null) holds at least n_called targets. The permuted labellings keep
               the samples' expression, so targets that are co-expressed rise and fall together in
               the null as in the data: gene-gene correlation is respected, as in the pathway ORA
               (phenotype_permutation.null_top_lists);
  fdr_perm     Benjamini-Hochberg over the called miRNAs with targets in the universe.
The hypergeometric p-value (pvalue_hypergeom) treats the genes as independent and is kept, so
labelled, for comparison.

Correlation (target_correlation.tsv): for each called miRNA and each of its targets the mRNA
contrast calls (either direction), Spearman's rho of the two layers' blind VST over the contrast's
samples that both layers measured, with n and its two-sided p-value (Student's t on n - 2 degrees
of freedom, as scipy.stats.spearmanr), BH over the table's rows.
"""

import logging

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import hypergeom, rankdata
from scipy.stats import t as student_t

from trdpipe.common import format_list
from trdpipe.enrichment import phenotype_permutation as perm
from trdpipe.model.tables import bh

log = logging.getLogger("trd")

OPPOSITE = {"up": "down", "down": "up"}
ENRICHMENT_COLUMNS = [
    "mirna",
    "mirna_log2FoldChange",
    "mirna_padj",
    "mirna_direction",
    "target_direction",
    "n_targets_listed",
    "n_targets",
    "list_size",
    "n_called",
    "null_mean",
    "median_target_log2FoldChange",
    "pvalue_hypergeom",
    "pvalue_perm",
    "fdr_perm",
    "called_targets",
]
CORRELATION_COLUMNS = [
    "mirna",
    "gene_id",
    "gene_symbol",
    "mirna_log2FoldChange",
    "mrna_log2FoldChange",
    "n",
    "spearman_rho",
    "pvalue",
    "padj",
]


# ----------------------------------------------------------------------------- inputs
def called_mirnas(mirna_de: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The small-RNA contrast's calls (padj < alpha), by gene_id (the mature miRNA name), with
    their direction."""
    called = mirna_de[(mirna_de["padj"] < alpha) & (mirna_de["log2FoldChange"] != 0)]
    called = called.set_index(called["gene_id"].astype(str))[["log2FoldChange", "padj"]]
    called["direction"] = np.where(called["log2FoldChange"] > 0, "up", "down")
    return called


def mrna_calls(universe: pd.DataFrame, alpha: float) -> dict[str, pd.Index]:
    """The mRNA contrast's up and down calls among the universe (by gene_id)."""
    significant = universe["padj"] < alpha
    return {
        "up": universe.index[significant & (universe["log2FoldChange"] > 0)],
        "down": universe.index[significant & (universe["log2FoldChange"] < 0)],
    }


def tested_universe(mrna_de: pd.DataFrame) -> pd.DataFrame:
    """The mRNA genes the contrast tested, indexed by gene_id."""
    tested = mrna_de[mrna_de["stat"].notna() & mrna_de["pvalue"].notna()]
    return tested.set_index(tested["gene_id"].astype(str))


# ----------------------------------------------------------------------------- enrichment
def target_enrichment(
    called: pd.DataFrame,
    targets: dict[str, list[str]],
    universe: pd.DataFrame,
    null_stat: np.ndarray,
    alpha: float,
) -> pd.DataFrame:
    """One row per called miRNA (called_mirnas), its targets' enrichment among the mRNA calls of
    the opposite direction against the label permutations (module docstring). universe:
    tested_universe; null_stat: its genes x K permutations, the score statistic of the contrast
    under each permuted labelling."""
    calls = mrna_calls(universe, alpha)
    null_lists = perm.null_top_lists(null_stat, len(calls["up"]), len(calls["down"]))
    rows = [
        mirna_row(name, mirna, targets.get(name, []), universe, calls, null_lists)
        for name, mirna in called.iterrows()
    ]
    table = pd.DataFrame(rows, columns=[c for c in ENRICHMENT_COLUMNS if c != "fdr_perm"])
    table["fdr_perm"] = bh(table["pvalue_perm"].to_numpy(dtype=float))
    return table[ENRICHMENT_COLUMNS].sort_values(
        ["pvalue_perm", "mirna"], kind="mergesort", na_position="last"
    )


def mirna_row(name, mirna, listed, universe, calls, null_lists) -> dict:
    """The enrichment of one called miRNA's targets among the opposite mRNA calls."""
    target_direction = OPPOSITE[mirna["direction"]]
    in_universe = universe.index.get_indexer(listed)
    in_universe = in_universe[in_universe >= 0]
    called_list = calls[target_direction]
    hits = universe.index[in_universe].intersection(called_list)
    n, size, k = len(in_universe), len(called_list), len(hits)
    null_counts = null_lists[target_direction][in_universe].sum(axis=0)
    return {
        "mirna": name,
        "mirna_log2FoldChange": mirna["log2FoldChange"],
        "mirna_padj": mirna["padj"],
        "mirna_direction": mirna["direction"],
        "target_direction": target_direction,
        "n_targets_listed": len(listed),
        "n_targets": n,
        "list_size": size,
        "n_called": k,
        "null_mean": float(null_counts.mean()) if n else np.nan,
        "median_target_log2FoldChange": (
            float(universe["log2FoldChange"].iloc[in_universe].median()) if n else np.nan
        ),
        "pvalue_hypergeom": float(hypergeom.sf(k - 1, len(universe), n, size)) if n else np.nan,
        "pvalue_perm": (float((null_counts >= k).sum() + 1) / (len(null_counts) + 1)) if n else np.nan,
        "called_targets": ";".join(gene_names(universe, hits)),
    }


def gene_names(universe: pd.DataFrame, genes: pd.Index) -> list[str]:
    """The genes' symbols, their gene_id where they have none."""
    symbols = universe.loc[genes, "gene_symbol"].fillna("").astype(str)
    return [symbol or gene for gene, symbol in zip(genes, symbols)]


# ----------------------------------------------------------------------------- correlation
def target_correlations(
    called: pd.DataFrame,
    targets: dict[str, list[str]],
    universe: pd.DataFrame,
    alpha: float,
    mirna_vst: ad.AnnData,
    mrna_vst: ad.AnnData,
    samples,
) -> pd.DataFrame:
    """Spearman's rho of each called miRNA with each of its called targets over the given samples
    that both VSTs hold (module docstring)."""
    both = pd.Index(samples).intersection(mirna_vst.obs_names).intersection(mrna_vst.obs_names)
    calls = universe.index[universe["padj"] < alpha]
    pairs = [(m, g) for m in called.index for g in targets.get(m, []) if g in calls]
    if len(both) < 3 or not pairs:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    mirnas, genes = pd.Index(dict.fromkeys(m for m, _ in pairs)), pd.Index(dict.fromkeys(g for _, g in pairs))
    mirna_ranks = standard_ranks(vst_values(mirna_vst, both, mirnas))
    mrna_ranks = standard_ranks(vst_values(mrna_vst, both, genes))
    m_at, g_at = mirnas.get_indexer([m for m, _ in pairs]), genes.get_indexer([g for _, g in pairs])
    n = len(both)
    rho = np.clip(np.einsum("ij,ij->j", mirna_ranks[:, m_at], mrna_ranks[:, g_at]) / n, -1.0, 1.0)
    table = pd.DataFrame(
        {
            "mirna": [m for m, _ in pairs],
            "gene_id": [g for _, g in pairs],
            "gene_symbol": universe.loc[[g for _, g in pairs], "gene_symbol"].to_numpy(),
            "mirna_log2FoldChange": called.loc[[m for m, _ in pairs], "log2FoldChange"].to_numpy(),
            "mrna_log2FoldChange": universe.loc[[g for _, g in pairs], "log2FoldChange"].to_numpy(),
            "n": n,
            "spearman_rho": rho,
            "pvalue": spearman_pvalues(rho, n),
        }
    )
    table["padj"] = bh(table["pvalue"].to_numpy())
    return table[CORRELATION_COLUMNS].sort_values(["pvalue", "mirna", "gene_id"], kind="mergesort")


def vst_values(vst: ad.AnnData, samples: pd.Index, features: pd.Index) -> np.ndarray:
    """samples x features of a VST file."""
    return np.asarray(vst[samples, features].X, dtype=float)


def standard_ranks(values: np.ndarray) -> np.ndarray:
    """Each column's ranks (ties averaged), centred and scaled to unit population SD (a constant
    column gives NaN): the mean product of two such columns is Spearman's rho."""
    ranks = rankdata(values, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ranks - ranks.mean(axis=0)) / ranks.std(axis=0)


def spearman_pvalues(rho: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-value of rho with t = rho sqrt((n - 2) / (1 - rho^2)) on n - 2 degrees of
    freedom (scipy.stats.spearmanr's)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = rho * np.sqrt((n - 2) / ((1.0 - rho) * (1.0 + rho)))
    return 2 * student_t.sf(np.abs(t), n - 2)


def log_calls(enrichment: pd.DataFrame, fdr: float) -> None:
    hits = enrichment[enrichment["fdr_perm"] < fdr]
    log.info(
        "%d called miRNAs; %d with their targets enriched among the opposite mRNA calls at fdr_perm < %g%s",
        len(enrichment),
        len(hits),
        fdr,
        f": {format_list(hits['mirna'])}" if len(hits) else "",
    )
