"""Each upstream count format, read from a fixture in the tool's real layout, gives the plain matrix.

Fixtures: tests/data/formats/ (README.md there says how each was derived from counts.tsv).
"""

import gzip
import hashlib
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import copy_workflow, run_snakemake, small_cohort_config
from trdpipe.checks.inputs import check_counts
from trdpipe.ingest import ingest
from trdpipe.io.counts import (
    detect_format,
    read_count_matrix,
    read_counts,
    read_delimited,
    read_per_sample_counts,
    read_star,
    read_whole_number_matrix,
    sample_name_from_bam,
)

FORMATS = Path(__file__).parent / "data" / "formats"
SAMPLES = ["S1", "S2", "S3", "S4"]
PER_SAMPLE = {
    "star": "star/{}.ReadsPerGene.out.tab",
    "htseq": "htseq/{}.counts.txt",
    "salmon": "salmon/{}/quant.sf",
    "kallisto": "kallisto/{}/abundance.tsv",
}
ANNOTATION = Path(__file__).parents[1] / "resources" / "annotation" / "genes.tsv.gz"
CONTRAST = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}


@pytest.fixture(scope="module")
def plain() -> pd.DataFrame:
    """The matrix every fixture was derived from (genes x samples, int64)."""
    return pd.read_csv(FORMATS / "counts.tsv", sep="\t", index_col="gene_id")


def checked(data) -> pd.DataFrame:
    counts = check_counts(data.counts, "fixture", estimated=data.estimated)
    counts.index = counts.index.str.split(".").str[0]  # nf-core's gene IDs carry versions
    return counts


def per_sample_files(fmt: str) -> dict[str, str]:
    return {s: str(FORMATS / PER_SAMPLE[fmt].format(s)) for s in SAMPLES}


@pytest.mark.parametrize(
    "name, expected",
    [
        ("counts.tsv", "matrix"),
        ("featureCounts.txt", "featurecounts"),
        ("salmon.merged.gene_counts.tsv", "salmon"),
        ("star/S1.ReadsPerGene.out.tab", "star"),
        ("htseq/S1.counts.txt", "htseq"),
        ("salmon/S1/quant.sf", "salmon"),
        ("kallisto/S1/abundance.tsv", "kallisto"),
    ],
)
def test_auto_detects_each_format(name, expected):
    assert detect_format(FORMATS / name)[0] == expected


@pytest.mark.parametrize("name", ["featureCounts.txt", "salmon.merged.gene_counts.tsv"])
def test_single_file_formats_give_the_plain_matrix(plain, name):
    pd.testing.assert_frame_equal(checked(read_counts(FORMATS / name)), plain, check_names=False)


def test_csv_gzipped_matrix_gives_the_plain_matrix(plain, tmp_path):
    path = tmp_path / "counts.csv.gz"
    path.write_bytes(gzip.compress(plain.to_csv().encode()))
    data = read_counts(path)
    assert data.format == "matrix"
    pd.testing.assert_frame_equal(checked(data), plain, check_names=False)


def test_nfcore_salmon_counts_are_rounded_and_logged(plain, caplog):
    data = read_counts(FORMATS / "salmon.merged.gene_counts.tsv")
    assert data.counts.loc["ENSG00000000003.6", "S3"] == "6.75"
    assert data.gene_symbols.tolist() == ["TSPAN6", "DPM1", "SCYL3", "C1orf112", "FGR"]
    with caplog.at_level(logging.INFO, logger="trd"):
        checked(data)
    assert "fixture: 17 of 20 estimated counts were fractional and are rounded to integers." in caplog.text


def test_fractional_counts_in_a_plain_matrix_are_an_error(tmp_path):
    path = tmp_path / "counts.tsv"  # same numbers, but not named or declared as estimated counts
    path.write_text((FORMATS / "salmon.merged.gene_counts.tsv").read_text())
    data = read_counts(path)
    with pytest.raises(
        Exception, match=r"the count of gene ENSG00000000003.6 in sample S1 \('10.3'\) is not a whole number"
    ):
        check_counts(data.counts, str(path), estimated=data.estimated)


@pytest.mark.parametrize("fmt", ["star", "htseq", "salmon", "kallisto"])
def test_per_sample_formats_give_the_plain_matrix(plain, fmt):
    data = read_per_sample_counts(
        per_sample_files(fmt), strandedness="reverse", tx2gene=str(FORMATS / "tx2gene.tsv")
    )
    assert data.format == fmt
    pd.testing.assert_frame_equal(checked(data).loc[plain.index], plain, check_names=False)


@pytest.mark.parametrize("strandedness, column", [("unstranded", 1), ("forward", 2), ("reverse", 3)])
def test_star_strandedness_picks_its_column(strandedness, column):
    counts, _ = read_star(FORMATS / "star/S2.ReadsPerGene.out.tab", strandedness)
    table = pd.read_csv(FORMATS / "star/S2.ReadsPerGene.out.tab", sep="\t", header=None, index_col=0)
    assert counts.astype(int).tolist() == table.iloc[4:, column - 1].tolist()


def test_star_and_htseq_summary_rows_are_removed_and_reported():
    star = read_per_sample_counts(per_sample_files("star"), strandedness="reverse")
    htseq = read_per_sample_counts(per_sample_files("htseq"))
    assert "N_unmapped" not in star.counts.index and "__no_feature" not in htseq.counts.index
    assert star.notes[0].splitlines()[0] == (
        "summary rows removed from the star files (N_unmapped, "
        "N_multimapping, N_noFeature, N_ambiguous), per sample:"
    )
    assert star.notes[0].splitlines()[2].split() == ["S1", "100", "50", "25", "2"]  # reverse column
    assert htseq.notes[0].splitlines()[4].split() == ["S3", "14", "5", "0", "2", "9"]


def test_transcript_formats_state_the_summarisation_mode():
    data = read_per_sample_counts(per_sample_files("salmon"), tx2gene=str(FORMATS / "tx2gene.tsv"))
    assert "pytximport, counts_from_abundance='length_scaled_tpm'" in data.notes[0]
    assert data.gene_symbols.tolist() == ["TSPAN6", "DPM1", "SCYL3", "C1orf112", "FGR"]


@pytest.mark.parametrize(
    "bam, sample",
    [
        ("/data/star/S1.Aligned.sortedByCoord.out.bam", "S1"),
        ("S2.markdup.sorted.bam", "S2"),
        ("S3_Aligned.sortedByCoord.out.bam", "S3"),
        ("C:\\runs\\PRM 001.dedup.bam", "PRM 001"),
        ("plain_name", "plain_name"),
    ],
)
def test_sample_name_from_bam(bam, sample):
    assert sample_name_from_bam(bam) == sample


def test_featurecounts_columns_mapped_by_sample_sheet(plain):
    bams = {
        "/data/star/S1.Aligned.sortedByCoord.out.bam": "A",
        "/data/star/S2.markdup.sorted.bam": "B",
        "S3_Aligned.sortedByCoord.out.bam": "C",
        "../S4.bam": "D",
    }
    data = read_counts(FORMATS / "featureCounts.txt", column_to_sample=bams)
    assert data.counts.columns.tolist() == ["A", "B", "C", "D"]
    assert checked(data)["D"].tolist() == plain["S4"].tolist()


@pytest.mark.parametrize("layer", ["", "counts"])
def test_h5ad_counts_from_x_or_layer(plain, tmp_path, layer):
    raw = plain.T.to_numpy(dtype=float)
    lognorm = np.log1p(raw / raw.sum(axis=1, keepdims=True) * 1e4)
    adata = ad.AnnData(
        X=lognorm if layer else raw,
        obs=pd.DataFrame(index=SAMPLES),
        var=pd.DataFrame({"gene_symbol": list("ABCDE")}, index=plain.index),
    )
    if layer:
        adata.layers[layer] = raw
    adata.write_h5ad(tmp_path / "cohort.h5ad")
    data = read_counts(tmp_path / "cohort.h5ad", layer=layer)
    assert data.format == "h5ad"
    assert data.gene_symbols.tolist() == list("ABCDE")
    pd.testing.assert_frame_equal(checked(data), plain, check_names=False)


def test_ingest_matches_per_sample_files_to_a_csv_sheet_in_any_order(plain, tmp_path):
    sheet = pd.read_csv(FORMATS / "samples.csv")  # S4, S2, S1, S3
    sheet["counts_file"] = [per_sample_files("htseq")[s] for s in sheet["sample_id"]]
    sheet.to_csv(tmp_path / "samples.csv", index=False)
    adata = ingest("", str(tmp_path / "samples.csv"), str(ANNOTATION), "~ group", CONTRAST)
    assert adata.obs_names.tolist() == ["S4", "S2", "S1", "S3"]
    assert adata.uns["ingest"]["counts_format"] == "htseq"
    np.testing.assert_array_equal(adata.X, plain[["S4", "S2", "S1", "S3"]].T.to_numpy())
    assert adata.var["gene_symbol"].tolist() == ["TSPAN6", "DPM1", "SCYL3", "C1orf112", "FGR"]
    # every input file with its md5, for the report's run summary
    files = [*sheet["counts_file"], str(tmp_path / "samples.csv"), str(ANNOTATION)]
    assert list(adata.uns["ingest"]["input_files"]) == files
    assert list(adata.uns["ingest"]["input_md5"]) == [
        hashlib.md5(Path(f).read_bytes()).hexdigest() for f in files
    ]


def test_workflow_ingests_star_files_named_in_the_sample_sheet(plain, tmp_path):
    """End to end: per-sample STAR files via counts_file, strandedness from the config."""
    workdir = copy_workflow(tmp_path / "wf")
    sheet = pd.read_csv(FORMATS / "samples.csv")
    sheet["counts_file"] = [per_sample_files("star")[s] for s in sheet["sample_id"]]
    sheet.to_csv(workdir / "config" / "samples.csv", index=False)
    run_snakemake(
        workdir,
        "results/ingest/cohort.h5ad",
        *small_cohort_config(workdir),
        "--config",
        "samples=config/samples.csv",
        "counts=",
        "strandedness=reverse",
        "design=~ group",
    )
    adata = ad.read_h5ad(workdir / "results" / "ingest" / "cohort.h5ad")
    np.testing.assert_array_equal(adata[SAMPLES].X, plain.T.to_numpy())
    log = (workdir / "logs" / "ingest" / "ingest.log").read_text()
    assert "counts format detected from" in log and "STAR column used: 'reverse'" in log


PLAIN_MATRIX = "gene_id\tgene_name\tS1\tS2\nG1\tA\t5\t0\n007\tB\t12\t3\n"


@pytest.mark.parametrize(
    "text",
    [
        PLAIN_MATRIX.replace("\t0\n", "\t-1\n"),  # negative
        PLAIN_MATRIX.replace("\t0\n", "\t0.5\n"),  # fractional
        PLAIN_MATRIX.replace("\t0\n", "\tNA\n"),  # missing
        PLAIN_MATRIX.replace("\t0\n", "\t\n"),  # empty cell
        PLAIN_MATRIX.replace("\t0\n", "\n"),  # short row
        PLAIN_MATRIX.replace("\t0\n", "\t0\t9\n"),  # long row
        PLAIN_MATRIX.replace("S2", "S1"),  # duplicated sample
        PLAIN_MATRIX.replace("\t0\n", "\t1e400\n"),  # beyond int64
        PLAIN_MATRIX.split("\n")[0] + "\n",  # header only
    ],
)
def test_only_a_plainly_valid_matrix_takes_the_fast_reader(tmp_path, text):
    path = tmp_path / "counts.tsv"
    path.write_text(text)
    assert read_whole_number_matrix(path) is None  # read_delimited's checks then name the problem


def test_fast_and_careful_readers_give_the_same_matrix(tmp_path):
    path = tmp_path / "counts.tsv"
    path.write_text(PLAIN_MATRIX)
    fast = read_whole_number_matrix(path)
    assert fast["gene_id"].tolist() == ["G1", "007"]  # IDs stay text, leading zeros included
    careful = read_delimited(path, "count matrix")
    pd.testing.assert_frame_equal(fast.astype(str), careful, check_dtype=False)
    data = read_count_matrix(path)
    assert data.counts.to_dict("list") == {"S1": [5, 12], "S2": [0, 3]}
    assert data.gene_symbols.tolist() == ["A", "B"]
