"""Resource build rules on tiny SQLite files shaped like Bioconductor's org.Hs.eg.db and GO.db."""

import gzip
import sqlite3

import pytest

from conftest import run_snakemake
from trdpipe.common import InputError
from trdpipe.resources.build import build_gene_table, build_go_bp, connect, gmt_text

ORG_TABLES = {
    "metadata": "name, value",
    "genes": "_id, gene_id",
    "gene_info": "_id, gene_name, symbol",
    "genetype": "_id, gene_type",
    "chromosomes": "_id, chromosome",
    "ncbi2ensembl": "_id, ensembl_id",
    "ensembl2ncbi": "_id, ensembl_id",
    "go_bp": "_id, go_id, evidence",
}
GO_TABLES = {
    "metadata": "name, value",
    "go_term": "_id, go_id, term, ontology",
    "go_bp_parents": "_id, _parent_id, relationship_type",
}


def make_sqlite(path, tables, rows):
    con = sqlite3.connect(path)
    for table, columns in tables.items():
        con.execute(f"create table {table} ({columns})")
        for row in rows.get(table, []):
            con.execute(f"insert into {table} values ({','.join('?' * len(row))})", row)
    con.commit()
    return con


# Entrez genes (internal _id, Entrez ID, symbol, type, chromosomes)
GENES = [
    (1, "100", "HLAX", "protein-coding", ["6"]),
    (2, "200", "PARG", "protein-coding", ["X", "Y"]),
    (3, "300", "READ", "ncRNA", ["1"]),
    (4, "250", "CODE", "protein-coding", ["1"]),
    (5, "400", "LOST", "protein-coding", ["Un"]),
    (6, "150", "NCRN", "ncRNA", ["2"]),
]


@pytest.fixture
def org(tmp_path):
    rows = {
        "metadata": [("GOSOURCEDATE", "2022-07-01")],
        "genes": [(i, entrez) for i, entrez, *_ in GENES],
        "gene_info": [(i, f"{sym} gene", sym) for i, _, sym, *_ in GENES],
        "genetype": [(i, kind) for i, _, _, kind, _ in GENES],
        "chromosomes": [(i, c) for i, *_, chroms in GENES for c in chroms],
        # HLAX: NCBI links ENSG1; Ensembl adds its haplotype copy ENSG1ALT (left out).
        # ENSG3 is claimed by READ (ncRNA, NCBI link) and CODE (protein-coding, Ensembl only):
        # the NCBI link wins over gene type. ENSG4: Ensembl's link to READ is a copy (NCBI
        # links READ elsewhere); of CODE and NCRN, linked only by Ensembl, protein-coding wins
        # over the smaller Entrez ID. LOST has only an Ensembl link, and NCBI links no other
        # ID to it, so it is kept; LRG IDs are not genes.
        "ncbi2ensembl": [(1, "ENSG1"), (2, "ENSG2"), (3, "ENSG3")],
        "ensembl2ncbi": [
            (1, "ENSG1"),
            (1, "ENSG1ALT"),
            (4, "ENSG3"),
            (3, "ENSG4"),
            (4, "ENSG4"),
            (6, "ENSG4"),
            (5, "ENSG5"),
            (5, "LRG_5"),
        ],
        "go_bp": [(1, "GO:3", "IDA"), (2, "GO:4", "IEA"), (3, "GO:5", "IMP"), (4, "GO:1", "ND")],
    }
    return make_sqlite(tmp_path / "org.sqlite", ORG_TABLES, rows)


@pytest.fixture
def go(tmp_path):
    # GO:1 root <-isa- GO:2 <-part of- GO:3 ; GO:4 -isa-> GO:2 ; GO:5 -regulates-> GO:2
    rows = {
        "metadata": [("GOSOURCEDATE", "2022-07-01")],
        "go_term": [(k, f"GO:{k}", f"term {k}", "BP") for k in range(1, 6)] + [(9, "GO:9", "cc", "CC")],
        "go_bp_parents": [
            (2, 1, "isa"),
            (3, 2, "part of"),
            (4, 2, "isa"),
            (5, 2, "regulates"),
            (1, 99, "isa"),
        ],  # the edge to GO.db's 'all' node has no term
    }
    return make_sqlite(tmp_path / "go.sqlite", GO_TABLES, rows)


def test_gene_table_drops_haplotype_copies_and_resolves_shared_ids(org):
    table = build_gene_table(org).set_index("gene_id")
    assert list(table.index) == ["ENSG1", "ENSG2", "ENSG3", "ENSG4", "ENSG5"]
    assert table.loc["ENSG3", "gene_symbol"] == "READ"  # NCBI's own link beats gene type
    assert table.loc["ENSG4", "gene_symbol"] == "CODE"  # protein-coding beats the smaller Entrez ID
    assert table.loc["ENSG1", "entrez_id"] == "100"
    assert table.loc["ENSG1", "description"] == "HLAX gene"


def test_gene_table_chromosome_rules(org):
    chrom = build_gene_table(org).set_index("gene_id")["chromosome"]
    assert chrom["ENSG2"] == "X"  # pseudo-autosomal X and Y
    assert chrom["ENSG5"] == ""  # unplaced
    assert chrom["ENSG1"] == "6"


def test_go_bp_propagates_over_is_a_and_part_of_only(org, go):
    sets = {term: genes for term, _, genes in build_go_bp(org, go, min_size=1, max_size=10)}
    assert sets == {
        "GO:1": ["HLAX", "PARG"],  # READ's 'regulates' edge does not reach the root; ND is dropped
        "GO:2": ["HLAX", "PARG"],
        "GO:3": ["HLAX"],
        "GO:4": ["PARG"],
        "GO:5": ["READ"],
    }


def test_go_bp_size_limits(org, go):
    sets = build_go_bp(org, go, min_size=2, max_size=2)
    assert [(term, name) for term, name, _ in sets] == [("GO:1", "term 1"), ("GO:2", "term 2")]


def test_gmt_text_rejects_tabs_in_fields():
    assert gmt_text([("S", "d", ["A", "B"])]) == "S\td\tA\tB\n"
    with pytest.raises(ValueError, match="tab or newline"):
        gmt_text([("S", "d\tx", ["A"])])


def test_connect_names_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match=r"absent\.sqlite: GO\.db SQLite file not found"):
        connect(tmp_path / "absent.sqlite", "GO.db")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(gzip.compress(b"not sqlite"))
    with pytest.raises(InputError, match=r"junk\.sqlite: not a readable GO\.db SQLite file"):
        connect(junk, "GO.db")


def test_rebuild_target_accepts_its_config_keys(workflow_copy, org, go, tmp_path):
    paths = [f"orgdb_sqlite={tmp_path / 'org.sqlite'}", f"godb_sqlite={tmp_path / 'go.sqlite'}"]
    result = run_snakemake(workflow_copy, "-n", "-f", "build_resources", "--config", *paths)
    assert "build_resources" in result.stdout


def test_rebuild_target_without_sqlite_files_says_how(workflow_copy):
    result = run_snakemake(workflow_copy, "-f", "build_resources", check=False)
    assert result.returncode != 0
    assert "build_resources needs the two Bioconductor SQLite files" in result.stdout + result.stderr
