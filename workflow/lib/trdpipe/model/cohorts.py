"""The cohorts of a meta-analysis (config `cohorts`): the column's checks, which cohorts a contrast
fits, and whether a cohort can carry its own model. Imported by ingest and the Snakefile, so it
stays light (no statsmodels)."""

import re

import pandas as pd

from trdpipe.checks.inputs import check_full_rank, design_variables
from trdpipe.common import InputError, format_list
from trdpipe.model.sensitivity import model_design, residual_df

# a cohort names a folder of results/meta/{contrast}/cohorts/
SAFE_COHORT = re.compile(r"[A-Za-z0-9._-]+")


def check_cohorts_column(sheet: pd.DataFrame, column: str, design: str, where: str) -> list[str]:
    """The cohort column exists, holds two cohorts at least and is in the design (the mega-analysis
    is the primary model, so the design must adjust for the cohort). Returns the cohorts."""
    if column not in sheet.columns:
        raise InputError(
            f"{where}: config cohorts names column '{column}', which the sample sheet does not "
            f"have; its columns are {format_list(sheet.columns, 30)}."
        )
    values = sheet[column]
    if values.isna().any():
        raise InputError(
            f"{where}: column '{column}' (config cohorts) has no value for sample(s) "
            f"{format_list(values.index[values.isna()])}; every sample needs its cohort."
        )
    cohorts = sorted(values.astype(str).unique())
    if len(cohorts) < 2:
        raise InputError(
            f"{where}: column '{column}' (config cohorts) holds one cohort only ({cohorts[0]}); a "
            "meta-analysis needs two at least: set cohorts to '' to switch it off."
        )
    unsafe = [c for c in cohorts if not SAFE_COHORT.fullmatch(c)]
    if unsafe:
        raise InputError(
            f"{where}: column '{column}' (config cohorts) has cohort name(s) {format_list(unsafe)} "
            "that cannot name a results folder; use letters, digits, '.', '_' and '-'."
        )
    if column not in design_variables(design):
        raise InputError(
            f"config cohorts is '{column}', which the design '{design}' does not adjust for; the "
            f"pooled model is the mega-analysis and needs the cohort: add {column} to the design."
        )
    return cohorts


def cohorts_of_contrast(sheet: pd.DataFrame, column: str, contrast: dict) -> dict[str, str]:
    """The cohorts that lack a level the contrast compares, each with the reason, for the log: they
    are left out of this contrast's meta-analysis."""
    levels = (contrast["test"], contrast["reference"])
    held = sheet.groupby(sheet[column].astype(str))[contrast["variable"]].agg(lambda v: set(v.astype(str)))
    return {
        cohort: f"no sample with {contrast['variable']} = {format_list(sorted(set(levels) - present))}"
        for cohort, present in held.items()
        if not set(levels) <= present
    }


def meta_cohorts(sheet: pd.DataFrame, column: str, contrast: dict) -> list[str]:
    """The cohorts fitted for a contrast's meta-analysis: those that hold both compared levels."""
    lacking = cohorts_of_contrast(sheet, column, contrast)
    return [c for c in sorted(sheet[column].astype(str).unique()) if c not in lacking]


def cohort_design(design: str, column: str) -> str:
    """The design of a cohort's own model: the primary one without the cohort term."""
    return model_design(design, {"remove": [column]})


def cohort_shortfall(obs: pd.DataFrame, design: str, contrast: dict, min_per_level: int) -> str | None:
    """Why one cohort's samples cannot carry its own model, or None: a compared level with fewer
    than `min_per_level` samples, a design not of full rank there, or no residual degree of
    freedom."""
    sizes = obs[contrast["variable"]].astype(str).value_counts()
    for level in (contrast["test"], contrast["reference"]):
        if sizes.get(level, 0) < min_per_level:
            return (
                f"{int(sizes.get(level, 0))} sample(s) with {contrast['variable']} = {level}, "
                f"fewer than meta.min_samples_per_level ({min_per_level})"
            )
    try:
        check_full_rank(obs, design, "its samples")
    except InputError as err:
        return str(err).rstrip(".")
    if residual_df(obs, design) < 1:
        return f"no residual degree of freedom for the design '{design}' on {len(obs)} samples"
    return None
