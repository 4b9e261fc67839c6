"""Bad inputs of issue 5 not covered by test_input_checks.py: one exact message each.

Most are tested at function level; a handful run the ingest rule end to end on a small
cohort (exit status, the message in Snakemake's output, nothing under results/ingest/).
"""

import gzip
import shutil
import unicodedata
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_workflow, run_snakemake
from trdpipe.checks.config import config_problems, read_command_line_text
from trdpipe.checks.inputs import check_counts, match_samples
from trdpipe.common import InputError
from trdpipe.ingest import load_counts
from trdpipe.io.annotation import load_annotation
from trdpipe.io.counts import read_counts, read_per_sample_counts
from trdpipe.io.genesets import read_gmt
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.model.filtering import filter_cohort

FORMATS = Path(__file__).parent / "data" / "formats"
ANNOTATION = Path(__file__).parents[1] / "resources" / "annotation" / "genes.tsv.gz"
CONTRAST = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}


def message(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        call(*args, **kwargs)
    return str(err.value)


def star_files(tmp_path: Path, n: int = 2) -> dict[str, str]:
    files = {}
    for i in range(1, n + 1):
        files[f"S{i}"] = str(tmp_path / f"S{i}.tab")
        shutil.copy(FORMATS / f"star/S{i}.ReadsPerGene.out.tab", files[f"S{i}"])
    return files


# --- counts -------------------------------------------------------------------------------------


def test_duplicated_sample_columns_in_counts():
    counts = pd.DataFrame([[1, 2, 3]], index=["g1"], columns=["S1", "S2", "S1"])
    assert (
        message(check_counts, counts, "c.tsv") == "c.tsv: duplicated sample IDs: S1; each must appear once."
    )


def test_unicode_sample_ids_are_matched(tmp_path):
    """'Zoë' typed on macOS (NFD) in the matrix header and on Linux (NFC) in the sheet is one sample."""
    nfd = unicodedata.normalize("NFD", "Zoë-1")
    (tmp_path / "c.tsv").write_text(f"gene_id\t{nfd}\tÅsa 2\ng1\t1\t2\n", encoding="utf-8")
    (tmp_path / "s.tsv").write_text("sample_id\tgroup\nÅsa 2\tTRD\nZoë-1\tresponder\n", encoding="utf-8")
    counts = read_counts(tmp_path / "c.tsv").counts
    matched = match_samples(counts, read_sample_sheet(tmp_path / "s.tsv"), "c.tsv", "s.tsv")
    assert matched.columns.tolist() == ["Åsa 2", "Zoë-1"]
    assert matched.iloc[0].tolist() == [2, 1]


# --- per-sample files and formats ----------------------------------------------------------------


def test_counts_file_that_does_not_exist_names_the_sample(tmp_path):
    sheet = pd.DataFrame(
        {"counts_file": [str(FORMATS / "htseq/S1.counts.txt"), "runs/S2.counts.txt"]},
        index=pd.Index(["S1", "S2"], name="sample_id"),
    )
    assert message(load_counts, "", sheet, "s.tsv") == (
        "s.tsv: column 'counts_file' names 1 file(s) that do not exist: S2 (runs/S2.counts.txt)."
    )


def test_counts_file_empty_for_a_sample():
    sheet = pd.DataFrame({"counts_file": ["a.txt", pd.NA]}, index=pd.Index(["S1", "S2"], name="sample_id"))
    assert message(load_counts, "", sheet, "s.tsv") == (
        "s.tsv: column 'counts_file' is empty for sample(s) S2; every sample needs its count file."
    )


def test_counts_given_twice_or_not_at_all():
    with_files = pd.DataFrame({"counts_file": [str(FORMATS / "htseq/S1.counts.txt")]}, index=["S1"])
    assert message(load_counts, "m.tsv", with_files, "s.tsv") == (
        "counts are given twice: config counts is m.tsv and the sample sheet s.tsv has a counts_file "
        "column; set counts to '' to use the per-sample files."
    )
    assert message(load_counts, "", pd.DataFrame(index=["S1"]), "s.tsv") == (
        "no counts: config counts is empty and the sample sheet s.tsv has no counts_file column; "
        "give one of them."
    )


def test_single_sample_file_given_as_the_counts():
    path = FORMATS / "star/S1.ReadsPerGene.out.tab"
    assert message(read_counts, path) == (
        f"{path}: is a star file of a single sample; list one such file per sample in a 'counts_file' "
        "column of the sample sheet and leave config counts empty."
    )


def test_star_file_with_a_wrong_layout(tmp_path):
    files = star_files(tmp_path)
    Path(files["S2"]).write_text("N_unmapped\t1\t1\ng1\t2\t3\n")
    assert message(read_per_sample_counts, files, "star") == (
        f"{files['S2']}: is not a STAR ReadsPerGene.out.tab file; expected 4 tab-separated columns "
        "starting with the rows N_unmapped, N_multimapping, N_noFeature, N_ambiguous."
    )


def test_per_sample_files_with_different_genes(tmp_path):
    files = star_files(tmp_path)
    lines = Path(files["S2"]).read_text().splitlines()
    Path(files["S2"]).write_text("\n".join(lines[:-1] + ["ENSG99999999999\t1\t1\t1"]) + "\n")
    assert message(read_per_sample_counts, files, "star") == (
        f"{files['S2']}: the genes differ from those of {files['S1']}: 1 missing (ENSG00000000938), "
        "1 extra (ENSG99999999999); all samples must be counted against one annotation."
    )


def test_per_sample_files_of_mixed_formats(tmp_path):
    files = star_files(tmp_path)
    files["S2"] = str(FORMATS / "htseq/S2.counts.txt")
    assert message(read_per_sample_counts, files) == (
        f"counts files are not all star files: {files['S2']} (htseq)."
    )


def test_transcript_files_without_tx2gene():
    files = {s: str(FORMATS / f"salmon/{s}/quant.sf") for s in ("S1", "S2")}
    assert message(read_per_sample_counts, files) == (
        "config tx2gene is empty: salmon files are transcript-level and need a transcript-to-gene "
        "table (columns transcript_id, gene_id) to be summarised to genes."
    )


def test_featurecounts_with_wrong_annotation_columns(tmp_path):
    path = tmp_path / "fc.txt"
    path.write_text("# Program:featureCounts v2\nGeneid\tChr\tStart\tS1.bam\ng1\t1\t5\t3\n")
    assert message(read_counts, path) == (
        f"{path}: the featureCounts table's columns are Geneid, Chr, Start, S1.bam; expected Geneid, "
        "Chr, Start, End, Strand, Length."
    )


def test_h5ad_without_the_configured_layer(tmp_path):
    ad.AnnData(np.ones((2, 3))).write_h5ad(tmp_path / "x.h5ad")
    assert message(read_counts, tmp_path / "x.h5ad", layer="raw") == (
        f"{tmp_path / 'x.h5ad'}: has no layer 'raw' (config counts_layer); its layers are none, "
        "or leave counts_layer empty for X."
    )


def test_damaged_h5ad(tmp_path):
    path = tmp_path / "x.h5ad"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    assert message(read_counts, path).startswith(f"{path}: cannot be read as an AnnData .h5ad file (")


# --- gene sets, annotation, QC exclusions --------------------------------------------------------


def test_unreadable_gmt(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    assert message(read_gmt, path).startswith(f"{path}: cannot read the GMT file at start of file (")
    assert message(read_gmt, path).endswith("expected a tab-separated text file, plain or gzipped.")


def test_gmt_line_that_is_not_a_gene_set(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_text("SET_A\tdesc\tTP53\nSET_B only-a-name\n")
    assert message(read_gmt, path) == (
        f"{path}: line 2 is not a gene set; expected "
        "'name<TAB>description<TAB>gene<TAB>gene...' with at least one gene."
    )


def test_unreadable_annotation(tmp_path):
    path = tmp_path / "genes.tsv.gz"
    path.write_bytes(gzip.compress(b"gene_id\tgene_symbol\n" * 100)[:30])
    text = message(load_annotation, path)
    assert text.startswith(f"{path}: cannot read the gene annotation (")
    assert text.endswith(
        "expected a tab-separated table with columns gene_id, entrez_id, gene_symbol, "
        "description, chromosome, gene_type."
    )


def test_group_below_two_samples_after_qc_exclusion():
    obs = pd.DataFrame(
        {"group": ["TRD", "TRD", "responder", "responder", "responder"]}, index=[f"S{i}" for i in range(5)]
    )
    adata = ad.AnnData(np.full((5, 3), 10, dtype=np.int64), obs=obs)
    metrics = pd.DataFrame({"excluded": [True, False, False, False, False]}, index=obs.index)
    assert message(filter_cohort, adata, metrics, {}, CONTRAST, "~ group", "qc_metrics.tsv") == (
        "qc_metrics.tsv after QC exclusion: contrast 'c' has 1 sample(s) with group = 'TRD'; at least "
        "2 are needed."
    )


# --- end to end ----------------------------------------------------------------------------------


def small_cohort(workdir: Path, sample_ids: list[str]) -> None:
    """5 genes x len(sample_ids) samples (alternating groups) as config/counts.tsv + config/samples.tsv."""
    genes = pd.read_csv(FORMATS / "counts.tsv", sep="\t")["gene_id"]
    rng = np.random.default_rng(7)
    counts = pd.DataFrame(rng.poisson(50, (len(genes), len(sample_ids))), index=genes, columns=sample_ids)
    counts.to_csv(workdir / "config" / "counts.tsv", sep="\t")
    groups = ["TRD", "responder"] * (len(sample_ids) // 2)
    pd.DataFrame({"sample_id": sample_ids, "group": groups}).to_csv(
        workdir / "config" / "samples.tsv", sep="\t", index=False
    )


SMALL = ("--config", "counts=config/counts.tsv", "design=~ group")


@pytest.fixture
def small_workflow(tmp_path) -> Path:
    workdir = copy_workflow(tmp_path / "wf")
    small_cohort(workdir, [f"P{i}" for i in range(6)])
    return workdir


def assert_fails_in_ingest(workdir: Path, expected: str, *config: str) -> None:
    result = run_snakemake(workdir, "results/ingest/cohort.h5ad", *SMALL, *config, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert expected in (workdir / "logs" / "ingest" / "ingest.log").read_text()
    assert not (workdir / "results" / "ingest").exists() or not any(
        (workdir / "results" / "ingest").iterdir()
    )


def test_workflow_stops_on_a_sample_missing_from_the_counts(small_workflow):
    sheet = small_workflow / "config" / "samples.tsv"
    sheet.write_text(sheet.read_text() + "P9\tTRD\n")
    assert_fails_in_ingest(
        small_workflow,
        "1 sample(s) of the sample sheet config/samples.tsv are not in the counts config/counts.tsv: P9.",
    )


def test_workflow_stops_on_a_truncated_gzip(small_workflow):
    data = (small_workflow / "config" / "counts.tsv").read_bytes()
    (small_workflow / "config" / "counts.tsv.gz").write_bytes(gzip.compress(data)[:60])
    assert_fails_in_ingest(
        small_workflow,
        "config/counts.tsv.gz: the gzip file is truncated or corrupt.",
        "counts=config/counts.tsv.gz",
    )


def test_workflow_stops_on_an_empty_library(small_workflow):
    """A failed library used to reach QC, whose VST then ground for minutes in PyDESeq2's
    iterative size factors (no gene without a zero)."""
    path = small_workflow / "config" / "counts.tsv"
    counts = pd.read_csv(path, sep="\t", index_col=0)
    counts["P3"] = 0
    counts.to_csv(path, sep="\t")
    assert_fails_in_ingest(
        small_workflow,
        "config/counts.tsv: sample(s) P3 have no counts (every gene is 0); "
        "remove the failed libraries from the sample sheet.",
    )


def test_workflow_stops_on_a_missing_counts_file(small_workflow):
    sheet = pd.read_csv(small_workflow / "config" / "samples.tsv", sep="\t")
    sheet["counts_file"] = [f"star/{s}.ReadsPerGene.out.tab" for s in sheet["sample_id"]]
    sheet.to_csv(small_workflow / "config" / "samples.tsv", sep="\t", index=False)
    assert_fails_in_ingest(
        small_workflow,
        "config/samples.tsv: column 'counts_file' names 6 file(s) that do "
        "not exist: P0 (star/P0.ReadsPerGene.out.tab)",
        "counts=",
    )


@pytest.mark.parametrize(
    "setting, expected",
    [
        (
            "fitler={min_count: 5}",
            "config key 'fitler' does not exist; valid keys: samples, counts, counts_format,",
        ),
        (
            "de={alpha: 0.05, fit: mean}",
            "config key 'de.fit' does not exist; valid keys of 'de': engine, alpha, ",
        ),
        (
            "counts_format=tsv",
            "config key 'counts_format' is 'tsv'; valid choices: auto, matrix, featurecounts, "
            "star, htseq, salmon, kallisto, h5ad.",
        ),
        ("seed=abc", "config key 'seed' is 'abc' (str); expected integer."),
    ],
)
def test_config_errors_name_the_key_and_the_choices(small_workflow, setting, expected):
    result = run_snakemake(small_workflow, "--dry-run", "--config", setting, check=False)
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (small_workflow / "results").exists()


def test_numbers_and_booleans_nested_in_the_command_line_config_are_read():
    """Snakemake gives `--config de={alpha: 0.1}` as {'de': {'alpha': '0.1'}}."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config.update(
        {
            "de": {"alpha": "0.1"},
            "seed": "7",
            "predict": {"enabled": "false", "outer_folds": "3", "c_grid": ["0.5", "1"]},
            "enrichment": {"permutations": "many"},
        }
    )
    read_command_line_text(config, schema)
    assert config["de"] == {"alpha": 0.1}
    assert config["predict"] == {"enabled": False, "outer_folds": 3, "c_grid": [0.5, 1]}
    assert config["seed"] == 7
    assert config_problems(config, schema) == [
        "config key 'enrichment.permutations' is 'many' (str); expected integer."
    ]


def test_command_line_config_can_switch_the_prediction_off(small_workflow):
    result = run_snakemake(small_workflow, "--dry-run", *SMALL, "predict={enabled: false, outer_folds: 3}")
    jobs = result.stdout.split("Job stats:")[1].strip().split("\n\n")[0]
    assert "predict" not in jobs and "deseq2" in jobs


def test_multiqc_switch_nested_in_the_command_line_config_is_read():
    """`--config multiqc={enabled: false}` arrives as the text 'false': one of the key's choices."""
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["multiqc"] = {"enabled": "false"}
    read_command_line_text(config, schema)
    assert config["multiqc"] == {"enabled": False}
    config["multiqc"] = {"enabled": "sometimes"}
    read_command_line_text(config, schema)
    assert config_problems(config, schema) == [
        "config key 'multiqc.enabled' is 'sometimes'; valid choices: auto, True, False."
    ]
