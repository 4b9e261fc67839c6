"""Read count matrices and sample sheets into pandas, with clear errors for unreadable files."""

import csv
import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline_common import InputError, format_list

SYMBOL_COLUMNS = ("gene_name", "gene_symbol", "symbol")


@dataclass
class CountData:
    counts: pd.DataFrame  # genes x samples, as read (validated later by input_checks.check_counts)
    gene_symbols: pd.Series | None
    format: str
    notes: list[str] = field(default_factory=list)


def read_text(path: str | Path) -> str:
    """The text of a (possibly gzipped) file; unreadable, binary or truncated files raise InputError."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}).") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error):
            raise InputError(f"{path}: the gzip file is truncated or corrupt.") from None
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path}: is a binary file, not a text table.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: is not UTF-8 text (byte {err.start}).") from None


def read_delimited(path: str | Path, what: str) -> pd.DataFrame:
    """A TSV or CSV table with a header, all cells as strings; the delimiter is detected."""
    text = read_text(path)
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: the {what} is empty.")
    if len(lines) == 1:
        raise InputError(f"{path}: the {what} has a header but no rows.")
    delimiter = _detect_delimiter(lines[0])
    if delimiter is None:
        raise InputError(
            f"{path}: the {what}'s header has a single column; expected columns separated by "
            f"tabs (TSV) or commas (CSV)."
        )
    rows = list(csv.reader(lines, delimiter=delimiter))
    header, body = rows[0], rows[1:]
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(
                f"{path}: line {number} of the {what} has {len(row)} fields but the header has "
                f"{len(header)}; is the delimiter consistent?"
            )
    return pd.DataFrame(body, columns=header, dtype=object)


def _detect_delimiter(header: str) -> str | None:
    for delimiter in ("\t", ","):
        if delimiter in header:
            return delimiter
    return None


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Sample sheet indexed by sample ID (column `sample_id`, else the first column)."""
    table = read_delimited(path, "sample sheet")
    id_column = "sample_id" if "sample_id" in table.columns else table.columns[0]
    table = table.rename(columns={id_column: "sample_id"})
    table["sample_id"] = table["sample_id"].str.strip()
    duplicated = table["sample_id"][table["sample_id"].duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: duplicated sample IDs: {format_list(duplicated)}; each must appear once.")
    table = table.set_index("sample_id")
    table = table.replace("", pd.NA)
    return table.apply(_numeric_if_possible)


def _numeric_if_possible(column: pd.Series) -> pd.Series:
    """Numbers stay numbers (age, RIN); anything else stays text."""
    converted = pd.to_numeric(column, errors="coerce")
    if converted.notna().sum() == column.notna().sum():
        return converted
    return column


def read_count_matrix(path: str | Path) -> CountData:
    """Genes x samples matrix: first column gene IDs, optional gene-symbol column, then samples."""
    table = read_delimited(path, "count matrix")
    table = table.set_index(table.columns[0])
    table.index = table.index.str.strip()
    table.index.name = "gene_id"
    symbols = None
    for column in SYMBOL_COLUMNS:
        if column in table.columns:
            symbols = table.pop(column)
            break
    return CountData(counts=table, gene_symbols=symbols, format="matrix")


def read_counts(path: str | Path, fmt: str = "auto") -> CountData:
    """Read counts in the configured format ('auto' detects it)."""
    if fmt not in ("auto", "matrix"):
        raise InputError(f"counts format '{fmt}' is not supported; choose one of: auto, matrix.")
    return read_count_matrix(path)
