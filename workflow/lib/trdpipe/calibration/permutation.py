"""Label-permutation calibration of a contrast: would the same analysis make these calls by chance?

The contrast variable is permuted within strata (by default the levels of the design's other
categorical covariates, crossed), continuous covariates staying with their samples, and the
primary DESeq2 model is refitted on every permuted labelling. The pooled null of all genes and
permutations gives calibrated gene p-values (Storey & Tibshirani 2003, Remark B) and q-values, and
the null DEG counts give the empirical FDR of the observed call list (Tusher et al. 2001, SAM).
"""

import itertools
import logging
import math

import anndata as ad
import numpy as np
import pandas as pd
from scipy.special import ndtri
from threadpoolctl import threadpool_limits

from trdpipe.checks.inputs import design_variables
from trdpipe.common import InputError, format_list
from trdpipe.model.tables import count_calls

log = logging.getLogger("trd")

# the median of chi-square(1), lambda's denominator (0.4549): that of a squared standard normal.
# Not scipy.stats: ingest imports this module for its checks, and scipy.stats takes a second.
CHI2_MEDIAN = float(ndtri(0.75) ** 2)
STOREY_LAMBDA = 0.5
NOMINAL_P = 0.05
NULL_LAYERS = ("pvalue", "padj", "log2FoldChange")  # X holds the Wald statistic


def permutation_ids(n: int) -> list[str]:
    return [f"perm_{i:04d}" for i in range(1, n + 1)]


# ---------------------------------------------------------------- strata


def calibration_strata(obs: pd.DataFrame, design: str, variable: str, strata: list[str] | None) -> list[str]:
    """The columns permutations stay within: `strata` when given, else the design's categorical
    covariates other than the contrast variable (numeric columns are continuous and move with
    their samples)."""
    if strata is not None:
        return list(strata)
    return [
        v for v in design_variables(design) if v != variable and not pd.api.types.is_numeric_dtype(obs[v])
    ]


def stratum_of_each_sample(obs: pd.DataFrame, strata: list[str]) -> pd.Series:
    """The crossed levels of the strata columns per sample ('siteA / female'); one stratum without."""
    if not strata:
        return pd.Series("all samples", index=obs.index)
    return obs[strata].astype(str).agg(" / ".join, axis=1)


def count_labellings(labels: np.ndarray, strata: np.ndarray) -> int:
    """Distinct label vectors reachable by permuting within strata (the observed one included):
    the product over strata of the multinomial n! / (n_1! ... n_L!)."""
    total = 1
    for stratum in np.unique(strata):
        _, sizes = np.unique(labels[strata == stratum], return_counts=True)
        total *= math.factorial(int(sizes.sum())) // math.prod(math.factorial(int(s)) for s in sizes)
    return total


def mirror_reachable(labels: np.ndarray, strata: np.ndarray) -> bool:
    """Whether swapping the two compared levels everywhere is itself a within-strata labelling: two
    levels, as many of each in every stratum (3 vs 3, say). Its fit is the observed one with the
    sign of the contrast flipped, so it is the observed analysis, not a null one."""
    if len(np.unique(labels)) != 2:
        return False
    return all(
        np.count_nonzero(labels[strata == s] == labels.min()) * 2 == np.count_nonzero(strata == s)
        for s in np.unique(strata)
    )


def mirror(labels: np.ndarray) -> np.ndarray:
    """The labelling with the two codes (0 and 1) swapped."""
    return labels.max() + labels.min() - labels


def distinct_analyses(labels: np.ndarray, strata: np.ndarray) -> int:
    """Distinct analyses among the within-strata labellings other than the observed one: a labelling
    and its mirror image give the same analysis, and the observed one's mirror is the observed one."""
    total = count_labellings(labels, strata)
    return total // 2 - 1 if mirror_reachable(labels, strata) else total - 1


def check_strata(
    obs: pd.DataFrame, name: str, contrast: dict, design: str, strata: list[str] | None, where: str
) -> list[str]:
    """The strata of a contrast's permutations, checked: they exist in the sheet, and at least one
    stratum holds two levels of the contrast variable (else no permutation changes a label).
    Strata with one level are logged: their samples keep their labels. Returns the strata."""
    absent = [c for c in (strata or []) if c not in obs.columns]
    if absent:
        raise InputError(
            f"config calibration.strata names column(s) {format_list(absent)} that the "
            f"sample sheet {where} does not have; its columns are "
            f"{format_list(obs.columns, 30)}."
        )
    columns = calibration_strata(obs, design, contrast["variable"], strata)
    # only the contrast's samples are permuted (compared_samples)
    moving = compared_samples(obs, contrast["variable"], (contrast["test"], contrast["reference"]))
    labels = moving[contrast["variable"]].astype(str)
    levels = labels.groupby(stratum_of_each_sample(moving, columns)).unique()
    fixed = levels[levels.map(len) == 1]
    if len(fixed) == len(levels):
        held = [f"{stratum}: {values[0]}" for stratum, values in fixed.items()]
        raise InputError(
            f"{where}: contrast '{name}': every stratum of the label permutations "
            f"({' x '.join(columns)}) holds one level of '{contrast['variable']}' only "
            f"({format_list(held)}), so no permutation within strata can change a label; "
            "set calibration.strata to fewer columns (or [] for none)."
        )
    if len(fixed):
        log.info(
            "contrast %s: %d of %d permutation strata hold one level of %s, so their samples "
            "keep their labels: %s",
            name,
            len(fixed),
            len(levels),
            contrast["variable"],
            format_list(fixed.index),
        )
    return columns


# ---------------------------------------------------------------- permutations


def _arrangements(codes: np.ndarray) -> list[np.ndarray]:
    """Every distinct ordering of a multiset of codes, in lexicographic order (next permutation)."""
    current = np.sort(codes)
    found = [current.copy()]
    while True:
        pivots = np.flatnonzero(current[:-1] < current[1:])
        if not len(pivots):
            return found
        i = pivots[-1]
        j = np.flatnonzero(current > current[i])[-1]
        current[i], current[j] = current[j], current[i]
        current[i + 1 :] = current[i + 1 :][::-1]
        found.append(current.copy())


def enumerate_labellings(labels: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Every distinct within-strata analysis except the observed one (rows), in a fixed order: of a
    labelling and its mirror image the first met, neither of the observed one's pair."""
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    seen, mirrors = _observed_analysis(labels, strata), mirror_reachable(labels, strata)
    rows = []
    for parts in itertools.product(*(_arrangements(labels[g]) for g in groups)):
        row = labels.copy()
        for members, part in zip(groups, parts):
            row[members] = part
        if _is_new(row, seen, mirrors):
            rows.append(row)
    return np.array(rows, dtype=labels.dtype).reshape(len(rows), len(labels))


def _observed_analysis(labels: np.ndarray, strata: np.ndarray) -> set[bytes]:
    """The labellings that are the observed analysis: itself, and its mirror image when reachable."""
    same = {labels.tobytes()}
    if mirror_reachable(labels, strata):
        same.add(mirror(labels).tobytes())
    return same


def _is_new(row: np.ndarray, seen: set[bytes], mirrors: bool) -> bool:
    """True for a labelling whose analysis is not in `seen`, which then holds it (and its mirror)."""
    if row.tobytes() in seen:
        return False
    seen.add(row.tobytes())
    if mirrors:
        seen.add(mirror(row).tobytes())
    return True


def sample_labellings(labels: np.ndarray, strata: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct within-strata analyses, none the observed one or a mirror image of one already
    drawn (rows), drawn from `seed`.

    The caller makes sure more than k exist, so drawing until k are new ends.
    """
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    seen, mirrors = _observed_analysis(labels, strata), mirror_reachable(labels, strata)
    rows = []
    while len(rows) < k:
        order = np.arange(len(labels))
        for members in groups:
            order[members] = rng.permutation(members)
        row = labels[order]
        if _is_new(row, seen, mirrors):
            rows.append(row)
    return np.array(rows)


def _coded(obs: pd.DataFrame, variable: str, strata: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levels of `variable`, its integer code per sample and the stratum code per sample."""
    levels, codes = np.unique(obs[variable].astype(str).to_numpy(), return_inverse=True)
    return levels, codes.astype(np.int64), pd.factorize(stratum_of_each_sample(obs, strata))[0]


def compared_samples(obs: pd.DataFrame, variable: str, compared: tuple[str, str] | None) -> pd.DataFrame:
    """The samples whose labels are permuted: those of the contrast's two levels (`compared`; all
    samples when None). A third level of the variable stays in the model with its own labels, so
    the null does not move its samples into the contrast's groups."""
    if compared is None:
        return obs
    return obs[obs[variable].astype(str).isin(compared).to_numpy()]


def labellings_available(
    obs: pd.DataFrame, variable: str, strata: list[str], compared: tuple[str, str] | None = None
) -> int:
    """Distinct within-strata analyses other than the observed one (distinct_analyses)."""
    _, codes, strata_codes = _coded(compared_samples(obs, variable, compared), variable, strata)
    return distinct_analyses(codes, strata_codes)


def permute_labels(
    obs: pd.DataFrame,
    variable: str,
    strata: list[str],
    k: int,
    seed: int,
    compared: tuple[str, str] | None = None,
) -> pd.DataFrame:
    """Permuted labels of `variable` (samples x permutations perm_0001...), within strata, among
    the samples of the `compared` levels only (compared_samples).

    All distinct analyses when there are no more than k (then fewer than k columns, logged).
    """
    moving = compared_samples(obs, variable, compared)
    levels, codes, strata_codes = _coded(moving, variable, strata)
    available = distinct_analyses(codes, strata_codes)
    if available <= k:
        log.info(
            "only %d distinct labellings within strata differ from the observed one%s "
            "(%d asked for): all of them are used",
            available,
            " and its mirror image (the two levels swapped: the same analysis), counted once with theirs"
            if mirror_reachable(codes, strata_codes)
            else "",
            k,
        )
        rows = enumerate_labellings(codes, strata_codes)
    else:
        rows = sample_labellings(codes, strata_codes, k, seed)
    columns = permutation_ids(len(rows))
    labels = pd.DataFrame({c: obs[variable].astype(str) for c in columns}, index=obs.index, columns=columns)
    labels.loc[moving.index, :] = levels[rows].T
    labels.columns.name = "permutation"
    return labels


def label_associations(
    labels: pd.DataFrame, obs: pd.DataFrame, variable: str, test: str, covariates: list[str]
) -> pd.DataFrame:
    """Per permutation: samples whose label moved, and how the permuted labels relate to the observed
    ones and to each covariate. Continuous covariates and the observed labels: Pearson r with the
    indicator of the test level; categorical covariates: Cramer's V (no bias correction) of the
    permuted labels against the covariate's levels."""
    observed = obs[variable].astype(str)
    rows = []
    for name, permuted in labels.items():
        is_test = (permuted == test).astype(float)
        row = {
            "permutation": name,
            "samples_moved": int((permuted != observed).sum()),
            "r_observed_labels": float(np.corrcoef(is_test, observed == test)[0, 1]),
        }
        for covariate in covariates:
            values = obs[covariate]
            if pd.api.types.is_numeric_dtype(values):
                row[f"r_{covariate}"] = float(np.corrcoef(is_test, values.astype(float))[0, 1])
            else:
                row[f"cramers_v_{covariate}"] = cramers_v(
                    pd.crosstab(permuted, values.astype(str)).to_numpy()
                )
        rows.append(row)
    return pd.DataFrame(rows)


def cramers_v(table: np.ndarray) -> float:
    """Cramer's V of a contingency table: sqrt(chi2 / (n (min(rows, columns) - 1)))."""
    n = table.sum()
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    statistic = ((table - expected) ** 2 / expected).sum()
    return float(np.sqrt(statistic / (n * (min(table.shape) - 1))))


# ---------------------------------------------------------------- refits


def block_of(scatteritem: str, permutations: list[str]) -> list[str]:
    """The permutations of block 'i-of-n': the i-th of n near-equal consecutive parts."""
    i, n = (int(part) for part in scatteritem.split("-of-"))
    return [list(part) for part in np.array_split(np.array(permutations, dtype=object), n)][i - 1]


def fit_block(
    adata: ad.AnnData, labels: pd.DataFrame, design: str, contrast: dict, settings: dict, n_cpus: int
) -> ad.AnnData:
    """Null statistics of the permutations in `labels` (columns): obs = permutations, var = genes,
    X = Wald statistic, layers p-value, padj and log2 fold change (NaN where DESeq2 gives NaN)."""
    # BLAS on the job's threads: its own thread pool, spinning beside a single-threaded job, made
    # PyDESeq2's small L-BFGS-B fits (the dispersion trend) 20 times slower on a busy machine
    with threadpool_limits(limits=n_cpus, user_api="blas"):
        return _fit_block(adata, labels, design, contrast, settings, n_cpus)


def _fit_block(
    adata: ad.AnnData, labels: pd.DataFrame, design: str, contrast: dict, settings: dict, n_cpus: int
) -> ad.AnnData:
    from trdpipe.model.engines import make_engine  # imported here: ingest uses this module's checks

    refit = make_engine(settings, n_cpus).permutation_refits(adata, design, contrast)
    stats, layers = [], {name: [] for name in NULL_LAYERS}
    for i, name in enumerate(labels.columns, 1):
        table = refit(labels[name])
        stats.append(table["stat"].to_numpy(dtype=np.float64))
        for layer in NULL_LAYERS:
            layers[layer].append(table[layer].to_numpy(dtype=np.float64))
        log.info(
            "permutation %s (%d of %d): %d genes at padj < %s",
            name,
            i,
            labels.shape[1],
            int((table["padj"] < settings["alpha"]).sum()),
            settings["alpha"],
        )
    return null_anndata(
        np.array(stats).reshape(len(stats), adata.n_vars),
        {k: np.array(v).reshape(len(v), adata.n_vars) for k, v in layers.items()},
        list(labels.columns),
        adata.var,
    )


def null_anndata(stat: np.ndarray, layers: dict, permutations: list[str], var: pd.DataFrame) -> ad.AnnData:
    obs = pd.DataFrame(index=pd.Index(permutations, name="permutation"))
    genes = pd.DataFrame(
        {"gene_symbol": var["gene_symbol"].fillna("").astype(str).to_numpy()},
        index=pd.Index(var.index.astype(str), name="gene_id"),
    )
    return ad.AnnData(X=stat, obs=obs, var=genes, layers=layers)


def gather_blocks(blocks: list[ad.AnnData], seed: int, strata: list[str], enumerated: bool) -> ad.AnnData:
    """One null_statistics AnnData from the blocks, in permutation order, with how it was made."""
    null = ad.concat(blocks, axis=0, merge="same")
    null = null[sorted(null.obs_names)].copy()
    null.uns["calibration"] = {
        "seed": int(seed),
        "strata": list(strata),
        "K": int(null.n_obs),
        "all_labellings_enumerated": bool(enumerated),
        "X": "Wald statistic of the contrast",
    }
    return null


# ---------------------------------------------------------------- statistics


def deg_count_columns(
    padj: np.ndarray, lfc: np.ndarray, alpha: float, thresholds: list[float]
) -> dict[str, int]:
    """DEGs at padj < alpha, overall and beyond each |log2FC| threshold (as the DE table counts them)."""
    calls = count_calls(pd.DataFrame({"padj": padj, "log2FoldChange": lfc}), alpha, thresholds)
    total = (calls["up"] + calls["down"]).to_numpy()
    names = ["degs"] + [f"degs_abs_lfc_{t:g}" for t in thresholds]
    return dict(zip(names, (int(t) for t in total)))


def inflation_factor(stat: np.ndarray, pvalue: np.ndarray) -> float:
    """lambda = median(chi2) / 0.455 over the genes with a p-value (chi2 = Wald statistic squared)."""
    tested = np.isfinite(pvalue) & np.isfinite(stat)
    return float(np.median(stat[tested] ** 2) / CHI2_MEDIAN)


def permutation_table(null: ad.AnnData, alpha: float, thresholds: list[float]) -> pd.DataFrame:
    """One row per permutation: DEGs, the fraction of p < 0.05 and lambda."""
    rows = []
    for i, name in enumerate(null.obs_names):
        pvalue = null.layers["pvalue"][i]
        rows.append(
            {
                "permutation": name,
                **deg_count_columns(
                    null.layers["padj"][i], null.layers["log2FoldChange"][i], alpha, thresholds
                ),
                "frac_p_below_0.05": float(np.mean(pvalue[np.isfinite(pvalue)] < NOMINAL_P)),
                "lambda": inflation_factor(np.asarray(null.X[i]), pvalue),
            }
        )
    return pd.DataFrame(rows)


def null_abs_statistics(null_stat: np.ndarray, null_pvalue: np.ndarray) -> np.ndarray:
    """The pooled null: sorted |Wald statistic| of every gene and permutation with a p-value
    (genes DESeq2 leaves without one, all-zero or Cook's outliers, are not part of it)."""
    valid = np.isfinite(null_pvalue) & np.isfinite(null_stat)
    return np.sort(np.abs(null_stat[valid]))


def pooled_pvalues(
    observed_stat: np.ndarray, observed_pvalue: np.ndarray, pooled_null: np.ndarray
) -> np.ndarray:
    """(b + 1) / (N + 1): b the pooled null |statistics| >= the gene's |statistic|, N the pooled
    null's size (K x G when every gene has a p-value in every permutation). NaN without a p-value."""
    b = len(pooled_null) - np.searchsorted(pooled_null, np.abs(observed_stat), side="left")
    p = (b + 1) / (len(pooled_null) + 1)
    return np.where(np.isfinite(observed_pvalue) & np.isfinite(observed_stat), p, np.nan)


def storey_pi0(pvalues: np.ndarray, lam: float = STOREY_LAMBDA) -> float:
    """Storey's estimate of the share of true nulls, #{p > lambda} / (m (1 - lambda)), at most 1."""
    p = pvalues[np.isfinite(pvalues)]
    return float(min(1.0, np.mean(p > lam) / (1 - lam)))


def storey_qvalues(pvalues: np.ndarray, pi0: float) -> np.ndarray:
    """q = min over p' >= p of pi0 m p' / #{p'' <= p'} (Storey & Tibshirani 2003), at most 1; NaN stays."""
    q = np.full(len(pvalues), np.nan)
    tested = np.flatnonzero(np.isfinite(pvalues))
    order = tested[np.argsort(pvalues[tested], kind="stable")]
    p = pvalues[order]
    ranks = np.searchsorted(p, p, side="right")  # ties share the rank of the last of them
    fdr = pi0 * len(p) * p / ranks
    q[order] = np.minimum(np.minimum.accumulate(fdr[::-1])[::-1], 1.0)
    return q


def empirical_fdr(
    observed_pvalue: np.ndarray, observed_padj: np.ndarray, null_pvalue: np.ndarray, alpha: float, pi0: float
) -> tuple[float, float, float]:
    """SAM's FDR of the observed call list: pi0 x the mean number of null p-values at or below the
    largest p-value called, over the permutations, / the number called, at most 1 (more expected
    false calls than calls means all may be false). Returns (FDR, threshold, mean null count); NaN
    when nothing is called."""
    called = observed_padj < alpha
    if not called.any():
        return math.nan, math.nan, math.nan
    threshold = float(np.max(observed_pvalue[called]))
    null_calls = float(np.mean(np.sum(np.nan_to_num(null_pvalue, nan=np.inf) <= threshold, axis=1)))
    return min(1.0, pi0 * null_calls / int(called.sum())), threshold, null_calls


def calibrate(
    table: pd.DataFrame, null: ad.AnnData, alpha: float, thresholds: list[float]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The DE table with pvalue_perm and qvalue_perm, the per-permutation table and the summary."""
    genes = table.set_index("gene_id").loc[null.var_names]
    stat, pvalue = genes["stat"].to_numpy(float), genes["pvalue"].to_numpy(float)
    null_stat, null_p = np.asarray(null.X, dtype=float), null.layers["pvalue"]
    pooled = null_abs_statistics(null_stat, null_p)
    p_perm = pooled_pvalues(stat, pvalue, pooled)
    pi0 = storey_pi0(p_perm)
    q_perm = storey_qvalues(p_perm, pi0)
    calibrated = table.copy()
    by_gene = pd.DataFrame({"pvalue_perm": p_perm, "qvalue_perm": q_perm}, index=null.var_names)
    calibrated = calibrated.join(by_gene, on="gene_id")

    per_permutation = permutation_table(null, alpha, thresholds)
    observed = deg_count_columns(
        genes["padj"].to_numpy(float), genes["log2FoldChange"].to_numpy(float), alpha, thresholds
    )
    fdr, threshold, null_at_threshold = empirical_fdr(
        pvalue, genes["padj"].to_numpy(float), null_p, alpha, pi0
    )
    summary = summary_table(
        observed,
        per_permutation,
        inflation_factor(stat, pvalue),
        pi0,
        fdr,
        threshold,
        null_at_threshold,
        int(np.sum(q_perm < alpha)),
        alpha,
        len(pooled),
        dict(null.uns.get("calibration", {})),
    )
    return calibrated, per_permutation, summary


def summary_table(
    observed: dict,
    per_permutation: pd.DataFrame,
    observed_lambda: float,
    pi0: float,
    fdr: float,
    threshold: float,
    null_at_threshold: float,
    qvalue_calls: int,
    alpha: float,
    n_pooled: int,
    setup: dict,
) -> pd.DataFrame:
    null_degs = per_permutation["degs"].to_numpy()
    k = len(null_degs)
    strata = list(setup.get("strata", []))
    rows = [
        ("permutations", k, "label permutations refitted (K)"),
        (
            "all_labellings_enumerated",
            bool(setup.get("all_labellings_enumerated", False)),
            "true when fewer distinct labellings exist than asked for, and all were used",
        ),
        (
            "strata",
            " x ".join(strata) or "none",
            "labels permuted within the crossed levels of these columns",
        ),
        ("seed", setup.get("seed", ""), "seed of the permutations"),
        ("pooled_null_size", n_pooled, "null Wald statistics with a p-value, all genes x permutations"),
        ("observed_degs", observed["degs"], f"genes at padj < {alpha:g} in the observed analysis"),
        ("null_degs_mean", float(null_degs.mean()), f"mean genes at padj < {alpha:g} over permutations"),
        ("null_degs_median", float(np.median(null_degs)), "median over permutations"),
        ("null_degs_p95", float(np.percentile(null_degs, 95)), "95th percentile over permutations"),
        (
            "frac_permutations_with_degs",
            float(np.mean(null_degs >= 1)),
            "share of permutations with at least one gene called",
        ),
        (
            "pvalue_observed_degs",
            float((np.sum(null_degs >= observed["degs"]) + 1) / (k + 1)),
            "permutation p-value of the observed count, (b + 1) / (K + 1), b = permutations with as many or more",
        ),
        (
            "smallest_pvalue",
            1 / (k + 1),
            "smallest permutation p-value K permutations can give, 1 / (K + 1)",
        ),
        ("observed_lambda", observed_lambda, "median(stat^2) / 0.455 of the observed analysis"),
        ("null_lambda_median", float(per_permutation["lambda"].median()), "median lambda over permutations"),
        ("pi0", pi0, f"share of true nulls, Storey's estimate at lambda = {STOREY_LAMBDA:g} on pvalue_perm"),
        ("p_threshold_of_calls", threshold, "largest p-value among the observed calls"),
        (
            "null_calls_at_threshold_mean",
            null_at_threshold,
            "mean number of null p-values at or below that threshold, per permutation",
        ),
        ("empirical_fdr", fdr, "SAM estimate: pi0 x null_calls_at_threshold_mean / observed_degs"),
        ("qvalue_perm_calls", qvalue_calls, f"genes at qvalue_perm < {alpha:g}"),
    ]
    return pd.DataFrame(rows, columns=["statistic", "value", "description"])
