"""Cell-type scores: the shipped marker resource, scoring, covariates, checks of bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT
from trdpipe.cells.scores import (
    cell_covariates,
    cell_scores,
    check_estimable,
    covariate_cap,
    expression_by_symbol,
    load_markers,
    marker_table,
    measured_counts,
    scores_by_group,
)
from trdpipe.common import InputError
from trdpipe.ingest import ingest
from trdpipe.resources.build import gmt_text
from trdpipe.resources.cell_markers import CELL_MARKERS, build_cell_markers

MARKERS = ROOT / "resources" / "cells" / "blood_cell_markers.gmt"
ANNOTATION = ROOT / "resources" / "annotation" / "genes.tsv.gz"
TOY = ROOT / "resources" / "toy"
DESIGN = "~ site + sex + age + group"
CONTRASTS = {"TRD_vs_responder": {"variable": "group", "test": "TRD", "reference": "responder"}}
CELLS = {
    "resource": str(MARKERS),
    "markers": [],
    "measured": [],
    "method": "mean_z",
    "min_markers": 3,
    "max_vif": 10,
    "pc_variance": 0.9,
}


def message(call, *args, **kwargs) -> str:
    with pytest.raises(InputError) as err:
        call(*args, **kwargs)
    return str(err.value)


def toy_ingest(tmp_path: Path, cells: dict, sheet: pd.DataFrame | None = None):
    samples = TOY / "samples.tsv"
    if sheet is not None:
        samples = tmp_path / "samples.tsv"
        sheet.to_csv(samples, sep="\t", index=False)
    return ingest(str(TOY / "counts.tsv.gz"), str(samples), str(ANNOTATION), DESIGN, CONTRASTS, cells=cells)


# ----------------------------------------------------------------------------- the resource
def test_shipped_markers_are_the_build_output():
    annotation = pd.read_csv(ANNOTATION, sep="\t", dtype=str)
    assert MARKERS.read_text(encoding="utf-8") == gmt_text(build_cell_markers(annotation))


def test_resource_covers_the_eleven_blood_cell_types_with_provenance():
    sets = load_markers(str(MARKERS))
    assert list(sets) == [
        "neutrophils",
        "eosinophils",
        "monocytes",
        "B_cells",
        "plasma_cells",
        "CD4_T",
        "CD8_T",
        "NK",
        "dendritic",
        "platelets",
        "erythroid",
    ]
    readme = (MARKERS.parent / "README.md").read_text(encoding="utf-8")
    for cell_type, (_, refs, genes) in CELL_MARKERS.items():
        assert f"`{cell_type}` | {len(genes)} |" in readme
        for ref in refs.split("; "):
            author, year = ref.rsplit(" ", 1)
            assert author.split()[0] in readme and year in readme
    assert "LM22" in readme and "non-commercial" in readme


def test_build_rejects_a_symbol_missing_from_the_annotation(monkeypatch):
    annotation = pd.DataFrame({"gene_symbol": ["CD14", "LYZ"]})
    assert message(build_cell_markers, annotation).startswith(
        "cell markers neutrophils: symbols not in the annotation: FCGR3B, CXCR2"
    )


# ----------------------------------------------------------------------------- scores
def synthetic_expression(n: int = 60, seed: int = 1):
    """Samples x genes log-expression where each type's markers follow log2 of its share, plus noise."""
    rng = np.random.default_rng(seed)
    types = {"A": ["a1", "a2", "a3", "a4"], "B": ["b1", "b2", "b3"], "C": ["c1", "c2", "c3", "c4", "c5"]}
    shares = pd.DataFrame(rng.dirichlet([6, 3, 1], n), columns=list(types), index=[f"S{i}" for i in range(n)])
    columns = {}
    for cell_type, genes in types.items():
        for gene in genes:
            columns[gene] = 8 + np.log2(shares[cell_type]) + rng.normal(0, 0.3, n) + rng.normal(0, 2)
    for i in range(400):  # background genes, from which score_genes draws its controls
        columns[f"x{i}"] = rng.normal(rng.uniform(4, 12), 0.5, n)
    markers = {t: ("", g) for t, g in types.items()}
    markers["D"] = ("", ["d1", "d2", "d3", "a1"])  # one marker of four in the data
    return pd.DataFrame(columns, index=shares.index), shares, markers


@pytest.mark.parametrize("method", ["mean_z", "first_pc", "mean_expression", "score_genes"])
def test_scores_follow_the_planted_shares(method):
    expr, shares, markers = synthetic_expression()
    table = marker_table(markers, expr.columns, 3)
    scores = cell_scores(expr, table, method, seed=0)
    for cell_type in "ABC":
        assert stats.spearmanr(scores[cell_type], shares[cell_type])[0] > 0.9
    assert scores["D"].isna().all()  # listed, not dropped


def test_mean_z_is_the_mean_of_the_markers_z_scores():
    expr, _, markers = synthetic_expression()
    scores = cell_scores(expr, marker_table(markers, expr.columns, 3), "mean_z", seed=0)
    genes = expr[["b1", "b2", "b3"]]
    expected = ((genes - genes.mean()) / genes.std(ddof=1)).mean(axis=1)
    np.testing.assert_allclose(scores["B"], expected)


def test_type_with_most_markers_absent_is_not_estimable():
    expr, _, markers = synthetic_expression()
    table = marker_table(markers, expr.columns, 3).set_index("cell_type")
    assert table.loc["D", "note"] == "not estimable: 1 of 4 markers in the data (needs 3 and at least half)"
    assert not table.loc["D", "estimable"] and table.loc["A", "estimable"]
    markers["E"] = ("", ["a2", "b2", "c2", "e1", "e2", "e3", "e4"])  # 3 present, but fewer than half
    assert not marker_table(markers, expr.columns, 3).set_index("cell_type").loc["E", "estimable"]


def test_duplicated_symbols_keep_the_most_expressed_gene():
    expr = expression_by_symbol(np.array([[1.0, 5.0, 2.0], [1.0, 7.0, 2.0]]), ["S1", "S2"], ["A", "A", ""])
    assert list(expr.columns) == ["A"] and list(expr["A"]) == [5.0, 7.0]


# ----------------------------------------------------------------------------- covariates
def test_collinear_shares_are_replaced_by_principal_components():
    _, shares, _ = synthetic_expression(n=80)
    covariates, choice = cell_covariates(shares, max_vif=10, pc_variance=0.9)
    assert choice["covariates"] == "principal components"
    assert choice["max_vif"] > 1e6 or np.isinf(choice["max_vif"])
    assert list(covariates.columns) == ["cell_PC1", "cell_PC2"][: choice["n_covariates"]]
    # the components span the shares: regressing a share on them explains it fully
    design = np.column_stack([np.ones(len(shares)), covariates.to_numpy()])
    fitted = design @ np.linalg.lstsq(design, shares["A"].to_numpy(), rcond=None)[0]
    assert np.corrcoef(fitted, shares["A"])[0, 1] > 0.99


def test_independent_scores_are_added_as_they_are():
    rng = np.random.default_rng(4)
    scores = pd.DataFrame(rng.normal(size=(50, 3)), columns=["NK", "B cells", "monocytes"])
    covariates, choice = cell_covariates(scores, max_vif=10, pc_variance=0.9)
    assert choice["covariates"] == "scores"
    assert list(covariates.columns) == ["cell_NK", "cell_B_cells", "cell_monocytes"]
    np.testing.assert_allclose(
        covariates["cell_NK"], (scores["NK"] - scores["NK"].mean()) / scores["NK"].std()
    )


def test_covariate_cap_is_one_per_ten_residual_degrees_of_freedom():
    assert covariate_cap(48, 6, "auto") == 4  # the toy: (48 - 6) // 10
    assert covariate_cap(300, 6, "auto") == 29
    assert covariate_cap(31, 3, "auto") == 2  # 31 samples, ~ sex + group
    assert covariate_cap(6, 2, "auto") == 1  # 3 vs 3: at least one
    assert covariate_cap(300, 6, 3) == 3  # a number overrides the rule


def test_scores_beyond_the_cap_become_their_leading_principal_components():
    rng = np.random.default_rng(9)
    scores = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("ABCDE"))
    scores["B"] += 2 * scores["A"]  # A and B share most of their variance: PC1 lies along them
    covariates, choice = cell_covariates(scores, max_vif=10, pc_variance=0.9, cap=2)
    assert list(covariates.columns) == ["cell_PC1", "cell_PC2"]
    assert (choice["covariates"], choice["n_covariates"], choice["max_covariates"]) == (
        "principal components",
        2,
        2,
    )
    z = (scores - scores.mean()) / scores.std()
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(z.to_numpy(), rowvar=False))
    leading = z.to_numpy() @ eigenvectors[:, ::-1][:, :2]
    for i in range(2):  # the same components as an eigen-decomposition of the scores' correlation
        assert abs(np.corrcoef(covariates.iloc[:, i], leading[:, i])[0, 1]) == pytest.approx(1)
    assert choice["variance_explained"] == pytest.approx(eigenvalues[::-1][:2].sum() / eigenvalues.sum())
    assert choice["reason"].endswith(
        f"but 5 scores: 2 principal components, capped at 2 (cells.max_covariates) explain "
        f"{choice['variance_explained']:.0%} of their variance"
    )
    # within the cap the scores stay as they are
    kept, within = cell_covariates(scores[["A", "C"]], max_vif=10, pc_variance=0.9, cap=2)
    assert within["covariates"] == "scores" and list(kept.columns) == ["cell_A", "cell_C"]


def test_collinear_shares_keep_at_most_the_cap_of_components():
    _, shares, _ = synthetic_expression(n=80)
    uncapped, _ = cell_covariates(shares, max_vif=10, pc_variance=0.999)
    covariates, choice = cell_covariates(shares, max_vif=10, pc_variance=0.999, cap=1)
    assert uncapped.shape[1] > 1 and list(covariates.columns) == ["cell_PC1"]
    np.testing.assert_allclose(covariates["cell_PC1"], uncapped["cell_PC1"])
    assert "capped at 1 (cells.max_covariates)" in choice["reason"]


def test_scores_by_group_equal_an_independent_computation():
    rng = np.random.default_rng(5)
    obs = pd.DataFrame({"group": ["TRD"] * 12 + ["responder"] * 9}, index=[f"S{i}" for i in range(21)])
    scores = pd.DataFrame({"NK": np.r_[rng.normal(-1, 1, 12), rng.normal(0, 1, 9)]}, index=obs.index)
    row = scores_by_group(scores, obs, CONTRASTS["TRD_vs_responder"]).iloc[0]
    trd, resp = scores["NK"][:12].to_numpy(), scores["NK"][12:].to_numpy()
    pooled = np.sqrt((11 * trd.var(ddof=1) + 8 * resp.var(ddof=1)) / 19)
    assert row["hedges_g"] == pytest.approx((trd.mean() - resp.mean()) / pooled * (1 - 3 / (4 * 21 - 9)))
    assert row["pvalue"] == pytest.approx(stats.ttest_ind(trd, resp, equal_var=False).pvalue)
    assert row["difference"] == pytest.approx(trd.mean() - resp.mean())


# ----------------------------------------------------------------------------- bad input
def test_measured_column_with_a_missing_value(tmp_path):
    sheet = pd.read_csv(TOY / "samples.tsv", sep="\t", dtype={"sample_id": str})
    sheet.loc[3, "neutrophil_fraction"] = np.nan
    cells = {**CELLS, "measured": ["neutrophil_fraction"]}
    assert message(toy_ingest, tmp_path, cells, sheet) == (
        f"{tmp_path / 'samples.tsv'}: column 'neutrophil_fraction' of cells.measured has no value for "
        f"sample(s) {sheet.loc[3, 'sample_id']}; every sample needs one."
    )


def test_measured_column_with_text(tmp_path):
    sheet = pd.read_csv(TOY / "samples.tsv", sep="\t", dtype={"sample_id": str})
    sheet["neutrophil_fraction"] = sheet["neutrophil_fraction"].astype(object)
    sheet.loc[[1, 5], "neutrophil_fraction"] = "high"
    cells = {**CELLS, "measured": ["neutrophil_fraction"]}
    ids = sheet.loc[[1, 5], "sample_id"]
    assert message(toy_ingest, tmp_path, cells, sheet) == (
        f"{tmp_path / 'samples.tsv'}: column 'neutrophil_fraction' of cells.measured has non-numeric value(s) "
        f"high (sample(s) {', '.join(ids)}); expected a measured count or share."
    )


def test_measured_column_that_is_absent():
    obs = pd.DataFrame({"group": ["a", "b"], "wbc": [4.1, 5.0]}, index=["S1", "S2"])
    assert message(measured_counts, obs, ["neutrophil_pct"], "s.tsv") == (
        "s.tsv: config cells.measured names column(s) neutrophil_pct that the sample sheet does not have; "
        "its columns are group, wbc."
    )


def test_marker_resource_with_too_few_genes_for_every_type(tmp_path):
    gmt = tmp_path / "markers.gmt"
    gmt.write_text(
        "NK\tNK cells\tNKG7\tGNLY\tNOTAGENE1\tNOTAGENE2\tNOTAGENE3\n"
        "monocytes\tmonocytes\tCD14\tNOTAGENE4\tNOTAGENE5\n"
    )
    cells = {**CELLS, "resource": str(gmt)}
    n_genes = len(pd.read_csv(TOY / "counts.tsv.gz", sep="\t", usecols=[0]))
    present = {
        g
        for g in ("NKG7", "GNLY", "CD14")
        if g
        in set(
            pd.read_csv(ANNOTATION, sep="\t", dtype=str)
            .set_index("gene_id")
            .reindex(pd.read_csv(TOY / "counts.tsv.gz", sep="\t", usecols=[0]).iloc[:, 0])["gene_symbol"]
            .dropna()
        )
    }
    found = f"NK {len(present & {'NKG7', 'GNLY'})}/5, monocytes {len(present & {'CD14'})}/3"
    assert message(toy_ingest, tmp_path, cells) == (
        f"{gmt} (config cells.resource, cells.markers) on the {n_genes} genes of the counts: no cell type has "
        f"enough marker genes in the data (at least 3, and at least half of its list); markers found per "
        f"type: {found}. Check that the GMT uses gene symbols or Ensembl IDs of this data set."
    )


def test_check_estimable_passes_with_one_estimable_type():
    expr, _, markers = synthetic_expression()
    check_estimable(marker_table(markers, expr.columns, 3), "m.gmt", 3)


# ----------------------------------------------------------------------------- the toy cohort
# Spearman correlation of score and planted share reached on the toy (first_pc): monocytes 0.96,
# B cells 0.96, NK 0.94, plasma cells 0.94, platelets 0.94, eosinophils 0.94, dendritic cells 0.93,
# erythroid 0.92, CD8 T 0.91, CD4 T 0.83, neutrophils 0.80 (0.799).
TOY_SPEARMAN = {
    "monocytes": 0.9,
    "B_cells": 0.9,
    "NK": 0.9,
    "CD8_T": 0.85,
    "neutrophils": 0.78,
    "CD4_T": 0.8,
    "eosinophils": 0.9,
    "plasma_cells": 0.9,
    "dendritic": 0.9,
    "platelets": 0.9,
    "erythroid": 0.85,
}


@pytest.fixture(scope="module")
def toy_cells(toy_run) -> Path:
    """The toy cohort's run (cell composition is part of the default run)."""
    return toy_run


def test_toy_scores_follow_the_planted_shares(toy_cells):
    scores = pd.read_csv(toy_cells / "results/cells/cell_scores.tsv", sep="\t", index_col="sample_id")
    truth = pd.read_csv(TOY / "truth_cells.tsv", sep="\t", index_col="sample_id").loc[scores.index]
    reached = {t: stats.spearmanr(scores[t], truth[t])[0] for t in TOY_SPEARMAN}
    assert all(reached[t] >= bound for t, bound in TOY_SPEARMAN.items()), reached


def test_toy_cell_shifts_are_found_by_group(toy_cells):
    """The simulator lowers NK, CD8 T and B cells and raises monocytes in TRD: all four differ
    with the planted sign (p < 0.05); B cells (g -0.64, p 0.03) miss padj < 0.05 on the toy."""
    by_group = pd.read_csv(
        toy_cells / "results/cells/TRD_vs_responder/scores_by_group.tsv", sep="\t", index_col="cell_type"
    )
    for cell_type, sign in (("NK", -1), ("CD8_T", -1), ("B_cells", -1), ("monocytes", 1)):
        assert (
            np.sign(by_group.loc[cell_type, "hedges_g"]) == sign and by_group.loc[cell_type, "pvalue"] < 0.05
        )
    assert (by_group.loc[["NK", "CD8_T", "monocytes"], "padj"] < 0.05).all()
    markers = pd.read_csv(toy_cells / "results/cells/markers.tsv", sep="\t")
    assert markers["estimable"].all()


def test_resource_holds_the_canonical_markers_of_the_simulator():
    """76 of the simulator's 80 planted markers are in the resource; the 4 left out (S100P, CCR2,
    S100B, KLRC1) are expressed by other blood cells as well."""
    from trdpipe.simulate import CELL_MARKERS as PLANTED

    ours = {t: set(genes) for t, (_, _, genes) in CELL_MARKERS.items()}
    missing = sorted(g for t, genes in PLANTED.items() for g in genes if g not in ours[t])
    assert set(PLANTED) == set(ours)
    assert missing == ["CCR2", "KLRC1", "S100B", "S100P"]
