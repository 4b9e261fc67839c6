"""Inputs of real cohorts that crashed later or passed silently, and messages that named the wrong
cause: each stops with the real cause, is read as meant, or gets a warning that says what to do."""

import logging
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from trdpipe.checks.inputs import check_design
from trdpipe.common import InputError
from trdpipe.ingest import entrez_rows_as_ensembl
from trdpipe.io.annotation import load_annotation
from trdpipe.io.counts import read_count_matrix, read_counts, read_per_sample_counts, read_transcript_table
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.model.sensitivity import check_model

FORMATS = Path(__file__).parent / "data" / "formats"
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ["S1", "S2", "S3", "S4"]
CONTRAST = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}
FEMALE_ONLY = {"keep": {"sex": ["female"]}, "remove": ["sex"]}


def message(function, *args, **kwargs) -> str:
    with pytest.raises(InputError) as error:
        function(*args, **kwargs)
    return str(error.value)


def sheet(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=[f"P{i}" for i in range(n)])


GROUPS = ["TRD", "responder"] * 4


# --- the STAR strand columns against config strandedness ----------------------------------------


def star_files() -> dict[str, str]:
    return {s: str(FORMATS / "star" / f"{s}.ReadsPerGene.out.tab") for s in SAMPLES}


@pytest.mark.parametrize("configured", ["unstranded", "forward"])
def test_a_strandedness_that_the_star_columns_contradict_stops(configured):
    """The fixtures are reverse-stranded (README there): the forward column holds ~10% of the stranded counts."""
    table = pd.read_csv(star_files()["S1"], sep="\t", header=None, index_col=0).iloc[4:]
    share = table[2].sum() / (table[2].sum() + table[3].sum())
    assert message(read_per_sample_counts, star_files(), "star", strandedness=configured) == (
        f"{star_files()['S1']}: the forward strand column holds {share:.0%} of the stranded counts, so the "
        f"library is reverse, but config strandedness is '{configured}' (4 of 4 samples alike); set "
        "strandedness to 'reverse'."
    )
    assert read_per_sample_counts(star_files(), "star", strandedness="reverse").counts.shape == (5, 4)


# --- the design as written ----------------------------------------------------------------------


def test_a_column_name_with_a_hyphen_says_to_write_it_in_backticks():
    batch = list("abababab")
    data = sheet(group=GROUPS, **{"RNA-batch": batch})
    assert message(check_design, data, "~ RNA-batch + group", CONTRAST, "s.tsv") == (
        "config 'design': 'RNA-batch' is not a plain column name and a formula would read it as an "
        "expression; write it in backticks: `RNA-batch`."
    )
    check_design(
        sheet(group=GROUPS, **{"RNA-batch": list("aabbaabb")}), "~ `RNA-batch` + group", CONTRAST, "s"
    )


def test_a_transform_in_the_design_is_named_as_such():
    data = sheet(group=GROUPS, age=[31.0, 45, 38, 52, 60, 29, 41, 47])
    assert message(check_design, data, "~ log(age) + group", CONTRAST, "s.tsv") == (
        "config 'design': the term 'log(age)' transforms a column; the design names sample-sheet columns "
        "as they are (continuous ones are centred and scaled): put the transformed values in a column of "
        "their own and name that column."
    )


def test_the_sex_models_keep_the_backticks_of_the_primary_design():
    data = sheet(group=GROUPS, sex=["female"] * 4 + ["male"] * 4, **{"blood draw": list("abbaabba")})
    design = check_model("female_only", FEMALE_ONLY, data, "~ `blood draw` + sex + group", CONTRAST, "s.tsv")
    assert design == "~ `blood draw` + group"


def test_sex_coded_f_m_is_named_as_the_reason_the_sex_models_cannot_run():
    data = sheet(group=GROUPS, sex=list("FMFMMFMF"))
    assert message(check_model, "female_only", FEMALE_ONLY, data, "~ sex + group", CONTRAST, "s.tsv") == (
        "s.tsv: sensitivity model 'female_only' keeps the samples whose 'sex' is female, but no sample is: "
        "the column's values are F, M; write the model's keep: with those values."
    )


def test_categories_coded_as_numbers_get_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="trd"):
        check_design(sheet(group=GROUPS, site=[1, 2, 3, 1, 2, 3, 1, 2]), "~ site + group", CONTRAST, "s.tsv")
    assert caplog.messages == [
        "s.tsv: column 'site' of the design holds only the whole numbers 1, 2, 3, so it is fitted as a "
        "continuous covariate (one slope); if they are categories (sites, batches), write them as text "
        "(e.g. 'site1') to make it categorical"
    ]


def test_an_extreme_value_of_a_continuous_covariate_gets_a_warning(caplog):
    ages = [31.0, 45, 38, 52, 60, 29, 999, 47]
    with caplog.at_level(logging.WARNING, logger="trd"):
        check_design(sheet(group=GROUPS, age=ages), "~ age + group", CONTRAST, "s.tsv")
    assert caplog.messages == [
        "s.tsv: column 'age' of the design has value(s) far from the others (median 46.0): 999.0 (sample "
        "P6); a typo or a missing-value code? Missing values are empty cells or NA"
    ]


# --- files of another kind than expected --------------------------------------------------------


def test_an_excel_workbook_is_named_as_one(tmp_path):
    path = tmp_path / "samples.xlsx"
    with zipfile.ZipFile(path, "w") as workbook:  # the parts every .xlsx starts with
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    assert message(read_sample_sheet, path) == (
        f"{path}: is an Excel workbook, not a text table; save it from Excel as 'CSV UTF-8' (or as "
        "tab-separated text)."
    )


def test_the_empty_rows_of_a_spreadsheet_export_are_ignored(tmp_path):
    path = tmp_path / "samples.csv"
    path.write_text("sample_id,group\nS1,TRD\nS2,responder\n,\n,\n , \n")
    assert read_sample_sheet(path)["group"].to_dict() == {"S1": "TRD", "S2": "responder"}


def test_htseq_summary_rows_of_a_merged_matrix_are_not_genes(tmp_path):
    plain = (FORMATS / "counts.tsv").read_text()
    path = tmp_path / "merged.tsv"
    path.write_text(plain + "__no_feature\t15\t13\t12\t14\n__ambiguous\t6\t4\t3\t5\n")
    data = read_count_matrix(path)
    assert data.counts.index.tolist() == pd.read_csv(FORMATS / "counts.tsv", sep="\t")["gene_id"].tolist()
    assert data.notes == ["summary rows of the counting tool removed: __no_feature, __ambiguous"]


@pytest.mark.parametrize("comment", ["", "# written by R\n"])
def test_r_write_table_header_one_field_short_gives_the_matrix(tmp_path, comment):
    """write.table(counts, sep='\\t', quote=FALSE): the header has no cell for the row names."""
    plain = pd.read_csv(FORMATS / "counts.tsv", sep="\t", index_col=0)
    path = tmp_path / "counts.txt"
    path.write_text(comment + "\t".join(plain.columns) + "\n" + plain.to_csv(sep="\t", header=False))
    counts = read_count_matrix(path).counts
    assert counts.index.tolist() == plain.index.tolist() and counts.columns.tolist() == SAMPLES
    assert counts.astype(int).to_numpy().tolist() == plain.to_numpy().tolist()


def test_a_featurecounts_summary_is_named_as_such(tmp_path):
    path = tmp_path / "counts.txt.summary"
    path.write_text("Status\tS1.bam\tS2.bam\nAssigned\t1000\t1100\nUnassigned_Unmapped\t10\t12\n")
    assert message(read_counts, path) == (
        f"{path}: is a featureCounts summary (reads per assignment status); give the table featureCounts "
        "wrote beside it, the same name without '.summary'."
    )


def test_an_rsem_genes_results_is_named_as_such(tmp_path):
    path = tmp_path / "S1.genes.results"
    path.write_text(
        "gene_id\ttranscript_id(s)\tlength\teffective_length\texpected_count\tTPM\tFPKM\n"
        "ENSG00000000003\tENST00000373020\t2280.00\t2100.50\t10.00\t6.53\t5.01\n"
    )
    assert message(read_counts, path) == (
        f"{path}: is RSEM's genes.results of a single sample; give a gene x sample matrix of its "
        "expected_count column (nf-core/rnaseq writes rsem.merged.gene_counts.tsv)."
    )


def test_rsem_files_given_per_sample_are_named_as_such(tmp_path):
    files = {}
    for sample in SAMPLES:
        files[sample] = str(tmp_path / f"{sample}.isoforms.results")
        Path(files[sample]).write_text(
            "transcript_id\tgene_id\tlength\teffective_length\texpected_count\tTPM\tFPKM\tIsoPct\n"
            "ENST00000373020\tENSG00000000003\t2280\t2100.50\t4.00\t6.53\t5.01\t40.00\n"
        )
    assert message(read_per_sample_counts, files) == (
        f"{files['S1']}: is RSEM's isoforms.results of a single sample; give a gene x sample matrix of the "
        "expected_count column of its genes.results (nf-core/rnaseq writes rsem.merged.gene_counts.tsv)."
    )


def write_kallisto_h5(abundance_tsv: Path, h5: Path) -> None:
    """An abundance.h5 in kallisto's layout (aux/ids, aux/lengths, aux/eff_lengths, est_counts; no
    tpm) holding what the abundance.tsv holds."""
    table = pd.read_csv(abundance_tsv, sep="\t")
    h5.parent.mkdir(parents=True)
    with h5py.File(h5, "w") as handle:
        handle["aux/ids"] = table["target_id"].to_numpy().astype("S")
        handle["aux/lengths"] = table["length"].to_numpy(dtype=np.int32)
        handle["aux/eff_lengths"] = table["eff_length"].to_numpy(dtype=float)
        handle["est_counts"] = table["est_counts"].to_numpy(dtype=float)


def test_kallisto_h5_files_give_the_gene_counts_of_their_abundance_tsv(tmp_path):
    """The tpm kallisto wrote in abundance.tsv (not in abundance.h5) is recomputed to 6 digits, so the
    two files of a sample give the same gene counts."""
    tsv_files = {sample: str(FORMATS / "kallisto" / sample / "abundance.tsv") for sample in SAMPLES}
    h5_files = {sample: str(tmp_path / sample / "abundance.h5") for sample in SAMPLES}
    for sample in SAMPLES:
        write_kallisto_h5(Path(tsv_files[sample]), Path(h5_files[sample]))
    table = read_transcript_table(h5_files["S1"], "kallisto")
    written = pd.read_csv(tsv_files["S1"], sep="\t")
    np.testing.assert_allclose(table["tpm"], written["tpm"], rtol=1e-5)
    tx2gene = str(FORMATS / "tx2gene.tsv")
    from_h5, from_tsv = (read_per_sample_counts(f, tx2gene=tx2gene) for f in (h5_files, tsv_files))
    assert from_h5.format == "kallisto"
    pd.testing.assert_frame_equal(from_h5.counts, from_tsv.counts, rtol=1e-5)


def test_an_h5_that_is_not_kallistos_is_named_by_the_dataset_it_lacks(tmp_path):
    path = tmp_path / "abundance.h5"
    with h5py.File(path, "w") as handle:
        handle["aux/ids"] = np.array([b"ENST00000373020.9"])
        handle["est_counts"] = np.array([4.0])
    assert message(read_transcript_table, str(path), "kallisto") == (
        f"{path}: kallisto abundance.h5 lacks the dataset(s) aux/lengths, aux/eff_lengths; expected "
        "aux/ids, aux/lengths, aux/eff_lengths, est_counts."
    )


ANNOTATION = ROOT / "resources" / "annotation" / "genes.tsv.gz"


def test_entrez_gene_ids_become_the_ensembl_ids_of_the_shipped_annotation(caplog):
    """7105 and 64102 are TSPAN6 and TNMD (ENSG00000000003, ENSG00000000005); 100132074 is linked to
    ENSG00000204060 and ENSG00000281518, and the smaller is kept; 999999999 is no gene and is dropped."""
    counts = pd.DataFrame(
        {"S1": [10, 20, 30, 40], "S2": [11, 21, 31, 41]}, index=["7105", "100132074", "999999999", "64102"]
    )
    symbols = pd.Series(["TSPAN6", "FOXD4L6", "NONE", "TNMD"])
    with caplog.at_level(logging.INFO, logger="trd"):
        converted, kept_symbols = entrez_rows_as_ensembl(
            counts, symbols, load_annotation(ANNOTATION), "c.tsv"
        )
    assert converted.index.tolist() == ["ENSG00000000003", "ENSG00000204060", "ENSG00000000005"]
    assert converted.to_numpy().tolist() == [[10, 11], [20, 21], [40, 41]]
    assert kept_symbols.tolist() == ["TSPAN6", "FOXD4L6", "TNMD"]
    assert [r.getMessage() for r in caplog.records] == [
        "gene IDs: entrez_ids = 4",
        "gene IDs: entrez_ids_mapped_to_ensembl = 3",
        "gene IDs: entrez_ids_on_several_ensembl_ids_resolved = 1",
        "gene IDs: entrez_ids_not_in_annotation_dropped = 1",
    ]


def test_numbers_the_annotation_does_not_know_as_entrez_ids_stop():
    counts = pd.DataFrame({"S1": [1, 2, 3]}, index=["999999991", "999999992", "999999993"])
    assert message(entrez_rows_as_ensembl, counts, None, load_annotation(ANNOTATION), "counts.tsv") == (
        "counts.tsv: the gene IDs are numbers (999999991, 999999992, 999999993, ...), taken as Entrez Gene "
        "IDs, but the gene annotation links none of them to an Ensembl gene; expected human Entrez Gene "
        "IDs, Ensembl gene IDs or gene symbols."
    )
