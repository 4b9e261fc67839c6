import gzip
import re

import numpy as np
import pandas as pd
import pytest

from trdpipe.checks.inputs import (
    check_counts,
    check_design,
    check_group_sizes,
    check_libraries,
    design_variables,
    match_samples,
    samples_for_prediction,
)
from trdpipe.common import InputError
from trdpipe.io.counts import read_count_matrix
from trdpipe.io.sample_sheet import read_sample_sheet


def sheet(n_per_group=4):
    n = 2 * n_per_group
    return pd.DataFrame(
        {
            "group": ["TRD", "responder"] * n_per_group,
            "site": ["A", "A", "B", "B"] * (n // 4),
            "age": np.arange(30, 30 + n, dtype=float),
        },
        index=pd.Index([f"S{i}" for i in range(n)], name="sample_id"),
    )


CONTRAST = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}


def test_design_variables_parses_terms():
    assert design_variables("~ site + sex + age + group") == ["site", "sex", "age", "group"]
    assert design_variables("~1") == []


def test_counts_become_int64():
    counts = pd.DataFrame({"S1": ["1", "2"], "S2": ["0", "5.0"]}, index=["g1", "g2"])
    checked = check_counts(counts, "c.tsv")
    assert checked.dtypes.unique().tolist() == [np.dtype("int64")]
    assert checked.loc["g2", "S2"] == 5


@pytest.mark.parametrize(
    "value, message",
    [
        ("-1", "c.tsv: the count of gene g2 in sample S2 ('-1') is negative; expected a count >= 0."),
        (
            "2.5",
            "c.tsv: the count of gene g2 in sample S2 ('2.5') is not a whole number; expected raw counts (not normalised values); estimated counts (nf-core's salmon.merged.gene_counts.tsv) are rounded with counts_format: salmon.",
        ),
        ("abc", "c.tsv: the count of gene g2 in sample S2 ('abc') is not a number."),
        (
            "inf",
            "c.tsv: the count of gene g2 in sample S2 ('inf') is infinite or too large; expected a count below 2^53.",
        ),
        (
            "1e400",
            "c.tsv: the count of gene g2 in sample S2 ('1e400') is infinite or too large; expected a count below 2^53.",
        ),
        (None, "c.tsv: the count of gene g2 in sample S2 (None) is missing; expected a count."),
    ],
)
def test_bad_count_is_named(value, message):
    counts = pd.DataFrame({"S1": ["1", "2"], "S2": ["0", value]}, index=["g1", "g2"])
    with pytest.raises(InputError) as err:
        check_counts(counts, "c.tsv")
    assert str(err.value) == message


@pytest.mark.parametrize("gene_id", ["", "   "])
def test_empty_gene_id_is_named(tmp_path, gene_id):
    path = tmp_path / "c.tsv"
    path.write_text(f"gene_id\tS1\ng1\t1\n{gene_id}\t2\ng3\t3\n")
    counts = read_count_matrix(path).counts
    with pytest.raises(InputError, match=r"^c.tsv: gene row 2 has an empty gene ID; every row needs one.$"):
        check_counts(counts, "c.tsv")


def test_empty_libraries_are_named():
    counts = pd.DataFrame({"S1": [1, 0], "S2": [0, 0], "S3": [0, 0]}, index=["g1", "g2"])
    with pytest.raises(InputError) as err:
        check_libraries(counts, "c.tsv")
    assert str(err.value) == (
        "c.tsv: sample(s) S2, S3 have no counts (every gene is 0); remove the "
        "failed libraries from the sample sheet."
    )
    check_libraries(counts[["S1"]], "c.tsv")


def test_duplicated_gene_ids():
    counts = pd.DataFrame({"S1": [1, 2, 3]}, index=["g1", "g2", "g1"])
    with pytest.raises(InputError, match=r"^c.tsv: duplicated gene IDs: g1; each must appear once.$"):
        check_counts(counts, "c.tsv")


def test_samples_matched_whatever_the_order():
    counts = pd.DataFrame(np.arange(16).reshape(2, 8), columns=[f"S{i}" for i in range(8)][::-1])
    matched = match_samples(counts, sheet(), "c.tsv", "s.tsv")
    assert list(matched.columns) == list(sheet().index)
    assert matched.loc[0, "S0"] == 7


def test_missing_and_extra_samples_listed_with_count():
    extra = [f"X{i}" for i in range(12)]
    counts = pd.DataFrame(0, index=["g"], columns=[f"S{i}" for i in range(7)] + extra)
    with pytest.raises(InputError) as err:
        match_samples(counts, sheet(), "c.tsv", "s.tsv")
    assert str(err.value) == (
        "1 sample(s) of the sample sheet s.tsv are not in the counts c.tsv: S7; "
        "12 sample(s) of the counts c.tsv are not in the sample sheet s.tsv: "
        "X0, X1, X2, X3, X4, X5, X6, X7, X8, X9, ... (and 2 more)."
    )


def test_design_variable_missing_from_sheet():
    with pytest.raises(
        InputError, match=r"design '~ sex \+ group' uses column\(s\) sex that the sample sheet does not have"
    ):
        check_design(sheet(), "~ sex + group", CONTRAST, "s.tsv")


def test_missing_value_in_design_variable():
    s = sheet()
    s.loc["S3", "age"] = np.nan
    with pytest.raises(
        InputError, match=r"^s.tsv: column 'age' of the design has no value for sample\(s\) S3"
    ):
        check_design(s, "~ age + group", CONTRAST, "s.tsv")


def test_contrast_level_absent():
    bad = {"c": {"variable": "group", "test": "TRD", "reference": "placebo"}}
    with pytest.raises(InputError) as err:
        check_design(sheet(), "~ group", bad, "s.tsv")
    assert str(err.value) == (
        "s.tsv: contrast 'c': reference level 'placebo' does not occur in column "
        "'group'; its levels are TRD, responder."
    )


def test_reference_equal_to_test():
    bad = {"c": {"variable": "group", "test": "TRD", "reference": "TRD"}}
    with pytest.raises(InputError, match="the test level and the reference level are both 'TRD'"):
        check_design(sheet(), "~ group", bad, "s.tsv")


def test_design_not_full_rank_names_columns():
    s = sheet()
    s["site"] = np.where(s["group"] == "TRD", "A", "B")  # site completely confounded with group
    with pytest.raises(InputError) as err:
        check_design(s, "~ site + group", CONTRAST, "s.tsv")
    assert "is not full rank (rank 2 < 3 columns): site[T.B], group[T.responder] can be written" in str(
        err.value
    )


def test_group_too_small():
    s = sheet().iloc[[0, 1, 3, 5]]  # one TRD sample left
    with pytest.raises(
        InputError,
        match=r"^after QC: contrast 'c' has 1 sample\(s\) with group = 'TRD'; at least 2 are needed.$",
    ):
        check_group_sizes(s, CONTRAST, "after QC")


PREDICT = {"enabled": True, "outer_folds": 5, "inner_folds": 4}


def test_groups_too_small_for_the_predictions_cross_validation():
    def sheet(n_per_group):
        return pd.DataFrame({"group": ["TRD", "responder"] * n_per_group})

    with pytest.raises(InputError) as err:
        check_group_sizes(sheet(4), CONTRAST, "s.tsv", predict=PREDICT)
    assert str(err.value) == (
        "s.tsv: contrast 'c' has 4 sample(s) with group = 'TRD'; at least 5 are needed for the TRD "
        "prediction's nested cross-validation (config predict.outer_folds 5, predict.inner_folds 4): "
        "lower those, or set predict.enabled to false to skip the prediction."
    )
    check_group_sizes(sheet(5), CONTRAST, "s.tsv", predict=PREDICT)
    check_group_sizes(sheet(4), CONTRAST, "s.tsv", predict={**PREDICT, "outer_folds": 2, "inner_folds": 2})
    check_group_sizes(sheet(2), CONTRAST, "s.tsv", predict={**PREDICT, "enabled": False})


@pytest.mark.parametrize("outer, inner", [(5, 4), (2, 2), (3, 4), (10, 5), (4, 2)])
def test_samples_for_prediction_is_what_nested_stratified_folds_need(outer, inner):
    """Independently: scikit-learn's own folds split n per level cleanly, and n - 1 not."""
    import warnings

    from sklearn.model_selection import StratifiedKFold

    def nested_split_is_clean(n: int) -> bool:
        labels = np.repeat([0, 1], n)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "least populated class has only ... members"
            try:
                for train, _ in StratifiedKFold(outer).split(labels, labels):
                    list(StratifiedKFold(inner).split(labels[train], labels[train]))
            except (ValueError, UserWarning):
                return False
        return True

    n = samples_for_prediction({"outer_folds": outer, "inner_folds": inner})
    assert nested_split_is_clean(n) and not nested_split_is_clean(n - 1)


def test_sample_sheet_csv_and_numeric_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("sample_id,group,age\n001,TRD,40\n002,responder,51\n")
    table = read_sample_sheet(path)
    assert list(table.index) == ["001", "002"]  # IDs that look like numbers stay text
    assert table["age"].tolist() == [40, 51]


def test_sheet_values_are_stripped(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sample_id\tgroup\tsite\nS1\tTRD \t A\nS2\t responder\t  \n")
    table = read_sample_sheet(path)
    assert table["group"].tolist() == ["TRD", "responder"]
    assert table["site"].iloc[0] == "A" and pd.isna(table["site"].iloc[1])


@pytest.mark.parametrize("marker", ["", "NA", "N/A", "NaN", "nan"])
def test_missing_value_markers_in_sheet_are_missing(tmp_path, marker):
    path = tmp_path / "s.tsv"
    path.write_text(f"sample_id\tgroup\tage\nS1\tTRD\t{marker}\nS2\tresponder\t51\n")
    table = read_sample_sheet(path)
    assert table["age"].isna().tolist() == [True, False]
    assert table["age"].dtype == float  # the other values stay numbers
    with pytest.raises(
        InputError,
        match=r"^s.tsv: column 'age' of the design has no value for "
        r"sample\(s\) S1; every sample needs one.$",
    ):
        check_design(table, "~ age + group", {}, "s.tsv")


def test_design_column_mixing_numbers_and_text(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sample_id\tgroup\tage\tnote\nS1\tTRD\t4O\tx\nS2\tresponder\t51\t2\nS3\tTRD\t60\t3\n")
    table = read_sample_sheet(path)
    with pytest.raises(InputError) as err:
        check_design(table, "~ age + group", {}, "s.tsv")
    assert str(err.value) == (
        "s.tsv: column 'age' of the design has numbers but also 4O (sample(s) S1); use numbers "
        "throughout for a continuous covariate, or text throughout (e.g. 'batch1') for a factor."
    )
    check_design(table.drop(columns="age"), "~ group", {}, "s.tsv")  # 'note' is not in the design


@pytest.mark.parametrize("column, value", [("site", "A"), ("age", 40.0)])
def test_design_column_with_one_value(column, value):
    s = sheet().assign(**{column: value})
    with pytest.raises(InputError) as err:
        check_design(s, "~ site + age + group", CONTRAST, "s.tsv")
    assert str(err.value) == (
        f"s.tsv: column '{column}' of the design has the same value ({value}) "
        "for every sample, so it explains nothing; remove it from the design."
    )


@pytest.mark.parametrize("design", ["~ site + group + ", "~ site + (group"])
def test_design_that_is_not_a_formula(design):
    with pytest.raises(InputError) as err:
        check_design(sheet(), design, CONTRAST, "s.tsv")
    # the reason in brackets is formulaic's own first line (its wording is formulaic's)
    assert re.fullmatch(
        rf"config 'design': '{re.escape(design)}' is not a valid formula \([^\n]+\)\.", str(err.value)
    )


def test_contrast_of_a_continuous_column():
    contrast = {"c": {"variable": "age", "test": "30.0", "reference": "31.0"}}
    with pytest.raises(InputError) as err:
        check_design(sheet(), "~ site + age + group", contrast, "s.tsv")
    assert str(err.value) == (
        "s.tsv: contrast 'c': column 'age' holds numbers, so the model treats it as continuous and "
        "it has no levels to compare; write its values as text (e.g. 'TRD', 'responder') to make "
        "it categorical."
    )


def test_duplicated_sample_ids_in_sheet(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sample_id\tgroup\nA\tTRD\nA\tresponder\n")
    with pytest.raises(InputError, match=r"s.tsv: duplicated sample IDs: A; each must appear once.$"):
        read_sample_sheet(path)


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "the count matrix is empty."),
        (b"gene_id\tS1\tS2\n", "the count matrix has a header but no rows."),
        (
            b"gene_id;S1;S2\ng1;1;2\n",
            "the count matrix's header has a single column; expected columns separated by tabs (TSV) or commas (CSV).",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "is a binary file, not a text table."),
        (gzip.compress(b"gene_id\tS1\ng1\t1\n" * 50)[:40], "the gzip file is truncated or corrupt."),
        (
            b"gene_id\tS1\tS2\ng1\t1\n",
            "line 2 of the count matrix has 2 fields but the header has 3; is the delimiter consistent?",
        ),
    ],
)
def test_unreadable_count_files(tmp_path, payload, message):
    path = tmp_path / "counts.tsv"
    path.write_bytes(payload)
    with pytest.raises(InputError) as err:
        read_count_matrix(path)
    assert str(err.value) == f"{path}: {message}"


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope.tsv: cannot be read \(No such file or directory\)"):
        read_count_matrix(tmp_path / "nope.tsv")


def test_symbol_column_is_split_off(tmp_path):
    path = tmp_path / "c.tsv.gz"
    path.write_bytes(gzip.compress(b"gene_id\tgene_name\tS1\nENSG1.2\tTP53\t4\n"))
    data = read_count_matrix(path)
    assert data.gene_symbols.tolist() == ["TP53"]
    assert data.counts.columns.tolist() == ["S1"]
