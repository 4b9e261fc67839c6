"""Gene-ID mapping: versions, PAR_Y copies, unknown IDs, symbols as IDs, duplicated symbols."""

import gzip

import pandas as pd
import pytest

from trdpipe.common import InputError
from trdpipe.io.annotation import annotate_genes, clean_ensembl_id, load_annotation

ANNOTATION = pd.DataFrame(
    [
        ("ENSG00000141510", "7157", "TP53", "tumor protein p53", "17", "protein-coding"),
        ("ENSG00000182378", "55344", "PLCXD1", "PI-PLC X domain containing 1", "X", "protein-coding"),
        ("ENSG00000000005", "64102", "TNMD", "tenomodulin", "X", "protein-coding"),
        # one symbol on three IDs: the protein-coding one wins, then the smallest ID
        ("ENSG00000300002", "1", "DUP1", "duplicated", "1", "pseudo"),
        ("ENSG00000300003", "1", "DUP1", "duplicated", "1", "protein-coding"),
        ("ENSG00000300001", "1", "DUP1", "duplicated", "1", "protein-coding"),
    ],
    columns=["gene_id", "entrez_id", "gene_symbol", "description", "chromosome", "gene_type"],
)


def test_clean_ensembl_id():
    assert clean_ensembl_id("ENSG00000141510.17") == "ENSG00000141510"
    assert clean_ensembl_id("ENSG00000141510") == "ENSG00000141510"
    assert clean_ensembl_id("ENSG00000182378.14_PAR_Y") == "ENSG00000182378_PAR_Y"
    assert clean_ensembl_id("ENSMUSG00000000001.4") == "ENSMUSG00000000001"
    assert clean_ensembl_id("AC008770.3") is None  # a clone-based symbol, not a versioned ID
    assert clean_ensembl_id("TP53") is None


def test_versioned_ids_are_stripped_and_annotated():
    ids = pd.Index(["ENSG00000141510.17", "ENSG00000000005.6"])
    var, counts = annotate_genes(ids, ANNOTATION)
    assert list(var.index) == ["ENSG00000141510", "ENSG00000000005"]
    assert var.index.name == "gene_id"
    assert list(var.columns) == ["gene_symbol", "entrez_id", "chromosome", "gene_type"]
    assert var.loc["ENSG00000141510"].tolist() == ["TP53", "7157", "17", "protein-coding"]
    assert counts["versions_stripped"] == 2
    assert counts["in_annotation"] == 2


def test_par_y_copy_stays_a_separate_gene_on_y():
    ids = pd.Index(["ENSG00000182378.14", "ENSG00000182378.14_PAR_Y"])
    var, counts = annotate_genes(ids, ANNOTATION)
    assert list(var.index) == ["ENSG00000182378", "ENSG00000182378_PAR_Y"]
    assert var["gene_symbol"].tolist() == ["PLCXD1", "PLCXD1"]
    assert var["chromosome"].tolist() == ["X", "Y"]
    assert counts["par_y_genes"] == 1


def test_two_versions_of_one_gene_are_a_duplicated_gene():
    ids = pd.Index(["ENSG00000141510.16", "ENSG00000000005", "ENSG00000141510.17"])
    with pytest.raises(InputError) as err:
        annotate_genes(ids, ANNOTATION, source="counts.tsv")
    message = str(err.value)
    assert message.startswith("counts.tsv:")
    assert "ENSG00000141510.16 and ENSG00000141510.17" in message


def test_symbol_and_its_ensembl_id_in_one_matrix_are_a_duplicated_gene():
    with pytest.raises(InputError, match="ENSG00000141510 and TP53"):
        annotate_genes(pd.Index(["ENSG00000141510", "TP53"]), ANNOTATION)


def test_unknown_ids_are_kept_with_the_matrix_symbol_or_empty():
    ids = pd.Index(["ENSG00000999999.1", "ENSG00000888888", "ENSG00000141510"])
    symbols = pd.Series(["MYGENE", "", "not_TP53"], index=ids)
    var, counts = annotate_genes(ids, ANNOTATION, symbols)
    assert list(var.index) == ["ENSG00000999999", "ENSG00000888888", "ENSG00000141510"]
    assert var["gene_symbol"].tolist() == ["MYGENE", "", "TP53"]  # the annotation's symbol wins
    assert var.loc["ENSG00000999999", ["entrez_id", "chromosome", "gene_type"]].tolist() == ["", "", ""]
    assert counts["not_in_annotation"] == 2
    assert counts["without_symbol"] == 1
    assert counts["matrix_symbol_differs_from_annotation"] == 1


def test_symbols_as_ids_map_to_ensembl_and_duplicated_symbols_follow_the_rule():
    ids = pd.Index(["TP53", "DUP1", "NOVELGENE", "AC008770.3"])
    var, counts = annotate_genes(ids, ANNOTATION)
    # DUP1: protein-coding beats pseudo; of the two protein-coding IDs the smaller wins
    assert list(var.index) == ["ENSG00000141510", "ENSG00000300001", "NOVELGENE", "AC008770.3"]
    assert var["gene_symbol"].tolist() == ["TP53", "DUP1", "NOVELGENE", "AC008770.3"]
    assert counts["symbols_mapped_to_ensembl"] == 2
    assert counts["symbols_on_several_ensembl_ids_resolved"] == 1
    assert counts["symbols_not_in_annotation"] == 2


def test_load_annotation_errors_name_the_file(tmp_path):
    bad = tmp_path / "genes.tsv"
    bad.write_text("gene_id\tgene_symbol\nENSG00000141510\tTP53\n")
    with pytest.raises(InputError, match=r"genes.tsv: gene annotation lacks column\(s\) entrez_id"):
        load_annotation(bad)
    with pytest.raises(InputError, match="missing.tsv: cannot read the gene annotation"):
        load_annotation(tmp_path / "missing.tsv")
    broken = tmp_path / "broken.tsv.gz"
    broken.write_bytes(gzip.compress(b"gene_id\tentrez_id\n")[:15])
    with pytest.raises(InputError, match="broken.tsv.gz: cannot read"):
        load_annotation(broken)


def test_shipped_annotation_maps_real_ids():
    annotation = load_annotation("resources/annotation/genes.tsv.gz")
    assert annotation["gene_id"].is_unique
    ids = pd.Index(["ENSG00000141510.17", "ENSG00000198223.18_PAR_Y", "ENSG00000184895.8"])
    var, _ = annotate_genes(ids, annotation)
    assert var["gene_symbol"].tolist() == ["TP53", "CSF2RA", "SRY"]
    assert var["chromosome"].tolist() == ["17", "Y", "Y"]
    assert var.loc["ENSG00000141510", "entrez_id"] == "7157"
