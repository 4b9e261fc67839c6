"""Numbers and words as the report shows them: one place for every number's formatting."""

import math
import re

import pandas as pd
from markupsafe import Markup


def format_value(value) -> str:
    """Numbers as people read them in a table: 3 significant digits, NA for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e6):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def fdr_text(value, permutations: int | None = None) -> str:
    """An FDR as people read it, never 0. An FDR of 0 from K permutations means that no permuted
    result reached the observed one, which bounds it by 1/K: it reads '< 1/K'. An analytic one of 0
    (a p-value beneath the smallest float) reads '< 1e-300'."""
    if pd.isna(value):
        return "NA"
    if value == 0:
        return f"< {1 / permutations:.2g} (1/{permutations})" if permutations else "< 1e-300"
    return format_value(float(value))


# Columns of p-values and of their adjustments (padj, q-values, FDRs), by the name a table shows
P_VALUE_COLUMN = re.compile(r"pvalue|padj|qvalue|fdr|p_value", re.IGNORECASE)


def statistic_text(column: str, value) -> str:
    """A value of the named column as format_value writes it, except a p-value or an adjusted one of 0:
    an analytic p-value beneath the smallest float, which reads '< 1e-300' as fdr_text writes it."""
    is_zero_float = isinstance(value, float) and value == 0
    if is_zero_float and P_VALUE_COLUMN.search(column):
        return fdr_text(value)
    return format_value(value)


def at_permutation_floor(pvalue: float, permutations: int) -> bool:
    """True for (b + 1) / (K + 1) with b = 0: no permutation was as extreme."""
    return math.isclose(pvalue, 1 / (permutations + 1), rel_tol=1e-6)


def permutation_p_text(pvalue, permutations: int) -> str:
    """A permutation p-value, (b + 1) / (K + 1); at its floor it says so, as a smaller one cannot be shown
    with K permutations."""
    if pd.isna(pvalue):
        return "NA"
    text = format_value(float(pvalue))
    if at_permutation_floor(float(pvalue), permutations):
        text += f", the smallest possible with {permutations} permutations"
    return text


def readable_fdrs(table: pd.DataFrame, columns: list[str], permutations: int | None = None) -> pd.DataFrame:
    """These FDR columns as text that never reads 0 (fdr_text); permutations: K of a permutation FDR."""
    present = [c for c in columns if c in table]
    return table.assign(**{c: [fdr_text(v, permutations) for v in table[c]] for c in present})


def table_rows(df: pd.DataFrame) -> dict:
    """A DataFrame as {'columns': [...], 'rows': [[str, ...], ...]} for the template's table macro."""
    records = df.astype(object).where(df.notna(), None).to_numpy().tolist()
    return {
        "columns": [str(c) for c in df.columns],
        "rows": [[statistic_text(str(c), v) for c, v in zip(df.columns, row)] for row in records],
    }


def join_words(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def sets_text(n: int) -> str:
    return f"{n} set{'' if n == 1 else 's'}"


def anchor_of(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "-", part) for part in parts)


def oneline(text: str) -> str:
    """A paragraph written over several template lines as one line of text (Markup stays Markup)."""
    joined = " ".join(str(text).split())
    return Markup(joined) if isinstance(text, Markup) else joined


# for the templates, whose prose formats numbers as the Python does
TEMPLATE_FILTERS = {
    "g": lambda value: f"{value:g}",
    "words": join_words,
    "oneline": oneline,
}
