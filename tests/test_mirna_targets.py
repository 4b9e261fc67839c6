"""miRNA targets among the mRNA calls (trdpipe.enrichment.mirna_targets): the planted targets of
simulated cohorts found in the direction opposite to their miRNA, nothing called on a null cohort
with co-expressed targets, Spearman's rho against SciPy's, and the targets GMT's bad inputs."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control, norm, spearmanr

from test_gsea_permutation import (
    CONTRAST,
    DESIGN,
    SETTINGS,
    cohort_anndata,
    cohort_as_anndata,
    simulated_cohort,
)
from trdpipe import simulate as sim
from trdpipe.calibration.score_null import score_null
from trdpipe.common import InputError
from trdpipe.enrichment import mirna_targets as mt
from trdpipe.io.mirna_targets import read_targets

K = 199
ALPHA = 0.05


def score_table(adata: ad.AnnData, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """An mRNA DE table from the score statistic under the observed labels (its normal p-value,
    BH), and the same statistic under K permutations within site x sex (genes x K)."""
    null = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], K, seed)
    stat = null.var["observed_statistic"].to_numpy()
    pvalue = 2 * norm.sf(np.abs(stat))
    table = pd.DataFrame(
        {
            "gene_id": null.var_names,
            "gene_symbol": null.var["gene_symbol"].to_numpy(),
            "log2FoldChange": stat,
            "stat": stat,
            "pvalue": pvalue,
            "padj": false_discovery_control(pvalue),
        }
    )
    return table, np.asarray(null.X, dtype=float).T


@pytest.fixture(scope="module")
def planted():
    cohort = simulated_cohort(sim.SimulationParameters(n_samples=80, n_genes=2500, seed=11, hazards=False))
    table, null = score_table(cohort_as_anndata(cohort), seed=5)
    return table, null, cohort.truth_genes.set_index("gene_id")


def called(directions: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "log2FoldChange": [1.0 if d == "up" else -1.0 for d in directions.values()],
            "padj": 0.001,
            "direction": list(directions.values()),
        },
        index=list(directions),
    )


def test_planted_targets_are_found_opposite_to_their_mirna(planted):
    """A miRNA up with 30 truly down targets and one down with 30 truly up targets are called; a
    miRNA up whose targets truly rise with it and one with random targets are not."""
    table, null, truth = planted
    universe = mt.tested_universe(table)
    effect = truth.loc[universe.index, "true_log2FC"]
    rng = np.random.default_rng(1)
    pick = lambda genes: list(rng.choice(genes, 30, replace=False))  # noqa: E731
    targets = {
        "miR-up": pick(effect.index[effect < -0.3]),
        "miR-down": pick(effect.index[effect > 0.3]),
        "miR-same": pick(effect.index[effect > 0.3]),
        "miR-random": pick(universe.index),
    }
    mirnas = called({"miR-up": "up", "miR-down": "down", "miR-same": "up", "miR-random": "up"})
    result = mt.target_enrichment(mirnas, targets, universe, null, ALPHA).set_index("mirna")
    assert result.loc["miR-up", "target_direction"] == "down"
    assert result.loc["miR-down", "target_direction"] == "up"
    assert (result.loc[["miR-up", "miR-down"], "fdr_perm"] < ALPHA).all()
    assert (
        result.loc[["miR-up", "miR-down"], "n_called"] > 2 * result.loc[["miR-up", "miR-down"], "null_mean"]
    ).all()
    assert result.loc["miR-same", "n_called"] == 0 and result.loc["miR-same", "pvalue_perm"] == 1.0
    assert result.loc["miR-random", "fdr_perm"] > ALPHA
    # n_called counted independently: the targets among the opposite calls
    down_calls = set(universe.index[(universe["padj"] < ALPHA) & (universe["log2FoldChange"] < 0)])
    assert result.loc["miR-up", "n_called"] == len(down_calls & set(targets["miR-up"]))


def test_null_cohort_with_coexpressed_targets_calls_almost_nothing():
    """No group effect, co-expressed modules (the simulator's null cohort): 40 miRNAs whose targets
    are each a run of genes of one module, against lists of the 100 most extreme genes each way
    (nothing is called at BH, so the lists are set by rank): at most 2 of 40 miRNAs are called at
    FDR 0.05, and the permutation p-values are not small more often than nominal."""
    params = sim.SimulationParameters.null_cohort(n_samples=80, n_genes=2500, seed=12, hazards=False)
    table, null = score_table(cohort_anndata(params), seed=6)
    extreme = table["stat"].abs().rank(ascending=False) <= 200
    table["padj"] = np.where(extreme, 0.001, 0.9)
    universe = mt.tested_universe(table)
    rng = np.random.default_rng(2)
    # co-expressed targets: genes that move together across samples, found by correlation of the
    # permuted statistics with a random seed gene
    z = (null - null.mean(1, keepdims=True)) / null.std(1, keepdims=True)
    targets, directions = {}, {}
    for i in range(40):
        seed_gene = rng.integers(len(universe))
        similar = np.argsort(-(z @ z[seed_gene]))[:25]
        targets[f"miR-{i}"] = list(universe.index[similar])
        directions[f"miR-{i}"] = "up" if i % 2 else "down"
    result = mt.target_enrichment(called(directions), targets, universe, null, ALPHA)
    assert (result["fdr_perm"] < ALPHA).sum() <= 2
    assert (result["pvalue_perm"] < 0.05).sum() <= 5


def test_spearman_rho_and_p_value_match_scipy_over_the_samples_both_layers_hold():
    rng = np.random.default_rng(3)
    samples = [f"S{i}" for i in range(30)]
    mrna = ad.AnnData(
        rng.normal(size=(30, 4)), obs=pd.DataFrame(index=samples), var=pd.DataFrame(index=list("ABCD"))
    )
    mirna_x = rng.normal(size=(27, 2))
    mirna_x[:, 0] -= mrna.X[:27, 0]  # a repressed target
    mirna = ad.AnnData(mirna_x, obs=pd.DataFrame(index=samples[:27]), var=pd.DataFrame(index=["m1", "m2"]))
    universe = pd.DataFrame(
        {
            "gene_symbol": ["a", "b", "c", ""],
            "log2FoldChange": [0.5, -0.5, 1, 1],
            "padj": [0.01, 0.01, 0.01, 0.9],
        },
        index=list("ABCD"),
    )
    targets = {"m1": ["A", "B", "D"], "m2": ["C"]}
    table = mt.target_correlations(
        called({"m1": "up", "m2": "down"}), targets, universe, ALPHA, mirna, mrna, samples[1:]
    )
    # the called targets only (D is not called)
    assert set(zip(table["mirna"], table["gene_id"])) == {("m1", "A"), ("m1", "B"), ("m2", "C")}
    for row in table.itertuples():
        m, g = mirna.var_names.get_loc(row.mirna), mrna.var_names.get_loc(row.gene_id)
        expected = spearmanr(mirna.X[1:27, m], mrna.X[1:27, g])
        assert row.n == 26
        assert row.spearman_rho == pytest.approx(expected.statistic, rel=1e-12)
        assert row.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert table.set_index("gene_id").loc["A", "spearman_rho"] < -0.5


MRNA_GENES = pd.DataFrame(
    {"gene_id": ["ENSG00000000003", "ENSG00000000005"], "gene_symbol": ["TSPAN6", "TNMD"]}
)


def test_targets_match_by_versioned_ensembl_id_or_symbol(tmp_path):
    gmt = tmp_path / "targets.gmt"
    gmt.write_text("hsa-miR-1-3p\tx\tENSG00000000003.15\tTNMD\tNOTAGENE\nhsa-miR-9-5p\tx\tTSPAN6\n")
    targets = read_targets(gmt, ["hsa-miR-1-3p", "hsa-miR-2-5p"], MRNA_GENES, "small_rna")
    assert targets == {"hsa-miR-1-3p": ["ENSG00000000003", "ENSG00000000005"]}


def test_a_targets_gmt_naming_no_mirna_of_the_assay_stops_with_one_message(tmp_path):
    gmt = tmp_path / "targets.gmt"
    gmt.write_text("miR-X\tx\tTSPAN6\n")
    with pytest.raises(InputError) as err:
        read_targets(gmt, ["hsa-miR-1-3p"], MRNA_GENES, "small_rna")
    assert str(err.value) == (
        f"{gmt}: the targets GMT names no miRNA of assay 'small_rna': its sets are miR-X, the "
        "assay's miRNAs hsa-miR-1-3p; expected one line per mature miRNA, named as in the assay's "
        "count table."
    )


def test_a_targets_gmt_naming_no_mrna_gene_stops_with_one_message(tmp_path):
    gmt = tmp_path / "targets.gmt"
    gmt.write_text("hsa-miR-1-3p\tx\tNOTAGENE\tENSG00000999999\n")
    with pytest.raises(InputError) as err:
        read_targets(gmt, ["hsa-miR-1-3p"], MRNA_GENES, "small_rna")
    assert str(err.value) == (
        f"{gmt}: the targets GMT names no gene of the mRNA assay: its targets are NOTAGENE, "
        "ENSG00000999999; expected Ensembl gene ids or symbols of the mRNA count table."
    )


def test_the_report_says_in_one_sentence_which_mirnas_move_their_targets_the_other_way():
    from trdpipe.report.sections.mirna_targets import targets_verdict

    table = pd.DataFrame(
        {
            "mirna": ["miR-1", "miR-2"],
            "mirna_direction": ["up", "down"],
            "target_direction": ["down", "up"],
            "n_targets": [30, 20],
            "n_called": [12, 1],
            "fdr_perm": [0.002, 0.6],
        }
    )
    assert targets_verdict(table, "small_rna", "trd_vs_responder", 0.05) == (
        "Of the 2 miRNAs of small_rna called in trd_vs_responder, 1 has its targets among the mRNAs "
        "that move the opposite way more often than shuffled labels give (label-permutation FDR < 0.05): "
        "miR-1 (up; 12 of 30 targets called down)."
    )
    many = pd.concat([table.iloc[:1].assign(mirna=f"miR-{i}") for i in range(7)])
    assert targets_verdict(many, "small_rna", "c", 0.05) == (
        "Of the 7 miRNAs of small_rna called in c, 7 have their targets among the mRNAs that move the "
        "opposite way more often than shuffled labels give (label-permutation FDR < 0.05): "
        + ", ".join(f"miR-{i} (up; 12 of 30 targets called down)" for i in range(5))
        + " and 2 more."
    )
    assert targets_verdict(table.iloc[1:], "small_rna", "c", 0.05) == (
        "Of the 1 miRNA of small_rna called in c, none has its targets among the mRNAs that move the "
        "opposite way more often than shuffled labels give (label-permutation FDR < 0.05)."
    )
    assert targets_verdict(table.iloc[:0], "small_rna", "c", 0.05) == (
        "No miRNA of small_rna is called in c, so there are no targets to test."
    )


def test_a_bad_targets_gmt_stops_the_small_rna_ingest_before_any_fit(tmp_path):
    """The check runs at the assay's ingest, against its miRNAs and the mRNA annotation."""
    from conftest import ROOT
    from trdpipe.ingest import ingest_small_rna

    data = ROOT / "tests/data/small_rna"
    samples = [f"S{i}" for i in range(1, 9)]
    rng = np.random.default_rng(4)
    counts = pd.DataFrame(rng.integers(500, 5000, (6, 8)), columns=samples)
    counts.insert(0, "miRNA", pd.read_csv(data / "mirna.tsv", sep="\t")["miRNA"])
    counts.to_csv(tmp_path / "mirna.tsv", sep="\t", index=False)
    sheet = pd.DataFrame({"sample_id": samples, "group": ["TRD", "responder"] * 4})
    sheet.to_csv(tmp_path / "samples.tsv", sep="\t", index=False)
    gmt = tmp_path / "targets.gmt"
    gmt.write_text("hsa-miR-21-5p\tx\tNOTAGENE\n")
    contrasts = {"TRD_vs_responder": {"variable": "group", "test": "TRD", "reference": "responder"}}
    args = (str(tmp_path / "mirna.tsv"), str(tmp_path / "samples.tsv"), str(data / "mirna_annotation.tsv"))
    mrna_annotation = str(ROOT / "resources/annotation/genes.tsv.gz")
    with pytest.raises(InputError) as err:
        ingest_small_rna(
            *args, "~ group", contrasts, targets=str(gmt), mrna_annotation=mrna_annotation, assay="mirna"
        )
    assert str(err.value) == (
        f"{gmt}: the targets GMT names no gene of the mRNA assay: its targets are NOTAGENE; expected "
        "Ensembl gene ids or symbols of the mRNA count table."
    )
    gmt.write_text("hsa-miR-21-5p\tx\tTSPAN6\tENSG00000000005.6\n")
    adata = ingest_small_rna(
        *args, "~ group", contrasts, targets=str(gmt), mrna_annotation=mrna_annotation, assay="mirna"
    )
    assert str(gmt) in adata.uns["ingest"]["input_files"]


def test_toy_run_recovers_the_planted_mirnas_and_their_targets_opposite(toy_run):
    """The toy's differential miRNAs with planted targets (truth_mirna.tsv) are called with their
    targets among the mRNA calls of the opposite direction; no other miRNA's targets are."""
    from conftest import ROOT

    truth = pd.read_csv(ROOT / "resources/toy/truth_mirna.tsv", sep="\t").set_index("mirna_id")
    planted = truth[truth["is_de"] & (truth["n_planted_targets"] > 0)]
    folder = toy_run / "results/assays/mirna/targets/TRD_vs_responder"
    table = pd.read_csv(folder / "target_enrichment.tsv", sep="\t").set_index("mirna")
    found = table[table["fdr_perm"] < ALPHA]
    assert set(found.index) <= set(planted.index)
    assert len(found) >= 0.8 * len(planted)
    assert (found["mirna_direction"] == planted.loc[found.index, "direction"]).all()
    assert (found["target_direction"] == planted.loc[found.index, "direction"].map(mt.OPPOSITE)).all()
    # a repressed target: its correlation with its miRNA is negative, on the whole
    correlation = pd.read_csv(folder / "target_correlation.tsv", sep="\t")
    assert correlation["spearman_rho"].median() < 0 and (correlation["n"] == 46).all()
