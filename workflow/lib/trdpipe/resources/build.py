"""Build the shipped gene annotation and gene-set resources from Bioconductor's SQLite files.

Inputs (no R needed; the SQLite files are read with Python's sqlite3):
  org.Hs.eg.sqlite  from Debian's r-bioc-org.hs.eg.db (Bioconductor org.Hs.eg.db)
  GO.sqlite         from Debian's r-bioc-go.db (Bioconductor GO.db)

Outputs:
  resources/annotation/genes.tsv.gz    one row per Ensembl gene ID
  resources/genesets/go_bp.gmt.gz      GO Biological Process sets of gene symbols
  resources/genesets/curated_trd.gmt   small curated sets of the mission's themes

Rules (also in resources/annotation/README.md and resources/genesets/README.md):

Ensembl IDs.  org.Hs.eg.db's ``ensembl`` table is the union of NCBI's gene2ensembl
(``ncbi2ensembl``: the Ensembl gene of the primary assembly NCBI links to each Entrez
gene) and Ensembl's own cross-references (``ensembl2ncbi``), which add the copies of a
gene on alternate haplotypes and patches (HLA-A has 8 such IDs, C4A 4).  An Ensembl
ID that only Ensembl links to an Entrez gene, while NCBI links that Entrez gene to a
different Ensembl ID, is such a copy and is left out: count matrices built on the
primary assembly (GENCODE, Ensembl "primary_assembly") never contain it, and keeping
it would give one symbol several IDs.

Several Entrez IDs for one Ensembl ID (readthrough transcripts, overlapping genes;
~350 IDs): the Entrez gene kept is the first by (1) the link is in both NCBI's and
Ensembl's tables, (2) the link is in NCBI's gene2ensembl, (3) NCBI gene type
protein-coding, (4) the smallest Entrez ID (numerically).

Chromosome: NCBI's chromosome; a gene placed on both X and Y (pseudo-autosomal) gets
"X" (Ensembl annotates PAR genes on X); "Un" (unplaced) becomes empty; any other
multiple placement is joined with ";".

GO BP propagation: a gene annotated to a term is added to every ancestor of the term
over ``is_a`` and ``part_of`` edges of GO.db's ``go_bp_parents`` (the GO "true path
rule").  GO.db's ``go_bp_offspring`` table, and org.Hs.eg.db's ``go_bp_all`` table
built from it, also follow ``regulates`` / ``positively regulates`` /
``negatively regulates`` edges, which would put every gene annotated to
"regulation of X" into X itself; GO does not propagate annotations over those
relations, so neither table is used.  Annotations with evidence ND (no biological
data; made to the root term) are dropped.
"""

import io
import logging
import sqlite3
from collections import defaultdict
from pathlib import Path

import pandas as pd

from trdpipe.common import InputError, atomic_output, deterministic_gzip

log = logging.getLogger("trd")

GENE_COLUMNS = ["gene_id", "entrez_id", "gene_symbol", "description", "chromosome", "gene_type"]
PROPAGATING_RELATIONS = ("isa", "part of")  # GO.db spells is_a / part_of like this
GO_MIN_SIZE = 10
GO_MAX_SIZE = 500

# Curated sets: name -> (description, references, genes).  Sets are disjoint so that a
# simulation can plant one theme without touching another.  The publications are cited
# in full in resources/genesets/README.md; membership was chosen from the genes these
# publications name for the theme (not copied from a licensed collection).
CURATED_SETS: dict[str, tuple[str, str, list[str]]] = {
    "TRD_INFLAMMATION_INNATE_IMMUNITY": (
        "Inflammasome, pro-inflammatory cytokines and innate immune sensing in blood",
        "Cattaneo 2013; Cattaneo 2020; Iwata 2016; Miller & Raison 2016",
        [
            "IL1B",
            "TNF",
            "IL6",
            "MIF",
            "P2RX7",
            "NLRP3",
            "CASP1",
            "PYCARD",
            "IL18",
            "IL1A",
            "IL1RN",
            "IL1R1",
            "IL1R2",
            "CXCL8",
            "CCL2",
            "TLR2",
            "TLR4",
            "CD14",
            "MYD88",
            "NFKB1",
            "RELA",
            "TNFAIP3",
            "PTGS2",
            "SOCS3",
            "IL10",
            "S100A8",
            "S100A9",
            "S100A12",
            "CRP",
        ],
    ),
    "TRD_NK_CYTOTOXIC": (
        "NK cells and cytotoxic lymphocytes (granule, receptor and lineage genes)",
        "Bindea 2013; Newman 2015",
        [
            "GZMB",
            "PRF1",
            "NKG7",
            "KLRD1",
            "GZMA",
            "GZMH",
            "GZMK",
            "GZMM",
            "GNLY",
            "CST7",
            "CTSW",
            "KLRB1",
            "KLRF1",
            "KLRK1",
            "KLRC1",
            "NCR1",
            "NCR3",
            "FCGR3A",
            "CD160",
            "CD247",
            "SH2D1B",
            "FGFBP2",
            "SPON2",
            "KIR2DL1",
            "KIR2DL3",
            "KIR3DL1",
            "KIR3DL2",
            "TBX21",
            "EOMES",
        ],
    ),
    "TRD_INTERFERON_RESPONSE": (
        "Type I interferon-stimulated genes in whole blood",
        "Schoggins 2011; Rice 2013; Mostafavi 2014",
        [
            "IFI27",
            "IFI44L",
            "IFI44",
            "IFIT1",
            "IFIT2",
            "IFIT3",
            "IFI6",
            "ISG15",
            "MX1",
            "MX2",
            "OAS1",
            "OAS2",
            "OAS3",
            "OASL",
            "RSAD2",
            "HERC5",
            "SIGLEC1",
            "EPSTI1",
            "USP18",
            "STAT1",
            "STAT2",
            "IRF7",
            "IRF9",
            "IFITM1",
            "IFITM3",
            "XAF1",
            "LY6E",
            "CMPK2",
            "RTP4",
            "BST2",
        ],
    ),
    "TRD_GLUCOCORTICOID_SIGNALLING": (
        "Glucocorticoid receptor and its target genes in blood cells",
        "Pariante & Miller 2001; Binder 2009; Menke 2012; Cattaneo 2020",
        [
            "NR3C1",
            "FKBP5",
            "TSC22D3",
            "SGK1",
            "PER1",
            "DUSP1",
            "KLF9",
            "ZBTB16",
            "DDIT4",
            "KLF15",
            "CXCR4",
            "IRS2",
            "ERRFI1",
            "SESN1",
            "TXNIP",
            "CD163",
            "NFKBIA",
            "ADORA3",
            "CEBPD",
            "HSP90AA1",
            "NR3C2",
            "CRHR1",
        ],
    ),
    "TRD_NEUROPLASTICITY": (
        "Neurotrophin and synaptic-plasticity signalling implicated in antidepressant action",
        "Duman & Monteggia 2006; Hunsberger 2007; Duman & Aghajanian 2012",
        [
            "BDNF",
            "VGF",
            "NTRK2",
            "NTF3",
            "NTF4",
            "NGF",
            "NGFR",
            "CREB1",
            "ARC",
            "EGR1",
            "FOS",
            "GRIA1",
            "GRIA2",
            "GRIN1",
            "GRIN2A",
            "GRIN2B",
            "CAMK2A",
            "DLG4",
            "SYN1",
            "SYP",
            "MTOR",
            "RPS6KB1",
            "EIF4EBP1",
            "GSK3B",
            "AKT1",
            "MAPK1",
            "MAPK3",
            "RELN",
            "NRG1",
            "SHANK3",
        ],
    ),
    "TRD_SEROTONIN_SIGNALLING": (
        "Serotonin synthesis, transport, receptors and degradation",
        "Berger 2009",
        [
            "HTR1A",
            "HTR1B",
            "HTR1D",
            "HTR1E",
            "HTR1F",
            "HTR2A",
            "HTR2B",
            "HTR2C",
            "HTR3A",
            "HTR3B",
            "HTR4",
            "HTR5A",
            "HTR6",
            "HTR7",
            "SLC6A4",
            "TPH1",
            "TPH2",
            "DDC",
            "MAOA",
            "MAOB",
            "SLC18A2",
            "FEV",
        ],
    ),
    "TRD_KYNURENINE_PATHWAY": (
        "Tryptophan-kynurenine metabolism linking inflammation to serotonin availability",
        "Dantzer 2008; Schwarcz 2012; Savitz 2020",
        [
            "IDO1",
            "IDO2",
            "TDO2",
            "AFMID",
            "KMO",
            "KYNU",
            "HAAO",
            "ACMSD",
            "QPRT",
            "AADAT",
            "KYAT1",
            "KYAT3",
            "GOT2",
            "SLC7A5",
            "SLC36A4",
            "NAMPT",
        ],
    ),
    "TRD_CIRCADIAN_CLOCK": (
        "Core circadian clock genes (disrupted in depression)",
        "Li 2013; Takahashi 2017",
        [
            "CLOCK",
            "BMAL1",
            "BMAL2",
            "NPAS2",
            "PER2",
            "PER3",
            "CRY1",
            "CRY2",
            "NR1D1",
            "NR1D2",
            "RORA",
            "RORC",
            "DBP",
            "TEF",
            "HLF",
            "NFIL3",
            "BHLHE40",
            "BHLHE41",
            "CSNK1D",
            "CSNK1E",
            "CIART",
        ],
    ),
}
CURATED_MIN_SIZE = 10
CURATED_MAX_SIZE = 60


# --------------------------------------------------------------------------- helpers
def connect(path: str | Path, kind: str) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {kind} SQLite file not found (see resources/annotation/README.md)")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        con.execute("select count(*) from metadata").fetchone()
    except sqlite3.DatabaseError as err:
        raise InputError(f"{path}: not a readable {kind} SQLite file ({err})") from err
    return con


def metadata(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("select name, value from metadata"))


def write_gzip_text(text: str, path: str | Path) -> None:
    """Gzipped deterministically, so rebuilds are byte-identical."""
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(deterministic_gzip(text))


def write_text(text: str, path: str | Path) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- annotation
def build_gene_table(org: sqlite3.Connection) -> pd.DataFrame:
    """One row per Ensembl gene ID (rules in the module docstring)."""
    genes = pd.read_sql_query(
        """select g._id, g.gene_id as entrez_id, i.symbol as gene_symbol,
                  i.gene_name as description, t.gene_type
           from genes g join gene_info i using(_id) left join genetype t using(_id)""",
        org,
    )
    chrom = pd.read_sql_query("select _id, chromosome from chromosomes", org)

    def place(values: pd.Series) -> str:
        s = sorted(set(values) - {"Un"}, key=lambda c: (not c.isdigit(), int(c) if c.isdigit() else 0, c))
        if set(s) == {"X", "Y"}:
            return "X"
        return ";".join(s)

    chrom = chrom.groupby("_id")["chromosome"].agg(place)
    genes["chromosome"] = genes["_id"].map(chrom).fillna("")

    ncbi = pd.read_sql_query("select distinct _id, ensembl_id from ncbi2ensembl", org)
    ens = pd.read_sql_query("select distinct _id, ensembl_id from ensembl2ncbi", org)
    ncbi["in_ncbi"] = True
    ens["in_ensembl"] = True
    links = ncbi.merge(ens, on=["_id", "ensembl_id"], how="outer")
    for col in ("in_ncbi", "in_ensembl"):
        links[col] = links[col].notna()
    links = links[links["ensembl_id"].str.startswith("ENSG")]
    n_links = len(links)

    # alternate-haplotype / patch copies: Ensembl-only link to an Entrez gene NCBI links elsewhere
    ncbi_linked_entrez = set(ncbi["_id"])
    ncbi_linked_ids = set(ncbi["ensembl_id"])
    alt = (
        ~links["in_ncbi"] & links["_id"].isin(ncbi_linked_entrez) & ~links["ensembl_id"].isin(ncbi_linked_ids)
    )
    n_alt_ids = links.loc[alt, "ensembl_id"].nunique()
    links = links[~alt]

    links = links.merge(genes, on="_id", how="left")
    links["entrez_num"] = links["entrez_id"].astype(int)
    links["both"] = links["in_ncbi"] & links["in_ensembl"]
    links["coding"] = links["gene_type"].eq("protein-coding")
    n_multi = int((links.groupby("ensembl_id")["_id"].nunique() > 1).sum())
    links = links.sort_values(
        ["ensembl_id", "both", "in_ncbi", "coding", "entrez_num"],
        ascending=[True, False, False, False, True],
    )
    table = links.drop_duplicates("ensembl_id", keep="first").rename(columns={"ensembl_id": "gene_id"})
    table = table[GENE_COLUMNS].sort_values("gene_id").reset_index(drop=True)
    table = table.fillna("")
    log.info(
        "annotation: %d Ensembl-Entrez links; %d alternate-haplotype/patch Ensembl IDs left out; "
        "%d Ensembl IDs with several Entrez IDs resolved; %d genes written",
        n_links,
        n_alt_ids,
        n_multi,
        len(table),
    )
    log.info(
        "annotation: %d distinct symbols; %d symbols on more than one Ensembl ID",
        table["gene_symbol"].nunique(),
        int((table["gene_symbol"].value_counts() > 1).sum()),
    )
    return table


# --------------------------------------------------------------------------- GO BP
def build_go_bp(
    org: sqlite3.Connection, go: sqlite3.Connection, min_size: int = GO_MIN_SIZE, max_size: int = GO_MAX_SIZE
) -> list[tuple[str, str, list[str]]]:
    """GO BP sets of gene symbols, propagated over is_a and part_of."""
    terms = pd.read_sql_query("select _id, go_id, term from go_term where ontology = 'BP'", go)
    rowid_to_go = dict(zip(terms["_id"], terms["go_id"]))
    names = dict(zip(terms["go_id"], terms["term"]))

    parents: dict[str, set[str]] = defaultdict(set)
    placeholders = ",".join("?" * len(PROPAGATING_RELATIONS))
    for child, parent in go.execute(
        f"select _id, _parent_id from go_bp_parents where relationship_type in ({placeholders})",
        PROPAGATING_RELATIONS,
    ):
        if child in rowid_to_go and parent in rowid_to_go:  # skips the edge to GO.db's 'all' node
            parents[rowid_to_go[child]].add(rowid_to_go[parent])

    ancestors: dict[str, frozenset[str]] = {}

    def ancestors_of(term: str) -> frozenset[str]:
        # iterative DFS with memoisation (the DAG is ~15 levels deep, but stay safe)
        stack = [term]
        while stack:
            t = stack[-1]
            if t in ancestors:
                stack.pop()
                continue
            pending = [p for p in parents.get(t, ()) if p not in ancestors]
            if pending:
                stack.extend(pending)
                continue
            acc: set[str] = set()
            for p in parents.get(t, ()):
                acc.add(p)
                acc |= ancestors[p]
            ancestors[t] = frozenset(acc)
            stack.pop()
        return ancestors[term]

    ann = pd.read_sql_query(
        """select distinct i.symbol, b.go_id from go_bp b join gene_info i using(_id)
           where b.evidence != 'ND'""",
        org,
    )
    unknown = set(ann["go_id"]) - set(names)
    if unknown:
        log.warning("GO BP: %d annotated terms missing from GO.db (dropped)", len(unknown))
        ann = ann[~ann["go_id"].isin(unknown)]
    members: dict[str, set[str]] = defaultdict(set)
    for symbol, term in zip(ann["symbol"], ann["go_id"]):
        members[term].add(symbol)
        for a in ancestors_of(term):
            members[a].add(symbol)

    sets = []
    n_small = n_large = 0
    for term in sorted(members):
        genes = sorted(members[term])
        if len(genes) < min_size:
            n_small += 1
        elif len(genes) > max_size:
            n_large += 1
        else:
            sets.append((term, names[term], genes))
    log.info(
        "GO BP: %d direct annotations of %d genes; %d terms with genes after propagation; "
        "%d kept (%d-%d genes), %d smaller, %d larger",
        len(ann),
        ann["symbol"].nunique(),
        len(members),
        len(sets),
        min_size,
        max_size,
        n_small,
        n_large,
    )
    return sets


def gmt_text(sets: list[tuple[str, str, list[str]]]) -> str:
    lines = []
    for name, description, genes in sets:
        for field in (name, description, *genes):
            if "\t" in field or "\n" in field:
                raise ValueError(f"GMT field contains a tab or newline: {field!r}")
        lines.append("\t".join([name, description, *genes]))
    return "\n".join(lines) + "\n"


def checked_curated_sets(
    entries: dict[str, tuple[str, str, list[str]]],
    annotation: pd.DataFrame,
    what: str,
    min_size: int,
    max_size: int,
) -> list[tuple[str, str, list[str]]]:
    """GMT sets (name, 'description (references)', genes) from curated lists, after checking that
    every symbol is in the annotation, that a list has min_size-max_size distinct genes and
    that no gene is in two lists. `what` names the lists in messages and the log."""
    symbols = set(annotation["gene_symbol"].dropna())
    seen: dict[str, str] = {}
    sets = []
    for name, (description, refs, genes) in entries.items():
        missing = [g for g in genes if g not in symbols]
        if missing:
            raise InputError(f"{what} {name}: symbols not in the annotation: {', '.join(missing)}")
        if len(set(genes)) != len(genes):
            raise InputError(f"{what} {name}: duplicated genes")
        if not min_size <= len(genes) <= max_size:
            raise InputError(f"{what} {name}: {len(genes)} genes, expected {min_size}-{max_size}")
        for g in genes:
            if g in seen:
                raise InputError(f"{what} {seen[g]} and {name} share {g}; keep them disjoint")
            seen[g] = name
        sets.append((name, f"{description} ({refs})", genes))
    log.info("%s: %d sets, %d genes", what, len(sets), len(seen))
    return sets


def build_curated(annotation: pd.DataFrame) -> list[tuple[str, str, list[str]]]:
    return checked_curated_sets(CURATED_SETS, annotation, "curated set", CURATED_MIN_SIZE, CURATED_MAX_SIZE)


# --------------------------------------------------------------------------- main
def build(orgdb_sqlite, godb_sqlite, genes_out, go_bp_out, curated_out) -> None:
    org = connect(orgdb_sqlite, "org.Hs.eg.db")
    go = connect(godb_sqlite, "GO.db")
    meta_org, meta_go = metadata(org), metadata(go)
    log.info(
        "org.Hs.eg.db: Entrez Gene %s, Ensembl %s, GO %s",
        meta_org.get("EGSOURCEDATE"),
        meta_org.get("ENSOURCEDATE"),
        meta_org.get("GOSOURCEDATE"),
    )
    log.info("GO.db: GO %s", meta_go.get("GOSOURCEDATE"))
    if meta_org.get("GOSOURCEDATE") != meta_go.get("GOSOURCEDATE"):
        log.warning(
            "GO releases differ: org.Hs.eg.db %s vs GO.db %s",
            meta_org.get("GOSOURCEDATE"),
            meta_go.get("GOSOURCEDATE"),
        )

    table = build_gene_table(org)
    buf = io.StringIO()
    table.to_csv(buf, sep="\t", index=False, lineterminator="\n")
    write_gzip_text(buf.getvalue(), genes_out)

    write_gzip_text(gmt_text(build_go_bp(org, go)), go_bp_out)
    write_text(gmt_text(build_curated(table)), curated_out)
