"""Label-permutation calibration: restricted permutations, pooled p-values, permutation FDR,
refits of the primary model, bad inputs, and the rules' outputs on the toy run."""

import itertools
import logging
import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats.contingency import association

from conftest import ROOT, run_snakemake
from trdpipe import simulate as sim
from trdpipe.calibration import permutation as cal
from trdpipe.calibration.figures import qq_quantiles
from trdpipe.common import InputError
from trdpipe.model.deseq2 import run_deseq2
from trdpipe.model.engines import pydeseq2 as pd2
from trdpipe.model.filtering import expressed_genes

DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
SETTINGS = {"alpha": 0.05, "inference": "batched", "lfc_thresholds": [0.5, 1.0]}
K = 12  # permutations of the simulated cohorts: a pooled null of K x ~750 genes
COLLECTIONS = {
    "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
    "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
}


def sheet(n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "group": np.where(np.arange(n) % 2 == 0, "TRD", "responder"),
            "site": rng.choice(["siteA", "siteB", "siteC"], n),
            "sex": rng.choice(["female", "male"], n),
            "age": rng.normal(40, 10, n).round(),
        },
        index=[f"S{i:02d}" for i in range(n)],
    )


# ---------------------------------------------------------------- permutations


def test_default_strata_are_the_other_categorical_covariates():
    obs = sheet()
    assert cal.calibration_strata(obs, DESIGN, "group", None) == ["site", "sex"]
    assert cal.calibration_strata(obs, DESIGN, "group", ["site"]) == ["site"]
    assert cal.calibration_strata(obs, DESIGN, "group", []) == []


def test_permutations_stay_within_strata_and_are_reproducible():
    obs = sheet()
    strata = cal.stratum_of_each_sample(obs, ["site", "sex"])
    labels = cal.permute_labels(obs, "group", ["site", "sex"], 50, seed=11)
    assert list(labels.columns) == [f"perm_{i:04d}" for i in range(1, 51)]
    observed_per_stratum = pd.crosstab(strata, obs["group"])
    for name, permuted in labels.items():
        # each stratum keeps its own labels: no sample's label comes from another stratum
        pd.testing.assert_frame_equal(pd.crosstab(strata, permuted), observed_per_stratum, check_names=False)
        assert (permuted != obs["group"]).any(), name  # never the observed labelling
    assert not labels.T.duplicated().any()
    pd.testing.assert_frame_equal(cal.permute_labels(obs, "group", ["site", "sex"], 50, seed=11), labels)
    assert not cal.permute_labels(obs, "group", ["site", "sex"], 50, seed=12).equals(labels)
    moved = cal.permute_labels(obs, "group", [], 50, seed=11)
    assert (pd.crosstab(strata, moved.iloc[:, 0]).to_numpy() != observed_per_stratum.to_numpy()).any()


def brute_force_labellings(labels: list[str], strata: list[str]) -> set[tuple]:
    """Every label vector within strata, from all n! permutations of the samples."""
    n = len(labels)
    found = set()
    for order in itertools.permutations(range(n)):
        if all(strata[i] == strata[j] for i, j in zip(range(n), order)):
            found.add(tuple(labels[j] for j in order))
    return found


def test_all_labellings_enumerated_when_fewer_than_asked(caplog):
    obs = pd.DataFrame(
        {
            "group": ["TRD", "TRD", "responder", "TRD", "responder", "responder", "TRD"],
            "site": ["A", "A", "A", "B", "B", "B", "B"],
        },
        index=[f"S{i}" for i in range(7)],
    )
    expected = brute_force_labellings(list(obs["group"]), list(obs["site"]))
    expected.discard(tuple(obs["group"]))
    assert len(expected) == 3 * 6 - 1  # 3!/(2! 1!) x 4!/(2! 2!) - the observed
    assert cal.labellings_available(obs, "group", ["site"]) == len(expected)
    with caplog.at_level(logging.INFO, logger="trd"):
        labels = cal.permute_labels(obs, "group", ["site"], 20, seed=1)
    assert {tuple(column) for _, column in labels.items()} == expected
    assert labels.shape[1] == len(expected)
    assert (
        "only 17 distinct labellings within strata differ from the observed one (20 asked for)" in caplog.text
    )


def three_vs_three() -> pd.DataFrame:
    return pd.DataFrame(
        {"group": ["TRD"] * 3 + ["responder"] * 3, "sex": ["female", "male"] * 3},
        index=[f"S{i}" for i in range(6)],
    )


def test_three_vs_three_leaves_the_observed_analysis_and_its_mirror_out_of_the_null(caplog):
    """Of the 20 labellings of 3 vs 3, the mirror image of the observed one (the groups swapped)
    gives the same analysis; every other labelling pairs with its own mirror: 9 distinct analyses."""
    obs = three_vs_three()
    observed = tuple(obs["group"])
    swapped = {"TRD": "responder", "responder": "TRD"}
    every = brute_force_labellings(list(obs["group"]), ["all"] * 6)
    assert len(every) == 20
    assert cal.labellings_available(obs, "group", []) == 9
    with caplog.at_level(logging.INFO, logger="trd"):
        labels = cal.permute_labels(obs, "group", [], 30, seed=1)
    drawn = [tuple(column) for _, column in labels.items()]
    mirrors = [tuple(swapped[x] for x in row) for row in drawn]
    assert len(drawn) == 9
    assert observed not in drawn + mirrors
    assert tuple(swapped[x] for x in observed) not in drawn
    # each of the other 18 labellings is drawn or is the mirror of one drawn, exactly once
    assert sorted(drawn + mirrors) == sorted(every - {observed, tuple(swapped[x] for x in observed)})
    assert "only 9 distinct labellings within strata differ from the observed one and its mirror image" in (
        caplog.text
    )
    # sampled draws (fewer asked for than exist) leave the mirror images out as well
    sampled = [tuple(column) for _, column in cal.permute_labels(obs, "group", [], 5, seed=3).items()]
    assert len(sampled) == 5 and not set(sampled) & (
        {observed} | {tuple(swapped[x] for x in r) for r in sampled}
    )


def test_unbalanced_strata_have_no_mirror_image():
    """2 vs 4: swapping the groups changes their sizes, so every other labelling is a null analysis."""
    obs = pd.DataFrame({"group": ["TRD"] * 2 + ["responder"] * 4}, index=[f"S{i}" for i in range(6)])
    assert cal.labellings_available(obs, "group", []) == 15 - 1
    # balanced overall but not within sex: the swapped labelling leaves the strata
    obs = three_vs_three().assign(sex=["female", "female", "female", "female", "male", "male"])
    assert not cal.mirror_reachable(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 0, 0, 0, 1, 1]))
    assert cal.mirror_reachable(np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2]))
    assert cal.labellings_available(obs, "group", ["sex"]) == 4 * 1 - 1  # 4!/(3! 1!) x 2!/(2!) - observed


def test_smallest_attainable_pvalue_of_three_vs_three_is_stated():
    from trdpipe.report.sections import calibration as calibration_section

    per_permutation = pd.DataFrame({"degs": [0, 3, 0, 1, 0, 0, 2, 0, 0], "lambda": 1.0})
    summary = cal.summary_table({"degs": 5}, per_permutation, 1.0, 1.0, 0.1, 0.01, 1.0, 4, 0.05, 100, {})
    values = summary.set_index("statistic")["value"]
    assert values["smallest_pvalue"] == pytest.approx(1 / 10)
    assert values["pvalue_observed_degs"] == pytest.approx(1 / 10)  # (0 + 1) / (9 + 1)
    assert calibration_section.calibration_verdict(
        summary_values(permutations=9, pvalue_observed_degs=0.1, all_labellings_enumerated=1), 0.05
    ) == (
        "The calibration cannot tell whether these 369 calls are chance: only 9 distinct permutations exist "
        "(the observed labelling and its mirror image left out), so no permutation p-value can fall below "
        "1 / 10 = 0.1; shuffled labels gave as many calls or more in 0 of the 9."
    )


def test_too_few_permutations_drawn_from_many_are_not_called_the_only_ones():
    """10 permutations drawn where thousands exist (the setting at 6,000 samples of an earlier README):
    the verdict names the setting, not the design, and counts the permutations with as many calls."""
    from trdpipe.report.sections import calibration as calibration_section

    values = summary_values(permutations=10, pvalue_observed_degs=2 / 11, all_labellings_enumerated=0)
    assert calibration_section.calibration_verdict(values, 0.05) == (
        "The calibration cannot tell whether these 369 calls are chance: only 10 permutations were refitted "
        "(calibration.permutations; 19 or more can reach 0.05), so no permutation p-value can fall below "
        "1 / 11 = 0.091; shuffled labels gave as many calls or more in 1 of the 10."
    )


def test_the_summary_flags_are_read_as_numbers():
    from trdpipe.report.sections import calibration as calibration_section

    summary = pd.DataFrame(
        {"statistic": ["permutations", "all_labellings_enumerated", "strata"], "value": ["9", "True", "sex"]}
    )
    values = calibration_section.numeric_summary(summary)
    assert values["permutations"] == 9 and values["all_labellings_enumerated"] == 1
    assert np.isnan(values["strata"])


def test_report_captions_count_the_permutations_that_ran(tmp_path):
    """30 asked for, 9 ran (3 vs 3): the QQ and histogram captions say 9."""
    import matplotlib.pyplot as plt

    from trdpipe.report.sections import calibration as calibration_section

    per_permutation = pd.DataFrame({"degs": [0] * 9, "lambda": 1.0})
    summary = cal.summary_table({"degs": 2}, per_permutation, 1.0, 1.0, 0.1, 0.01, 1.0, 0, 0.05, 90, {})
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    files = {"summary": tmp_path / "summary.tsv"}
    for key in ("qq", "null_degs"):
        fig, _ = plt.subplots(figsize=(1, 1))
        fig.savefig(tmp_path / f"{key}.png")
        plt.close(fig)
        files[key] = tmp_path / f"{key}.png"
    config = {"calibration": {"permutations": 30}, "de": {"alpha": 0.05}}
    section = calibration_section.calibration_section("c", files, config, ROOT / "workflow/report")
    qq, histogram = (f["caption"] for f in section["figures"])
    assert "against those of 9 label permutations" in qq
    assert "in each of 9 label permutations" in histogram
    assert "30" not in qq + histogram
    shown = dict(section["table"]["rows"])
    assert section["permutations"] == 9
    assert shown["smallest permutation p-value attainable, 1 / (K + 1)"] == "0.1"


def test_a_third_level_is_not_permuted_into_the_contrast():
    obs = sheet(30)
    obs["group"] = np.tile(["TRD", "responder", "healthy"], 10)
    labels = cal.permute_labels(obs, "group", ["site"], 20, seed=4, compared=("TRD", "responder"))
    healthy = obs["group"] == "healthy"
    assert labels.shape[1] == 20
    assert (labels[healthy.to_numpy()] == "healthy").all().all()
    assert (labels[~healthy.to_numpy()] != "healthy").all().all()
    for _, column in labels.items():
        # the contrast's samples swap labels among themselves, within sites
        pd.testing.assert_frame_equal(
            pd.crosstab(obs.loc[~healthy, "site"], column[~healthy]),
            pd.crosstab(obs.loc[~healthy, "site"], obs.loc[~healthy, "group"]),
            check_names=False,
        )
    # all labellings of 10 TRD and 10 responders within sites, not of the 30 samples
    sizes = pd.crosstab(obs.loc[~healthy, "site"], obs.loc[~healthy, "group"])
    expected = math.prod(math.comb(int(t + r), int(t)) for t, r in zip(sizes["TRD"], sizes["responder"]))
    mirrored = (sizes["TRD"] == sizes["responder"]).all()
    assert cal.labellings_available(obs, "group", ["site"], ("TRD", "responder")) == (
        expected // 2 - 1 if mirrored else expected - 1
    )


def test_strata_check_counts_only_the_contrasts_samples():
    """Site B holds one level of the contrast beside the third level: no label of it can move."""
    obs = pd.DataFrame(
        {
            "group": ["TRD", "responder", "TRD", "healthy", "TRD", "responder"],
            "site": ["A", "A", "B", "B", "C", "C"],
        },
        index=[f"S{i}" for i in range(6)],
    )
    with pytest.raises(InputError) as err:
        cal.check_strata(obs[obs["site"] == "B"].copy(), "c", CONTRAST, "~ site + group", None, "s.tsv")
    assert "(B: TRD)" in str(err.value)


def test_sample_ids_with_leading_zeros_survive_the_permuted_labels(tmp_path):
    """The calibration's block rule reads permuted_labels.tsv back: IDs 001... stay text."""
    from types import SimpleNamespace

    from rule_scripts import rule_script
    from trdpipe.model.filtering import expressed_column

    rng = np.random.default_rng(2)
    n, genes = 8, 40
    obs = pd.DataFrame(
        {"group": ["TRD", "responder"] * 4, "sex": ["female"] * 4 + ["male"] * 4},
        index=pd.Index([f"{i:03d}" for i in range(1, n + 1)]),
    )
    var = pd.DataFrame(
        {"gene_symbol": [f"G{i}" for i in range(genes)], expressed_column("c"): True},
        index=[f"ENSG{i:011d}" for i in range(genes)],
    )
    counts = rng.negative_binomial(5, 5 / (5 + rng.uniform(20, 200, genes)), size=(n, genes))
    ad.AnnData(X=counts.astype(np.int64), obs=obs, var=var).write_h5ad(tmp_path / "cohort.h5ad")
    params = SimpleNamespace(
        design="~ sex + group", contrast=CONTRAST, permutations=3, strata=[], seed=1, deseq2=SETTINGS
    )
    labels_file, block_file = tmp_path / "permuted_labels.tsv", tmp_path / "block.h5ad"
    rule_script("calibration_permute").main(
        SimpleNamespace(
            input=SimpleNamespace(h5ad=str(tmp_path / "cohort.h5ad")),
            output=SimpleNamespace(labels=str(labels_file)),
            params=params,
            wildcards=SimpleNamespace(contrast="c"),
        )
    )
    assert labels_file.read_text().splitlines()[1].startswith("001\t")
    rule_script("calibration_block").main(
        SimpleNamespace(
            input=SimpleNamespace(h5ad=str(tmp_path / "cohort.h5ad"), labels=str(labels_file)),
            output=SimpleNamespace(h5ad=str(block_file)),
            params=params,
            wildcards=SimpleNamespace(contrast="c", scatteritem="1-of-1"),
            threads=1,
        )
    )
    assert ad.read_h5ad(block_file).shape == (3, genes)


def test_sample_tables_keep_ids_as_text(tmp_path):
    from trdpipe.common import read_sample_table, write_table

    table = pd.DataFrame({"perm_0001": ["TRD", "responder", "TRD"], "x": [1.5, 2.0, 3.0]})
    for name in ("sample_id", None):  # a named ID column, and an index written without a name
        table.index = pd.Index(["001", "1e5", "0010"], name=name)
        write_table(table, tmp_path / "t.tsv", index=True)
        back = read_sample_table(tmp_path / "t.tsv")
        assert list(back.index) == ["001", "1e5", "0010"] and back.index.name == name
        assert list(back["x"]) == [1.5, 2.0, 3.0]  # other columns keep their types
        assert list(read_sample_table(tmp_path / "t.tsv", text=True)["x"]) == ["1.5", "2.0", "3.0"]


def test_label_associations():
    obs = sheet()
    labels = cal.permute_labels(obs, "group", ["site"], 5, seed=2)
    table = cal.label_associations(labels, obs, "group", "TRD", ["site", "sex", "age"])
    for row, (_, permuted) in zip(table.itertuples(), labels.items()):
        assert row.samples_moved == (permuted != obs["group"]).sum()
        is_test = permuted == "TRD"
        assert row.r_age == pytest.approx(np.corrcoef(is_test, obs["age"])[0, 1])
        assert row.r_observed_labels == pytest.approx(np.corrcoef(is_test, obs["group"] == "TRD")[0, 1])
        assert row.cramers_v_sex == pytest.approx(
            association(pd.crosstab(permuted, obs["sex"]).to_numpy(), method="cramer")
        )
    # within sites, the site composition of each label is kept
    observed_v = association(pd.crosstab(obs["group"], obs["site"]).to_numpy(), method="cramer")
    np.testing.assert_allclose(table["cramers_v_site"], observed_v)


def test_blocks_cover_every_permutation_once():
    names = cal.permutation_ids(23)
    blocks = [cal.block_of(f"{i}-of-4", names) for i in range(1, 5)]
    assert [len(b) for b in blocks] == [6, 6, 6, 5]
    assert sum(blocks, []) == names


# ---------------------------------------------------------------- bad input


def test_strata_that_cannot_move_a_label():
    obs = pd.DataFrame(
        {"group": ["TRD", "TRD", "responder", "responder"], "site": ["A", "A", "B", "B"]},
        index=["S1", "S2", "S3", "S4"],
    )
    with pytest.raises(InputError) as err:
        cal.check_strata(obs, "c", CONTRAST, "~ site + group", None, "s.tsv")
    assert str(err.value) == (
        "s.tsv: contrast 'c': every stratum of the label permutations (site) holds one level of "
        "'group' only (A: TRD, B: responder), so no permutation within strata can change a label; "
        "set calibration.strata to fewer columns (or [] for none)."
    )


def test_strata_column_not_in_the_sheet():
    with pytest.raises(InputError) as err:
        cal.check_strata(sheet(), "c", CONTRAST, DESIGN, ["site", "batch"], "s.tsv")
    assert str(err.value) == (
        "config calibration.strata names column(s) batch that the sample sheet "
        "s.tsv does not have; its columns are group, site, sex, age."
    )


def test_stratum_with_one_level_is_logged(caplog):
    obs = sheet(12)
    obs.loc[obs["site"] == "siteA", "group"] = "TRD"
    with caplog.at_level(logging.INFO, logger="trd"):
        assert cal.check_strata(obs, "c", CONTRAST, "~ site + group", None, "s.tsv") == ["site"]
    assert (
        "contrast c: 1 of 3 permutation strata hold one level of group, so their samples keep "
        "their labels: siteA"
    ) in caplog.text


def test_ingest_stops_on_a_strata_column_not_in_the_sheet():
    from trdpipe.ingest import ingest

    with pytest.raises(InputError) as err:
        ingest(
            str(ROOT / "resources/toy/counts.tsv.gz"),
            str(ROOT / "config/samples.tsv"),
            str(ROOT / "resources/annotation/genes.tsv.gz"),
            DESIGN,
            {"c": CONTRAST},
            calibration={"strata": ["batch"]},
        )
    assert str(err.value) == (
        f"config calibration.strata names column(s) batch that the sample sheet {ROOT / 'config/samples.tsv'} "
        "does not have; its columns are group, site, sex, age, bmi, RIN, neutrophil_fraction, prs."
    )


def test_fewer_than_ten_permutations_stop_the_workflow(workflow_copy):
    result = run_snakemake(
        workflow_copy, "--dry-run", "--config", "calibration={permutations: 5}", check=False
    )
    assert result.returncode != 0
    assert "config key 'calibration.permutations': 5 is less than the minimum of 10." in result.stdout
    assert not (workflow_copy / "results").exists()


# ---------------------------------------------------------------- pooled p-values and FDR


@pytest.fixture
def null_and_observed():
    rng = np.random.default_rng(5)
    k, g = 7, 60
    null_stat = rng.normal(size=(k, g))
    null_p = rng.uniform(size=(k, g))
    null_p[rng.random((k, g)) < 0.05] = np.nan  # genes DESeq2 leaves without a p-value
    stat = np.concatenate([rng.normal(size=g - 10), rng.normal(4, 1, 10)])
    stat[3] = null_stat[0, 0]  # a tie with the null
    pvalue = rng.uniform(size=g)
    pvalue[7] = np.nan
    return null_stat, null_p, stat, pvalue


def test_pooled_pvalues_equal_a_brute_force_count(null_and_observed):
    null_stat, null_p, stat, pvalue = null_and_observed
    pooled = cal.null_abs_statistics(null_stat, null_p)
    got = cal.pooled_pvalues(stat, pvalue, pooled)
    valid = [
        abs(null_stat[i, j])
        for i in range(null_stat.shape[0])
        for j in range(null_stat.shape[1])
        if not np.isnan(null_p[i, j])
    ]
    for gene in range(len(stat)):
        if np.isnan(pvalue[gene]):
            assert np.isnan(got[gene])
            continue
        b = sum(v >= abs(stat[gene]) for v in valid)
        assert got[gene] == (b + 1) / (len(valid) + 1)


def test_storey_qvalues_equal_a_brute_force_computation():
    rng = np.random.default_rng(3)
    p = np.concatenate([rng.uniform(size=40), rng.uniform(0, 0.01, 10), [np.nan, 0.5, 0.5]])
    pi0 = cal.storey_pi0(p)
    finite = p[~np.isnan(p)]
    assert pi0 == pytest.approx(min(1, np.mean(finite > 0.5) / 0.5))
    q = cal.storey_qvalues(p, pi0)
    m = len(finite)
    for i, value in enumerate(p):
        if np.isnan(value):
            assert np.isnan(q[i])
            continue
        # q(p) = min over t >= p of pi0 m t / #{p <= t}, t running over the p-values
        expected = min(pi0 * m * t / np.sum(finite <= t) for t in finite if t >= value)
        assert q[i] == pytest.approx(min(expected, 1.0))


def test_empirical_fdr_equals_a_brute_force_computation(null_and_observed):
    _, null_p, _, pvalue = null_and_observed
    padj = np.where(pvalue < 0.2, 0.01, 0.5)
    fdr, threshold, null_calls = cal.empirical_fdr(pvalue, padj, null_p, alpha=0.05, pi0=0.8)
    called = [p for p, q in zip(pvalue, padj) if q < 0.05]
    assert threshold == max(called)
    per_permutation = [sum(1 for v in row if not np.isnan(v) and v <= threshold) for row in null_p]
    assert null_calls == pytest.approx(np.mean(per_permutation))
    assert fdr == pytest.approx(0.8 * np.mean(per_permutation) / len(called))
    assert all(np.isnan(v) for v in cal.empirical_fdr(pvalue, np.ones_like(pvalue), null_p, 0.05, 0.8))


def test_empirical_fdr_is_capped_at_one():
    """Two calls, and every permutation has 3 null p-values at or below the larger: 0.9 x 3 / 2 would be
    1.35, more false calls expected than made."""
    pvalue = np.array([0.001, 0.002, 0.5, 0.9])
    padj = np.array([0.01, 0.02, 0.6, 0.9])
    null_p = np.tile([0.0005, 0.001, 0.002, 0.7], (5, 1))
    fdr, threshold, null_calls = cal.empirical_fdr(pvalue, padj, null_p, alpha=0.05, pi0=0.9)
    assert (fdr, threshold, null_calls) == (1.0, 0.002, 3.0)


def test_inflation_factor_of_null_statistics_is_one():
    stat = np.random.default_rng(0).normal(size=200_000)
    assert cal.inflation_factor(stat, np.ones_like(stat)) == pytest.approx(1.0, abs=0.01)
    assert cal.inflation_factor(2 * stat, np.ones_like(stat)) == pytest.approx(4.0, abs=0.04)


def test_qq_quantiles_lie_on_the_diagonal_when_the_null_is_the_observed():
    p = np.random.default_rng(1).uniform(size=300)
    expected, low, high, observed = qq_quantiles(p, np.vstack([p, p, p]))
    np.testing.assert_allclose(expected, observed)
    np.testing.assert_allclose(low, high)


# ---------------------------------------------------------------- refits on simulated cohorts


@pytest.fixture(scope="module")
def simulation_inputs():
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    return annotation, sim.load_gene_sets(COLLECTIONS)


def simulated(simulation_inputs, params=None, **settings) -> tuple[ad.AnnData, pd.DataFrame]:
    """A simulated cohort as the DE rule sees it (filtered genes), and its truth."""
    params = params or sim.SimulationParameters(hazards=False, **settings)
    cohort = sim.simulate_cohort(*simulation_inputs, params)
    obs = cohort.samples.set_index("sample_id")
    adata = ad.AnnData(
        X=cohort.counts.T.to_numpy(), obs=obs, var=cohort.truth_genes.set_index("gene_id")[["gene_symbol"]]
    )
    keep = expressed_genes(np.asarray(adata.X), int(obs["group"].value_counts().min()))
    return adata[:, keep].copy(), cohort.truth_genes.set_index("gene_id").loc[adata.var_names[keep]]


def calibrated_run(adata: ad.AnnData, k: int, seed: int = 1):
    table = run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1)
    labels = cal.permute_labels(adata.obs, "group", ["site", "sex"], k, seed)
    null = cal.gather_blocks(
        [
            cal.fit_block(adata, labels[block], DESIGN, CONTRAST, SETTINGS, 1)
            for block in (list(labels.columns[: k // 2]), list(labels.columns[k // 2 :]))
        ],
        seed,
        ["site", "sex"],
        False,
    )
    return table, null, cal.calibrate(table, null, SETTINGS["alpha"], SETTINGS["lfc_thresholds"])


@pytest.fixture(scope="module")
def planted(simulation_inputs):
    adata, truth = simulated(simulation_inputs, n_samples=40, n_genes=800, seed=3)
    return adata, truth, calibrated_run(adata, k=K)


def test_refit_with_the_observed_labels_is_the_primary_fit(planted):
    adata, _, (table, _, _) = planted
    fitted = pd2.label_independent_fit(adata, DESIGN, CONTRAST, SETTINGS)
    refit = pd2.refit_permuted(adata, adata.obs["group"], DESIGN, CONTRAST, SETTINGS, 1, fitted)
    primary = table.set_index("gene_id").loc[adata.var_names]
    for column in ["stat", "pvalue", "padj", "log2FoldChange"]:
        np.testing.assert_allclose(refit[column], primary[column], rtol=1e-10, err_msg=column)


# How far PyDESeq2's IRLS stopping rule (deviance ratio < beta_tol = 1e-8) leaves a fit from its
# optimum on this cohort: a cold refit is up to 1.1e-3 (Wald statistic) and 8e-4 (p-value, padj)
# from one converged to beta_tol = 1e-13.
CONVERGENCE_ATOL = {"stat": 3e-3, "pvalue": 2e-3, "padj": 2e-3, "log2FoldChange": 1.5e-3}


def tightly_converged_refit(adata, labels, fitted) -> pd.DataFrame:
    """A cold refit with IRLS converged far below PyDESeq2's tolerance: the optimum to compare with."""
    dds = pd2.relabelled_dataset(adata, labels, DESIGN, CONTRAST, SETTINGS, 1, fitted)
    dds.beta_tol = 1e-13
    table = pd2.fit_and_test(dds, CONTRAST, {**SETTINGS, "lfc_shrink": False}, adata.var)
    return table.set_index("gene_id").loc[adata.var_names]


def assert_same_optimum(table: pd.DataFrame, reference: pd.DataFrame) -> None:
    for column, atol in CONVERGENCE_ATOL.items():
        np.testing.assert_array_equal(table[column].isna(), reference[column].isna(), err_msg=column)
        np.testing.assert_allclose(table[column], reference[column], rtol=0, atol=atol, err_msg=column)
    np.testing.assert_array_equal(table["padj"] < SETTINGS["alpha"], reference["padj"] < SETTINGS["alpha"])


def test_warm_started_refits_reach_the_cold_optimum(planted):
    """Refits started from the observed fit, or from another gene's values (a far start), end
    where a cold refit converged to 1e-13 does, within PyDESeq2's own convergence tolerance,
    and call the same genes; the cold refit is that close too."""
    from batched_deseq2.dds import WarmStarts

    adata, _, _ = planted
    fitted = pd2.label_independent_fit(adata, DESIGN, CONTRAST, SETTINGS)
    starts = pd2.observed_starts(adata, DESIGN, CONTRAST, SETTINGS, 1, fitted)
    columns = list(
        pd2.relabelled_dataset(adata, adata.obs["group"], DESIGN, CONTRAST, SETTINGS, 1, fitted)
        .obsm["design_matrix"]
        .columns
    )
    assert starts.coefficients.shape == (adata.n_vars, len(columns))
    # the observed fit is the primary fit: its group coefficient is the table's fold change
    primary = planted[2][0].set_index("gene_id").loc[adata.var_names]
    np.testing.assert_allclose(
        starts.coefficients[:, columns.index("group[T.TRD]")] / np.log(2),
        primary["log2FoldChange"],
        rtol=1e-10,
    )
    another_gene = WarmStarts(
        *(
            np.roll(values, 1, axis=0)
            for values in (starts.coefficients, starts.genewise_dispersions, starts.map_dispersions)
        )
    )
    labels = cal.permute_labels(adata.obs, "group", ["site", "sex"], 2, 5)
    for name in labels.columns:
        optimum = tightly_converged_refit(adata, labels[name], fitted)
        for start in (None, starts, another_gene):
            assert_same_optimum(
                pd2.refit_permuted(adata, labels[name], DESIGN, CONTRAST, SETTINGS, 1, fitted, start), optimum
            )


def test_null_statistics_layout(planted):
    adata, _, (_, null, _) = planted
    assert list(null.obs_names) == cal.permutation_ids(K)
    assert list(null.var_names) == list(adata.var_names)
    assert null.var["gene_symbol"].tolist() == adata.var["gene_symbol"].tolist()
    assert null.X.dtype == np.float64 and set(null.layers) == {"pvalue", "padj", "log2FoldChange"}
    assert null.uns["calibration"]["K"] == K and null.uns["calibration"]["strata"] == ["site", "sex"]
    # X is the Wald statistic of its p-value
    from scipy.stats import norm

    p = null.layers["pvalue"]
    finite = np.isfinite(p)
    np.testing.assert_allclose(2 * norm.sf(np.abs(null.X[finite])), p[finite], rtol=1e-6)


def test_qvalue_perm_recovers_planted_genes_with_fdr_control(planted):
    _, truth, (_, _, (calibrated, per_permutation, summary)) = planted
    calibrated = calibrated.set_index("gene_id")
    called = calibrated.index[calibrated["qvalue_perm"] < 0.05]
    false = ~truth.loc[called, "is_de"]
    fdp = false.mean()
    monte_carlo = 2 * np.sqrt(0.05 * 0.95 / len(called))
    assert len(called) >= 30
    assert fdp <= 0.05 + monte_carlo, (len(called), int(false.sum()))
    strong = truth.index[truth["true_log2FC"].abs() >= 0.5]
    assert np.isin(strong, called).mean() >= 0.4  # 0.56 with this seed
    values = summary.set_index("statistic")["value"]
    assert values["observed_degs"] > values["null_degs_p95"]
    assert values["pvalue_observed_degs"] == pytest.approx(1 / (K + 1))
    assert len(per_permutation) == K


@pytest.fixture(scope="module")
def null_cohort(simulation_inputs):
    # no group effect, with the simulator's gene-gene correlation (co-expression modules, broad factors)
    adata, _ = simulated(
        simulation_inputs,
        params=sim.SimulationParameters.null_cohort(n_samples=40, n_genes=600, seed=4, hazards=False),
    )
    return calibrated_run(adata, k=K)


def test_null_cohort_calls_nothing_by_qvalue_perm(null_cohort):
    _, _, (calibrated, per_permutation, summary) = null_cohort
    values = summary.set_index("statistic")["value"]
    assert (calibrated["qvalue_perm"] < 0.05).sum() == 0
    assert values["pvalue_observed_degs"] > 0.05
    assert 0.8 <= values["observed_lambda"] <= 1.25
    assert values["pi0"] >= 0.9


# ---------------------------------------------------------------- the rules on the toy run


def test_toy_run_calibration_outputs(toy_run):
    out = toy_run / "results" / "calibration" / "TRD_vs_responder"
    table = pd.read_csv(toy_run / "results/de/TRD_vs_responder/deseq2_results.tsv", sep="\t")
    calibrated = pd.read_csv(out / "calibrated_results.tsv", sep="\t")
    assert list(calibrated.columns) == list(table.columns) + ["pvalue_perm", "qvalue_perm"]
    assert calibrated["gene_id"].tolist() == table["gene_id"].tolist()
    null = ad.read_h5ad(out / "null_statistics.h5ad")
    labels = pd.read_csv(out / "permuted_labels.tsv", sep="\t", index_col=0)
    k = 30  # config/config.yaml
    assert null.n_obs == k and list(null.obs_names) == list(labels.columns) == cal.permutation_ids(k)
    assert set(null.var_names) == set(table["gene_id"])
    assert list(null.uns["calibration"]["strata"]) == ["site", "sex"]
    permutations = pd.read_csv(out / "permutations.tsv", sep="\t")
    assert permutations["permutation"].tolist() == list(null.obs_names)
    assert permutations["degs"].tolist() == [int((row < 0.05).sum()) for row in null.layers["padj"]]
    summary = pd.read_csv(out / "summary.tsv", sep="\t").set_index("statistic")["value"]
    assert int(summary["observed_degs"]) == int((table["padj"] < 0.05).sum())
    for figure in ("qq.png", "null_degs.png"):
        assert (out / figure).stat().st_size > 10_000


# ---------------------------------------------------------------- report


def summary_values(**changes) -> pd.Series:
    values = {
        "permutations": 30,
        "observed_degs": 369,
        "null_degs_median": 0.0,
        "null_degs_p95": 1.0,
        "frac_permutations_with_degs": 0.2,
        "pvalue_observed_degs": 1 / 31,
        "empirical_fdr": 0.06,
        "qvalue_perm_calls": 352,
    }
    return pd.Series({**values, **changes})


def test_calibration_verdicts():
    from trdpipe.report.sections import calibration as calibration_section

    assert calibration_section.calibration_verdict(summary_values(), 0.05) == (
        "The 369 genes called would not appear by chance: shuffled labels gave a median of 0 and at most "
        "1 calls in 95% of 30 permutations, and about 6% of the observed calls are expected to be false."
    )
    assert calibration_section.calibration_verdict(
        summary_values(observed_degs=2, pvalue_observed_degs=6 / 31, qvalue_perm_calls=0), 0.05
    ) == (
        "Chance alone could give these 2 calls: shuffled labels gave as many or more in 5 of 30 "
        "permutations, so read the gene list by qvalue_perm (0 genes) rather than by padj."
    )
    assert calibration_section.calibration_verdict(
        summary_values(observed_degs=0, pvalue_observed_degs=1.0), 0.05
    ) == (
        "No gene reached padj < 0.05, and shuffled labels gave at least one call in 20% of 30 "
        "permutations: there are no calls here that chance would have to explain."
    )


def test_toy_report_calibration_section(toy_run):
    from test_report import as_frame, parse_report
    from trdpipe.report.sections import calibration as calibration_section

    text, parser = parse_report(toy_run / "results/report/report.html")
    anchor = "calibration-TRD_vs_responder"
    assert anchor in parser.sections
    summary = pd.read_csv(toy_run / "results/calibration/TRD_vs_responder/summary.tsv", sep="\t")
    values = calibration_section.numeric_summary(summary)
    shown = as_frame(parser.tables[f"{anchor}-summary"]).set_index("statistic")["value"]
    assert shown["genes called, observed labels"] == str(int(values["observed_degs"]))
    assert shown["empirical FDR of the observed calls (SAM)"] == f"{values['empirical_fdr']:.3g}"
    assert shown["inflation lambda, observed labels"] == f"{values['observed_lambda']:.3g}"
    assert calibration_section.calibration_verdict(values, 0.05) in text
    for reference in ("Tusher VG", "Storey JD, Tibshirani R", "Genome Biology 23:79", "Subramanian A"):
        assert reference in text
