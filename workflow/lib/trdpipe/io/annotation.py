"""Map a count matrix's gene identifiers to the shipped gene annotation.

Rules (stated in config/README.md as well):

* Ensembl IDs (``ENSG…``, any species prefix ``ENS…G``) lose their version:
  ``ENSG00000141510.17`` -> ``ENSG00000141510``.  Other identifiers are never cut at a
  dot (``AC008770.3`` is a symbol, not a versioned ID).
* GENCODE's pseudo-autosomal Y copies (``ENSG00000182378.14_PAR_Y``) keep the suffix
  after the version is stripped (``ENSG00000182378_PAR_Y``): they are separate rows of
  the matrix (usually all zeros, because reads go to the X copy), so they stay separate
  genes; they get the X gene's symbol, Entrez ID and type, and chromosome ``Y``.
* Two input IDs that are the same gene once versions are stripped (``ENSG…1.16`` and
  ``ENSG…1.17``) are a duplicated gene: InputError naming both.
* Gene IDs that are all whole numbers are Entrez Gene IDs: each becomes the Ensembl ID the
  annotation links it to (one linked to several: the smallest, as for a symbol below, since the
  annotation gives them one type and chromosome), and the rows of
  Entrez IDs the annotation lacks are dropped; the log gives the numbers (``entrez_to_ensembl``).
* An identifier that is not an Ensembl ID is taken as a gene symbol and mapped to the
  Ensembl ID of the annotation row with that symbol (exact, case-sensitive match).  A
  symbol on several Ensembl IDs is resolved by taking, in order, a protein-coding gene,
  a gene placed on a chromosome, then the smallest Ensembl ID; the number of such cases
  is logged.  A symbol not in the annotation keeps the symbol as its ID.
* The annotation's symbol wins over a symbol column of the matrix; a gene not in the
  annotation keeps the matrix's symbol, or has an empty symbol (it is still tested, but
  cannot enter a symbol-based gene set).
"""

import re

import pandas as pd

from trdpipe.common import InputError, format_list

ANNOTATION_COLUMNS = ["gene_id", "entrez_id", "gene_symbol", "description", "chromosome", "gene_type"]
VAR_COLUMNS = ["gene_symbol", "entrez_id", "chromosome", "gene_type"]
ENSEMBL_ID = re.compile(r"^(ENS[A-Z]*G\d{6,})(\.\d+)?(_PAR_Y)?$")
PAR_Y = "_PAR_Y"


def clean_ensembl_id(identifier: str) -> str | None:
    """Ensembl ID without version (keeping a _PAR_Y suffix), or None if not an Ensembl ID."""
    match = ENSEMBL_ID.match(identifier)
    if match is None:
        return None
    return match.group(1) + (match.group(3) or "")


def has_version(identifier: str) -> bool:
    match = ENSEMBL_ID.match(identifier)
    return bool(match and match.group(2))


def load_annotation(path) -> pd.DataFrame:
    """The annotation table (all columns as text, missing values as ''), IDs without versions."""
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, EOFError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise InputError(
            f"{path}: cannot read the gene annotation ({err}); expected a tab-separated "
            f"table with columns {', '.join(ANNOTATION_COLUMNS)}."
        ) from err
    missing = [c for c in ANNOTATION_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: gene annotation lacks column(s) {', '.join(missing)}; expected "
            f"{', '.join(ANNOTATION_COLUMNS)} (found: {format_list(table.columns)})."
        )
    table["gene_id"] = [clean_ensembl_id(g) or g for g in table["gene_id"].str.strip()]
    duplicated = table["gene_id"][table["gene_id"].duplicated()].unique()
    if len(duplicated):
        raise InputError(
            f"{path}: gene annotation has duplicated gene_id(s) {format_list(duplicated)}; "
            "expected one row per gene."
        )
    return table


def preferred_gene_ids(annotation: pd.DataFrame, column: str) -> tuple[dict[str, str], set[str]]:
    """{value of `column` (a symbol, an Entrez ID): chosen Ensembl ID} and the set of values that had
    several IDs, chosen by the rule of the module doc (protein-coding, placed, smallest ID)."""
    rows = annotation.loc[annotation[column] != "", ["gene_id", column, "gene_type", "chromosome"]]
    rows = rows.assign(
        not_coding=rows["gene_type"] != "protein-coding",
        unplaced=rows["chromosome"] == "",
    ).sort_values([column, "not_coding", "unplaced", "gene_id"])
    ambiguous = set(rows.loc[rows[column].duplicated(), column])
    first = rows.drop_duplicates(column)
    return dict(zip(first[column], first["gene_id"])), ambiguous


def symbol_to_id(annotation: pd.DataFrame) -> tuple[dict[str, str], set[str]]:
    """{symbol: chosen Ensembl ID} and the set of symbols that had several IDs (rule in the module doc)."""
    return preferred_gene_ids(annotation, "gene_symbol")


def are_entrez_ids(gene_ids: pd.Index) -> bool:
    """Gene IDs that are all whole numbers are Entrez Gene IDs (7105 is TSPAN6)."""
    ids = pd.Index(gene_ids).astype(str).str.strip()
    return bool(len(ids)) and bool(ids.str.fullmatch(r"\d+").all())


def entrez_to_ensembl(gene_ids: pd.Index, annotation: pd.DataFrame, source: str) -> tuple[pd.Series, dict]:
    """The Ensembl ID of every Entrez ID the annotation links to one (to several: chosen as for a
    symbol), indexed by the Entrez ID, and counts for the log; the Entrez IDs it lacks are left out.
    Stops when it links none of them (another species, or not Entrez IDs after all)."""
    by_entrez, ambiguous = preferred_gene_ids(annotation, "entrez_id")
    ids = pd.Index(gene_ids).astype(str).str.strip()
    linked = ids[ids.isin(list(by_entrez))]
    if not len(linked):
        raise InputError(
            f"{source}: the gene IDs are numbers ({format_list(ids[:3])}, ...), taken as Entrez Gene IDs, "
            "but the gene annotation links none of them to an Ensembl gene; expected human Entrez Gene IDs, "
            "Ensembl gene IDs or gene symbols."
        )
    counts = {
        "entrez_ids": len(ids),
        "entrez_ids_mapped_to_ensembl": len(linked),
        "entrez_ids_on_several_ensembl_ids_resolved": int(linked.isin(list(ambiguous)).sum()),
        "entrez_ids_not_in_annotation_dropped": len(ids) - len(linked),
    }
    return pd.Series([by_entrez[e] for e in linked], index=linked, dtype=str), counts


def annotate_genes(
    gene_ids: pd.Index,
    annotation: pd.DataFrame,
    symbols: pd.Series | None = None,
    *,
    source: str = "count matrix",
) -> tuple[pd.DataFrame, dict]:
    """Var table for the matrix's genes, in input order, and counts for the log.

    gene_ids: the matrix's identifiers (unique); symbols: an optional symbol column of the
    matrix, aligned with gene_ids by position; source: file name used in error messages.
    Returns (var indexed by the cleaned gene_id with columns gene_symbol, entrez_id,
    chromosome, gene_type; counts).
    """
    raw = pd.Index(gene_ids).astype(str).str.strip()
    given_symbols = (
        pd.Series([""] * len(raw))
        if symbols is None
        else pd.Series(symbols).reset_index(drop=True).fillna("").astype(str).str.strip()
    )
    if len(given_symbols) != len(raw):
        raise InputError(f"{source}: {len(given_symbols)} gene symbols for {len(raw)} gene IDs.")

    ann = annotation.set_index("gene_id") if "gene_id" in annotation.columns else annotation
    by_symbol, ambiguous_symbols = symbol_to_id(ann.reset_index())

    cleaned, kinds = [], []
    n_versioned = n_symbol_ambiguous = 0
    for identifier in raw:
        ensembl = clean_ensembl_id(identifier)
        if ensembl is not None:
            n_versioned += has_version(identifier)
            cleaned.append(ensembl)
            kinds.append("par_y" if ensembl.endswith(PAR_Y) else "ensembl")
        elif identifier in by_symbol:
            cleaned.append(by_symbol[identifier])
            kinds.append("symbol")
            n_symbol_ambiguous += identifier in ambiguous_symbols
        else:
            cleaned.append(identifier)
            kinds.append("unknown_symbol")
    cleaned = pd.Index(cleaned, name="gene_id")
    _check_no_collisions(raw, cleaned, source)

    lookup = pd.Index([g.removesuffix(PAR_Y) for g in cleaned])
    found = lookup.isin(ann.index)
    var = pd.DataFrame("", index=cleaned, columns=VAR_COLUMNS)
    hits = ann.reindex(lookup[found])
    for column in VAR_COLUMNS:
        var.loc[found, column] = hits[column].to_numpy()
    kinds = pd.Series(kinds, index=cleaned)
    var.loc[(kinds == "par_y").to_numpy() & found, "chromosome"] = "Y"

    matrix_symbol = given_symbols.to_numpy()
    from_matrix = ~found & (matrix_symbol != "")
    var.loc[from_matrix, "gene_symbol"] = matrix_symbol[from_matrix]
    unknown_symbol = (kinds == "unknown_symbol").to_numpy()
    var.loc[unknown_symbol & ~from_matrix, "gene_symbol"] = raw[unknown_symbol & ~from_matrix]

    counts = {
        "genes": len(raw),
        "ensembl_ids": int((kinds != "symbol").sum() - (kinds == "unknown_symbol").sum()),
        "versions_stripped": int(n_versioned),
        "par_y_genes": int((kinds == "par_y").sum()),
        "symbols_as_ids": int(kinds.isin(["symbol", "unknown_symbol"]).sum()),
        "symbols_mapped_to_ensembl": int((kinds == "symbol").sum()),
        "symbols_on_several_ensembl_ids_resolved": int(n_symbol_ambiguous),
        "symbols_not_in_annotation": int(unknown_symbol.sum()),
        "in_annotation": int(found.sum()),
        "not_in_annotation": int((~found).sum()),
        "matrix_symbol_differs_from_annotation": int(
            (found & (matrix_symbol != "") & (matrix_symbol != var["gene_symbol"].to_numpy())).sum()
        ),
        "without_symbol": int((var["gene_symbol"] == "").sum()),
    }
    return var, counts


def _check_no_collisions(raw: pd.Index, cleaned: pd.Index, source: str) -> None:
    """Two input rows that became one gene are a duplicated gene."""
    duplicated = cleaned[cleaned.duplicated(keep=False)]
    if not len(duplicated):
        return
    groups = (
        pd.Series(raw, index=cleaned)
        .loc[duplicated.unique()]
        .groupby(level=0, sort=False)
        .agg(lambda ids: " and ".join(ids))
    )
    described = [f"{ids} (-> {gene})" for gene, ids in groups.items()]
    raise InputError(
        f"{source}: gene identifiers that are the same gene once Ensembl versions are stripped or "
        f"symbols are mapped: {format_list(described, limit=5)}; each gene must appear once."
    )
