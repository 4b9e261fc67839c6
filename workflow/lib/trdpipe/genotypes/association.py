"""Each variant's (and polygenic score's) association with a contrast: logistic regression of the
contrast's test level on the dosage (per alt allele) or score (per SD) with the design's other
covariates (statsmodels), allele frequencies by group, BH across the table's tests. A variant too
rare to fit, or one that separates the groups, is a row of NaN with its reason."""

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from trdpipe.checks.inputs import design_variables, formula_name
from trdpipe.genotypes.eqtl import covariate_matrix
from trdpipe.model.tables import bh

ASSOCIATION_COLUMNS = [
    "feature",
    "type",
    "gene",
    "n_test",
    "n_reference",
    "alt_frequency_test",
    "alt_frequency_reference",
    "carriers_test",
    "carriers_reference",
    "log_odds_ratio",
    "se",
    "odds_ratio",
    "pvalue",
    "padj",
    "note",
]


def covariates_formula(design: str, variable: str) -> str:
    """The design's main effects without the contrast's variable ('~ 1' when none is left)."""
    others = [formula_name(v) for v in design_variables(design) if v != variable]
    return "~ " + (" + ".join(others) if others else "1")


def logistic_coefficient(outcome: np.ndarray, covariates: np.ndarray, predictor: np.ndarray) -> dict:
    """The predictor's log odds ratio, its SE and Wald p-value in outcome ~ covariates + predictor;
    NaN with the reason when the fit separates the groups or does not converge."""
    design = np.column_stack([covariates, predictor])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        return {"note": "collinear with the covariates: not estimable"}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = sm.Logit(outcome, design).fit(disp=0, maxiter=100)
        except (PerfectSeparationError, PerfectSeparationWarning):
            return {"note": "perfect separation: the groups are split by it and the covariates"}
        except (ConvergenceWarning, np.linalg.LinAlgError):
            return {"note": "the logistic fit did not converge (quasi-separation)"}
    if not np.isfinite(fit.bse[-1]):
        return {"note": "the logistic fit did not converge (quasi-separation)"}
    return {"log_odds_ratio": fit.params[-1], "se": fit.bse[-1], "pvalue": fit.pvalues[-1], "note": ""}


def group_frequencies(dosage: pd.Series, is_test: pd.Series) -> dict:
    """Alt-allele frequency and carriers (at least one alt allele, dosage rounded) per group."""
    carriers = np.rint(dosage) >= 1
    return {
        "n_test": int(is_test.sum()),
        "n_reference": int((~is_test).sum()),
        "alt_frequency_test": dosage[is_test].mean() / 2,
        "alt_frequency_reference": dosage[~is_test].mean() / 2,
        "carriers_test": int(carriers[is_test].sum()),
        "carriers_reference": int(carriers[~is_test].sum()),
    }


def variant_row(
    dosage: pd.Series, is_test: pd.Series, covariates: pd.DataFrame, min_allele_count: int
) -> dict:
    called = dosage.notna()
    dosage, is_test = dosage[called], is_test[called]
    row = group_frequencies(dosage, is_test)
    alt_count = float(dosage.sum())
    minor = min(alt_count, 2 * len(dosage) - alt_count)
    if minor < min_allele_count:
        return {**row, "note": f"minor allele count {minor:.0f} < {min_allele_count}: too rare to fit"}
    fit = logistic_coefficient(
        is_test.to_numpy(float), covariates.loc[dosage.index].to_numpy(), dosage.to_numpy()
    )
    return {**row, **fit}


def score_row(score: pd.Series, is_test: pd.Series, covariates: pd.DataFrame) -> dict:
    """A polygenic score per SD of the compared samples."""
    called = score.notna()
    score, is_test = score[called].astype(float), is_test[called]
    row = {"n_test": int(is_test.sum()), "n_reference": int((~is_test).sum())}
    if score.std() == 0:
        return {**row, "note": "one value in every sample: nothing to test"}
    standardised = ((score - score.mean()) / score.std()).to_numpy()
    fit = logistic_coefficient(is_test.to_numpy(float), covariates.loc[score.index].to_numpy(), standardised)
    return {**row, **fit, "note": fit["note"] or "per SD of the score"}


def association_table(
    obs: pd.DataFrame,
    dosages: pd.DataFrame,
    variants: pd.DataFrame,
    scores: list[str],
    design: str,
    contrast: dict,
    min_allele_count: int,
) -> pd.DataFrame:
    """One row per variant (per alt allele) and per score (per SD) for the contrast's two levels
    among the samples with genotypes (a score: the samples with a value); odds ratio > 1 = more
    often in the contrast's test level."""
    variable = contrast["variable"]
    compared = obs[obs[variable].astype(str).isin([contrast["test"], contrast["reference"]])]
    covariates = covariate_matrix(compared, covariates_formula(design, variable))
    is_test = compared[variable].astype(str) == contrast["test"]
    genotyped = [s for s in compared.index if s in dosages.index]
    rows = []
    for variant in variants.itertuples():
        dosage = dosages.loc[genotyped, variant.variant_id]
        fit = variant_row(dosage, is_test[genotyped], covariates, min_allele_count)
        rows.append({"feature": variant.variant_id, "type": "variant", "gene": variant.gene, **fit})
    for score in scores:
        fit = score_row(compared[score], is_test, covariates)
        rows.append({"feature": score, "type": "score", "gene": "", **fit})
    table = pd.DataFrame(rows).reindex(columns=ASSOCIATION_COLUMNS)
    table["odds_ratio"] = np.exp(table["log_odds_ratio"].astype(float))
    table["padj"] = bh(table["pvalue"].to_numpy(dtype=float))
    return table
