"""Salmon and kallisto files as real cohorts bring them: gzipped, with a GENCODE tx2gene (a
header, pseudoautosomal copies), transcripts the tx2gene lacks, and the library's own errors."""

import gzip
import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest
import pytximport

from trdpipe.checks.inputs import check_counts
from trdpipe.common import InputError
from trdpipe.io.counts import read_per_sample_counts, read_tx2gene

FORMATS = Path(__file__).parent / "data" / "formats"
SAMPLES = ["S1", "S2", "S3", "S4"]
QUANT = {"salmon": "quant.sf", "kallisto": "abundance.tsv"}
TX2GENE = FORMATS / "tx2gene.tsv"


@pytest.fixture(scope="module")
def plain() -> pd.DataFrame:
    return pd.read_csv(FORMATS / "counts.tsv", sep="\t", index_col="gene_id")


def fixture_files(fmt: str) -> dict[str, str]:
    return {s: str(FORMATS / fmt / s / QUANT[fmt]) for s in SAMPLES}


def gzipped_files(fmt: str, folder: Path) -> dict[str, str]:
    """The fixtures gzipped, each in its sample's folder, named as the tools' users gzip them."""
    files = {}
    for sample, path in fixture_files(fmt).items():
        target = folder / sample / f"{QUANT[fmt]}.gz"
        target.parent.mkdir(parents=True)
        target.write_bytes(gzip.compress(Path(path).read_bytes()))
        files[sample] = str(target)
    return files


def gene_counts(data) -> pd.DataFrame:
    counts = check_counts(data.counts, "fixture", estimated=data.estimated)
    counts.index = counts.index.str.split(".").str[0]
    return counts


def message(fmt: str, files: dict, tx2gene) -> str:
    with pytest.raises(InputError) as error:
        read_per_sample_counts(files, fmt, tx2gene=str(tx2gene))
    return str(error.value)


@pytest.mark.parametrize("fmt", ["salmon", "kallisto"])
def test_gzipped_files_give_the_plain_matrix(plain, tmp_path, fmt):
    data = read_per_sample_counts(gzipped_files(fmt, tmp_path), tx2gene=str(TX2GENE))
    assert data.format == fmt
    pd.testing.assert_frame_equal(gene_counts(data).loc[plain.index], plain, check_names=False)


def test_a_gencode_tx2gene_with_header_and_par_y_copies_gives_the_plain_matrix(plain, caplog):
    with caplog.at_level(logging.INFO, logger="trd"):
        data = read_per_sample_counts(fixture_files("salmon"), tx2gene=str(FORMATS / "tx2gene_gencode.csv"))
    pd.testing.assert_frame_equal(gene_counts(data).loc[plain.index], plain, check_names=False)
    assert (
        f"{FORMATS / 'tx2gene_gencode.csv'}: 1 pseudoautosomal Y transcripts ('_PAR_Y') equal their X "
        "copies without versions; the X copies are kept"
    ) in caplog.messages


def test_a_header_is_recognised_by_its_lack_of_digits(tmp_path):
    for header in ("TXNAME\tGENEID", "transcript_id\tgene_id", "tx\tgene"):
        path = tmp_path / "t.tsv"
        path.write_text(f"{header}\nENST00000373020.9\tENSG00000000003\n")
        assert read_tx2gene(path)["transcript_id"].tolist() == ["ENST00000373020.9"]
    assert len(read_tx2gene(TX2GENE)) == 7  # no header: its first row is a transcript


def test_a_transcript_of_two_genes_stops_with_examples(tmp_path):
    path = tmp_path / "tx2gene.tsv"
    rows = (
        TX2GENE.read_text()
        + "ENST00000494424.2\tENSG00000000419\tDPM1\nENST00000374005.9\tENSG0000000099\tX\n"
    )
    path.write_text(rows)
    assert message("salmon", fixture_files("salmon"), path) == (
        f"{path}: 2 transcript(s) belong to more than one gene once their versions are stripped, e.g. "
        "ENST00000494424 (ENSG00000000003, ENSG00000000419), ENST00000374005 (ENSG00000000938, "
        "ENSG0000000099); each transcript must map to one gene."
    )


def test_the_share_of_transcripts_missing_from_the_tx2gene_is_logged(tmp_path, caplog):
    path = tmp_path / "tx2gene.tsv"
    path.write_text("".join(TX2GENE.read_text().splitlines(keepends=True)[:-1]))  # without FGR's
    with caplog.at_level(logging.INFO):
        data = read_per_sample_counts(fixture_files("kallisto"), tx2gene=str(path))
    assert "ENSG00000000938" not in data.counts.index
    assert (
        f"1 of 7 quantified transcripts (14.3%) are not in the transcript-to-gene table {path}; their "
        "reads are left out of the gene counts"
    ) in caplog.messages
    # the library's own notes are not repeated, nor its advice to install pyarrow
    assert not [
        m for m in caplog.messages if "pyarrow" in m or "Not all transcripts" in m or "Abundance" in m
    ]


def test_too_many_transcripts_missing_from_the_tx2gene_stop(tmp_path):
    path = tmp_path / "tx2gene.tsv"
    path.write_text("".join(TX2GENE.read_text().splitlines(keepends=True)[:5]))
    assert message("salmon", fixture_files("salmon"), path) == (
        f"2 of 7 quantified transcripts (28.6%) are not in the transcript-to-gene table {path}, e.g. "
        "ENST00000286031, ENST00000374005; above 20% the table is of another annotation than the "
        "quantification's index: use the tx2gene of the same release."
    )


def test_a_cell_that_is_not_a_number_names_file_line_and_column(tmp_path):
    files = {}
    for sample, path in fixture_files("kallisto").items():
        files[sample] = str(tmp_path / f"{sample}.abundance.tsv")
        shutil.copy(path, files[sample])
    lines = Path(files["S3"]).read_text().splitlines(keepends=True)
    fields = lines[3].split("\t")
    lines[3] = "\t".join([*fields[:3], "NA", *fields[4:]])  # est_counts of line 4
    Path(files["S3"]).write_text("".join(lines))
    assert message("kallisto", files, TX2GENE) == (
        f"{files['S3']}: line 4, column 'est_counts' of the kallisto quantification is 'NA'; expected a "
        "number >= 0."
    )


def test_an_error_of_the_library_names_the_files(monkeypatch):
    def fails(*args, **kwargs):
        raise AssertionError("The mapping contains duplicates.")

    monkeypatch.setattr(pytximport, "tximport", fails)
    files = fixture_files("salmon")
    assert message("salmon", files, TX2GENE) == (
        f"{files['S1']}, {files['S2']}, {files['S3']}, ... (and 1 more): pytximport could not summarise "
        "the salmon files to genes (AssertionError: The mapping contains duplicates.)."
    )
