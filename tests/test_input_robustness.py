"""Inputs that used to get through silently, fail late or crash (issue 20): one exact message each.

Function-level tests give the message; the end-to-end tests show the rule it stops in (ingest,
the first, or the config check before any rule), the message in that rule's log, and that
nothing is left under results/.
"""

import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import copy_workflow, default_config_and, run_snakemake
from test_bad_inputs import SMALL, small_cohort
from trdpipe.checks.inputs import (
    check_counts,
    check_design,
    check_prediction_covariates,
    level_key,
    match_samples,
)
from trdpipe.common import InputError
from trdpipe.io.counts import read_counts
from trdpipe.io.genesets import check_collections
from trdpipe.io.sample_sheet import read_sample_sheet

CONTRAST = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}


def message(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        call(*args, **kwargs)
    return str(err.value)


def sheet(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame(columns, index=pd.Index([f"P{i}" for i in range(n)], name="sample_id"))


GROUPS = ["TRD", "responder"] * 3


# --- design columns -------------------------------------------------------------------------------


def test_a_level_that_differs_only_by_case_stops():
    levels = ["TRD", "responder", "trd", "TRD", "responder", "responder"]
    assert message(check_design, sheet(group=levels), "~ group", CONTRAST, "s.tsv") == (
        "s.tsv: column 'group' of the design has levels that differ only in case or in invisible "
        "characters: 'TRD' (sample(s) P0, P3) and 'trd' (sample(s) P2); write each level the same way "
        "in every row."
    )


def test_a_level_with_an_invisible_character_stops():
    levels = ["TRD", "responder", "TRD\u200b", "TRD", "responder", "responder"]
    assert message(check_design, sheet(group=levels), "~ group", CONTRAST, "s.tsv") == (
        "s.tsv: column 'group' of the design has levels that differ only in case or in invisible "
        "characters: 'TRD' (sample(s) P0, P3) and 'TRD\\u200b' (sample(s) P2); write each level the "
        "same way in every row."
    )


def test_levels_are_compared_after_unicode_normalisation_and_case_folding():
    assert level_key("Ko\u0308ln\u00ad") == level_key("KÖLN") == "köln"
    assert level_key("siteA") != level_key("siteB")


def test_a_covariate_written_with_its_unit_stops():
    ages = ["45 years", "52 years", "38 years", "61 years", "45 years", "29 years"]
    assert message(check_design, sheet(group=GROUPS, age=ages), "~ age + group", CONTRAST, "s.tsv") == (
        "s.tsv: column 'age' of the design holds a number and the text 'years' in every cell (45 years, "
        "52 years, 38 years, ...), which would make it a factor of 5 levels; write the numbers alone (the "
        "unit can go in the column name, e.g. 'age_years'), or text throughout for a factor."
    )


def test_a_factor_with_many_levels_is_warned_about(caplog):
    batches = ["b1", "b2", "b3", "b1", "b2", "b3"]  # 3 levels > 6 / 3
    check_design(sheet(group=GROUPS, batch=batches), "~ batch + group", CONTRAST, "s.tsv")
    assert caplog.messages == [
        "s.tsv: column 'batch' of the design is categorical with 3 levels for 6 samples: a factor of "
        "that many levels costs a coefficient each; is it meant to be a number?"
    ]


@pytest.mark.parametrize("design", ["~ site + group + site:group", "~ site * group"])
def test_an_interaction_with_the_contrast_variable_stops(design):
    sites = ["a", "b", "b", "a", "a", "b"]
    assert message(check_design, sheet(group=GROUPS, site=sites), design, CONTRAST, "s.tsv") == (
        f"config 'design': '{design}' has the interaction site:group, so the coefficient that contrast "
        "'c' tests would be the group effect at the reference level of site only, not group overall. "
        "The pipeline fits main effects: remove the interaction term (with '*', write '+')."
    )


def test_an_interaction_of_two_covariates_is_allowed():
    check_design(
        sheet(group=GROUPS, site=["a", "b", "b", "a", "a", "b"], sex=["f", "f", "m", "m", "f", "m"]),
        "~ site + sex + site:sex + group",
        CONTRAST,
        "s.tsv",
    )


def test_a_backquoted_column_with_a_space_is_found():
    draws = ["am", "pm", "pm", "am", "am", "pm"]
    check_design(sheet(group=GROUPS, **{"blood draw": draws}), "~ `blood draw` + group", CONTRAST, "s.tsv")
    assert message(check_design, sheet(group=GROUPS), "~ `blood draw` + group", CONTRAST, "s.tsv") == (
        "s.tsv: design '~ `blood draw` + group' uses column(s) blood draw that the sample sheet does not "
        "have; its columns are group."
    )


def test_prediction_covariates_with_missing_values_stop():
    ages = [31.0, 45.0, np.nan, 52.0, 38.0, 60.0]
    predict = {"enabled": True, "covariates": ["sex", "age"]}  # sex: not in the sheet, skipped
    assert message(check_prediction_covariates, sheet(group=GROUPS, age=ages), predict, "s.tsv") == (
        "s.tsv: column 'age' of config predict.covariates has no value for sample(s) P2; the prediction "
        "needs one for every sample (fill them in, or remove 'age' from predict.covariates)."
    )


def test_numbers_in_messages_are_plain():
    counts = pd.DataFrame(np.array([[1, -2]], dtype=np.int64), index=["g1"], columns=["S1", "S2"])
    assert message(check_counts, counts, "c.tsv") == (
        "c.tsv: the count of gene g1 in sample S2 (-2) is negative; expected a count >= 0."
    )
    constant = sheet(group=GROUPS, age=np.full(6, 40.0))
    assert message(check_design, constant, "~ age + group", CONTRAST, "s.tsv") == (
        "s.tsv: column 'age' of the design has the same value (40.0) for every sample, so it explains "
        "nothing; remove it from the design."
    )


# --- sample sheets ------------------------------------------------------------------------------------


def test_a_sheet_with_two_columns_of_one_name_stops(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sample_id\tage\tgroup\tage\nP1\t3\tTRD\t4\nP2\t5\tresponder\t6\n")
    assert message(read_sample_sheet, path) == (
        f"{path}: the sample sheet has several columns of the same name ('age' is columns 2, 4); each "
        "column name must appear once."
    )


def test_a_first_column_that_is_not_the_sample_id_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("group\tid\tage\nTRD\tP1\t3\nresponder\tP2\t5\nTRD\tP3\t4\nresponder\tP4\t1\n")
    assert message(read_sample_sheet, path) == (
        f"{path}: there is no column 'sample_id', so the first column, 'group', is taken as the sample "
        "IDs, but it repeats TRD, responder; column(s) 'id' have a distinct value in every row: name the "
        "sample-ID column 'sample_id' or put it first."
    )


def test_a_utf16_sheet_is_called_utf16(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_bytes("sample_id\tgroup\nP1\tTRD\n".encode("utf-16"))
    assert message(read_sample_sheet, path) == (
        f"{path}: is UTF-16 text; save it as UTF-8 (Excel: 'CSV UTF-8'; or iconv -f UTF-16 -t UTF-8)."
    )
    path.write_bytes("sample_id\tgroup\nP1\tTRD\n".encode("utf-16-le"))  # no byte-order mark
    assert message(read_sample_sheet, path).startswith(f"{path}: is UTF-16 text;")


def test_a_latin1_sheet_gets_the_line_and_column(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_bytes("sample_id\tgroup\nP1\tTRD\nZoë\tresponder\n".encode("latin-1"))
    assert message(read_sample_sheet, path) == (
        f"{path}: is not UTF-8 text: line 3, column 3 has the byte 0xeb ('ë' in Latin-1); save the file "
        "as UTF-8."
    )


# --- count matrices -----------------------------------------------------------------------------------


def counts_of(path: Path, text: str) -> pd.DataFrame:
    path.write_text(text)
    data = read_counts(path)
    return data.counts.astype(int)


EXPECTED = pd.DataFrame({"S1": [1, 3], "S2": [2, 4]}, index=pd.Index(["g1", "g2"], name="gene_id"))


@pytest.mark.parametrize(
    "name, text",
    [
        ("r_write_csv.csv", '"","S1","S2"\n"g1",1,2\n"g2",3,4\n'),  # R's write.csv, pandas' to_csv
        ("trailing_tabs.tsv", "gene_id\tS1\tS2\t\ng1\t1\t2\t\ng2\t3\t4\t\n"),
        ("comment.tsv", "# generated by a quantifier\ngene_id\tS1\tS2\ng1\t1\t2\ng2\t3\t4\n"),
    ],
)
def test_common_matrix_layouts_are_read(tmp_path, name, text):
    pd.testing.assert_frame_equal(counts_of(tmp_path / name, text), EXPECTED)


def test_a_matrix_with_a_bad_cell_and_an_empty_first_header_names_the_cell(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(",S1,S2\ng1,1,x\ng2,3,4\n")
    assert message(check_counts, read_counts(path).counts, "c.csv") == (
        "c.csv: the count of gene g1 in sample S2 ('x') is not a number."
    )


def test_a_gene_name_column_placed_first_is_the_symbols(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("gene_name\tgene_id\tS1\tS2\nTP53\tg1\t1\t2\nACTB\tg2\t3\t4\n")
    data = read_counts(path)
    pd.testing.assert_frame_equal(data.counts.astype(int), EXPECTED)
    assert data.gene_symbols.tolist() == ["TP53", "ACTB"]


def test_a_column_of_gene_ids_under_another_name_is_not_taken_for_a_sample(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("gene_name\tensembl\tS1\tS2\nTP53\tENSG00000141510\t1\t2\nACTB\tENSG00000075624\t3\t4\n")
    assert message(check_counts, read_counts(path).counts, "c.tsv") == (
        "c.tsv: column(s) ensembl hold no number, so they are not a sample's counts; a column of gene IDs "
        "must be the first or be named gene_id, one of gene symbols be named gene_name, gene_symbol or symbol."
    )


def test_a_transposed_matrix_is_called_transposed():
    counts = pd.DataFrame(
        np.ones((3, 20), dtype=int), index=["P1", "P2", "P3"], columns=[f"ENSG{i:011d}" for i in range(20)]
    )
    samples = pd.DataFrame({"group": ["a", "b", "a"]}, index=["P1", "P2", "P3"])
    assert message(match_samples, counts, samples, "c.tsv", "s.tsv") == (
        "c.tsv: the matrix looks transposed: 3 of the 3 samples of the sample sheet s.tsv that are not "
        "among its columns are row names (P1, P2, P3); expected one row per gene and one column per sample."
    )


# --- gene sets ----------------------------------------------------------------------------------------


def test_every_configured_gmt_is_checked(tmp_path):
    good, bad, empty = tmp_path / "good.gmt", tmp_path / "bad.gmt", tmp_path / "empty.gmt"
    good.write_text("SET_A\tdesc\tTP53\tACTB\n")
    bad.write_text("SET_A\tdesc\n")
    empty.write_text("\n")
    check_collections({"A": str(good)})
    assert message(check_collections, {"A": str(good), "B": str(bad)}) == (
        f"config enrichment.collections 'B': {bad}: line 1 is not a gene set; expected "
        "'name<TAB>description<TAB>gene<TAB>gene...' with at least one gene."
    )
    assert message(check_collections, {"C": str(empty)}) == (
        f"config enrichment.collections 'C': {empty}: GMT file has no gene sets."
    )


# --- end to end: the rule it stops in, the log, nothing left behind ------------------------------------


@pytest.fixture
def small_workflow(tmp_path) -> Path:
    workdir = copy_workflow(tmp_path / "wf")
    small_cohort(workdir, [f"P{i}" for i in range(6)])
    return workdir


def assert_stops_in_ingest(workdir: Path, expected: str, *config: str) -> None:
    """The run fails in ingest (the first rule, before any model) with the message in its log, and
    results/ holds nothing."""
    result = run_snakemake(workdir, *SMALL, *config, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Error in rule ingest:" in output
    assert expected in (workdir / "logs" / "ingest" / "ingest.log").read_text()
    assert expected in output
    assert [p for p in (workdir / "results").rglob("*") if p.is_file()] == []


def edit_sheet(workdir: Path, **columns) -> None:
    path = workdir / "config" / "samples.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str)
    for name, values in columns.items():
        table[name] = values
    table.to_csv(path, sep="\t", index=False)


def test_workflow_stops_in_ingest_on_a_case_variant_level(small_workflow):
    edit_sheet(small_workflow, group=["TRD", "responder", "trd", "responder", "TRD", "responder"])
    assert_stops_in_ingest(
        small_workflow,
        "config/samples.tsv: column 'group' of the design has levels that "
        "differ only in case or in invisible characters: 'TRD' (sample(s) "
        "P0, P4) and 'trd' (sample(s) P2)",
    )


def test_workflow_stops_in_ingest_on_a_malformed_gmt(small_workflow):
    (small_workflow / "config" / "sets.gmt").write_text("SET_A only a name\n")
    config = small_workflow / "config" / "sets.yaml"
    config.write_text("enrichment:\n  collections:\n    mine: config/sets.gmt\n")
    assert_stops_in_ingest(
        small_workflow,
        "config enrichment.collections 'mine': config/sets.gmt: line 1 is not a gene set;",
        *default_config_and("config/sets.yaml"),
    )


def test_workflow_stops_in_ingest_on_missing_prediction_covariates(small_workflow):
    edit_sheet(small_workflow, age=["31", "", "45", "52", "38", "60"])
    assert_stops_in_ingest(
        small_workflow,
        "config/samples.tsv: column 'age' of config predict.covariates has no value for sample(s) P1;",
        # asked for: with `auto`, 3 samples a group are too few for the default folds and switch it off
        "predict={enabled: true, outer_folds: 3, inner_folds: 2}",
    )


def test_workflow_stops_in_ingest_on_two_columns_of_one_name(small_workflow):
    """This crashed while the workflow was being built (ValueError, no file named)."""
    path = small_workflow / "config" / "samples.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0] + "\tgroup"] + [line + "\tx" for line in lines[1:]]) + "\n")
    assert_stops_in_ingest(
        small_workflow,
        "config/samples.tsv: the sample sheet has several columns of the same name ('group' is columns 2, 3)",
    )


def test_unsafe_contrast_names_stop_before_any_rule(small_workflow):
    names = ["../../escape", "TRD_vs_resp(v2)"]
    config = small_workflow / "config" / "contrast.yaml"
    config.write_text(
        "contrasts:\n"
        + "".join(f"  '{name}': {{variable: group, test: TRD, reference: responder}}\n" for name in names)
    )
    result = run_snakemake(small_workflow, *SMALL, *default_config_and("config/contrast.yaml"), check=False)
    assert result.returncode != 0
    for name in names:
        assert (
            f"config key 'contrasts': the name '{name}' cannot be used, because names under 'contrasts' "
            "become parts of file paths; a name must match ^[A-Za-z0-9][A-Za-z0-9_.-]*$ (a letter or "
            "digit, then letters, digits, '_', '.' or '-')."
        ) in result.stdout + result.stderr
    assert not (small_workflow / "results").exists() and not (small_workflow / "logs").exists()
    assert not (small_workflow.parent / "escape").exists() and not (small_workflow / "escape").exists()


def test_nfd_and_nfc_spellings_of_a_level_are_one_level(tmp_path):
    """Unicode forms alone (macOS writes NFD) are not a clash: the sheet reader normalises to NFC."""
    path = tmp_path / "s.tsv"
    nfd = unicodedata.normalize("NFD", "Zoë")
    path.write_text(f"sample_id\tsite\nP1\tZoë\nP2\t{nfd}\nP3\tOslo\n", encoding="utf-8")
    assert read_sample_sheet(path)["site"].tolist() == ["Zoë", "Zoë", "Oslo"]
