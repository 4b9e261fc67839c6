"""The miRNA annotation build (trdpipe.resources.mirna) on tiny files shaped like miRBase's hsa.gff3,
miFam.dat and PyOBO's mirbase.family.obo; and the shipped table."""

import pytest

from conftest import ROOT, run_snakemake
from trdpipe.common import InputError
from trdpipe.resources.mirna import MIRNA_COLUMNS, build_mirna, build_mirna_table, read_mirna_annotation

GFF3 = """##gff-version 3
# microRNAs:               miRBase v22
chr1\t.\tmiRNA_primary_transcript\t100\t180\t.\t+\t.\tID=MI0000070;Alias=MI0000070;Name=hsa-mir-16-1
chr1\t.\tmiRNA\t110\t131\t.\t+\t.\tID=MIMAT0000069;Alias=MIMAT0000069;Name=hsa-miR-16-5p;Derives_from=MI0000070
chr3\t.\tmiRNA_primary_transcript\t500\t580\t.\t+\t.\tID=MI0000115;Alias=MI0000115;Name=hsa-mir-16-2
chr3\t.\tmiRNA\t510\t531\t.\t+\t.\tID=MIMAT0000069_1;Alias=MIMAT0000069;Name=hsa-miR-16-5p;Derives_from=MI0000115
chr3\t.\tmiRNA\t560\t580\t.\t+\t.\tID=MIMAT0004518;Alias=MIMAT0004518;Name=hsa-miR-16-2-3p;Derives_from=MI0000115
chr8\t.\tmiRNA_primary_transcript\t900\t970\t.\t-\t.\tID=MI0099999;Alias=MI0099999;Name=hsa-mir-9999
chr8\t.\tmiRNA\t910\t930\t.\t-\t.\tID=MIMAT0099999;Alias=MIMAT0099999;Name=hsa-miR-9999;Derives_from=MI0099999
"""
MIFAM = """AC   MIPF0000006
ID   mir-15
MI   MI0000070  hsa-mir-16-1
MI   MI0000115  hsa-mir-16-2
MI   MI0000150  mmu-mir-16-1
//
"""
OBO = """format-version: 1.4

[Term]
id: mirbase.family:MIPF0000006
name: mir-15
relationship: RO:0002351 mirbase:MI0000070 ! has member hsa-mir-16-1

[Term]
id: mirbase.family:MIPF0000006
name: mir-15
relationship: RO:0002351 mirbase:MI0000115 ! has member hsa-mir-16-2
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "hsa.gff3").write_text(GFF3)
    (tmp_path / "miFam.dat").write_text(MIFAM)
    (tmp_path / "mirbase.family.obo").write_text(OBO)
    return tmp_path


@pytest.mark.parametrize("families", ["miFam.dat", "mirbase.family.obo"])
def test_mature_mirnas_with_precursors_and_families(files, families):
    table = build_mirna_table(files / "hsa.gff3", files / families).set_index("mirna_id")
    assert list(table.columns) == MIRNA_COLUMNS[1:]
    # one mature sequence from two loci: both precursors, one family
    assert table.loc["hsa-miR-16-5p"].tolist() == [
        "MIMAT0000069",
        "hsa-mir-16-1;hsa-mir-16-2",
        "MI0000070;MI0000115",
        "mir-15",
        "MIPF0000006",
    ]
    assert table.loc["hsa-miR-16-2-3p", "precursor"] == "hsa-mir-16-2"
    assert table.loc["hsa-miR-9999", ["family", "family_acc"]].tolist() == ["", ""]  # no family in miRBase


def test_build_is_deterministic_and_reads_back(files, tmp_path):
    out_a, out_b = tmp_path / "a.tsv.gz", tmp_path / "b.tsv.gz"
    build_mirna(files / "hsa.gff3", files / "miFam.dat", out_a)
    build_mirna(files / "hsa.gff3", files / "miFam.dat", out_b)
    assert out_a.read_bytes() == out_b.read_bytes()
    assert read_mirna_annotation(out_a)["family"].tolist() == ["mir-15", "mir-15", ""]


def test_inputs_of_the_wrong_kind_are_named(files):
    with pytest.raises(InputError, match=r"miFam\.dat, line 1: not a GFF3 line"):
        build_mirna_table(files / "miFam.dat", files / "miFam.dat")
    with pytest.raises(InputError, match=r"hsa\.gff3: no family member"):
        build_mirna_table(files / "hsa.gff3", files / "hsa.gff3")


def test_shipped_table():
    table = read_mirna_annotation(ROOT / "resources/annotation/mirna.tsv.gz")
    assert list(table.columns) == MIRNA_COLUMNS
    assert table["mirna_id"].is_unique and table["mimat"].is_unique and len(table) > 2500
    assert table["mirna_id"].str.startswith("hsa-").all()
    row = table.set_index("mirna_id").loc["hsa-miR-486-5p"]
    assert (row["mimat"], row["family"]) == ("MIMAT0002177", "mir-486")
    assert (ROOT / "resources/annotation/mirna.tsv.gz").stat().st_size < 300_000


def test_rebuild_target_accepts_its_config_keys(workflow_copy, files):
    paths = [f"mirbase_gff3={files / 'hsa.gff3'}", f"mirbase_families={files / 'miFam.dat'}"]
    result = run_snakemake(workflow_copy, "-n", "-f", "build_mirna_annotation", "--config", *paths)
    assert "build_mirna_annotation" in result.stdout
