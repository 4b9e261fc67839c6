"""GMT reading: duplicates, empty lines, size limits on the data's genes, Ensembl-ID GMTs, errors."""

import gzip

import pandas as pd
import pytest

from trdpipe.common import InputError
from trdpipe.io.genesets import read_gmt, restrict_to_universe

ANNOTATION = pd.DataFrame(
    {
        "gene_id": ["ENSG00000000001", "ENSG00000000002", "ENSG00000000003", "ENSG00000000004"],
        "gene_symbol": ["A1", "A2", "A3", ""],
    }
)


def write(path, text, gz=False):
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_duplicates_collapsed_empty_lines_and_trailing_tabs_skipped(tmp_path):
    gmt = write(tmp_path / "sets.gmt", "S1\tdesc one\tA\tB\tA\tC\t\n\n   \nS2\tdesc two\tD\tE\r\n")
    sets = read_gmt(gmt)
    assert sets == {"S1": ("desc one", ["A", "B", "C"]), "S2": ("desc two", ["D", "E"])}


def test_gzipped_gmt_reads_like_plain(tmp_path):
    text = "S1\tx\tA\tB\nS2\ty\tC\n"
    assert read_gmt(write(tmp_path / "a.gmt.gz", text, gz=True)) == read_gmt(write(tmp_path / "a.gmt", text))


@pytest.mark.parametrize(
    "line, problem",
    [
        ("S2\tno genes", "line 2 is not a gene set"),
        ("S2\tdesc\t\t", "line 2 is not a gene set"),
        ("\tdesc\tA", "line 2 is not a gene set"),
        ("S1\tagain\tA", "line 2: gene set 'S1' appears a second time"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, problem):
    gmt = write(tmp_path / "bad.gmt", f"S1\td\tA\tB\n{line}\n")
    with pytest.raises(InputError, match=f"bad.gmt: {problem}"):
        read_gmt(gmt)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.gmt: cannot read the GMT file"):
        read_gmt(tmp_path / "missing.gmt")
    binary = tmp_path / "binary.gmt"
    binary.write_bytes(b"S1\td\tA\n\xff\xfe\x00bad\n")
    with pytest.raises(InputError, match="binary.gmt: cannot read the GMT file"):
        read_gmt(binary)
    with pytest.raises(InputError, match="empty.gmt: GMT file has no gene sets"):
        read_gmt(write(tmp_path / "empty.gmt", "\n\n"))


def test_size_limits_count_only_genes_present_in_the_data():
    sets = {
        "small_in_data": ("", ["A", "B", "X1", "X2", "X3"]),  # 5 listed, 2 in the data
        "ok": ("", ["A", "B", "C", "X1"]),  # 3 in the data
        "large": ("", ["A", "B", "C", "D", "E"]),  # 5 in the data
    }
    collection = restrict_to_universe("c", sets, ["A", "B", "C", "D", "E"], min_size=3, max_size=4)
    assert collection.sets == {"ok": ("", ["A", "B", "C"])}
    assert collection.dropped_small == ["small_in_data"]
    assert collection.dropped_large == ["large"]
    assert collection.n_genes_in_file == 8
    assert collection.n_genes_in_data == 5
    assert "5 of 8 genes found in the data; 1 of 3 sets tested" in collection.summary()


def test_ensembl_gmt_is_mapped_to_symbols_through_the_annotation(tmp_path):
    gmt = write(
        tmp_path / "ens.gmt",
        "E1\td\tENSG00000000001.5\tENSG00000000002\tENSG00000000009\n"
        "E2\td\tENSG00000000003\tENSG00000000004\tENSG00000000003.2\n",
    )
    sets = read_gmt(gmt, ANNOTATION)
    # unknown IDs and IDs without a symbol are dropped; the two versions of one ID count once
    assert sets == {"E1": ("d", ["A1", "A2"]), "E2": ("d", ["A3"])}
    assert read_gmt(gmt)["E1"][1][0] == "ENSG00000000001.5"  # no annotation: as written


def test_symbol_gmt_is_not_touched_by_the_annotation(tmp_path):
    gmt = write(tmp_path / "sym.gmt", "S\td\tA1\tENSG00000000002\tB\n")
    assert read_gmt(gmt, ANNOTATION) == {"S": ("d", ["A1", "ENSG00000000002", "B"])}


def test_shipped_collections():
    go = read_gmt("resources/genesets/go_bp.gmt.gz")
    sizes = [len(genes) for _, genes in go.values()]
    assert len(go) > 5000 and min(sizes) >= 10 and max(sizes) <= 500
    assert go["GO:0042267"][0] == "natural killer cell mediated cytotoxicity"
    assert {"GZMB", "NKG7", "KLRK1"} <= set(go["GO:0042267"][1])
    # propagated: genes of a child term are in its is_a parent
    # (GO:0042267 NK cell mediated cytotoxicity is_a GO:0001909 leukocyte mediated cytotoxicity)
    assert set(go["GO:0042267"][1]) <= set(go["GO:0001909"][1])
    curated = read_gmt("resources/genesets/curated_trd.gmt")
    assert all(10 <= len(genes) <= 60 for _, genes in curated.values())
    members = {name: set(genes) for name, (_, genes) in curated.items()}
    assert {"IL1B", "TNF", "IL6", "MIF", "P2RX7"} <= members["TRD_INFLAMMATION_INNATE_IMMUNITY"]
    assert {"GZMB", "PRF1", "NKG7", "KLRD1"} <= members["TRD_NK_CYTOTOXIC"]
    assert {"NR3C1", "FKBP5"} <= members["TRD_GLUCOCORTICOID_SIGNALLING"]
    assert {"BDNF", "VGF"} <= members["TRD_NEUROPLASTICITY"]
    assert {"HTR1A", "HTR2B", "SLC6A4", "TPH1", "MAOA"} <= members["TRD_SEROTONIN_SIGNALLING"]
