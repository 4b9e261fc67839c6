"""Gene-set collections: GMT reading, ID mapping to symbols, size limits on the genes in the data.

GMT: one set per line, ``name<TAB>description<TAB>gene<TAB>gene...`` (plain or gzipped).
Empty lines and empty gene fields (trailing tabs) are skipped; a gene listed twice in a set
counts once.  A GMT whose genes are Ensembl IDs (versioned or not) is mapped to symbols
through the annotation; IDs without a symbol there are dropped (and counted).
"""

import gzip
import logging
from dataclasses import dataclass, field

import pandas as pd

from trdpipe.common import InputError
from trdpipe.io.annotation import clean_ensembl_id

log = logging.getLogger("trd")

GeneSets = dict[str, tuple[str, list[str]]]  # name -> (description, genes)


def _open_text(path):
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt", encoding="utf-8") if gzipped else open(path, encoding="utf-8")


def read_gmt(path, annotation: pd.DataFrame | None = None) -> GeneSets:
    """All sets of a GMT file, genes deduplicated in order of first appearance.

    With an annotation (columns gene_id, gene_symbol), a GMT of Ensembl IDs is mapped to
    symbols; without one, genes are returned as written.
    """
    sets: GeneSets = {}
    line_no = 0
    try:
        with _open_text(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                name = fields[0].strip()
                genes = [g.strip() for g in fields[2:] if g.strip()]
                if len(fields) < 3 or not name or not genes:
                    raise InputError(
                        f"{path}: line {line_no} is not a gene set; expected "
                        "'name<TAB>description<TAB>gene<TAB>gene...' with at least one gene."
                    )
                if name in sets:
                    raise InputError(
                        f"{path}: line {line_no}: gene set '{name}' appears a second time; "
                        "set names must be unique within a file."
                    )
                sets[name] = (fields[1].strip(), list(dict.fromkeys(genes)))
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as err:
        where = f"line {line_no + 1}" if line_no else "start of file"
        raise InputError(
            f"{path}: cannot read the GMT file at {where} ({err}); expected a "
            "tab-separated text file, plain or gzipped."
        ) from err
    if not sets:
        raise InputError(f"{path}: GMT file has no gene sets.")
    if annotation is not None and is_ensembl_gmt(sets):
        sets = ensembl_to_symbols(sets, annotation, path)
    return sets


def check_collections(collections: dict[str, str]) -> None:
    """Read every configured GMT (config enrichment.collections) so that a missing, empty or
    malformed one stops the run at ingest, not in the enrichment rule after DESeq2."""
    for name, path in collections.items():
        try:
            sets = read_gmt(path)
        except InputError as err:
            raise InputError(f"config enrichment.collections '{name}': {err}") from None
        log.info("gene sets %s (%s): %d sets, read and checked", name, path, len(sets))


def is_ensembl_gmt(sets: GeneSets) -> bool:
    """True when most genes of the file are Ensembl gene IDs."""
    genes = [g for _, members in sets.values() for g in members]
    n_ensembl = sum(clean_ensembl_id(g) is not None for g in genes)
    return n_ensembl > len(genes) / 2


def ensembl_to_symbols(sets: GeneSets, annotation: pd.DataFrame, path) -> GeneSets:
    table = annotation.reset_index() if "gene_id" not in annotation.columns else annotation
    to_symbol = {g: s for g, s in zip(table["gene_id"], table["gene_symbol"]) if s}
    mapped: GeneSets = {}
    n_ids = n_unmapped = 0
    for name, (description, genes) in sets.items():
        symbols = []
        for gene in genes:
            n_ids += 1
            symbol = to_symbol.get(clean_ensembl_id(gene) or gene)
            if symbol is None:
                n_unmapped += 1
            else:
                symbols.append(symbol)
        mapped[name] = (description, list(dict.fromkeys(symbols)))
    log.info(
        "%s: Ensembl-ID gene sets mapped to symbols; %d of %d IDs have no symbol in the "
        "annotation and were dropped",
        path,
        n_unmapped,
        n_ids,
    )
    return mapped


@dataclass
class Collection:
    """A collection restricted to the genes of the data, with what was dropped."""

    name: str
    sets: GeneSets
    n_sets_in_file: int
    n_genes_in_file: int
    n_genes_in_data: int
    dropped_small: list[str] = field(default_factory=list)
    dropped_large: list[str] = field(default_factory=list)
    annotated: frozenset[str] = frozenset()  # the data's genes in some set of the file, kept or not

    def summary(self) -> str:
        return (
            f"collection {self.name}: {self.n_genes_in_data} of {self.n_genes_in_file} genes found "
            f"in the data; {len(self.sets)} of {self.n_sets_in_file} sets tested "
            f"({len(self.dropped_small)} smaller than min_size, {len(self.dropped_large)} "
            "larger than max_size once restricted to the data)"
        )


def restrict_to_universe(name: str, sets: GeneSets, universe, min_size: int, max_size: int) -> Collection:
    """Keep the genes present in the data; drop sets outside [min_size, max_size] after that."""
    universe = set(universe)
    all_genes = {g for _, genes in sets.values() for g in genes}
    kept: GeneSets = {}
    small, large = [], []
    for term, (description, genes) in sets.items():
        present = [g for g in genes if g in universe]
        if len(present) < min_size:
            small.append(term)
        elif len(present) > max_size:
            large.append(term)
        else:
            kept[term] = (description, present)
    return Collection(
        name=name,
        sets=kept,
        n_sets_in_file=len(sets),
        n_genes_in_file=len(all_genes),
        n_genes_in_data=len(all_genes & universe),
        dropped_small=small,
        dropped_large=large,
        annotated=frozenset(all_genes & universe),
    )


def load_collection(
    name: str, path, universe, min_size: int, max_size: int, annotation: pd.DataFrame | None = None
) -> Collection:
    """Read a GMT and restrict it to the data's genes (symbols)."""
    return restrict_to_universe(name, read_gmt(path, annotation), universe, min_size, max_size)
