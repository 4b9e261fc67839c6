"""The sample sheet: one row per sample, indexed by sample ID, numbers read as numbers."""

from pathlib import Path

import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.io.counts import clean_sample_id, read_delimited

# Sample-sheet columns that name files or count columns: never converted to numbers ('001'), and
# bookkeeping, not covariates (QC leaves them out)
SHEET_TEXT_COLUMNS = ("counts_file", "counts_column")

# Cells that mean "no value" (R writes NA, pandas NaN).
MISSING_VALUES = ("", "NA", "N/A", "NaN", "nan")


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Sample sheet indexed by sample ID (column `sample_id`, else the first column)."""
    table = read_delimited(path, "sample sheet")
    _check_unique_column_names(table.columns, path)
    id_column = "sample_id" if "sample_id" in table.columns else table.columns[0]
    table = table.rename(columns={id_column: "sample_id"})
    table["sample_id"] = table["sample_id"].map(clean_sample_id)
    duplicated = table["sample_id"][table["sample_id"].duplicated()].unique()
    if len(duplicated) and id_column != "sample_id":
        raise InputError(_first_column_not_ids_message(table, id_column, duplicated, path))
    if len(duplicated):
        raise InputError(f"{path}: duplicated sample IDs: {format_list(duplicated)}; each must appear once.")
    table = table.set_index("sample_id")
    # 'TRD ' (or 'Zoë' typed on macOS, NFD) would otherwise be a level of its own; '  ' is an empty cell
    table = table.apply(lambda column: column.map(clean_sample_id)).replace(list(MISSING_VALUES), pd.NA)
    covariates = [c for c in table.columns if c not in SHEET_TEXT_COLUMNS]
    table[covariates] = table[covariates].apply(_numeric_if_possible)
    return table


def _check_unique_column_names(columns: pd.Index, path) -> None:
    names = [name.strip() for name in columns]
    duplicated = list(dict.fromkeys(n for n in names if names.count(n) > 1))
    if duplicated:
        where = "; ".join(
            f"'{n}' is columns {format_list([i + 1 for i, m in enumerate(names) if m == n])}"
            for n in duplicated
        )
        raise InputError(
            f"{path}: the sample sheet has several columns of the same name ({where}); "
            "each column name must appear once."
        )


def _first_column_not_ids_message(table: pd.DataFrame, id_column: str, duplicated, path) -> str:
    """The sheet has no `sample_id` column and its first column repeats values: say which column was
    used, and which columns could be the IDs (text with a distinct value in every row)."""
    candidates = [
        c
        for c in table.columns[1:]
        if table[c].map(clean_sample_id).is_unique
        and table[c].str.strip().ne("").all()
        and pd.to_numeric(table[c], errors="coerce").isna().any()
    ]  # not a measurement (age)
    hint = (
        f"; column(s) {format_list(repr(c) for c in candidates)} have a distinct value in every row: "
        "name the sample-ID column 'sample_id' or put it first"
        if candidates
        else "; name the sample-ID column 'sample_id' or put it first"
    )
    return (
        f"{path}: there is no column 'sample_id', so the first column, '{id_column}', is taken as the "
        f"sample IDs, but it repeats {format_list(duplicated)}{hint}."
    )


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """Numbers stay numbers (age, RIN); anything else stays text."""
    converted = pd.to_numeric(column, errors="coerce")
    if converted.notna().sum() == column.notna().sum():
        return converted
    return column
