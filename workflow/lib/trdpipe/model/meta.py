"""Meta-analysis of cohorts beside the pooled (mega-) analysis.

The mega-analysis is the primary model, with the cohort column in its design. The meta-analysis
fits each cohort alone with the same design minus the cohort term, then combines the cohorts' log2
fold changes per gene by random-effects inverse-variance meta-analysis: statsmodels'
`combine_effects` with tau^2 by Paule-Mandel (`method_re="iterated"`). Its DerSimonian-Laird
(`"chi2"`) is not truncated at zero in statsmodels 0.15, so with Q < k - 1 it gives a negative
tau^2 and weights larger than inverse-variance ones; Paule-Mandel stops at zero.
"""

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm
from statsmodels.stats.meta_analysis import combine_effects

from trdpipe.model.sensitivity import concordance
from trdpipe.model.tables import bh

TAU2_METHOD = "iterated"  # Paule-Mandel, in statsmodels' name


# ----------------------------------------------------------------------------- combining
def _combine_gene(lfc: np.ndarray, variance: np.ndarray) -> tuple[float, float, float, float]:
    """Random-effects mean, its standard error, tau^2 and Cochran's Q of one gene's cohorts."""
    result = combine_effects(lfc, variance, method_re=TAU2_METHOD)
    return result.mean_effect_re, result.sd_eff_w_re, result.tau2, result.q


def combine_cohorts(lfc: pd.DataFrame, lfc_se: pd.DataFrame) -> pd.DataFrame:
    """Per gene (rows) the cohorts' (columns) log2 fold changes combined: the random-effects
    estimate, its SE, z, p and BH-adjusted p, tau^2, Cochran's Q with its p-value and I^2 (Higgins:
    (Q - df) / Q, 0 when Q < df). A gene is combined over the cohorts with a finite estimate and
    SE; with fewer than two its row is NaN."""
    usable = np.isfinite(lfc.to_numpy()) & np.isfinite(lfc_se.to_numpy()) & (lfc_se.to_numpy() > 0)
    n_cohorts = usable.sum(axis=1)
    rows = np.full((len(lfc), 4), np.nan)
    for i in np.flatnonzero(n_cohorts >= 2):
        keep = usable[i]
        rows[i] = _combine_gene(lfc.to_numpy()[i, keep], lfc_se.to_numpy()[i, keep] ** 2)
    table = pd.DataFrame(rows, index=lfc.index, columns=["log2FoldChange", "lfcSE", "tau2", "Q"])
    table.insert(0, "n_cohorts", n_cohorts)
    table["stat"] = table["log2FoldChange"] / table["lfcSE"]
    table["pvalue"] = 2 * norm.sf(np.abs(table["stat"]))
    table["padj"] = bh(table["pvalue"].to_numpy())
    df = n_cohorts - 1
    table["Q_pvalue"] = np.where(n_cohorts >= 2, chi2.sf(table["Q"], np.maximum(df, 1)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        i2 = np.where(table["Q"] > df, (table["Q"] - df) / table["Q"], 0.0)
    table["I2"] = np.where(n_cohorts >= 2, i2, np.nan)
    return table


def replication_counts(
    lfc: pd.DataFrame, pvalues: pd.DataFrame, sign: pd.Series, nominal_p: float
) -> pd.Series:
    """Per gene, the cohorts whose log2 fold change has the given sign and whose p is below
    `nominal_p`."""
    same_sign = np.sign(lfc).eq(np.sign(sign), axis=0)
    return (same_sign & (pvalues < nominal_p)).sum(axis=1).astype(int)


def meta_table(
    cohort_tables: dict[str, pd.DataFrame], var: pd.DataFrame, nominal_p: float, k: int
) -> pd.DataFrame:
    """The meta-analysis table of one contrast from each fitted cohort's results table (the results
    contract's columns): gene_id and gene_symbol first, the combined estimate, heterogeneity,
    each cohort's log2 fold change, SE and p-value, and the replication count (cohorts with the meta
    estimate's sign and p < nominal_p) with `replicated` (at least k), sorted by p-value."""
    var = var.rename_axis(None)
    lfc, se, pvalues = (
        pd.DataFrame({c: t.set_index("gene_id")[column] for c, t in cohort_tables.items()}).reindex(var.index)
        for column in ("log2FoldChange", "lfcSE", "pvalue")
    )
    table = combine_cohorts(lfc, se)
    table["n_replicating"] = replication_counts(lfc, pvalues, table["log2FoldChange"], nominal_p)
    table["replicated"] = table["n_replicating"] >= k
    for cohort in lfc.columns:
        table[f"log2FoldChange:{cohort}"] = lfc[cohort]
        table[f"lfcSE:{cohort}"] = se[cohort]
        table[f"pvalue:{cohort}"] = pvalues[cohort]
    table.insert(0, "gene_symbol", var["gene_symbol"].fillna("").astype(str))
    table.insert(0, "gene_id", table.index.astype(str))
    return table.sort_values(["pvalue", "gene_id"], na_position="last", kind="mergesort").reset_index(
        drop=True
    )


def cohort_summary(fits: list[pd.DataFrame], left_out: dict[str, str]) -> pd.DataFrame:
    """Every cohort of the column, one row each: those fitted or too small (their fit.tsv rows), and
    those that lack a compared level (left out before any fit, with the reason)."""
    lacking = pd.DataFrame({"cohort": list(left_out), "fitted": False, "reason": list(left_out.values())})
    every = pd.concat([*fits, lacking]).sort_values("cohort").reset_index(drop=True)
    return every.astype({"samples": "Int64", "n_test": "Int64", "n_reference": "Int64"})


# ----------------------------------------------------------------------------- mega vs meta
def meta_concordance(
    mega: pd.DataFrame, meta: pd.DataFrame, alpha: float, high_i2: float, k: int, n_cohorts: int
) -> pd.DataFrame:
    """One row, measure by value: the calls of the mega- and the meta-analysis, their overlap and
    log2 fold-change correlation (trdpipe.model.sensitivity.concordance), the calls of each that
    replicate (at least k cohorts), and the genes of high heterogeneity (I^2 >= high_i2) with the
    number expected by chance."""
    shared = concordance(mega, meta, alpha)
    replicated = meta.set_index("gene_id")["replicated"]
    mega_calls = mega.loc[mega["padj"] < alpha, "gene_id"]
    meta_calls = meta["padj"] < alpha
    measures = {
        "cohorts": n_cohorts,
        "replication_k": k,
        "calls_mega": shared["degs_primary"],
        "calls_meta": shared["degs_model"],
        "calls_both": shared["overlap"],
        "lfc_r_all": shared["lfc_r_all"],
        "lfc_r_mega_calls": shared["lfc_r_primary_degs"],
        "sign_agreement_mega_calls": shared["sign_agreement"],
        "mega_calls_replicated": int(replicated.reindex(mega_calls).fillna(False).astype(bool).sum()),
        "meta_calls_replicated": int((meta_calls & meta["replicated"]).sum()),
        "genes_replicated": int(meta["replicated"].sum()),
        "genes_high_heterogeneity": int((meta["I2"] >= high_i2).sum()),
        "genes_high_heterogeneity_by_chance": chance_of_high_i2(meta, high_i2),
        "meta_calls_high_heterogeneity": int((meta_calls & (meta["I2"] >= high_i2)).sum()),
    }
    return pd.DataFrame({"measure": list(measures), "value": list(measures.values())})


def chance_of_high_i2(meta: pd.DataFrame, high_i2: float) -> float:
    """Genes expected at I^2 >= high_i2 if every gene's cohorts agreed: I^2 >= h is Q >= df / (1 - h),
    and Q is chi-square with df = cohorts - 1 under homogeneity."""
    df = meta["n_cohorts"][meta["n_cohorts"] >= 2] - 1
    if high_i2 >= 1:
        return 0.0
    return float(chi2.sf(df / (1 - high_i2), df).sum())


def high_heterogeneity(meta: pd.DataFrame, mega: pd.DataFrame, high_i2: float) -> pd.DataFrame:
    """The genes whose cohorts disagree (I^2 >= high_i2), with the mega-analysis' estimate beside
    the meta-analysis', by Cochran's Q p-value."""
    genes = meta[meta["I2"] >= high_i2]
    pooled = mega.set_index("gene_id")[["log2FoldChange", "padj"]].add_suffix("_mega")
    genes = genes.join(pooled, on="gene_id")
    return genes.sort_values(["Q_pvalue", "gene_id"], kind="mergesort").reset_index(drop=True)


def candidate_rows(meta: pd.DataFrame, candidates: list[str]) -> pd.DataFrame:
    """The meta table's rows of the candidate genes (by symbol or ID) that were combined."""
    wanted = set(candidates)
    named = meta["gene_symbol"].isin(wanted) | meta["gene_id"].isin(wanted)
    return meta[named & meta["pvalue"].notna()]
