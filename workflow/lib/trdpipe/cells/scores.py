"""Blood cell-type scores from variance-stabilised expression, and the covariates they give a model.

A cell type's score is computed from its marker genes (resources/cells/blood_cell_markers.gmt
plus any user GMT, `cells.markers`); the method is chosen in bench/bench_cells.py by its
accuracy against the planted proportions of simulated cohorts. Measured counts from the
sample sheet (`cells.measured`, e.g. a blood count's neutrophil %) join the scores as they are.
A type with fewer than `cells.min_markers` markers in the data, or with most of its markers
absent, is not estimable: it stays in the tables, marked so, with no score.
"""

import logging
import re

import numpy as np
import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.io.genesets import GeneSets, read_gmt

log = logging.getLogger("trd")

MIN_PRESENT_FRACTION = 0.5  # "mostly absent": fewer than half of a type's markers in the data
COVARIATE_PREFIX = "cell_"
# residual degrees of freedom of the design per cell covariate when cells.max_covariates is auto
SAMPLES_PER_COVARIATE = 10


# ----------------------------------------------------------------------------- markers
def load_markers(
    resource: str, extra: list[str] | None = None, annotation: pd.DataFrame | None = None
) -> GeneSets:
    """The shipped marker sets plus the user's GMTs; a user set named like a shipped one replaces it."""
    markers = dict(read_gmt(resource, annotation))
    for path in extra or []:
        markers.update(read_gmt(path, annotation))
    return markers


def marker_table(markers: GeneSets, symbols, min_markers: int) -> pd.DataFrame:
    """Per cell type: markers listed, present in the data, whether a score can be estimated."""
    symbols = set(symbols)
    rows = []
    for cell_type, (_, genes) in markers.items():
        present = [g for g in genes if g in symbols]
        enough = len(present) >= min_markers and len(present) >= MIN_PRESENT_FRACTION * len(genes)
        rows.append(
            {
                "cell_type": cell_type,
                "n_markers": len(genes),
                "n_present": len(present),
                "estimable": enough,
                "note": ""
                if enough
                else (
                    f"not estimable: {len(present)} of {len(genes)} markers in "
                    f"the data (needs {min_markers} and at least half)"
                ),
                "genes_present": ";".join(present),
            }
        )
    return pd.DataFrame(rows)


def check_estimable(table: pd.DataFrame, source: str, min_markers: int) -> None:
    """Stop when no cell type can be scored: the cell-adjusted model would have nothing to adjust for."""
    if table["estimable"].any():
        return
    found = [f"{t} {p}/{n}" for t, p, n in zip(table["cell_type"], table["n_present"], table["n_markers"])]
    raise InputError(
        f"{source}: no cell type has enough marker genes in the data (at least {min_markers}, and "
        f"at least half of its list); markers found per type: {format_list(found, 20)}. Check that "
        "the GMT uses gene symbols or Ensembl IDs of this data set."
    )


def gene_table(var: pd.DataFrame) -> pd.DataFrame:
    """gene_id and gene_symbol of the data's genes, for mapping an Ensembl-ID marker GMT."""
    return pd.DataFrame(
        {"gene_id": var.index.astype(str), "gene_symbol": var["gene_symbol"].fillna("").to_numpy()}
    )


def marker_files(settings: dict) -> list[str]:
    return [settings["resource"], *settings.get("markers", [])]


def check_cell_inputs(settings: dict, sheet: pd.DataFrame, var: pd.DataFrame, where: str) -> None:
    """At ingest: the measured-count columns are usable and some cell type has its markers in the data."""
    measured_counts(sheet, list(settings.get("measured", [])), where)
    markers = load_markers(settings["resource"], settings.get("markers", []), gene_table(var))
    table = marker_table(markers, var["gene_symbol"].dropna(), settings["min_markers"])
    check_estimable(
        table,
        f"{format_list(marker_files(settings))} (config cells.resource, cells.markers) on "
        f"the {len(var)} genes of the counts",
        settings["min_markers"],
    )


def measured_counts(obs: pd.DataFrame, columns: list[str], source: str) -> pd.DataFrame:
    """The sheet's measured cell counts (config cells.measured): numbers for every sample."""
    absent = [c for c in columns if c not in obs.columns]
    if absent:
        raise InputError(
            f"{source}: config cells.measured names column(s) {format_list(absent)} that the "
            f"sample sheet does not have; its columns are {format_list(obs.columns, 30)}."
        )
    table = pd.DataFrame(index=obs.index)
    for column in columns:
        values = pd.to_numeric(obs[column], errors="coerce")
        text = obs[column].notna() & values.isna()
        missing = obs[column].isna()
        if text.any():
            raise InputError(
                f"{source}: column '{column}' of cells.measured has non-numeric value(s) "
                f"{format_list(obs.loc[text, column].unique())} (sample(s) "
                f"{format_list(obs.index[text])}); expected a measured count or share."
            )
        if missing.any():
            raise InputError(
                f"{source}: column '{column}' of cells.measured has no value for sample(s) "
                f"{format_list(obs.index[missing])}; every sample needs one."
            )
        table[column] = values.astype(float)
    return table


# ----------------------------------------------------------------------------- scores
def expression_by_symbol(values: np.ndarray, samples, symbols) -> pd.DataFrame:
    """Samples x gene symbols; a symbol on several genes keeps its most expressed one."""
    frame = pd.DataFrame(np.asarray(values, dtype=float), index=samples, columns=list(symbols))
    frame = frame.loc[:, frame.columns.notna() & (frame.columns != "")]
    order = np.argsort(-frame.mean(axis=0).to_numpy(), kind="stable")
    frame = frame.iloc[:, order]
    return frame.loc[:, ~frame.columns.duplicated()]


def _standardise(frame: pd.DataFrame) -> pd.DataFrame:
    sd = frame.std(axis=0, ddof=1).replace(0, np.nan)
    return ((frame - frame.mean(axis=0)) / sd).fillna(0.0)


def score_mean_z(expr: pd.DataFrame, genes: list[str], seed: int) -> np.ndarray:
    """Mean of the markers' z-scores across samples: every marker weighs the same."""
    return _standardise(expr[genes]).mean(axis=1).to_numpy()


def score_first_pc(expr: pd.DataFrame, genes: list[str], seed: int) -> np.ndarray:
    """First principal component of the markers' z-scores, signed to agree with their mean: markers
    that do not move with the others (expressed by other cells too, or noise) weigh little."""
    z = _standardise(expr[genes]).to_numpy()
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    score = u[:, 0] * s[0] / np.sqrt(len(genes))
    return score if np.dot(score, z.mean(axis=1)) >= 0 else -score


def score_mean_expression(expr: pd.DataFrame, genes: list[str], seed: int) -> np.ndarray:
    """Mean log-scale expression of the markers (MCP-counter's score, Becht et al. 2016)."""
    return expr[genes].mean(axis=1).to_numpy()


def score_genes(expr: pd.DataFrame, genes: list[str], seed: int) -> np.ndarray:
    """scanpy's score_genes: markers' mean minus that of expression-matched random control genes."""
    import anndata as ad
    import scanpy as sc

    adata = ad.AnnData(
        X=expr.to_numpy(),
        obs=pd.DataFrame(index=expr.index.astype(str)),
        var=pd.DataFrame(index=expr.columns.astype(str)),
    )
    sc.tl.score_genes(adata, genes, score_name="score", random_state=seed, use_raw=False)
    return adata.obs["score"].to_numpy()


# every scorer takes (expression, markers, seed); only score_genes draws at random
SCORERS = {
    "mean_z": score_mean_z,
    "first_pc": score_first_pc,
    "mean_expression": score_mean_expression,
    "score_genes": score_genes,
}
# the schema's cells.method (tests/test_schema_enums.py)
SCORE_METHODS = tuple(SCORERS)


def cell_scores(expr: pd.DataFrame, table: pd.DataFrame, method: str, seed: int) -> pd.DataFrame:
    """Samples x cell types (every type of the marker table; NaN where not estimable)."""
    scorer = SCORERS[method]
    scores = pd.DataFrame(index=expr.index)
    for row in table.itertuples():
        genes = row.genes_present.split(";") if row.genes_present else []
        scores[row.cell_type] = scorer(expr, genes, seed) if row.estimable else np.nan
    return scores


# ----------------------------------------------------------------------------- as covariates
def covariate_name(cell_type: str) -> str:
    """A design-formula name for a score: 'cell_' + the type with non-word characters as '_'."""
    return COVARIATE_PREFIX + re.sub(r"\W", "_", cell_type)


def variance_inflation(values: pd.DataFrame) -> pd.Series:
    """Variance inflation factor of each column (inf when a column is a combination of others)."""
    corr = np.atleast_2d(np.corrcoef(values.to_numpy(), rowvar=False))
    if np.linalg.cond(corr) > 1e12:  # singular: shares that add up to one, say
        return pd.Series(np.inf, index=values.columns)
    return pd.Series(np.diag(np.linalg.inv(corr)), index=values.columns)


def covariate_cap(n_samples: int, design_rank: int, max_covariates: int | str) -> int:
    """How many cell covariates a model may add: `max_covariates` when it is a number; when it is
    'auto', one per SAMPLES_PER_COVARIATE residual degrees of freedom of the design without them,
    (n - rank) // 10, and at least one (else there would be no cell-adjusted model to report)."""
    if max_covariates != "auto":
        return int(max_covariates)
    return max(1, (n_samples - design_rank) // SAMPLES_PER_COVARIATE)


def leading_components(z: pd.DataFrame, k: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The first k principal components of standardised scores (each scaled to SD 1), and the
    cumulative share of the scores' variance the components explain."""
    u, s, _ = np.linalg.svd(z.to_numpy(), full_matrices=False)
    explained = np.cumsum(s**2) / (s**2).sum()
    pcs = u[:, :k] * s[:k]
    pcs = pcs / pcs.std(axis=0, ddof=1)
    columns = [f"{COVARIATE_PREFIX}PC{i + 1}" for i in range(k)]
    return pd.DataFrame(pcs, index=z.index, columns=columns), explained


def cell_covariates(
    scores: pd.DataFrame, max_vif: float, pc_variance: float, cap: int | None = None
) -> tuple[pd.DataFrame, dict]:
    """The covariates a cell-adjusted model adds, and what was chosen and why.

    All estimable scores when none has a variance inflation factor above `max_vif`; otherwise
    (composition shares are collinear: they add up to one) the fewest principal components of
    the standardised scores that explain `pc_variance` of their variance, so that the model
    spends few degrees of freedom and its coefficients stay estimable. Either way at most `cap`
    covariates (covariate_cap): beyond it, the `cap` leading principal components.
    """
    usable = scores.dropna(axis=1, how="all")
    usable = usable.loc[:, usable.std(axis=0, ddof=1) > 0]
    z = _standardise(usable)
    vif = variance_inflation(z) if usable.shape[1] > 1 else pd.Series(1.0, index=usable.columns)
    cap = usable.shape[1] if cap is None else cap
    if float(vif.max()) <= max_vif and usable.shape[1] <= cap:
        covariates = z.rename(columns=covariate_name)
        return covariates, {
            "covariates": "scores",
            "n_covariates": covariates.shape[1],
            "max_vif": float(vif.max()),
            "variance_explained": 1.0,
            "max_covariates": cap,
            "reason": f"largest variance inflation factor {vif.max():.3g} <= {max_vif:g}",
        }
    _, explained = leading_components(z, 1)
    wanted = int(np.searchsorted(explained, pc_variance - 1e-12) + 1)
    if float(vif.max()) <= max_vif:  # independent scores, but more than the cap: keep all their variance
        wanted = usable.shape[1]
    k = min(wanted, cap)
    covariates, _ = leading_components(z, k)
    covariates.index = scores.index
    worst = vif.idxmax()
    why = (
        f"scores collinear (variance inflation factor of {worst} {vif.max():.3g} > {max_vif:g})"
        if float(vif.max()) > max_vif
        else f"largest variance inflation factor {vif.max():.3g} <= {max_vif:g}, but {usable.shape[1]} scores"
    )
    capped = f", capped at {cap} (cells.max_covariates)" if k < wanted else ""
    return covariates, {
        "covariates": "principal components",
        "n_covariates": k,
        "max_vif": float(vif.max()),
        "variance_explained": float(explained[k - 1]),
        "max_covariates": cap,
        "reason": f"{why}: {k} principal components{capped} explain {explained[k - 1]:.0%} of their variance",
    }


# ----------------------------------------------------------------------------- by group
def hedges_g(test: np.ndarray, reference: np.ndarray) -> float:
    """Standardised mean difference with the small-sample correction."""
    n1, n2 = len(test), len(reference)
    pooled = np.sqrt(((n1 - 1) * test.var(ddof=1) + (n2 - 1) * reference.var(ddof=1)) / (n1 + n2 - 2))
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((test.mean() - reference.mean()) / pooled * correction) if pooled > 0 else np.nan


def scores_by_group(scores: pd.DataFrame, obs: pd.DataFrame, contrast: dict) -> pd.DataFrame:
    """Each score in the test vs the reference group: means, difference, Hedges' g, Welch t-test, BH."""
    from scipy import stats

    from trdpipe.model.tables import bh

    labels = obs.loc[scores.index, contrast["variable"]].astype(str)
    rows = []
    for cell_type in scores.columns:
        values = scores[cell_type]
        test = values[labels == contrast["test"]].dropna().to_numpy()
        reference = values[labels == contrast["reference"]].dropna().to_numpy()
        estimable = len(test) > 1 and len(reference) > 1
        t, p = stats.ttest_ind(test, reference, equal_var=False) if estimable else (np.nan, np.nan)
        rows.append(
            {
                "cell_type": cell_type,
                "n_test": len(test),
                "n_reference": len(reference),
                "mean_test": test.mean() if estimable else np.nan,
                "mean_reference": reference.mean() if estimable else np.nan,
                "difference": test.mean() - reference.mean() if estimable else np.nan,
                "hedges_g": hedges_g(test, reference) if estimable else np.nan,
                "welch_t": t,
                "pvalue": p,
            }
        )
    table = pd.DataFrame(rows)
    table["padj"] = bh(table["pvalue"].to_numpy())
    return table
