"""Read mature-miRNA counts in the layouts small-RNA tools write, and the miRNA annotation.

Formats (a small_rna assay's `counts_format`; `auto` detects them from the file's content):

* smrnaseq  nf-core/smrnaseq's edgeR table `mature_counts.csv`: R's write.csv of the transposed
            matrix, one row per sample and one column per mature miRNA, the first header cell
            empty. (Its mirtop table `mirna.tsv`, column miRNA then one per sample, is a matrix.)
* mirdeep2  miRDeep2 quantifier.pl's `miRNAs_expressed_all_samples_*.csv`, tab-separated despite
            its name: #miRNA, read_count, precursor, total, one column per sample, then each
            sample again normalised ('(norm)'). A mature miRNA of several precursors has a row per
            precursor holding the same reads (quantifier maps the reads to every precursor): the
            largest of its rows is kept.
* mirge3    miRge3.0's `miR.Counts.csv`: miRNA, then one column per sample; its first row,
            miRNAtotal (all miRNA reads of each sample), is not a miRNA and is removed.
* matrix    miRNAs x samples TSV/CSV, first column the mature miRNA names, as
            trdpipe.io.counts.read_count_matrix reads it.

The features are mature miRNAs named as miRBase names them (hsa-miR-21-5p); MIMAT accessions
are turned into those names by the annotation.
"""

import csv
import logging
import re

import numpy as np
import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.io.counts import (
    CountData,
    clean_sample_id,
    detect_delimiter,
    file_head,
    read_count_matrix,
    read_delimited,
    read_text,
    require_columns,
)

log = logging.getLogger("trd")

FORMATS = ("auto", "matrix", "smrnaseq", "mirdeep2", "mirge3")
MIRDEEP2_COLUMNS = ["#miRNA", "read_count", "precursor", "total"]
MIRDEEP2_NORMALISED = "(norm)"
MIRGE3_TOTAL_ROW = "miRNAtotal"
# a mature miRNA's name: miRBase (hsa-miR-21-5p, hsa-let-7a-5p) or MirGeneDB (Hsa-Mir-21_5p)
MATURE_NAME = re.compile(r"^[a-z]{3}-(mir|let|lin)-", re.IGNORECASE)
MIMAT = re.compile(r"^MIMAT\d+$")
# the annotation's columns read (resources/annotation/mirna.tsv.gz has these and more)
ANNOTATION_COLUMNS = ["mirna_id", "mimat", "precursor", "family"]


def looks_like_mirnas(names: list[str]) -> bool:
    """Whether most names are mature miRNA names (the columns of a transposed table)."""
    names = [n for n in names if n]
    return bool(names) and sum(bool(MATURE_NAME.match(n)) for n in names) > len(names) / 2


def detect_format(path) -> tuple[str, str]:
    """(format, why) of a small-RNA count file, from its first lines; 'matrix' when nothing else fits."""
    lines = file_head(path).decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()
    first = lines[0] if lines else ""
    if first.split("\t")[:4] == MIRDEEP2_COLUMNS:
        return "mirdeep2", "miRDeep2 quantifier header (#miRNA, read_count, precursor, total)"
    delimiter = detect_delimiter(first) or "\t"
    cells = [next(csv.reader([line], delimiter=delimiter), [""]) for line in lines[:2]]
    if len(cells) == 2 and cells[0][0] == "miRNA" and cells[1][0] == MIRGE3_TOTAL_ROW:
        return "mirge3", f"column miRNA and the row {MIRGE3_TOTAL_ROW} (miRge3.0 miR.Counts.csv)"
    if cells and cells[0][0] == "" and looks_like_mirnas(cells[0][1:]):
        return "smrnaseq", "samples as rows, miRNAs as columns (nf-core/smrnaseq mature_counts.csv)"
    return "matrix", "miRNA x sample table"


def read_smrnaseq(path) -> CountData:
    """nf-core/smrnaseq's mature_counts.csv: samples as rows, turned into miRNAs x samples."""
    table = read_delimited(path, "nf-core/smrnaseq mature counts", row_names=True)
    table = table.set_index(table.columns[0])
    table.index = [clean_sample_id(s) for s in table.index]
    counts = table.T
    counts.index = counts.index.str.strip()
    counts.index.name = "gene_id"
    return CountData(counts=counts, gene_symbols=None, format="smrnaseq")


def numbers_of(table: pd.DataFrame, path, what: str) -> pd.DataFrame:
    """The cells as numbers; the first that is not one is named with its line and column."""
    numbers = table.apply(pd.to_numeric, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        row, column = (int(i[0]) for i in bad.nonzero())
        raise InputError(
            f"{path}: line {row + 2}, column '{table.columns[column]}' of the {what} is "
            f"{table.iat[row, column]!r}; expected a count."
        )
    return numbers


def read_mirdeep2(path) -> CountData:
    """miRDeep2's miRNAs_expressed_all_samples table: the raw counts of each sample, one row per
    mature miRNA (the largest of its precursors' rows)."""
    what = "miRDeep2 expression table"
    table = read_delimited(path, what)
    require_columns(table, MIRDEEP2_COLUMNS, path, what)
    samples = [c for c in table.columns[len(MIRDEEP2_COLUMNS) :] if not c.endswith(MIRDEEP2_NORMALISED)]
    if not samples:
        raise InputError(f"{path}: the {what} has no sample column after {', '.join(MIRDEEP2_COLUMNS)}.")
    counts = numbers_of(table[samples], path, what).set_axis(table["#miRNA"].str.strip(), axis=0)
    repeated = counts.index.duplicated(keep=False)
    collapsed = counts.groupby(level=0, sort=False).max()
    collapsed.index.name = "gene_id"
    collapsed.columns = [clean_sample_id(c) for c in collapsed.columns]
    notes = []
    if repeated.any():
        notes.append(
            f"{int(repeated.sum())} rows of {counts.index[repeated].nunique()} mature miRNAs with "
            "several precursors: the largest row of each kept (the same reads, counted once per precursor)"
        )
    # quantifier writes counts with decimals; multi-mapping reads may be shared between miRNAs
    return CountData(counts=collapsed, gene_symbols=None, format="mirdeep2", notes=notes, estimated=True)


def read_mirge3(path) -> CountData:
    """miRge3.0's miR.Counts.csv without its miRNAtotal row."""
    data = read_count_matrix(path, "mirge3")
    total = data.counts.index == MIRGE3_TOTAL_ROW
    data.counts = data.counts[~total]
    if total.any():
        data.notes.append(f"row {MIRGE3_TOTAL_ROW} (all miRNA reads of each sample) removed")
    return data


READERS = {
    "smrnaseq": read_smrnaseq,
    "mirdeep2": read_mirdeep2,
    "mirge3": read_mirge3,
    "matrix": read_count_matrix,
}


def read_small_rna_counts(path, fmt: str = "auto") -> CountData:
    """A mature-miRNA count file in one of FORMATS ('auto' detects it)."""
    if fmt not in FORMATS:
        raise InputError(
            f"small-RNA counts format '{fmt}' is not supported; choose one of: {', '.join(FORMATS)}."
        )
    read_text(path)  # an unreadable, binary or corrupt file stops here, named
    detected = fmt
    if fmt == "auto":
        detected, why = detect_format(path)
        log.info("small-RNA counts format detected for %s: %s (%s)", path, detected, why)
    return READERS[detected](path)


# --- annotation --------------------------------------------------------------------------------


def load_mirna_annotation(path) -> pd.DataFrame:
    """The mature-miRNA annotation (ANNOTATION_COLUMNS, one row per mature miRNA), by name."""
    table = read_delimited(path, "miRNA annotation")
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: the miRNA annotation has no column {', '.join(missing)}; its columns are "
            f"{format_list(table.columns, 8)}, expected {', '.join(ANNOTATION_COLUMNS)}."
        )
    table = table[ANNOTATION_COLUMNS].apply(lambda column: column.str.strip())
    repeated = table["mirna_id"][table["mirna_id"].duplicated()]
    if len(repeated):
        raise InputError(f"{path}: the miRNA annotation lists {format_list(repeated.unique())} twice.")
    return table.set_index("mirna_id")


def annotate_mirnas(
    ids: pd.Index, annotation: pd.DataFrame, source: str, annotation_path
) -> tuple[pd.DataFrame, dict]:
    """var of the miRNAs (index: the mature name; gene_symbol, mimat, precursor, family) and a
    summary of the naming. MIMAT accessions become names; a miRNA the annotation lacks is kept
    with an empty family and counted in the summary."""
    by_accession = pd.Series(annotation.index, index=annotation["mimat"])
    by_accession = by_accession[~by_accession.index.duplicated()]
    ids = pd.Index([str(i).strip() for i in ids])
    accessions = np.array([bool(MIMAT.match(i)) for i in ids])
    names = pd.Index([by_accession.get(i, i) if is_acc else i for i, is_acc in zip(ids, accessions)])
    known = names.isin(annotation.index)
    if not known.any():
        raise InputError(
            f"{source}: none of its {len(ids)} miRNAs ({format_list(ids, 5)}) is in the miRNA annotation "
            f"{annotation_path}; expected mature miRNA names (hsa-miR-21-5p) or MIMAT accessions."
        )
    if names.duplicated().any():
        raise InputError(
            f"{source}: the miRNAs {format_list(names[names.duplicated()].unique())} are given twice "
            "(as a name and as its MIMAT accession, or twice by name)."
        )
    var = annotation.reindex(names).fillna("")
    var.insert(0, "gene_symbol", names)
    var.index = names
    summary = {
        "miRNAs": len(names),
        "named by MIMAT accession": int(accessions.sum()),
        "not in the annotation (kept, no family)": int((~known).sum()),
    }
    return var, summary
