"""Read counts in the layouts upstream tools write, with clear errors (the sample sheet: io/sample_sheet.py).

Formats (config `counts_format`; `auto` detects them from the file's content):

* matrix        genes x samples TSV/CSV (gzipped or not), first column gene IDs, optional
                gene_name/gene_symbol column.
* featurecounts featureCounts table: a '#' comment line, Geneid Chr Start End Strand Length,
                then one column per BAM; see `sample_name_from_bam` for the naming rule.
* salmon        nf-core/rnaseq's salmon.merged.gene_counts*.tsv (estimated counts, rounded),
                or one quant.sf per sample (column `counts_file` of the sample sheet).
* star, htseq   one ReadsPerGene.out.tab / htseq-count file per sample (`counts_file`).
* kallisto      one abundance.tsv (gzipped or not) or abundance.h5 per sample (`counts_file`).
* h5ad          AnnData, samples x genes, raw counts in X or in the layer `counts_layer`.

Salmon and kallisto transcript quantifications are summarised to genes with pytximport
in length-scaled-TPM mode, which gives counts DESeq2 can use without length offsets.
"""

import csv
import gzip
import io
import logging
import re
import tempfile
import unicodedata
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from trdpipe.common import InputError, format_list

log = logging.getLogger("trd")

SYMBOL_COLUMNS = ("gene_name", "gene_symbol", "symbol")
ID_COLUMN = "gene_id"  # the gene IDs of a matrix whose first column is a symbol column, else the first column
FORMATS = ("auto", "matrix", "featurecounts", "star", "htseq", "salmon", "kallisto", "h5ad")
PER_SAMPLE_FORMATS = ("star", "htseq", "salmon", "kallisto")
FEATURECOUNTS_COLUMNS = ["Geneid", "Chr", "Start", "End", "Strand", "Length"]
SALMON_COLUMNS = ["Name", "Length", "EffectiveLength", "TPM", "NumReads"]
KALLISTO_COLUMNS = ["target_id", "length", "eff_length", "est_counts", "tpm"]
# STAR ReadsPerGene.out.tab: gene, unstranded, 1st read strand (htseq -s yes), 2nd (htseq -s reverse)
STAR_STRAND_COLUMN = {"unstranded": 1, "forward": 2, "reverse": 3}
STAR_SUMMARY_ROWS = ("N_unmapped", "N_multimapping", "N_noFeature", "N_ambiguous")
# Aligner and post-processing suffixes removed from BAM file names (after '.bam')
BAM_SUFFIXES = (
    "Aligned.sortedByCoord.out",
    "Aligned.toTranscriptome.out",
    "Aligned.out",
    ".markdup",
    ".sorted",
    ".dedup",
)
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# kallisto's abundance.h5: the datasets of the abundance.tsv columns (tpm is not stored)
KALLISTO_H5 = {
    "target_id": "aux/ids",
    "length": "aux/lengths",
    "eff_length": "aux/eff_lengths",
    "est_counts": "est_counts",
}
# .xlsx (a zip) and .xls (OLE2) files start with these bytes
WORKBOOK_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
NFCORE_MERGED = re.compile(r"\.merged\.gene_counts")


@dataclass
class CountData:
    counts: pd.DataFrame  # genes x samples, as read (validated later by trdpipe.checks.inputs.check_counts)
    gene_symbols: pd.Series | None
    format: str
    notes: list[str] = field(default_factory=list)
    estimated: bool = False  # fractional estimated counts (salmon, kallisto) are rounded, not an error


def clean_sample_id(value: str) -> str:
    """Sample IDs compare after stripping spaces and Unicode NFC normalisation (macOS writes NFD)."""
    return unicodedata.normalize("NFC", str(value).strip())


# --- text tables -------------------------------------------------------------------------------


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
    if raw.startswith(WORKBOOK_MAGIC):
        raise InputError(
            f"{path}: is an Excel workbook, not a text table; save it from Excel as 'CSV UTF-8' "
            "(or as tab-separated text)."
        )
    if _is_utf16(raw[:8192]):
        raise InputError(
            f"{path}: is UTF-16 text; save it as UTF-8 (Excel: 'CSV UTF-8'; or iconv -f UTF-16 -t UTF-8)."
        )
    if b"\x00" in raw[:8192]:
        raise InputError(f"{path}: is a binary file, not a text table.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(_not_utf8_message(path, raw, err.start)) from None


def _is_utf16(head: bytes) -> bool:
    """A UTF-16 byte-order mark, or ASCII text with every other byte zero (UTF-16 without one)."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return True
    sample = head[: 200 - len(head[:200]) % 2]
    text = set(range(32, 127)) | {9, 10, 13}
    return len(sample) >= 4 and any(
        not any(zeros) and set(chars) <= text
        for zeros, chars in ((sample[1::2], sample[0::2]), (sample[0::2], sample[1::2]))
    )


def _not_utf8_message(path, raw: bytes, offset: int) -> str:
    """Where the first byte that is not UTF-8 is, as line and column (what an editor shows)."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    byte = raw[offset : offset + 1]
    return (
        f"{path}: is not UTF-8 text: line {line}, column {column} has the byte 0x{byte.hex()} "
        f"('{byte.decode('latin-1')}' in Latin-1); save the file as UTF-8."
    )


def read_lines(path: str | Path, what: str, comments: bool = False) -> list[str]:
    """Non-blank lines of a text table (without '#' lines when `comments`); empty files raise."""
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if comments:
        lines = [line for line in lines if not line.startswith("#")]
    if not lines:
        raise InputError(f"{path}: the {what} is empty.")
    return lines


def split_rows(
    lines: list[str], path, what: str, delimiter: str = "\t", first: str = "line 1"
) -> list[list[str]]:
    """Rows of equal length (the first row sets it); a ragged row names its line."""
    rows = list(csv.reader(lines, delimiter=delimiter))
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise InputError(
                f"{path}: line {number} of the {what} has {len(row)} fields but {first} has "
                f"{len(rows[0])}; is the delimiter consistent?"
            )
    return rows


def read_delimited(
    path: str | Path, what: str, comments: bool = False, row_names: bool = False
) -> pd.DataFrame:
    """A TSV or CSV table with a header, all cells as strings; the delimiter is detected.

    row_names: a header one field shorter than the rows (R's write.table) lacks the first
    column's name, which is then empty."""
    lines = read_lines(path, what, comments)
    if len(lines) == 1:
        raise InputError(f"{path}: the {what} has a header but no rows.")
    delimiter = detect_delimiter(lines[0])
    if delimiter is None:
        raise InputError(
            f"{path}: the {what}'s header has a single column; expected columns separated by "
            f"tabs (TSV) or commas (CSV)."
        )
    if row_names:
        lines[0] = delimiter.join(_with_row_names_cell(lines[0], lines[1], delimiter))
    header, *body = split_rows(lines, path, what, delimiter, first="the header")
    # rows of delimiters only: the empty rows a spreadsheet exports below its table
    body = [row for row in body if any(cell.strip() for cell in row)]
    if not header[-1].strip() and all(not row[-1].strip() for row in body):
        # every line ends with a delimiter (some spreadsheet exports): an empty last column
        header, body = header[:-1], [row[:-1] for row in body]
    return pd.DataFrame(body, columns=header, dtype=object)


def _with_row_names_cell(header: str, first_row: str, delimiter: str) -> list[str]:
    """The header's cells, with an empty first one added when the first row has one field more:
    R's write.table writes row names without naming their column."""
    cells, row = (
        next(csv.reader([header], delimiter=delimiter)),
        next(csv.reader([first_row], delimiter=delimiter)),
    )
    return ["", *cells] if len(row) == len(cells) + 1 else cells


def detect_delimiter(header: str) -> str | None:
    for delimiter in ("\t", ","):
        if delimiter in header:
            return delimiter
    return None


def require_columns(table: pd.DataFrame, expected: list[str], path, what: str) -> None:
    if list(table.columns[: len(expected)]) != expected:
        raise InputError(
            f"{path}: the {what}'s columns are {format_list(table.columns, 8)}; "
            f"expected {', '.join(expected)}."
        )


# --- format detection --------------------------------------------------------------------------


def file_head(path: str | Path, size: int = 65536) -> bytes:
    """The first bytes of a file, decompressed when gzipped (errors are left to the readers)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(size)
        if raw[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as handle:
                raw = handle.read(size)
    except (OSError, EOFError, zlib.error):
        return b""
    return raw


def detect_format(path: str | Path) -> tuple[str, str]:
    """(format, why) of a count file, from its name and first lines; 'matrix' when nothing else fits."""
    head = file_head(path)
    if head.startswith(HDF5_MAGIC) and is_kallisto_h5(path):
        return "kallisto", "kallisto abundance.h5 (HDF5 with aux/ids)"
    if head.startswith(HDF5_MAGIC) or str(path).endswith(".h5ad"):
        return "h5ad", "HDF5 file (AnnData)"
    lines = head.decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()
    first = lines[0] if lines else ""
    fields = first.split("\t")
    if first.startswith("# Program:featureCounts") or fields[:6] == FEATURECOUNTS_COLUMNS:
        return "featurecounts", "featureCounts header"
    if fields[0] in STAR_SUMMARY_ROWS:
        return "star", f"first row '{fields[0]}' (STAR ReadsPerGene.out.tab)"
    if fields[:5] == SALMON_COLUMNS:
        return "salmon", "Salmon quant.sf header"
    if fields[:5] == KALLISTO_COLUMNS:
        return "kallisto", "kallisto abundance.tsv header"
    if len(fields) == 2 and _is_number(fields[1]):
        return "htseq", "two columns without header (htseq-count)"
    if NFCORE_MERGED.search(Path(path).name):
        return "salmon", "nf-core/rnaseq merged estimated gene counts (file name *.merged.gene_counts*)"
    return "matrix", "gene x sample table"


def is_kallisto_h5(path) -> bool:
    """An HDF5 file with kallisto's transcript IDs (aux/ids), as abundance.h5 has."""
    try:
        with h5py.File(path, "r") as handle:
            return KALLISTO_H5["target_id"] in handle
    except OSError:
        return False


def pytximport_module(where: str):
    """pytximport, or one message saying how to install it: it is GPL-3.0, so an optional extra of
    this MIT workflow (requirements-extras.txt), needed by salmon and kallisto inputs only."""
    try:
        import pytximport
        import pytximport.utils
    except ImportError:
        raise InputError(
            f"{where}: salmon and kallisto files are summarised to genes with pytximport, which is not "
            "installed: pip install -r requirements-extras.txt (pytximport is GPL-3.0, an optional extra)"
        ) from None
    return pytximport


def read_kallisto_h5(path) -> pd.DataFrame:
    """kallisto's abundance.h5 as the columns of its abundance.tsv; tpm, which the file does not
    store, computed from the counts and effective lengths as kallisto and pytximport compute it."""
    convert_counts_to_tpm = pytximport_module(str(path)).utils.convert_counts_to_tpm

    with h5py.File(path, "r") as handle:
        missing = [name for name in KALLISTO_H5.values() if name not in handle]
        if missing:
            raise InputError(
                f"{path}: kallisto abundance.h5 lacks the dataset(s) {', '.join(missing)}; expected "
                f"{', '.join(KALLISTO_H5.values())}."
            )
        columns = {column: handle[name][:] for column, name in KALLISTO_H5.items()}
    columns["target_id"] = columns["target_id"].astype(str)
    table = pd.DataFrame(columns)
    table["tpm"] = convert_counts_to_tpm(table["est_counts"].to_numpy(), table["eff_length"].to_numpy())
    return table[KALLISTO_COLUMNS]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- one file for all samples ------------------------------------------------------------------


def read_whole_number_matrix(path: str | Path) -> pd.DataFrame | None:
    """A count matrix read by pandas' C parser, when it is plainly valid: a unique header, and
    every cell outside the ID and symbol columns a whole number >= 0. Otherwise None, and the
    caller reads the file with read_delimited, whose checks name the offending line or cell.

    Parsing text into numbers is most of ingest's time in Python (about 3 s at 300 x 20,000
    counts); the C parser takes a sixth of that.
    """
    text = read_text(path)
    first_line = text.partition("\n")[0].rstrip("\r")
    delimiter = detect_delimiter(first_line)
    if delimiter is None or first_line.startswith("#"):
        return None
    second_line = text.split("\n", 2)[1].rstrip("\r") if text.count("\n") > 1 else ""
    header = _matrix_header(_with_row_names_cell(first_line, second_line, delimiter))
    text_columns = [header[0], *(c for c in (ID_COLUMN, *SYMBOL_COLUMNS) if c in header[1:])]
    try:  # IDs and symbols stay text; no cell becomes NaN, so an empty or 'NA' one is not plain
        table = pd.read_csv(
            io.StringIO(text),
            sep=delimiter,
            na_filter=False,
            header=0,
            names=header,
            dtype={name: str for name in text_columns},
        )
    except (pd.errors.ParserError, ValueError):
        return None
    counts = table.drop(columns=text_columns)
    # pandas renames a duplicated column ('S1.1') and types the columns of an empty body object
    plain = (
        list(table.columns) == header
        and all(dtype == np.int64 for dtype in counts.dtypes)
        and bool((counts.to_numpy() >= 0).all())
    )
    return table if plain else None


def read_count_matrix(path: str | Path, fmt: str = "matrix") -> CountData:
    """Genes x samples matrix: first column gene IDs, optional gene-symbol column, then samples."""
    table = read_whole_number_matrix(path)
    if table is None:
        table = read_delimited(path, "count matrix", comments=True, row_names=True)  # '#' lines: notes
        table.columns = _matrix_header(list(table.columns))
    symbols = None
    if table.columns[0] in SYMBOL_COLUMNS and ID_COLUMN in table.columns[1:]:
        symbols = table.pop(table.columns[0])  # gene_name, gene_id, samples...: the IDs are gene_id
    table = table.set_index(ID_COLUMN if symbols is not None else table.columns[0])
    table.index = table.index.str.strip()
    table.index.name = "gene_id"
    for column in SYMBOL_COLUMNS:
        if symbols is None and column in table.columns:
            symbols = table.pop(column)
    table.columns = [clean_sample_id(c) for c in table.columns]
    summary = table.index.str.startswith("__") | table.index.isin(STAR_SUMMARY_ROWS)
    notes = []
    if summary.any():
        # htseq-count's or STAR's summary rows, kept by a script that merged the per-sample files
        notes.append(f"summary rows of the counting tool removed: {format_list(table.index[summary])}")
        table = table[~summary]
        symbols = None if symbols is None else symbols[~summary]
    return CountData(counts=table, gene_symbols=symbols, format=fmt, notes=notes)


def _matrix_header(header: list[str]) -> list[str]:
    """A matrix header whose first cell is empty (R's write.csv, pandas' to_csv) names the gene IDs."""
    return [header[0].strip() or ID_COLUMN, *header[1:]]


def read_estimated_matrix(path: str | Path) -> CountData:
    """nf-core/rnaseq salmon.merged.gene_counts.tsv: a matrix of fractional estimated counts."""
    data = read_count_matrix(path, fmt="salmon")
    data.estimated = True
    return data


def sample_name_from_bam(bam_path: str) -> str:
    """featureCounts column -> sample: file name without folders, minus '.bam' and, repeatedly,
    the suffixes in BAM_SUFFIXES, then a trailing '.' or '_'.

    '/data/S01.Aligned.sortedByCoord.out.bam' -> 'S01'; 'S01.markdup.sorted.bam' -> 'S01'.
    """
    name = re.split(r"[\\/]", bam_path.strip())[-1].removesuffix(".bam")
    stripped = None
    while stripped != name:
        stripped = name
        for suffix in BAM_SUFFIXES:
            name = name.removesuffix(suffix)
    return clean_sample_id(name.rstrip("._"))


def read_featurecounts(path: str | Path, column_to_sample: dict | None = None) -> CountData:
    """featureCounts table; samples named by `column_to_sample` (sample sheet) or by BAM file name."""
    table = read_delimited(path, "featureCounts table", comments=True)
    require_columns(table, FEATURECOUNTS_COLUMNS, path, "featureCounts table")
    counts = table.set_index("Geneid").iloc[:, len(FEATURECOUNTS_COLUMNS) - 1 :]
    counts.index = counts.index.str.strip()
    counts.index.name = "gene_id"
    bams = list(counts.columns)
    if column_to_sample is None:
        counts.columns = [sample_name_from_bam(b) for b in bams]
        note = "featureCounts columns named by BAM file name: " + format_list(
            f"{b} -> {s}" for b, s in zip(bams, counts.columns)
        )
    else:
        counts.columns = [clean_sample_id(b) for b in bams]
        note = "featureCounts columns named by the sample sheet's counts_column"
    return CountData(counts=counts, gene_symbols=None, format="featurecounts", notes=[note])


def read_h5ad_counts(path: str | Path, layer: str = "") -> CountData:
    """AnnData (samples x genes) -> genes x samples counts from X or from `layer`."""
    import anndata as ad

    try:
        adata = ad.read_h5ad(path)
    except Exception as err:  # h5py/anndata raise many types for a damaged file
        raise InputError(f"{path}: cannot be read as an AnnData .h5ad file ({err}).") from None
    if layer and layer not in adata.layers:
        raise InputError(
            f"{path}: has no layer '{layer}' (config counts_layer); its layers are "
            f"{format_list(adata.layers) or 'none'}, or leave counts_layer empty for X."
        )
    matrix = adata.layers[layer] if layer else adata.X
    if matrix is None:
        raise InputError(f"{path}: X is empty; set counts_layer to the layer holding raw counts.")
    matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
    counts = pd.DataFrame(
        matrix.T,
        index=pd.Index(adata.var_names.astype(str), name="gene_id"),
        columns=[clean_sample_id(s) for s in adata.obs_names],
    )
    symbols = next(
        (adata.var[c].astype(str).reset_index(drop=True) for c in SYMBOL_COLUMNS if c in adata.var.columns),
        None,
    )
    where = f"layer '{layer}'" if layer else "X"
    return CountData(
        counts=counts,
        gene_symbols=symbols,
        format="h5ad",
        notes=[f"counts taken from {where} of the AnnData file"],
    )


# --- one file per sample -----------------------------------------------------------------------


def read_star(path: str | Path, strandedness: str) -> tuple[pd.Series, pd.Series]:
    """(counts of the configured strand column, summary rows) of one ReadsPerGene.out.tab; the
    rows of its genes carry the forward column's share of the stranded counts in `attrs`."""
    rows = split_rows(read_lines(path, "STAR ReadsPerGene file"), path, "STAR ReadsPerGene file")
    if len(rows[0]) != 4 or rows[0][0] != STAR_SUMMARY_ROWS[0]:
        raise InputError(
            f"{path}: is not a STAR ReadsPerGene.out.tab file; expected 4 tab-separated "
            f"columns starting with the rows {', '.join(STAR_SUMMARY_ROWS)}."
        )
    table = pd.DataFrame(rows).set_index(0)
    column = table[STAR_STRAND_COLUMN[strandedness]]
    summary = column.index.isin(STAR_SUMMARY_ROWS)
    genes = column[~summary]
    forward, reverse = (pd.to_numeric(table.loc[~summary, c], errors="coerce").sum() for c in (2, 3))
    genes.attrs["forward_share"] = forward / (forward + reverse) if forward + reverse else np.nan
    return genes, column[summary]


# The share of a sample's stranded counts (forward + reverse columns) in the forward column: near 1
# forward-stranded, near 0 reverse-stranded (dUTP), near 1/2 unstranded (RSeQC's infer_experiment
# reads it the same way); in between, the library does not say.
STRAND_SHARES = {"forward": (0.8, 1.0), "reverse": (0.0, 0.2), "unstranded": (0.35, 0.65)}


def check_strandedness(shares: dict[str, float], files: dict[str, str], strandedness: str) -> None:
    """Stop when the counts in STAR's strand columns (each sample's forward share) show another
    library type than configured."""
    shown = {
        sample: next((kind for kind, (low, high) in STRAND_SHARES.items() if low <= share <= high), None)
        for sample, share in shares.items()
    }
    wrong = [s for s, kind in shown.items() if kind is not None and kind != strandedness]
    if wrong:
        first = wrong[0]
        raise InputError(
            f"{files[first]}: the forward strand column holds {shares[first]:.0%} of the stranded counts, "
            f"so the library is {shown[first]}, but config strandedness is '{strandedness}' "
            f"({len(wrong)} of {len(files)} samples alike); set strandedness to '{shown[first]}'."
        )


def read_htseq(path: str | Path) -> tuple[pd.Series, pd.Series]:
    """(counts, summary rows '__no_feature' ...) of one htseq-count file."""
    rows = split_rows(read_lines(path, "htseq-count file"), path, "htseq-count file")
    if len(rows[0]) != 2:
        raise InputError(
            f"{path}: is not an htseq-count file; expected 2 tab-separated columns "
            f"(gene ID, count), found {len(rows[0])}."
        )
    column = pd.DataFrame(rows).set_index(0)[1]
    summary = column.index.str.startswith("__")
    return column[~summary], column[summary]


def read_gene_count_files(files: dict[str, str], fmt: str, strandedness: str) -> CountData:
    """STAR or htseq-count files (sample -> path) into one matrix; summary rows reported."""
    columns, summaries = {}, {}
    for sample, path in files.items():
        counts, summary = read_star(path, strandedness) if fmt == "star" else read_htseq(path)
        columns[sample], summaries[sample] = counts, summary
    _check_same_genes({s: c.index for s, c in columns.items()}, files)
    if fmt == "star":
        check_strandedness({s: c.attrs["forward_share"] for s, c in columns.items()}, files, strandedness)
    counts = pd.DataFrame(columns)
    counts.index = counts.index.str.strip()
    counts.index.name = "gene_id"
    summary = pd.DataFrame(summaries).T
    summary.columns.name = None
    notes = [
        f"summary rows removed from the {fmt} files ({', '.join(summary.columns)}), per sample:\n"
        + summary.to_string()
    ]
    if fmt == "star":
        notes.append(f"STAR column used: '{strandedness}' (config strandedness)")
    return CountData(counts=counts, gene_symbols=None, format=fmt, notes=notes)


def _check_same_genes(genes: dict[str, pd.Index], files: dict[str, str]) -> None:
    """Per-sample files must list the same genes (they come from one annotation)."""
    first_sample, first = next(iter(genes.items()))
    for sample, index in genes.items():
        missing, extra = first.difference(index), index.difference(first)
        if len(missing) or len(extra):
            raise InputError(
                f"{files[sample]}: the genes differ from those of {files[first_sample]}: "
                f"{len(missing)} missing ({format_list(missing, 5)}), {len(extra)} extra "
                f"({format_list(extra, 5)}); all samples must be counted against one annotation."
            )


def read_tx2gene(path: str | Path) -> pd.DataFrame:
    """Transcript-to-gene table: transcript, gene (optional gene name), with or without a header.

    A first row whose first two cells hold no digit is a header (`transcript_id,gene_id`,
    Bioconductor's `TXNAME,GENEID`): transcript and gene IDs always have one. Columns are taken
    by position, as nf-core/rnaseq's header-less tx2gene.tsv has them.
    """
    lines = read_lines(path, "transcript-to-gene table")
    delimiter = detect_delimiter(lines[0])
    if delimiter is None:
        raise InputError(
            f"{path}: the transcript-to-gene table has a single column; expected "
            "transcript_id and gene_id separated by a tab or comma."
        )
    rows = split_rows(lines, path, "transcript-to-gene table", delimiter)
    if not any(ch.isdigit() for ch in "".join(rows[0][:2])):
        rows = rows[1:]
    table = pd.DataFrame(rows).iloc[:, :3]
    table.columns = ["transcript_id", "gene_id", "gene_name"][: table.shape[1]]
    return table.apply(lambda column: column.str.strip())


def unversioned_transcript(transcript_id: str) -> str:
    """A transcript ID as pytximport compares them: before a '|', without the '.version'
    (GENCODE's 'ENST00000381192.10_PAR_Y' becomes 'ENST00000381192', as its X copy does)."""
    return transcript_id.split("|")[0].split(".")[0]


def resolve_tx2gene(table: pd.DataFrame, path) -> pd.DataFrame:
    """One gene per unversioned transcript. GENCODE's pseudoautosomal copies ('_PAR_Y') collide with
    their X copies once the versions are stripped: the X copy is kept (their reads are one locus's)
    and the number logged. Any other transcript with several genes stops, with three examples."""
    on_y = table["transcript_id"].str.endswith("_PAR_Y") | table["gene_id"].str.endswith("_PAR_Y")
    table = table.assign(transcript_id=table["transcript_id"].map(unversioned_transcript), on_y=on_y)
    table = table.drop_duplicates(["transcript_id", "gene_id"])
    par_y = table["transcript_id"].duplicated(keep=False) & table["on_y"]
    if par_y.any():
        log.info(
            "%s: %d pseudoautosomal Y transcripts ('_PAR_Y') equal their X copies without versions; "
            "the X copies are kept",
            path,
            par_y.sum(),
        )
    table = table[~par_y].drop(columns="on_y")
    several = table[table["transcript_id"].duplicated(keep=False)]
    if len(several):
        genes = several.groupby("transcript_id", sort=False)["gene_id"].agg(", ".join)
        examples = [f"{transcript} ({gene_ids})" for transcript, gene_ids in genes.items()]
        raise InputError(
            f"{path}: {len(genes)} transcript(s) belong to more than one gene once their versions are "
            f"stripped, e.g. {format_list(examples, 3)}; each transcript must map to one gene."
        )
    return table


# Above this share of quantified transcripts absent from the tx2gene, the table is taken to be of
# another annotation (release, species, source) than the quantification's index, and ingest stops.
MAX_TRANSCRIPTS_NOT_IN_TX2GENE = 0.2


def check_transcripts_in_tx2gene(transcripts: pd.Index, tx2gene: pd.DataFrame, path) -> None:
    """Log the share of quantified transcripts the tx2gene lacks (their reads are left out);
    stop above MAX_TRANSCRIPTS_NOT_IN_TX2GENE."""
    missing = transcripts.difference(tx2gene["transcript_id"])
    share = len(missing) / len(transcripts)
    summary = (
        f"{len(missing)} of {len(transcripts)} quantified transcripts ({share:.1%}) are not in the "
        f"transcript-to-gene table {path}"
    )
    if share > MAX_TRANSCRIPTS_NOT_IN_TX2GENE:
        raise InputError(
            f"{summary}, e.g. {format_list(missing[:3])}; above "
            f"{MAX_TRANSCRIPTS_NOT_IN_TX2GENE:.0%} the table is of another annotation than the "
            "quantification's index: use the tx2gene of the same release."
        )
    log.info("%s; their reads are left out of the gene counts", summary)


# The columns pytximport reads from each file: transcript ID, length, count, abundance
TRANSCRIPT_COLUMNS = {
    "salmon": ("Name", "EffectiveLength", "NumReads", "TPM"),
    "kallisto": ("target_id", "eff_length", "est_counts", "tpm"),
}


def read_transcript_table(path, fmt: str) -> pd.DataFrame:
    """One quant.sf / abundance.tsv (gzipped or not) / abundance.h5, its columns checked and its
    numbers checked, so that the library is handed only files it can read."""
    what = f"{fmt} quantification"
    if fmt == "kallisto" and is_kallisto_h5(path):
        table = read_kallisto_h5(path)
    else:
        table = read_delimited(path, what)
    require_columns(table, SALMON_COLUMNS if fmt == "salmon" else KALLISTO_COLUMNS, path, what)
    for column in TRANSCRIPT_COLUMNS[fmt][1:]:
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() | (numbers < 0)
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise InputError(
                f"{path}: line {line}, column '{column}' of the {what} is "
                f"'{table[column][bad].iloc[0]}'; expected a number >= 0."
            )
    return table


def plain_copy(path, table: pd.DataFrame, fmt: str, folder: Path, number: int) -> str:
    """The path pytximport can read: the file itself, or for a kallisto file not named '.tsv'
    (abundance.tsv.gz, abundance.h5) its table as a '.tsv' in `folder`: its kallisto reader takes
    '.tsv' names only, or '.h5' files only, not both (its salmon reader reads gzipped files itself)."""
    if fmt != "kallisto" or Path(path).suffix == ".tsv":
        return str(path)
    copy = folder / f"{number}.tsv"
    table.to_csv(copy, sep="\t", index=False)
    return str(copy)


class LibraryLog(logging.Filter):
    """pytximport logs to the root logger: its notes on missing transcripts and on pyarrow would
    repeat what ingest says or be noise; the rest goes to the rule's log as 'pytximport: ...'."""

    QUIET = ("pyarrow is not available", "Not all transcripts are present", "Abundance column not provided")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING and not message.startswith(self.QUIET):
            log.info("pytximport: %s", message)
        return False


def summarise_transcripts(files: list[str], fmt: str, tx2gene: pd.DataFrame, where: str):
    """pytximport's gene-level length-scaled-TPM counts; any error of the library becomes one
    InputError naming the files."""
    tximport = pytximport_module(where).tximport

    root = logging.getLogger()
    quiet = LibraryLog()
    root.addFilter(quiet)
    try:
        return tximport(
            files,
            data_type=fmt,
            transcript_gene_map=tx2gene[["transcript_id", "gene_id"]].copy(),
            counts_from_abundance="length_scaled_tpm",
            abundance_column=TRANSCRIPT_COLUMNS[fmt][3] if fmt == "kallisto" else None,
            output_type="anndata",
        )
    except Exception as err:  # noqa: BLE001 - the library raises AssertionError, ImportError, ValueError, ...
        raise InputError(
            f"{where}: pytximport could not summarise the {fmt} files to genes ({type(err).__name__}: {err})."
        ) from None
    finally:
        root.removeFilter(quiet)


def read_transcript_files(files: dict[str, str], fmt: str, tx2gene_path: str) -> CountData:
    """Salmon quant.sf or kallisto abundance.tsv files (gzipped or not) summarised to genes
    (length-scaled TPM)."""
    if not tx2gene_path:
        raise InputError(
            f"config tx2gene is empty: {fmt} files are transcript-level and need a "
            "transcript-to-gene table (columns transcript_id, gene_id) to be summarised to genes."
        )
    tx2gene = resolve_tx2gene(read_tx2gene(tx2gene_path), tx2gene_path)
    transcripts = pd.Index([])
    with tempfile.TemporaryDirectory(prefix="trd_ingest_") as folder:
        readable = []
        for number, path in enumerate(files.values()):
            table = read_transcript_table(path, fmt)
            transcripts = transcripts.union(table[TRANSCRIPT_COLUMNS[fmt][0]].map(unversioned_transcript))
            readable.append(plain_copy(path, table, fmt, Path(folder), number))
        check_transcripts_in_tx2gene(transcripts, tx2gene, tx2gene_path)
        where = format_list(files.values(), 3)
        summed = summarise_transcripts(readable, fmt, tx2gene, where)
    counts = pd.DataFrame(
        np.asarray(summed.X).T, index=pd.Index(summed.var_names, name="gene_id"), columns=list(files)
    )
    symbols = None
    if "gene_name" in tx2gene.columns:
        names = tx2gene.drop_duplicates("gene_id").set_index("gene_id")["gene_name"]
        symbols = names.reindex(counts.index).fillna("").reset_index(drop=True)
    note = (
        f"{fmt} transcript quantifications of {len(files)} samples summarised to "
        f"{counts.shape[0]} genes with pytximport, counts_from_abundance='length_scaled_tpm' "
        f"(counts for DESeq2 without length offsets); transcript-to-gene table {tx2gene_path}"
    )
    return CountData(counts=counts, gene_symbols=symbols, format=fmt, notes=[note], estimated=True)


# --- entry point -------------------------------------------------------------------------------


def read_counts(
    path: str | Path, fmt: str = "auto", *, layer: str = "", column_to_sample: dict | None = None
) -> CountData:
    """One count file holding every sample, in the configured format ('auto' detects it)."""
    if fmt not in FORMATS:
        raise InputError(f"counts format '{fmt}' is not supported; choose one of: {', '.join(FORMATS)}.")
    detected = fmt
    if fmt == "auto":
        detected, why = detect_format(path)
        log.info("counts format detected for %s: %s (%s)", path, detected, why)
    if detected in ("star", "htseq", "kallisto") or detected == "salmon" and _is_quant_sf(path):
        raise InputError(
            f"{path}: is a {detected} file of a single sample; list one such file per sample in a "
            "'counts_file' column of the sample sheet and leave config counts empty."
        )
    check_not_a_side_file(path)
    if detected == "featurecounts":
        data = read_featurecounts(path, column_to_sample)
    elif detected == "h5ad":
        data = read_h5ad_counts(path, layer)
    elif detected == "salmon":
        data = read_estimated_matrix(path)
    else:
        data = read_count_matrix(path)
    if column_to_sample is not None:
        data.counts.columns = [column_to_sample.get(c, c) for c in data.counts.columns]
    return data


# Files the counting tools write beside the counts, by the first cells of their header
SIDE_FILES = {
    ("Status",): "a featureCounts summary (reads per assignment status); give the table featureCounts "
    "wrote beside it, the same name without '.summary'",
    ("gene_id", "transcript_id(s)"): "RSEM's genes.results of a single sample; give a gene x sample "
    "matrix of its expected_count column (nf-core/rnaseq writes rsem.merged.gene_counts.tsv)",
    ("transcript_id", "gene_id", "length"): "RSEM's isoforms.results of a single sample; give a gene x "
    "sample matrix of the expected_count column of its genes.results (nf-core/rnaseq writes "
    "rsem.merged.gene_counts.tsv)",
}


def check_not_a_side_file(path) -> None:
    """Stop on a file a counting tool writes beside the counts, naming what it is."""
    first = file_head(path, 4096).decode("utf-8", errors="replace").lstrip("\ufeff").split("\n", 1)[0]
    cells = tuple(first.rstrip("\r").split("\t"))
    for start, what in SIDE_FILES.items():
        if cells[: len(start)] == start:
            raise InputError(f"{path}: is {what}.")


def _is_quant_sf(path) -> bool:
    first_line = file_head(path, 4096).decode("utf-8", errors="replace").split("\n", 1)[0]
    return first_line.rstrip("\r").split("\t")[:5] == SALMON_COLUMNS


def read_per_sample_counts(
    files: dict[str, str], fmt: str = "auto", *, strandedness: str = "unstranded", tx2gene: str = ""
) -> CountData:
    """One count file per sample (sample -> path), all in one per-sample format."""
    for path in files.values():
        check_not_a_side_file(path)
    formats = {sample: detect_format(path)[0] for sample, path in files.items()}
    if fmt == "auto":
        fmt = formats[next(iter(files))]
        log.info("counts format detected from %s: %s", next(iter(files.values())), fmt)
    if fmt not in PER_SAMPLE_FORMATS:
        raise InputError(
            f"counts_file column of the sample sheet: {fmt} is not a per-sample format; "
            f"expected one of {', '.join(PER_SAMPLE_FORMATS)}."
        )
    differing = [f"{files[s]} ({f})" for s, f in formats.items() if f != fmt]
    if differing:
        raise InputError(f"counts files are not all {fmt} files: {format_list(differing)}.")
    if fmt in ("salmon", "kallisto"):
        return read_transcript_files(files, fmt, tx2gene)
    return read_gene_count_files(files, fmt, strandedness)
