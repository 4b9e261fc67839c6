"""Checks of the sample sheet, the counts and the design, run before any model is fitted.

Each failure raises InputError with one message naming the file, the place
(sample, gene, column) and what was expected.
"""

import logging
import math
import re
import unicodedata

import numpy as np
import pandas as pd
from formulaic import Formula, model_matrix
from formulaic.errors import FormulaParsingError

from trdpipe.common import InputError, format_list

log = logging.getLogger("trd")

MAX_COUNT = 2.0**53


def check_counts(counts: pd.DataFrame, source: str, estimated: bool = False) -> pd.DataFrame:
    """Counts must be unique genes x unique samples of non-negative whole numbers; returns int64.

    `estimated` counts (salmon, kallisto, RSEM) are fractional by nature: they are rounded to
    the nearest integer (as DESeq2's tximport import does) and the rounding is logged.
    """
    _check_not_empty(counts.index, source)
    _check_unique(counts.index, "gene ID", source)
    _check_unique(counts.columns, "sample ID", source)
    numeric = _as_numbers(counts, source)
    values = numeric.to_numpy(dtype=float)
    _check_cells(
        pd.DataFrame(values < 0, counts.index, counts.columns),
        counts,
        source,
        "is negative; expected a count >= 0",
    )
    # beyond 2^53 floats no longer hold every whole number, and int64 cannot hold inf
    _check_cells(
        pd.DataFrame(values >= MAX_COUNT, counts.index, counts.columns),
        counts,
        source,
        "is infinite or too large; expected a count below 2^53",
    )
    fractional = values != np.round(values)
    if estimated:
        log.info(
            "%s: %d of %d estimated counts were fractional and are rounded to integers.",
            source,
            int(fractional.sum()),
            fractional.size,
        )
        return numeric.round().astype(np.int64)
    _check_cells(
        pd.DataFrame(fractional, counts.index, counts.columns),
        counts,
        source,
        "is not a whole number; expected raw counts (not normalised values); estimated "
        "counts (nf-core's salmon.merged.gene_counts.tsv) are rounded with counts_format: salmon",
    )
    return numeric.astype(np.int64)


def _as_numbers(counts: pd.DataFrame, source: str) -> pd.DataFrame:
    """The counts as floats; a missing or non-numeric cell raises, naming it.

    Converting the whole matrix at once is fast; only when that fails is it done per
    column (about ten times slower on a large cohort) to find the offending cell.
    """
    try:
        values = counts.to_numpy(dtype=float)
    except (TypeError, ValueError):
        values = None
    if values is not None and not np.isnan(values).any():
        return pd.DataFrame(values, index=counts.index, columns=counts.columns)
    numeric = counts.apply(pd.to_numeric, errors="coerce")
    text_columns = counts.columns[(numeric.isna() & counts.notna()).all(axis=0).to_numpy()]
    if len(text_columns) and len(counts):
        raise InputError(
            f"{source}: column(s) {format_list(text_columns)} hold no number, so they are not a sample's "
            f"counts; a column of gene IDs must be the first or be named gene_id, one of gene symbols "
            f"be named gene_name, gene_symbol or symbol."
        )
    _check_cells(numeric.isna() & counts.notna(), counts, source, "is not a number")
    _check_cells(counts.isna(), counts, source, "is missing; expected a count")
    return numeric


def _check_not_empty(gene_ids: pd.Index, source: str) -> None:
    empty = np.flatnonzero(gene_ids.astype(str).str.strip() == "")
    if len(empty):
        more = f" ({len(empty)} such rows in all)" if len(empty) > 1 else ""
        raise InputError(
            f"{source}: gene row {empty[0] + 1} has an empty gene ID{more}; every row needs one."
        )


def _check_unique(labels: pd.Index, what: str, source: str) -> None:
    duplicated = labels[labels.duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{source}: duplicated {what}s: {format_list(duplicated)}; each must appear once.")


def _check_cells(bad: pd.DataFrame, counts: pd.DataFrame, source: str, problem: str) -> None:
    """Raise naming the first offending cell and how many there are."""
    mask = bad.to_numpy()
    if not mask.any():
        return
    gene_pos, sample_pos = np.argwhere(mask)[0]
    value = plain_number(counts.iat[gene_pos, sample_pos])
    total = int(mask.sum())
    more = f" ({total} such values in all)" if total > 1 else ""
    raise InputError(
        f"{source}: the count of gene {counts.index[gene_pos]} in sample "
        f"{counts.columns[sample_pos]} ({value!r}) {problem}{more}."
    )


def plain_number(value):
    """A NumPy scalar as the Python number it holds, so that messages show 5, not np.int64(5)."""
    return value.item() if isinstance(value, np.generic) else value


def check_libraries(counts: pd.DataFrame, source: str) -> None:
    """Every sample needs some counts: an empty library has no size factor (DESeq2 stops too)."""
    empty = counts.columns[counts.sum(axis=0).to_numpy() == 0]
    if len(empty):
        raise InputError(
            f"{source}: sample(s) {format_list(empty)} have no counts (every gene is 0); "
            f"remove the failed libraries from the sample sheet."
        )


def match_samples(
    counts: pd.DataFrame,
    sheet: pd.DataFrame,
    counts_source: str,
    sheet_source: str,
    allow_missing: bool = False,
) -> pd.DataFrame:
    """Counts with columns in sample-sheet order; every sample of the counts must be in the sheet,
    and every sample of the sheet in the counts unless `allow_missing` (an extra assay, measured
    on some of the samples: those it lacks are logged and left out)."""
    missing = [s for s in sheet.index if s not in counts.columns]
    extra = [s for s in counts.columns if s not in sheet.index]
    in_rows = [s for s in missing if s in counts.index]
    if missing and len(in_rows) >= len(missing) / 2:
        raise InputError(
            f"{counts_source}: the matrix looks transposed: {len(in_rows)} of the {len(missing)} samples "
            f"of the sample sheet {sheet_source} that are not among its columns are row names "
            f"({format_list(in_rows, 5)}); expected one row per gene and one column per sample."
        )
    if missing and allow_missing:
        log.info(
            "%d sample(s) of the sample sheet %s are not in the counts %s and are left out of this assay: %s",
            len(missing),
            sheet_source,
            counts_source,
            format_list(missing),
        )
        missing = []
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} sample(s) of the sample sheet {sheet_source} are not "
            f"in the counts {counts_source}: {format_list(missing)}"
        )
    if extra:
        problems.append(
            f"{len(extra)} sample(s) of the counts {counts_source} are not in the "
            f"sample sheet {sheet_source}: {format_list(extra)}"
        )
    if problems:
        raise InputError("; ".join(problems) + ".")
    return counts.loc[:, [s for s in sheet.index if s in counts.columns]]


def design_variables(design: str) -> list[str]:
    """Variables named in a formula such as '~ site + sex + age + group'."""
    rhs = design.split("~", 1)[1]
    names = []
    for term in rhs.replace("*", "+").replace(":", "+").split("+"):
        term = term.strip().strip("`")  # `blood draw`: a column name with a space, quoted
        if term and term not in ("1", "0"):
            names.append(term)
    return list(dict.fromkeys(names))


def formula_name(column: str) -> str:
    """A column as a formula names it: in backticks unless it is a plain name ('blood draw')."""
    return column if column.isidentifier() else f"`{column}`"


def _check_plain_terms(design: str) -> None:
    """Each term names sheet columns: a transform (`log(age)`) or a name a formula would read as
    an expression (`RNA-batch`: RNA minus batch) stops with how to write it."""
    rhs = design.split("~", 1)[1]
    for term in re.split(r"[+*:]", rhs):
        term = term.strip()
        if not term or term in ("0", "1") or term.isidentifier() or re.fullmatch(r"`[^`]+`", term):
            continue
        if re.fullmatch(r"\w+\(.*\)", term):
            raise InputError(
                f"config 'design': the term '{term}' transforms a column; the design names sample-sheet "
                "columns as they are (continuous ones are centred and scaled): put the transformed "
                "values in a column of their own and name that column."
            )
        raise InputError(
            f"config 'design': '{term}' is not a plain column name and a formula would read it as an "
            f"expression; write it in backticks: `{term}`."
        )


def check_design(sheet: pd.DataFrame, design: str, contrasts: dict, sheet_source: str) -> None:
    """The design's variables exist, have no missing values, vary, and do not mix numbers with
    text; contrasts name real levels; the model matrix has full rank."""
    try:
        Formula(design)
    except FormulaParsingError as err:
        reason = str(err).splitlines()[0].rstrip(".")
        raise InputError(f"config 'design': '{design}' is not a valid formula ({reason}).") from None
    _check_plain_terms(design)
    variables = design_variables(design)
    absent = [v for v in variables if v not in sheet.columns]
    if absent:
        raise InputError(
            f"{sheet_source}: design '{design}' uses column(s) {format_list(absent)} that the sample "
            f"sheet does not have; its columns are {format_list(sheet.columns, 30)}."
        )
    for variable in variables:
        _check_design_column(sheet[variable], sheet_source)
    for name, contrast in contrasts.items():
        check_contrast(sheet, name, contrast, variables, sheet_source)
        check_no_interaction(design, name, contrast["variable"])
    check_full_rank(sheet, design, sheet_source)


def _check_design_column(column: pd.Series, sheet_source: str) -> None:
    """A value for every sample, not one value for all, and numbers or text but not both
    (numbers with a few text values are a typo, not a factor of many levels)."""
    where = f"{sheet_source}: column '{column.name}' of the design"
    empty = column.index[column.isna()]
    if len(empty):
        raise InputError(f"{where} has no value for sample(s) {format_list(empty)}; every sample needs one.")
    if not pd.api.types.is_numeric_dtype(column):
        numeric = pd.to_numeric(column, errors="coerce")
        if numeric.notna().any():
            text = column[numeric.isna()]
            raise InputError(
                f"{where} has numbers but also {format_list(text.unique())} (sample(s) "
                f"{format_list(text.index)}); use numbers throughout for a continuous covariate, "
                f"or text throughout (e.g. 'batch1') for a factor."
            )
        _check_numbers_with_units(column, where)
        _check_confusable_levels(column, where)
    values = column.unique()
    if len(values) == 1:
        raise InputError(
            f"{where} has the same value ({plain_number(values[0])}) for every sample, so it "
            f"explains nothing; remove it from the design."
        )
    if pd.api.types.is_numeric_dtype(column):
        _warn_of_codes(column, where)
        _warn_of_extreme_values(column, where)
    if not pd.api.types.is_numeric_dtype(column) and len(values) > len(column) / 3:
        log.warning(
            "%s is categorical with %d levels for %d samples: a factor of that many levels "
            "costs a coefficient each; is it meant to be a number?",
            where,
            len(values),
            len(column),
        )


# A numeric column of at most this many distinct whole numbers (site 1/2/3) may be categories coded
# as numbers: it is fitted as continuous (one slope), so the log says how to make it categorical
MAX_CODED_LEVELS = 5
# A value this many robust SDs (1.4826 MAD) from the median (age 999) is most likely a typo or a
# missing-value code
EXTREME_ROBUST_SDS = 10


def _warn_of_codes(column: pd.Series, where: str) -> None:
    values = np.sort(column.unique())
    if 2 < len(values) <= MAX_CODED_LEVELS and np.all(values == np.round(values)):
        log.warning(
            "%s holds only the whole numbers %s, so it is fitted as a continuous covariate (one slope); "
            "if they are categories (sites, batches), write them as text (e.g. '%s%s') to make it categorical",
            where,
            ", ".join(str(plain_number(v)) for v in values),
            column.name,
            plain_number(values[0]),
        )


def _warn_of_extreme_values(column: pd.Series, where: str) -> None:
    median = column.median()
    spread = 1.4826 * (column - median).abs().median()
    extreme = column[(column - median).abs() > EXTREME_ROBUST_SDS * spread] if spread > 0 else column[:0]
    if len(extreme):
        log.warning(
            "%s has value(s) far from the others (median %s): %s; a typo or a missing-value code? "
            "Missing values are empty cells or NA",
            where,
            plain_number(median),
            ", ".join(f"{plain_number(v)} (sample {s})" for s, v in extreme.items()),
        )


# '45 years', '3.5 kg': a number, then text
NUMBER_WITH_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*([^\d\s].*)$", re.IGNORECASE)


def _check_numbers_with_units(column: pd.Series, where: str) -> None:
    """A number followed by the same text in every cell ('45 years') is a continuous covariate
    written with its unit; read as text it would be a factor of one level per value."""
    matches = column.astype(str).str.strip().str.extract(NUMBER_WITH_TEXT)
    units = matches[2].str.strip().str.lower()
    if units.notna().all() and units.nunique() == 1:
        raise InputError(
            f"{where} holds a number and the text '{units.iloc[0]}' in every cell "
            f"({format_list(column.unique()[:3])}, ...), which would make it a factor of "
            f"{column.nunique()} levels; write the numbers alone (the unit can go in the column name, "
            f"e.g. '{column.name}_{units.iloc[0]}'), or text throughout for a factor."
        )


def level_key(level: str) -> str:
    """What a level is once case, Unicode form (NFKC) and invisible characters (zero-width
    spaces, soft hyphens, byte-order marks: Unicode category Cf) no longer count."""
    text = unicodedata.normalize("NFKC", str(level))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf").strip().casefold()


def _check_confusable_levels(column: pd.Series, where: str) -> None:
    """'trd' beside 'TRD', or 'TRD' with a zero-width space, would be a level of its own."""
    by_key: dict[str, list[str]] = {}
    for level in sorted(column.dropna().astype(str).unique()):
        by_key.setdefault(level_key(level), []).append(level)
    clashes = [levels for levels in by_key.values() if len(levels) > 1]
    if clashes:
        described = "; ".join(
            " and ".join(
                f"{level!r} (sample(s) {format_list(column.index[column.astype(str) == level], 5)})"
                for level in levels
            )
            for levels in clashes
        )
        raise InputError(
            f"{where} has levels that differ only in case or in invisible characters: "
            f"{described}; write each level the same way in every row."
        )


def check_no_interaction(design: str, name: str, variable: str) -> None:
    """Stop on a design in which the contrast's variable interacts with another (site:group).

    Its coefficient would then be the effect at the reference level of the other variable only,
    not the 'test vs reference' the contrast and the report name.
    """
    for term in Formula(design):
        factors = [str(factor) for factor in term.factors]
        if len(factors) > 1 and variable in factors:
            others = [f for f in factors if f != variable]
            raise InputError(
                f"config 'design': '{design}' has the interaction {':'.join(factors)}, so the coefficient "
                f"that contrast '{name}' tests would be the {variable} effect at the reference level of "
                f"{format_list(others)} only, not {variable} overall. The pipeline fits main effects: "
                f"remove the interaction term (with '*', write '+')."
            )


def check_contrast(
    sheet: pd.DataFrame, name: str, contrast: dict, variables: list[str], sheet_source: str
) -> None:
    variable, test, reference = contrast["variable"], contrast["test"], contrast["reference"]
    if variable not in variables:
        raise InputError(
            f"contrast '{name}': variable '{variable}' is not in the design ({format_list(variables)})."
        )
    if pd.api.types.is_numeric_dtype(sheet[variable]):
        raise InputError(
            f"{sheet_source}: contrast '{name}': column '{variable}' holds numbers, so the model "
            f"treats it as continuous and it has no levels to compare; write its values as text "
            f"(e.g. 'TRD', 'responder') to make it categorical."
        )
    if test == reference:
        raise InputError(
            f"contrast '{name}': the test level and the reference level are both '{test}'; they must differ."
        )
    levels = sorted(sheet[variable].astype(str).unique())
    for role, level in (("test", test), ("reference", reference)):
        if level not in levels:
            raise InputError(
                f"{sheet_source}: contrast '{name}': {role} level '{level}' does not occur in column "
                f"'{variable}'; its levels are {format_list(levels)}."
            )


def check_full_rank(sheet: pd.DataFrame, design: str, sheet_source: str) -> None:
    """The model matrix must have full column rank; name the columns that are linear combinations."""
    matrix = model_matrix(design, sheet)
    values = np.asarray(matrix, dtype=float)
    rank = np.linalg.matrix_rank(values)
    if rank == values.shape[1]:
        return
    dependent = _dependent_columns(values)
    names = [matrix.columns[i] for i in dependent]
    raise InputError(
        f"{sheet_source}: the design '{design}' is not full rank (rank {rank} < {values.shape[1]} "
        f"columns): {format_list(names)} can be written as combinations of the other columns, "
        f"e.g. a covariate completely confounded with another. Remove or merge one of them."
    )


def design_rank(sheet: pd.DataFrame, design: str) -> int:
    """The rank of the design's model matrix on these samples (its columns when full rank)."""
    return int(np.linalg.matrix_rank(np.asarray(model_matrix(design, sheet), dtype=float)))


def _dependent_columns(values: np.ndarray) -> list[int]:
    """Columns that add no rank when added left to right, plus the columns they depend on."""
    kept, dependent = [], []
    for j in range(values.shape[1]):
        if np.linalg.matrix_rank(values[:, kept + [j]]) > len(kept):
            kept.append(j)
        else:
            dependent.append(j)
    involved = set(dependent)
    for j in dependent:
        coef, *_ = np.linalg.lstsq(values[:, kept], values[:, j], rcond=None)
        involved.update(k for k, c in zip(kept, coef) if abs(c) > 1e-8)
    return sorted(involved)


def check_group_sizes(sheet: pd.DataFrame, contrasts: dict, where: str, predict: dict | None = None) -> None:
    """Each level compared by a contrast needs 2 samples for the DE model, and enough for the
    TRD prediction's nested cross-validation when it runs (``predict``: the config's section)."""
    needed = samples_for_prediction(predict) if predict and predict["enabled"] else 2
    for name, contrast in contrasts.items():
        sizes = sheet[contrast["variable"]].astype(str).value_counts()
        for level in (contrast["test"], contrast["reference"]):
            n = int(sizes.get(level, 0))
            if n >= needed:
                continue
            problem = (
                f"{where}: contrast '{name}' has {n} sample(s) with {contrast['variable']} = "
                f"'{level}'; at least"
            )
            if n < 2:
                raise InputError(f"{problem} 2 are needed.")
            raise InputError(
                f"{problem} {needed} are needed for the TRD prediction's nested cross-validation "
                f"(config predict.outer_folds {predict['outer_folds']}, predict.inner_folds "
                f"{predict['inner_folds']}): lower those, or set predict.enabled to false to skip "
                "the prediction."
            )


def samples_for_prediction(predict: dict) -> int:
    """Fewest samples of a level for stratified nested cross-validation: every outer test fold
    holds one of them, and every outer training fold keeps n - ceil(n / outer) of them, which
    the inner folds must be able to split again."""
    outer, inner = int(predict["outer_folds"]), int(predict["inner_folds"])
    n = max(2, outer)
    while n - math.ceil(n / outer) < inner:
        n += 1
    return n


def prediction_group_column(
    sheet: pd.DataFrame, predict: dict, design: str, compared: str | None = None
) -> str | None:
    """The column whose levels the site-held-out validation holds out, or None.

    predict.group_by 'auto': the design's `site` column when it has at least 3 levels (with 2,
    each training set would be a single site); '' or 'none': no site-held-out validation.
    None too for a contrast that compares that column's levels (`compared`, its variable):
    a held-out site would leave a training set of one class.
    """
    group_by = predict.get("group_by", "auto")
    if group_by in ("", "none"):
        return None
    if group_by == "auto":
        in_design = "site" in design_variables(design) and "site" in sheet.columns
        group_by = "site" if in_design and sheet["site"].nunique() >= 3 else None
    return None if group_by == compared else group_by


def check_prediction_inputs(
    sheet: pd.DataFrame, contrasts: dict, design: str, predict: dict, where: str
) -> None:
    """The prediction's covariates and site column are usable, and every site-held-out training
    set can still be split into the inner folds; checked before anything is fitted."""
    if not predict.get("enabled", True):
        return
    check_prediction_covariates(sheet, predict, where)
    check_prediction_groups(sheet, contrasts, design, predict, where)
    group_by = prediction_group_column(sheet, predict, design)
    if group_by is None:
        return
    _check_prediction_column(sheet, group_by, "predict.group_by", where)
    if sheet[group_by].nunique() < 2:
        raise InputError(
            f"{where}: column '{group_by}' (config predict.group_by) has a single level "
            f"({sheet[group_by].iloc[0]}), so no site can be held out; name a column with at least 2 "
            f"levels, or set predict.group_by to '' for no site-held-out validation."
        )
    check_site_fold_sizes(sheet, contrasts, group_by, int(predict.get("inner_folds", 2)), where)


def check_prediction_covariates(sheet: pd.DataFrame, predict: dict, where: str) -> None:
    """The covariates of predict.covariates that the sheet has: at least one, none with a
    missing value (scikit-learn's learners take no NaN)."""
    if "covariates" not in predict:  # a section without them (the schema's default fills them in a run)
        return
    covariates = predict["covariates"]
    if not covariates:
        raise InputError(
            "config predict.covariates is empty, so the clinical model has no features and the "
            "comparison of expression with clinical data cannot be made; name at least one column of "
            f"the sample sheet {where}, or set predict.enabled to false."
        )
    present = [c for c in covariates if c in sheet.columns]
    if not present:
        raise InputError(
            f"{where}: none of the columns of config predict.covariates ({format_list(covariates)}) "
            f"is in the sample sheet, so the clinical model has no features; its columns are "
            f"{format_list(sheet.columns, 30)}."
        )
    for column in present:
        _check_no_missing(sheet, column, "predict.covariates", where)


def _check_prediction_column(sheet: pd.DataFrame, column: str, key: str, where: str) -> None:
    """The column config `key` names is in the sheet and has a value for every sample."""
    if column not in sheet.columns:
        raise InputError(
            f"config {key}: column '{column}' is not in the sample sheet {where}; its "
            f"columns are {format_list(sheet.columns, 30)}."
        )
    _check_no_missing(sheet, column, key, where)


def _check_no_missing(sheet: pd.DataFrame, column: str, key: str, where: str) -> None:
    empty = sheet.index[sheet[column].isna()]
    if len(empty):
        raise InputError(
            f"{where}: column '{column}' of config {key} has no value for sample(s) {format_list(empty)}; "
            f"the prediction needs one for every sample (fill them in, or remove '{column}' from {key})."
        )


def check_site_fold_sizes(
    sheet: pd.DataFrame, contrasts: dict, group_by: str, inner_folds: int, where: str
) -> None:
    """With a site held out, each compared group keeps at least inner_folds samples in the
    other sites, so that the inner folds can tune the model."""
    for name, contrast in contrasts.items():
        if contrast["variable"] == group_by:  # no site-held-out validation (prediction_group_column)
            continue
        values = sheet[contrast["variable"]].astype(str)
        for site in sorted(sheet[group_by].astype(str).unique()):
            others = values[sheet[group_by].astype(str) != site]
            for level in (contrast["test"], contrast["reference"]):
                n = int((others == level).sum())
                if n < inner_folds:
                    raise InputError(
                        f"{where}: contrast '{name}': without {group_by} '{site}' (held out in the "
                        f"site-held-out validation) {n} sample(s) with {contrast['variable']} = "
                        f"'{level}' remain; at least {inner_folds} are needed for the inner folds "
                        f"(config predict.inner_folds): lower it, set predict.group_by to '' for no "
                        f"site-held-out validation, or set predict.enabled to false."
                    )


# ---------------------------------------------------------------- repeated measures in the prediction


def contrast_samples(sheet: pd.DataFrame, contrast: dict) -> pd.DataFrame:
    """The rows of the sheet in either compared level of a contrast."""
    levels = sheet[contrast["variable"]].astype(str)
    return sheet[levels.isin([contrast["test"], contrast["reference"]])]


def repeated_measures_column(sheet: pd.DataFrame, design: str, contrast: dict) -> str | None:
    """The design's column of repeated measures for a contrast (subjects sampled more than once),
    or None: a categorical column other than the contrast's variable in which some level holds
    samples of both compared levels (a unit measured in both) and whose levels outnumber the
    samples of one compared level that any of them holds (many small units such as subjects,
    not a few large ones such as sites or sexes). Of several, the one with the most levels."""
    compared = contrast_samples(sheet, contrast)
    labels = compared[contrast["variable"]].astype(str)
    found = {}
    for column in design_variables(design):
        if column == contrast["variable"] or column not in compared.columns:
            continue
        if pd.api.types.is_numeric_dtype(compared[column]):
            continue
        per_level = pd.crosstab(compared[column].astype(str), labels)
        crossed = (per_level > 0).all(axis=1).any() and per_level.shape[1] == 2
        if crossed and len(per_level) > per_level.to_numpy().max():
            found[column] = len(per_level)
    return max(found, key=found.get) if found else None


def prediction_groups_column(sheet: pd.DataFrame, predict: dict, design: str, contrast: dict) -> str | None:
    """The column whose levels hold related samples that no fold of the prediction may split, or
    None. predict.groups 'auto': the design's column of repeated measures for this contrast
    (repeated_measures_column); '' or 'none': no grouping."""
    groups = predict.get("groups", "auto")
    if groups in ("", "none"):
        return None
    if groups == "auto":
        return repeated_measures_column(sheet, design, contrast)
    return groups


def check_prediction_groups(
    sheet: pd.DataFrame, contrasts: dict, design: str, predict: dict, where: str
) -> None:
    """With a grouping column, every compared level is held by enough groups for folds that keep
    each group whole, and no group spans two sites of the site-held-out validation."""
    for name, contrast in contrasts.items():
        column = prediction_groups_column(sheet, predict, design, contrast)
        if column is None:
            continue
        _check_prediction_column(sheet, column, "predict.groups", where)
        compared = contrast_samples(sheet, contrast)
        check_groups_per_level(compared, name, contrast, column, predict, where)
        site = prediction_group_column(sheet, predict, design, contrast["variable"])
        if site is not None and site in sheet.columns and site != column:
            check_groups_within_sites(compared, name, contrast, column, site, predict, where)


def groups_holding(compared: pd.DataFrame, variable: str, level: str, column: str) -> list[str]:
    """The levels of the grouping column that hold samples of one compared level."""
    held = compared[column][compared[variable].astype(str) == level]
    return sorted(held.astype(str).unique())


def check_groups_per_level(
    compared: pd.DataFrame, name: str, contrast: dict, column: str, predict: dict, where: str
) -> None:
    """Each compared level in at least 2 groups (one to train on, one to test on), and in as many
    as nested folds that keep groups whole need (samples_for_prediction, counted in groups)."""
    variable, needed = contrast["variable"], samples_for_prediction(predict)
    for level in (contrast["test"], contrast["reference"]):
        groups = groups_holding(compared, variable, level, column)
        problem = (
            f"{where}: contrast '{name}': the samples with {variable} = '{level}' belong to "
            f"{len(groups)} level(s) of column '{column}' (config predict.groups"
        )
        if len(groups) < 2:
            raise InputError(
                f"{problem}): {format_list(groups)}; at least 2 are needed, because the prediction's "
                f"folds keep the samples of each {column} together and need one to train on and one to "
                "test on; set predict.enabled to false to skip the prediction (predict.groups '' would "
                f"split a {column}'s samples between training and test, and overstate the AUC)."
            )
        if len(groups) < needed:
            raise InputError(
                f"{problem}), too few for folds that keep each {column} whole: at least {needed} are "
                f"needed (config predict.outer_folds {predict['outer_folds']}, predict.inner_folds "
                f"{predict['inner_folds']}): lower those, or set predict.enabled to false to skip "
                "the prediction."
            )


def check_groups_within_sites(
    compared: pd.DataFrame, name: str, contrast: dict, column: str, site: str, predict: dict, where: str
) -> None:
    """Holding out a site must not split a group, and must leave every compared level in at least
    inner_folds groups of the other sites (the inner folds keep groups whole too)."""
    sites_of_group = compared.groupby(compared[column].astype(str))[site].agg(
        lambda values: sorted(values.astype(str).unique())
    )
    spanning = sites_of_group[sites_of_group.map(len) > 1]
    if len(spanning):
        group, sites = spanning.index[0], spanning.iloc[0]
        raise InputError(
            f"{where}: column '{column}' (config predict.groups) conflicts with column '{site}' (config "
            f"predict.group_by): {column} '{group}' has samples in {site} {format_list(sites)}, so holding "
            f"out a {site} would split it between training and test; every {column} must lie within one "
            f"{site}: correct the sample sheet, or set predict.group_by to '' for no site-held-out "
            "validation."
        )
    inner = int(predict["inner_folds"])
    for held_out in sorted(compared[site].astype(str).unique()):
        others = compared[compared[site].astype(str) != held_out]
        for level in (contrast["test"], contrast["reference"]):
            n = len(groups_holding(others, contrast["variable"], level, column))
            if n < inner:
                raise InputError(
                    f"{where}: contrast '{name}': without {site} '{held_out}' (held out in the "
                    f"site-held-out validation) {n} level(s) of column '{column}' (config predict.groups) "
                    f"hold samples with {contrast['variable']} = '{level}'; at least {inner} are needed "
                    "for inner folds that keep each of them whole (config predict.inner_folds): lower it, "
                    "set predict.group_by to '' for no site-held-out validation, or set predict.enabled "
                    "to false."
                )
