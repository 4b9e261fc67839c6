"""The values of the toy run's tables, in a form that another machine can compare within a tolerance
(tests/test_snapshot.py): per table its header and number of rows, per column of numbers the sum of
their absolute values and the count of empty or non-finite cells, and the cells of a fixed sample of
rows.

A cell that parses as a number is compared as one, any other cell exactly. Rows are named by their
text cells (the gene, term, sample, model ... they are about), not by their position, so that two
rows whose order rests on a last digit may swap; the sampled rows are those whose name hashes to 0
modulo SAMPLE_EVERY, so that the sample does not depend on the row order either.
"""

import gzip
import io
import math
import zlib

import numpy as np
import pandas as pd

SAMPLE_EVERY = 64
# a table this short is recorded whole
WHOLE_TABLE_ROWS = 64
# the names of the lines that hold a table's header and its column summaries
HEADER, SUMMARY = "(header)", "(all rows)"


def as_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def read_cells(data: bytes) -> tuple[list[str], pd.DataFrame]:
    """(comment lines, table) of a TSV table: numbers as floats, empty cells as NaN, any other cell
    as text ('NA' is a gene symbol); comment lines (MultiQC's `# id: ...`) lead."""
    comments = [line for line in data.decode().split("\n") if line.startswith("#")]
    table = pd.read_csv(
        io.BytesIO(data), sep="\t", keep_default_na=False, na_values=[""], skiprows=len(comments)
    )
    return comments, table


def text_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]


def row_names(table: pd.DataFrame, text: list[str]) -> list[str]:
    """Each row's text cells joined (not the numbers of a column that mixes text and numbers, such
    as a summary's values), with `#k` after the k-th repeat of the same text."""
    cells = table[text].fillna("").astype(str) if text else pd.DataFrame({"": [""] * len(table)})
    cells = cells.mask(cells.apply(pd.to_numeric, errors="coerce").notna(), "")
    joined = cells.iloc[:, 0].str.cat(cells.iloc[:, 1:], sep="|") if cells.shape[1] > 1 else cells.iloc[:, 0]
    repeat = joined.groupby(joined).cumcount() + 1
    return [name if k == 1 else f"{name}#{k}" for name, k in zip(joined, repeat)]


def column_summary(column: pd.Series) -> str:
    """'sum of the absolute finite numbers;count of the other cells' (absolute values, so that a
    column of signed values does not sum to near 0, where a relative tolerance means nothing)."""
    numbers = column.to_numpy(dtype=float)
    finite = numbers[np.isfinite(numbers)]
    return f"{math.fsum(np.abs(finite))!r};{len(numbers) - len(finite)}"


def cell_text(value) -> str:
    return "" if pd.isna(value) else repr(float(value)) if isinstance(value, (int, float)) else str(value)


def table_lines(data: bytes) -> dict[str, list[str]]:
    """{line name: cells} of one table: its header (row count, comments, columns), its column
    summaries (empty for a text column) and its sampled rows."""
    comments, table = read_cells(data)
    text = text_columns(table)
    lines = {
        HEADER: [str(len(table)), "|".join(comments), *map(str, table.columns)],
        SUMMARY: ["" if c in text else column_summary(table[c]) for c in table.columns],
    }
    names = row_names(table, text)
    keep = [
        i
        for i, name in enumerate(names)
        if len(table) <= WHOLE_TABLE_ROWS or zlib.crc32(name.encode()) % SAMPLE_EVERY == 0
    ]
    for i in keep:
        lines[names[i]] = [cell_text(value) for value in table.iloc[i]]
    return lines


def same_value(recorded: str, now: str, rtol: float, atol: float) -> bool:
    """Equal text, or numbers within rtol of the recorded one (or atol of it near 0); NaN equals NaN."""
    a, b = as_number(recorded), as_number(now)
    if a is None or b is None:
        return recorded == now
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def same_summary(recorded: str, now: str, rtol: float, atol: float) -> bool:
    """The same count of non-finite cells, and sums within the tolerance (a text column: both empty)."""
    if not recorded or not now:
        return recorded == now
    (a_sum, a_n), (b_sum, b_n) = recorded.split(";"), now.split(";")
    return a_n == b_n and same_value(a_sum, b_sum, rtol, atol)


def differences(recorded: dict[str, dict], now: dict[str, dict], rtol_of, atol: float) -> list[str]:
    """One line per table missing or new, and per recorded cell that left the tolerance (rtol_of:
    table -> its relative tolerance) or is gone."""
    lines = [f"{table}: missing" for table in sorted(recorded.keys() - now.keys())]
    lines += [f"{table}: not in the snapshot" for table in sorted(now.keys() - recorded.keys())]
    for table in sorted(recorded.keys() & now.keys()):
        if recorded[table][HEADER] != now[table][HEADER]:
            lines.append(
                f"{table}: header (rows, comments, columns) {recorded[table][HEADER]} is now {now[table][HEADER]}"
            )
            continue
        columns, rtol = recorded[table][HEADER][2:], rtol_of(table)
        recorded_rows = {name: cells for name, cells in recorded[table].items() if name != HEADER}
        for name, cells in recorded_rows.items():
            same = same_summary if name == SUMMARY else same_value
            current = now[table].get(name)
            if current is None:
                lines.append(f"{table}: row [{name}] is gone")
                continue
            lines += [
                f"{table} [{name}] {column}: recorded {a!r}, now {b!r}"
                for column, a, b in zip(columns, cells, current)
                if not same(a, b, rtol, atol)
            ]
    return lines


def write_lines(path, tables: dict[str, dict]) -> None:
    """The recorded values, gzipped: one line per table line, `table<TAB>name<TAB>cells...`."""
    text = "".join(
        "\t".join([table, name, *cells]) + "\n"
        for table, lines in tables.items()
        for name, cells in lines.items()
    )
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def read_lines(path) -> dict[str, dict]:
    tables: dict[str, dict] = {}
    for line in gzip.decompress(path.read_bytes()).decode().split("\n")[:-1]:
        table, name, *cells = line.split("\t")
        tables.setdefault(table, {})[name] = cells
    return tables
