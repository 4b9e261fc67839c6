"""Per-sample quality control before any model is fitted.

Library metrics (scanpy), a sex check (XIST against Y-chromosome genes), robust
(median/MAD) outlier limits, PCA of the VST data and its association with every
covariate, the covariate balance between clinical groups ("Table 1"), the
confounding alarm, and MultiQC custom content (the figures: trdpipe.qc.figures). A flagged sample is kept (`qc.action: flag`) or
marked `excluded` for the filter rule (`qc.action: exclude`).
"""

import logging
import math

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import yaml
from pydeseq2.preprocessing import deseq2_norm
from scipy import stats

from trdpipe.checks.inputs import design_variables
from trdpipe.common import InputError, atomic_output, format_list
from trdpipe.io.sample_sheet import SHEET_TEXT_COLUMNS
from trdpipe.model.design import contrast_model_matrix

log = logging.getLogger("trd")

# Robust SD of a normal sample = 1.4826 x MAD.
MAD_TO_SD = 1.4826
RECORDED_SEX = {
    "female": "female",
    "f": "female",
    "woman": "female",
    "w": "female",
    "male": "male",
    "m": "male",
    "man": "male",
}


# --- per-sample metrics -----------------------------------------------------------------


def library_metrics(adata: ad.AnnData, globin_genes: list[str], n_top: int = 50) -> pd.DataFrame:
    """Library size, detected genes, size factor and % of counts in MT, globin and top genes."""
    counts = np.asarray(adata.X)
    masks = pd.DataFrame(
        {
            "mito": (adata.var["chromosome"].astype(str) == "MT").to_numpy(),
            "globin": adata.var["gene_symbol"].isin(globin_genes).to_numpy(),
        },
        index=adata.var_names,
    )
    qc, _ = sc.pp.calculate_qc_metrics(
        ad.AnnData(counts.astype(np.float64), var=masks),
        qc_vars=["mito", "globin"],
        percent_top=(n_top,),
        log1p=False,
        inplace=False,
    )
    _, size_factors = deseq2_norm(counts)
    return pd.DataFrame(
        {
            "library_size": counts.sum(axis=1),
            "detected_genes": (counts > 0).sum(axis=1),
            "size_factor": size_factors,
            "pct_counts_mito": qc["pct_counts_mito"].to_numpy(),
            "pct_counts_globin": qc["pct_counts_globin"].to_numpy(),
            f"pct_counts_top{n_top}": qc[f"pct_counts_in_top_{n_top}_genes"].to_numpy(),
        },
        index=pd.Index(adata.obs_names, name="sample_id"),
    )


# --- sex check ----------------------------------------------------------------------------


def mean_log_cpm(counts: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Mean log2(CPM + 1) of the given gene columns per sample (NaN when there are none)."""
    if not columns.any():
        return np.full(counts.shape[0], np.nan)
    cpm = counts[:, columns] / counts.sum(axis=1, keepdims=True) * 1e6
    return np.log2(cpm + 1).mean(axis=1)


def sex_scores(adata: ad.AnnData, female_genes: list[str], male_genes: list[str]) -> pd.DataFrame:
    """XIST-like score, Y-gene score and their difference (positive = male) per sample.

    Log CPM makes the scores independent of library size, so a small library
    still gets a clear call when its sex genes are there.
    """
    counts = np.asarray(adata.X, dtype=np.float64)
    symbols = adata.var["gene_symbol"]
    for label, present in sex_genes_used(symbols, female_genes, male_genes).items():
        log.info("sex check, %s genes present: %s", label, format_list(present) or "none")
    female = mean_log_cpm(counts, symbols.isin(female_genes).to_numpy())
    male = mean_log_cpm(counts, symbols.isin(male_genes).to_numpy())
    return pd.DataFrame(
        {"xist_score": female, "y_score": male, "sex_score": male - female},
        index=pd.Index(adata.obs_names, name="sample_id"),
    )


def sex_genes_used(
    symbols: pd.Series, female_genes: list[str], male_genes: list[str]
) -> dict[str, list[str]]:
    """The configured sex genes present in the matrix, by side ('female', 'male')."""
    present = set(symbols)
    return {
        "female": [g for g in female_genes if g in present],
        "male": [g for g in male_genes if g in present],
    }


def one_sided_sex_score(scores: pd.DataFrame, margin: float) -> pd.Series:
    """The sex score, also when only one side's genes are in the matrix (a public matrix without
    XIST, say): then that side alone decides, as 2 x (its score - margin), signed so that positive
    is male. Y genes above 1.5 x margin (log2 CPM) call male, below 0.5 x margin female, and the
    same for XIST the other way round; two-sided scores are left as they are."""
    score = scores["sex_score"].copy()
    only_male = scores["xist_score"].isna() & scores["y_score"].notna()
    only_female = scores["y_score"].isna() & scores["xist_score"].notna()
    score[only_male] = 2 * (scores.loc[only_male, "y_score"] - margin)
    score[only_female] = -2 * (scores.loc[only_female, "xist_score"] - margin)
    return score


def sex_call_basis(genes: dict[str, list[str]]) -> str:
    """Which genes the sex call used, for the log and the sex-check figure."""
    female, male = format_list(genes["female"], 4), format_list(genes["male"], 4)
    if genes["female"] and genes["male"]:
        return f"{female} against Y genes {male}"
    if genes["male"]:
        return f"Y genes {male} alone (no female gene in the matrix)"
    if genes["female"]:
        return f"{female} alone (no Y gene in the matrix)"
    return "no sex gene in the matrix: not inferred"


def infer_sex(sex_score: pd.Series, margin: float) -> pd.Series:
    """'male' above +margin, 'female' below -margin, 'ambiguous' between, 'unknown' without genes."""
    inferred = np.select(
        [sex_score > margin, sex_score < -margin, sex_score.notna()],
        ["male", "female", "ambiguous"],
        default="unknown",
    )
    return pd.Series(inferred, index=sex_score.index, name="inferred_sex")


def normalise_sex_labels(recorded: pd.Series) -> pd.Series:
    """Recorded sex as 'female'/'male' (F/M, Female, woman, ...); anything else NaN."""
    return recorded.astype("string").str.strip().str.lower().map(RECORDED_SEX)


def recorded_sex(obs: pd.DataFrame, column: str) -> pd.Series:
    """The sample sheet's sex column; all missing (nothing to check against) when there is none."""
    if column in obs:
        return obs[column]
    log.warning("no column %r in the sample sheet: sex is inferred but not checked", column)
    return pd.Series(pd.NA, index=obs.index, dtype="string")


def sex_flags(recorded: pd.Series, inferred: pd.Series, score: pd.Series, margin: float) -> pd.Series:
    """One reason per sample whose inferred sex is ambiguous or disagrees with the record."""
    recorded = normalise_sex_labels(recorded)
    reasons = pd.Series("", index=inferred.index)
    ambiguous = inferred == "ambiguous"
    reasons[ambiguous] = [
        f"sex_ambiguous: XIST and Y genes do not separate (score {s:.2f}, needs |score| > {margin:g})"
        for s in score[ambiguous]
    ]
    mismatch = inferred.isin(["female", "male"]) & recorded.notna() & (recorded != inferred)
    reasons[mismatch] = [
        f"sex_mismatch: recorded {r}, inferred {i} (score {s:.2f})"
        for r, i, s in zip(recorded[mismatch], inferred[mismatch], score[mismatch])
    ]
    return reasons


# --- robust outlier limits ------------------------------------------------------------------


def mad_limits(
    values: np.ndarray, threshold: float, min_deviation: float = 0.0
) -> tuple[float, float, float]:
    """(lower, upper, robust SD): median -/+ threshold x 1.4826 x MAD, ignoring NaN, and at least
    `min_deviation` from the median (a metric that saturates has a MAD near 0)."""
    median = np.nanmedian(values)
    robust_sd = MAD_TO_SD * np.nanmedian(np.abs(values - median))
    deviation = max(threshold * robust_sd, min_deviation)
    return median - deviation, median + deviation, robust_sd


# (flag, metric column, log10 scale?, harmful side, what it is: {features} the assay's) for each
# outlier check.
# Sizes and fractions vary multiplicatively between samples, so their limits are set on log10.
OUTLIER_CHECKS = [
    ("low_library_size", "library_size", True, "low", "library size"),
    ("low_detected_genes", "detected_genes", True, "low", "detected {features}"),
    ("high_globin", "pct_counts_globin", True, "high", "% counts in globin genes"),
    ("high_mito", "pct_counts_mito", True, "high", "% counts in mitochondrial genes"),
    ("pca_outlier", "pca_distance", False, "high", "distance from the median in VST PCA space"),
]


def outlier_flags(
    metrics: pd.DataFrame, threshold: float, min_relative_deviation: float, features: str = "genes"
) -> tuple[pd.Series, pd.DataFrame]:
    """A reason per sample for every metric beyond its MAD limit, and the table of limits;
    `features` names what the assay detects (genes, miRNAs) in the reasons.

    A limit is also at least `min_relative_deviation` from the median (a factor 1 + it on the
    log10 scale, a fraction of the median on the linear one): on a metric that saturates (detected
    genes of a pre-filtered matrix) the MAD is near 0 and the MAD limit alone flags noise.
    """
    reasons = pd.Series([[] for _ in metrics.index], index=metrics.index, dtype=object)
    rows = []
    # the checks of the metrics measured (a small-RNA assay has no globin or mitochondrial genes)
    for flag, column, on_log, side, label in [c for c in OUTLIER_CHECKS if c[1] in metrics.columns]:
        values = metrics[column].to_numpy(dtype=np.float64)
        # A zero fraction (no globin gene in the matrix) has no logarithm; it is never 'high'.
        scaled = np.log10(np.where(values > 0, values, np.nan)) if on_log else values
        floor = (
            np.log10(1 + min_relative_deviation)
            if on_log
            else min_relative_deviation * abs(np.nanmedian(scaled))
        )
        lower, upper, robust_sd = mad_limits(scaled, threshold, floor)
        basis = (
            f"{threshold:g} MAD{' on log10 scale' if on_log else ''}"
            if threshold * robust_sd >= floor
            else f"{min_relative_deviation:.0%}, qc.min_relative_deviation, as {threshold:g} MAD is less"
        )
        limit = lower if side == "low" else upper
        hit = scaled < limit if side == "low" else scaled > limit
        limit_value = 10**limit if on_log else limit
        relation, sign = ("<", "-") if side == "low" else (">", "+")
        for sample in metrics.index[hit]:
            reasons[sample].append(
                f"{flag}: {label.format(features=features)} {metrics.at[sample, column]:.4g} {relation} limit {limit_value:.4g} "
                f"(median {sign} {basis})"
            )
        rows.append(
            {
                "flag": flag,
                "metric": column,
                "scale": "log10" if on_log else "linear",
                "side": side,
                "median": 10 ** np.nanmedian(scaled) if on_log else np.nanmedian(scaled),
                "limit": limit_value,
                "robust_sd": robust_sd,
                "n_flagged": int(hit.sum()),
            }
        )
    return reasons.map("; ".join), pd.DataFrame(rows)


def combine_flags(*reasons: pd.Series) -> pd.Series:
    """All non-empty reasons of a sample joined by '; '."""
    table = pd.concat(reasons, axis=1)
    return table.apply(lambda row: "; ".join(r for r in row if r), axis=1)


# --- PCA and confounding ---------------------------------------------------------------------


def top_variable_pca(
    vst: np.ndarray, n_top_genes: int, n_components: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """PCA scores and explained-variance ratios of the most variable genes (as DESeq2's plotPCA)."""
    top = np.argsort(-vst.var(axis=0), kind="stable")[:n_top_genes]
    centred = vst[:, top] - vst[:, top].mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, len(s))
    scores = u[:, :k] * s[:k]
    # Fix the sign of each component so that repeated runs draw the same picture.
    signs = np.sign(scores[np.abs(scores).argmax(axis=0), np.arange(k)])
    return scores * signs, (s**2 / (s**2).sum())[:k]


def pca_distance(scores: np.ndarray, n_pcs: int) -> np.ndarray:
    """Euclidean distance of each sample from the coordinate-wise median of the first PCs."""
    top = scores[:, :n_pcs]
    return np.sqrt(((top - np.median(top, axis=0)) ** 2).sum(axis=1))


def sheet_covariates(obs: pd.DataFrame) -> pd.DataFrame:
    """The sample sheet's covariates: every column but those that name a sample's count file or
    column (counts_file, counts_column), which are bookkeeping with a distinct value per sample."""
    return obs.drop(columns=[c for c in SHEET_TEXT_COLUMNS if c in obs.columns])


def is_continuous(column: pd.Series) -> bool:
    """Numeric sample-sheet columns are continuous, all others categorical (config/README.md)."""
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def association_test(values: np.ndarray, covariate: pd.Series) -> dict:
    """Association of a numeric vector with one covariate: Pearson (continuous) or one-way ANOVA."""
    present = covariate.notna().to_numpy()
    x, cov = values[present], covariate[present]
    if is_continuous(cov):
        r, p = stats.pearsonr(x, cov.to_numpy(dtype=np.float64))
        return {"test": "pearson", "statistic": r, "r_squared": r**2, "pvalue": p}
    groups = [x[(cov.astype(str) == level).to_numpy()] for level in sorted(cov.astype(str).unique())]
    f, p = stats.f_oneway(*groups)
    # eta squared: share of the PC's variance explained by the covariate's levels.
    between = sum(len(g) * (g.mean() - x.mean()) ** 2 for g in groups)
    return {"test": "anova", "statistic": f, "r_squared": between / ((x - x.mean()) ** 2).sum(), "pvalue": p}


def pc_covariate_association(scores: np.ndarray, explained: np.ndarray, obs: pd.DataFrame) -> pd.DataFrame:
    """One row per (PC, covariate) with test, statistic, R squared and p-value."""
    rows = []
    for pc in range(scores.shape[1]):
        for covariate in sheet_covariates(obs).columns:
            if obs[covariate].nunique() < 2:
                continue
            rows.append(
                {
                    "pc": f"PC{pc + 1}",
                    "variance_explained": explained[pc],
                    "covariate": covariate,
                    **association_test(scores[:, pc], obs[covariate]),
                }
            )
    return pd.DataFrame(rows)


def categorical_test(table: pd.DataFrame) -> tuple[str, float, float]:
    """Fisher's exact test for a 2x2 table with an expected count below 5, else chi-square."""
    chi2, p, _, expected = stats.chi2_contingency(table)
    if table.shape == (2, 2) and (expected < 5).any():
        odds, p = stats.fisher_exact(table)
        return "fisher", odds, p
    return "chi2", chi2, p


def continuous_test(groups: list[np.ndarray]) -> tuple[str, float, float]:
    """Welch's t-test for two groups, one-way ANOVA for more."""
    if len(groups) == 2:
        t, p = stats.ttest_ind(*groups, equal_var=False)
        return "welch_t", t, p
    f, p = stats.f_oneway(*groups)
    return "anova", f, p


def covariate_balance(obs: pd.DataFrame, group: str) -> pd.DataFrame:
    """'Table 1': per level of `group`, n and every other column (mean/SD or counts) with a test.

    Columns: grouping, covariate, level, statistic, one per group level, all, test,
    test_statistic, pvalue (the covariate's p-value repeated on each of its rows).
    """
    labels = obs[group].astype(str)
    levels = sorted(labels.unique())
    rows = [
        {
            "covariate": "n",
            "level": "",
            "statistic": "count",
            **{lv: int((labels == lv).sum()) for lv in levels},
            "all": len(obs),
        }
    ]
    for covariate in sheet_covariates(obs).columns.drop(group):
        column = obs[covariate]
        present = column.notna()
        if is_continuous(column):
            by_group = [column[present & (labels == lv)].to_numpy(dtype=np.float64) for lv in levels]
            test = continuous_test(by_group)
            for statistic, fn in (("mean", np.mean), ("sd", lambda v: np.std(v, ddof=1))):
                rows.append(
                    {
                        "covariate": covariate,
                        "level": "",
                        "statistic": statistic,
                        **{lv: fn(v) for lv, v in zip(levels, by_group)},
                        "all": fn(column[present].to_numpy(dtype=np.float64)),
                        "test": test[0],
                        "test_statistic": test[1],
                        "pvalue": test[2],
                    }
                )
        else:
            table = pd.crosstab(column[present].astype(str), labels[present]).reindex(
                columns=levels, fill_value=0
            )
            test = categorical_test(table) if table.shape[0] > 1 else ("", np.nan, np.nan)
            for level, counts in table.iterrows():
                rows.append(
                    {
                        "covariate": covariate,
                        "level": level,
                        "statistic": "count",
                        **counts.to_dict(),
                        "all": int(counts.sum()),
                        "test": test[0],
                        "test_statistic": test[1],
                        "pvalue": test[2],
                    }
                )
    # a sheet with no covariate besides the group has no test columns: add them, empty
    table = pd.DataFrame(rows).reindex(columns=[*rows[0], "test", "test_statistic", "pvalue"])
    table.insert(0, "grouping", group)
    return table


def balance_tables(obs: pd.DataFrame, contrasts: dict) -> pd.DataFrame:
    """Covariate balance for each variable that a contrast compares (usually one: group)."""
    variables = list(dict.fromkeys(c["variable"] for c in contrasts.values()))
    return pd.concat([covariate_balance(obs, v) for v in variables], ignore_index=True)


# --- confounding alarm ---------------------------------------------------------------------------

# the sample sheet's columns that say where the counts are, not what the samples are
BOOKKEEPING_COLUMNS = ("sample_id", *SHEET_TEXT_COLUMNS)
CROSS_TABLE_LEVELS = 8  # levels spelled out in a warning's one-line cross-table
CONFOUNDING_COLUMNS = [
    "contrast",
    "column",
    "in_design",
    "kind",
    "measure",
    "value",
    "test",
    "test_statistic",
    "pvalue",
    "alarm",
    "cross_table",
    "warning",
]


def cramers_v(table: pd.DataFrame) -> float:
    """Cramér's V of a contingency table with Bergsma's (2013) bias correction. Plain V of a sparse
    table is large with no association at all (20 levels in 31 samples give about 0.8, one level per
    sample gives 1), so a column of many levels would raise the alarm by its size alone."""
    n = table.to_numpy().sum()
    chi2 = stats.chi2_contingency(table, correction=False)[0]
    rows, cols = table.shape
    phi2 = max(0.0, chi2 / n - (rows - 1) * (cols - 1) / (n - 1))
    if phi2 == 0:  # no association beyond the bias (a level per sample also makes the divisor 0)
        return 0.0
    rows_corrected = rows - (rows - 1) ** 2 / (n - 1)
    cols_corrected = cols - (cols - 1) ** 2 / (n - 1)
    return float(np.sqrt(phi2 / min(rows_corrected - 1, cols_corrected - 1)))


def categorical_cross_table(table: pd.DataFrame, column: str, contrast: dict) -> str:
    """'run 1: 15 of 15 TRD, 1 of 16 responder; run 2: ...' (the table's columns: test, reference)."""
    test, reference = contrast["test"], contrast["reference"]
    totals = table.sum()
    cells = [
        f"{column} {level}: {row[test]} of {totals[test]} {test}, {row[reference]} of {totals[reference]} "
        f"{reference}"
        for level, row in table.head(CROSS_TABLE_LEVELS).iterrows()
    ]
    more = len(table) - CROSS_TABLE_LEVELS
    return "; ".join(cells) + (f"; and {more} more levels" if more > 0 else "")


def continuous_cross_table(test_values: np.ndarray, reference_values: np.ndarray, column, contrast) -> str:
    """'age: mean 52 (SD 8.1) in TRD, 38 (SD 7.9) in responder'."""
    parts = [
        f"{values.mean():.3g} (SD {np.std(values, ddof=1):.2g}) in {level}"
        for values, level in ((test_values, contrast["test"]), (reference_values, contrast["reference"]))
    ]
    return f"{column}: mean " + ", ".join(parts)


def categorical_association(column: pd.Series, labels: pd.Series, contrast: dict) -> dict:
    """Cramér's V of a categorical column with the contrast's levels, tested by chi2 or Fisher; and
    the levels that hold both of them (test and reference counts)."""
    table = pd.crosstab(column.astype(str), labels).reindex(
        columns=[contrast["test"], contrast["reference"]], fill_value=0
    )
    test, statistic, pvalue = categorical_test(table)
    return {
        "kind": "categorical",
        "measure": "cramers_v",
        "value": cramers_v(table),
        "test": test,
        "test_statistic": float(statistic),
        "pvalue": float(pvalue),
        "cross_table": categorical_cross_table(table, column.name, contrast),
        "levels_with_both": [(level, *row) for level, row in table.iterrows() if (row > 0).all()],
    }


def continuous_association(column: pd.Series, labels: pd.Series, contrast: dict) -> dict:
    """Pearson r of a continuous column with the test-level indicator (point-biserial), and the
    two-sample t-test that is its test."""
    values = column.to_numpy(dtype=np.float64)
    is_test = (labels == contrast["test"]).to_numpy()
    t, pvalue = stats.ttest_ind(values[is_test], values[~is_test])
    return {
        "kind": "continuous",
        "measure": "r",
        "value": float(stats.pearsonr(is_test.astype(np.float64), values)[0]),
        "test": "t",
        "test_statistic": float(t),
        "pvalue": float(pvalue),
        "cross_table": continuous_cross_table(values[is_test], values[~is_test], column.name, contrast),
    }


def column_association(column: pd.Series, labels: pd.Series, contrast: dict) -> dict | None:
    """The association of one sample-sheet column with the contrast's levels, among the samples with
    a value; None when the column has a single value there (nothing to test)."""
    present = column.notna().to_numpy()
    column, labels = column[present], labels[present]
    if column.nunique() < 2 or labels.nunique() < 2:
        return None
    if is_continuous(column):
        return continuous_association(column, labels, contrast)
    return categorical_association(column, labels, contrast)


def contrast_vif(obs: pd.DataFrame, design: str, contrast: dict) -> float:
    """Variance inflation factor of the contrast's coefficient in the design, over the samples the
    model is fitted on: 1 / (1 - R²) of its model-matrix column regressed on all the others."""
    matrix, name = contrast_model_matrix(obs, design, contrast)
    target = matrix[name].to_numpy(dtype=np.float64)
    others = matrix.drop(columns=name).to_numpy(dtype=np.float64)
    residual = target - others @ np.linalg.lstsq(others, target, rcond=None)[0]
    total = ((target - target.mean()) ** 2).sum()
    unexplained = (residual**2).sum()
    return float(total / unexplained) if unexplained > 1e-12 * total else math.inf


def association_words(row: dict) -> str:
    """The measure and the test in words: Cramér's V 0.94, chi2 p = 1.2e-06 (or r 0.62, t-test p = ...)."""
    measure = "Cramér's V" if row["measure"] == "cramers_v" else "r"
    test = "t-test" if row["test"] == "t" else row["test"]
    return f"{measure} {row['value']:.2f}, {test} p = {row['pvalue']:.2g}"


def remedy_words(row: dict, contrast: dict) -> str:
    """What adding a column that is not in the design would do, and what it costs."""
    column, test, reference = row["column"], contrast["test"], contrast["reference"]
    if row["kind"] == "continuous":
        inflation = 1 / (1 - row["value"] ** 2)
        return (
            f"Adding {column} to the design separates the two, at a cost: the {contrast['variable']} "
            f"effect is then estimated from what {column} does not predict, its variance "
            f"{inflation:.2g} times as large."
        )
    if not row["levels_with_both"]:
        return (
            f"{column} cannot be added to the design: no level of it holds both {test} and {reference}, "
            f"so only a cohort with both in the same {column} can separate the two."
        )
    within = " and ".join(
        f"{column} {level} ({a} {test}, {b} {reference})" for level, a, b in row["levels_with_both"]
    )
    return (
        f"Adding {column} to the design separates the two, at a cost: {test} and {reference} are then "
        f"compared only within {within}."
    )


def confounding_warning(row: dict, contrast: dict, settings: dict, vif: float) -> str:
    """The alarm of one column in one line: the association with its cross-table, what follows,
    what can be done and what that costs."""
    variable, column = contrast["variable"], row["column"]
    strong = abs(row["value"]) >= settings["confounding_association"]
    head = (
        f"{variable} is {'confounded' if strong else 'associated'} with {column} "
        f"({row['cross_table']}; {association_words(row)})"
    )
    pair = f"{contrast['test']} and {contrast['reference']}"
    if row["in_design"]:
        return (
            f"{head}: {column} is in the design, so it is adjusted for, but {pair} are then compared "
            f"only through the samples that break the pattern and the estimates are imprecise (variance "
            f"inflation factor {vif:.2g}). Removing {column} from the design would buy precision at the "
            f"cost of confounding; only a cohort balanced for {column} avoids both."
        )
    other = (
        f"a difference between the levels of {column}"
        if row["kind"] == "categorical"
        else f"an effect of {column}"
    )
    follows = "cannot be told apart from" if strong else "may in part be"
    return f"{head}: a difference between {pair} {follows} {other}. {remedy_words(row, contrast)}"


def vif_warning(columns: list[str], vif: float, contrast: dict, settings: dict) -> str:
    """The alarm of the design's other columns, which together nearly determine the variable."""
    return (
        f"{contrast['variable']} is nearly determined by the design's other columns ({' + '.join(columns)}) "
        f"together: the variance inflation factor of the {contrast['test']} vs {contrast['reference']} "
        f"coefficient is {vif:.2g} (qc.confounding_max_vif {settings['confounding_max_vif']:g}), so its "
        "estimates are imprecise and rest on the samples that break the pattern. Removing one of them from "
        "the design would buy precision at the cost of leaving it unadjusted."
    )


def is_alarm(row: dict, settings: dict) -> bool:
    """A column not in the design raises the alarm at a strong association or a small p-value; a
    design column, adjusted for, only when it nearly determines the contrast's variable."""
    strong = abs(row["value"]) >= settings["confounding_association"]
    return strong if row["in_design"] else strong or row["pvalue"] < settings["confounding_pvalue"]


def confounding_table(
    obs: pd.DataFrame, design: str, name: str, contrast: dict, settings: dict
) -> pd.DataFrame:
    """Every sample-sheet column against the contrast's variable among the contrast's samples, then
    the variance inflation factor of the contrast's coefficient in the design (all samples), each
    with `alarm` and, when it is raised, the warning in one line.

    settings: the config's qc section (confounding_association, confounding_pvalue, confounding_max_vif).
    """
    variable = contrast["variable"]
    compared = obs[variable].astype(str).isin([contrast["test"], contrast["reference"]]).to_numpy()
    labels = obs.loc[compared, variable].astype(str)
    if labels.nunique() < 2:  # QC excluded a whole group: the filter rule stops, saying so
        return pd.DataFrame(columns=CONFOUNDING_COLUMNS)
    design_columns = design_variables(design)
    others = [c for c in design_columns if c != variable]
    vif = contrast_vif(obs, design, contrast) if others else 1.0
    rows = []
    for column in obs.columns.drop(variable):
        found = (
            None
            if column in BOOKKEEPING_COLUMNS
            else column_association(obs.loc[compared, column], labels, contrast)
        )
        if found is None:
            continue
        row = {"contrast": name, "column": column, "in_design": column in design_columns, **found}
        row["alarm"] = is_alarm(row, settings)
        row["warning"] = confounding_warning(row, contrast, settings, vif) if row["alarm"] else ""
        rows.append(row)
    if others:
        alarm = vif > settings["confounding_max_vif"]
        rows.append(
            {
                "contrast": name,
                "column": "design: " + " + ".join(others),
                "in_design": True,
                "kind": "design",
                "measure": "vif",
                "value": vif,
                "alarm": alarm,
                "warning": vif_warning(others, vif, contrast, settings) if alarm else "",
            }
        )
    return pd.DataFrame(rows).reindex(columns=CONFOUNDING_COLUMNS)


def confounding_tables(obs: pd.DataFrame, design: str, contrasts: dict, settings: dict) -> pd.DataFrame:
    """confounding_table of every contrast, one after the other (results/qc/confounding.tsv)."""
    return pd.concat(
        [confounding_table(obs, design, name, contrast, settings) for name, contrast in contrasts.items()],
        ignore_index=True,
    )


def alarmed_rows(table: pd.DataFrame, contrast: str | None = None) -> pd.DataFrame:
    """The rows of a confounding table that raise the alarm (of one contrast when it is named); the
    table as built or as read back from its TSV."""
    alarmed = table[table["alarm"].astype(str) == "True"]
    return alarmed if contrast is None else alarmed[alarmed["contrast"] == contrast]


def confounding_alarms(table: pd.DataFrame, contrast: str | None = None) -> list[str]:
    """The warnings of the alarmed rows (of one contrast when it is named), in table order."""
    return alarmed_rows(table, contrast)["warning"].tolist()


def check_confounding(sheet: pd.DataFrame, design: str, contrasts: dict, settings: dict, where: str) -> None:
    """With qc.confounding 'stop', a confounding alarm stops the run before anything is fitted, its
    rows of the table in the message; with 'warn' they are logged and the run goes on."""
    table = confounding_tables(sheet, design, contrasts, settings)
    alarmed = alarmed_rows(table)
    lines = [
        f"contrast '{row.contrast}', column '{row.column}': {row.warning}" for row in alarmed.itertuples()
    ]
    if lines and settings["confounding"] == "stop":
        raise InputError(
            f"{where}: {len(lines)} confounding alarm(s) and config qc.confounding is 'stop', so nothing "
            "was fitted:\n  " + "\n  ".join(lines) + "\nSet qc.confounding to 'warn' to run with the "
            "warning leading the report's key findings."
        )
    for line in lines:
        log.warning("confounding alarm, %s", line)


# --- MultiQC custom content ---------------------------------------------------------------------


def write_multiqc_table(
    table: pd.DataFrame, path, section_id: str, section_name: str, description: str
) -> None:
    """A MultiQC custom-content table (`*_mqc.tsv`): YAML header in '#' lines, then the TSV."""
    header = {
        "id": section_id,
        "section_name": section_name,
        "description": description,
        "plot_type": "table",
        "pconfig": {"id": f"{section_id}_table", "title": section_name},
    }
    lines = "".join(f"# {line}\n" for line in yaml.safe_dump(header, sort_keys=False).splitlines())
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        handle.write(lines)
        table.to_csv(handle, sep="\t", float_format="%.6g")


def write_multiqc_flags(metrics: pd.DataFrame, path, action: str) -> None:
    """The flags of each sample as a MultiQC custom-content table (`*_mqc.yaml`)."""
    content = {
        "id": "trd_qc_flags",
        "section_name": "TRD QC flags",
        "description": f"Reasons each sample was flagged by the TRD pipeline's QC (action: {action}).",
        "plot_type": "table",
        "pconfig": {"id": "trd_qc_flags_table", "title": "TRD QC flags"},
        "data": {
            sample: {
                "n_flags": len([f for f in row["flags"].split("; ") if f]),
                "flags": row["flags"] or "none",
                "excluded": str(bool(row["excluded"])),
            }
            for sample, row in metrics.iterrows()
        },
    }
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(content, sort_keys=False), encoding="utf-8")


# --- the rule ----------------------------------------------------------------------------------


# the metrics of mRNA QC that a small-RNA assay does not have: globin and mitochondrial genes
MRNA_ONLY_METRICS = ("pct_counts_mito", "pct_counts_globin")


def run_qc(adata: ad.AnnData, vst: np.ndarray, settings: dict, mrna: bool = True) -> dict:
    """Every table the rule writes, from counts, their VST and the qc settings.

    mrna: False for a small-RNA assay, whose QC is library size, detected features and the PCA
    only (no globin, mitochondrial or sex check: those genes are mRNAs)."""
    metrics = library_metrics(adata, settings["globin_genes"]) if mrna else small_rna_metrics(adata)
    scores, explained = top_variable_pca(vst, settings["n_top_genes"], settings["n_pcs"])
    metrics["pca_distance"] = pca_distance(scores, settings["outlier_pcs"])
    if not mrna:
        metrics["flags"], limits = outlier_flags(
            metrics, settings["mad_threshold"], settings["min_relative_deviation"], features="miRNAs"
        )
        return qc_results(adata, metrics, limits, scores, explained, settings)
    sex = sex_scores(adata, settings["female_genes"], settings["male_genes"])
    sex["sex_score"] = one_sided_sex_score(sex, settings["sex_margin"])
    sex_genes = sex_genes_used(adata.var["gene_symbol"], settings["female_genes"], settings["male_genes"])
    log.info("sex call: %s", sex_call_basis(sex_genes))
    sex["inferred_sex"] = infer_sex(sex["sex_score"], settings["sex_margin"])
    recorded = recorded_sex(adata.obs, settings["sex_column"])
    metrics = metrics.join(sex)
    sex_reasons = sex_flags(recorded, sex["inferred_sex"], sex["sex_score"], settings["sex_margin"])
    outlier_reasons, limits = outlier_flags(
        metrics, settings["mad_threshold"], settings["min_relative_deviation"]
    )
    metrics["flags"] = combine_flags(sex_reasons, outlier_reasons)
    return {
        **qc_results(adata, metrics, limits, scores, explained, settings),
        "recorded_sex": recorded,
        "sex_genes": sex_genes,
    }


def small_rna_metrics(adata: ad.AnnData) -> pd.DataFrame:
    """library_metrics without the mRNA-only ones (MRNA_ONLY_METRICS)."""
    no_genes = pd.DataFrame({"chromosome": "", "gene_symbol": ""}, index=adata.var_names)
    metrics = library_metrics(ad.AnnData(np.asarray(adata.X), obs=adata.obs[[]], var=no_genes), [])
    return metrics.drop(columns=list(MRNA_ONLY_METRICS))


def qc_results(
    adata: ad.AnnData,
    metrics: pd.DataFrame,
    limits: pd.DataFrame,
    scores: np.ndarray,
    explained: np.ndarray,
    settings: dict,
) -> dict:
    """The tables of every assay's QC: metrics with flags and exclusions, the limits, the PCs and
    their association with the sample sheet."""
    metrics["excluded"] = (metrics["flags"] != "") & (settings["action"] == "exclude")
    pcs = pd.DataFrame(scores, index=metrics.index, columns=[f"PC{i + 1}" for i in range(scores.shape[1])])
    return {
        "metrics": metrics,
        "limits": limits,
        "pcs": pcs,
        "explained": explained,
        "association": pc_covariate_association(scores, explained, adata.obs),
    }


def log_findings(results: dict, balance: pd.DataFrame, alpha: float = 0.05) -> None:
    metrics = results["metrics"]
    flagged = metrics[metrics["flags"] != ""]
    log.info("QC limits:\n%s", results["limits"].to_string(index=False))
    log.info(
        "%d of %d samples flagged%s",
        len(flagged),
        len(metrics),
        "".join(f"\n  {s}: {f}" for s, f in flagged["flags"].items()),
    )
    log.info("samples excluded: %s", format_list(metrics.index[metrics["excluded"]]) or "none")
    imbalanced = balance[(balance["pvalue"] < alpha)].drop_duplicates(["grouping", "covariate"])
    for _, row in imbalanced.iterrows():
        log.warning(
            "%s is associated with %s (%s p = %.3g): adjust for it or interpret with care",
            row["grouping"],
            row["covariate"],
            row["test"],
            row["pvalue"],
        )
