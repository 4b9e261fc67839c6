"""Salmon and kallisto files as real cohorts bring them: gzipped, with a GENCODE tx2gene (a
header, pseudoautosomal copies), transcripts the tx2gene lacks, and the library's own errors."""

import gzip
import logging
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytximport
from anndata import read_h5ad

from conftest import ROOT, copy_workflow, run_snakemake, small_cohort_config
from trdpipe.checks.inputs import check_counts
from trdpipe.common import InputError
from trdpipe.ingest import ingest
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


def test_without_the_optional_pytximport_ingest_says_how_to_install_it(monkeypatch):
    # pytximport is GPL-3.0, an optional extra: a None in sys.modules makes its import fail
    monkeypatch.setitem(sys.modules, "pytximport", None)
    files = fixture_files("salmon")
    assert message("salmon", files, TX2GENE) == (
        f"{files['S1']}, {files['S2']}, {files['S3']}, ... (and 1 more): salmon and kallisto files are "
        "summarised to genes with pytximport, which is not installed: pip install -r "
        "requirements-extras.txt (pytximport is GPL-3.0, an optional extra)"
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


# --- whole-workflow runs on per-sample transcript files made from the toy ---------------------------

TOY = ROOT / "resources" / "toy"
ANNOTATION = ROOT / "resources" / "annotation" / "genes.tsv.gz"
DE_TABLE = "results/de/TRD_vs_responder/deseq2_results.tsv"


def toy_subset(n_per_group: int = 6, n_genes: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The toy's first genes and its first samples of each group: (counts genes x samples, sheet)."""
    sheet = pd.read_csv(TOY / "samples.tsv", sep="\t", dtype={"sample_id": str})
    sheet = sheet.groupby("group", sort=False).head(n_per_group).reset_index(drop=True)
    counts = pd.read_csv(TOY / "counts.tsv.gz", sep="\t", index_col="gene_id").iloc[:n_genes]
    return counts[sheet["sample_id"]], sheet


def write_transcript_files(counts: pd.DataFrame, fmt: str, folder: Path) -> tuple[dict[str, Path], Path]:
    """Each gene as two transcripts of one length sharing its count, so that the length-scaled TPM
    gives back the gene's count exactly: one quant.sf / abundance.tsv per sample, and the tx2gene."""
    transcripts = [f"ENST{gene[4:]}{suffix}" for gene in counts.index for suffix in ("1", "2")]
    genes = [gene for gene in counts.index for _ in range(2)]
    tx2gene = folder / "tx2gene.tsv"
    folder.mkdir(parents=True)
    pd.DataFrame({"transcript_id": transcripts, "gene_id": genes}).to_csv(tx2gene, sep="\t", index=False)
    files = {}
    for sample in counts.columns:
        first = counts[sample] // 2
        reads = [n for a, b in zip(first, counts[sample] - first) for n in (a, b)]
        tpm = [1e6 * n / sum(reads) for n in reads]
        if fmt == "salmon":
            table = {
                "Name": transcripts,
                "Length": 1000,
                "EffectiveLength": 1000.0,
                "TPM": tpm,
                "NumReads": reads,
            }
        else:
            table = {
                "target_id": transcripts,
                "length": 1000,
                "eff_length": 1000.0,
                "est_counts": reads,
                "tpm": tpm,
            }
        files[sample] = folder / sample / QUANT[fmt]
        files[sample].parent.mkdir()
        pd.DataFrame(table).to_csv(files[sample], sep="\t", index=False)
    return files, tx2gene


def own_sheet(sheet: pd.DataFrame, files: dict[str, Path], path: Path) -> Path:
    sheet.assign(counts_file=[str(files[s]) for s in sheet["sample_id"]]).to_csv(path, sep="\t", index=False)
    return path


@pytest.mark.e2e
def test_the_workflow_runs_to_de_on_salmon_files_and_kallisto_files_give_the_same_cohort(tmp_path):
    """Twelve toy samples (6 TRD, 6 responders) and 400 genes as salmon files, through the workflow to
    the DE table: ingest gives back the toy's counts. The same as kallisto files give ingest's cohort
    exactly, and every later rule reads only that cohort, so one workflow run covers both."""
    counts, sheet = toy_subset()
    workdir = copy_workflow(tmp_path / "wf")
    files, tx2gene = write_transcript_files(counts, "salmon", workdir / "salmon")
    own_sheet(sheet, files, workdir / "config" / "own.tsv")
    run_snakemake(
        workdir,
        DE_TABLE,
        *small_cohort_config(workdir),
        "--config",
        "samples=config/own.tsv",
        "counts=",
        f"tx2gene={tx2gene}",
        "design=~ group",
    )
    cohort = read_h5ad(workdir / "results" / "ingest" / "cohort.h5ad")
    assert cohort.uns["ingest"]["counts_format"] == "salmon"
    assert cohort.obs_names.tolist() == sheet["sample_id"].tolist()
    pd.testing.assert_frame_equal(cohort.to_df().T, counts, check_names=False, check_dtype=False)
    de = pd.read_csv(workdir / DE_TABLE, sep="\t")
    assert set(de["gene_id"]) <= set(counts.index) and (de["padj"] < 0.05).any()

    files, tx2gene = write_transcript_files(counts, "kallisto", tmp_path / "kallisto")
    samples = own_sheet(sheet, files, tmp_path / "kallisto" / "own.tsv")
    contrast = {"TRD_vs_responder": {"variable": "group", "test": "TRD", "reference": "responder"}}
    from_kallisto = ingest("", str(samples), str(ANNOTATION), "~ group", contrast, tx2gene=str(tx2gene))
    assert from_kallisto.uns["ingest"]["counts_format"] == "kallisto"
    np.testing.assert_array_equal(from_kallisto.X, cohort.X)
    # h5ad stores the annotation's text columns as categories
    pd.testing.assert_frame_equal(from_kallisto.var.astype(str), cohort.var.astype(str))
