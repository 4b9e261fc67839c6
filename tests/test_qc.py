"""QC: metrics, sex check, MAD limits, PC-covariate association, covariate balance, MultiQC.

Unit tests use small hand-made data; the end-to-end tests read the session's toy run
(planted hazards in resources/toy/truth_hazards.tsv) and one extra run with `qc.action: exclude`.
"""

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import anndata as ad
import jinja2
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT, run_snakemake
from trdpipe.qc import figures as qc_figures
from trdpipe.qc import metrics as qc

CONTRAST = "TRD_vs_responder"
TRUTH = pd.read_csv(ROOT / "resources/toy/truth_hazards.tsv", sep="\t", index_col="sample_id")
TOY_SAMPLES = pd.read_csv(ROOT / "config/samples.tsv", sep="\t", index_col="sample_id")


def tiny_cohort(counts: np.ndarray, symbols: list[str], chromosomes: list[str], sex=None) -> ad.AnnData:
    n = counts.shape[0]
    obs = pd.DataFrame({"sex": sex if sex is not None else ["female"] * n}, index=[f"S{i}" for i in range(n)])
    var = pd.DataFrame(
        {"gene_symbol": symbols, "chromosome": chromosomes}, index=[f"G{i}" for i in range(len(symbols))]
    )
    return ad.AnnData(counts.astype(np.int64), obs=obs, var=var)


# --- unit tests ---------------------------------------------------------------------------------


def test_mad_limits_on_a_hand_made_vector():
    # median 3, |deviations| 2,1,0,1,97 -> MAD 1, robust SD 1.4826
    lower, upper, robust_sd = qc.mad_limits(np.array([1.0, 2, 3, 4, 100]), threshold=3)
    assert robust_sd == pytest.approx(1.4826)
    assert (lower, upper) == pytest.approx((3 - 3 * 1.4826, 3 + 3 * 1.4826))


def test_mad_limits_ignore_missing_values():
    lower, upper, _ = qc.mad_limits(np.array([np.nan, 1.0, 2, 3, 4, 100]), threshold=1)
    assert (lower, upper) == pytest.approx((3 - 1.4826, 3 + 1.4826))


def test_library_metrics_fractions_by_hand():
    counts = np.array([[10, 30, 60, 0], [50, 0, 25, 25]])
    adata = tiny_cohort(counts, ["COX1", "HBB", "ACTB", "HBA1"], ["MT", "11", "7", "16"])
    metrics = qc.library_metrics(adata, ["HBB", "HBA1", "HBZ"], n_top=1)
    assert metrics["library_size"].tolist() == [100, 100]
    assert metrics["detected_genes"].tolist() == [3, 3]
    assert metrics["pct_counts_mito"].tolist() == pytest.approx([10, 50])
    assert metrics["pct_counts_globin"].tolist() == pytest.approx([30, 25])
    assert metrics["pct_counts_top1"].tolist() == pytest.approx([60, 50])


def test_sex_inference_on_a_tiny_matrix():
    # Each sample has 1e6 counts, so a count is its CPM. Columns: XIST, RPS4Y1, DDX3Y, filler.
    counts = np.array(
        [
            [1023, 0, 0, 998977],  # female: XIST log2(1024) = 10, Y 0
            [0, 255, 63, 999682],  # male: XIST 0, Y mean(log2 256, log2 64) = 7
            [255, 255, 255, 999235],  # both expressed: score 0 -> ambiguous
        ]
    )
    adata = tiny_cohort(counts, ["XIST", "RPS4Y1", "DDX3Y", "GAPDH"], ["X", "Y", "Y", "12"])
    scores = qc.sex_scores(adata, ["XIST"], ["RPS4Y1", "DDX3Y", "UTY"])
    assert scores["xist_score"].tolist() == pytest.approx([10, 0, 8])
    assert scores["y_score"].tolist() == pytest.approx([0, 7, 8])
    assert scores["sex_score"].tolist() == pytest.approx([-10, 7, 0])
    assert qc.infer_sex(scores["sex_score"], margin=2).tolist() == ["female", "male", "ambiguous"]


def test_sex_cannot_be_inferred_without_the_genes():
    adata = tiny_cohort(np.array([[5, 5], [6, 4]]), ["ACTB", "GAPDH"], ["7", "12"])
    scores = qc.sex_scores(adata, ["XIST"], ["RPS4Y1"])
    assert qc.infer_sex(scores["sex_score"], margin=2).tolist() == ["unknown", "unknown"]


def test_recorded_sex_labels_are_normalised():
    labels = qc.normalise_sex_labels(pd.Series(["F", "male", " Female ", "unknown", None]))
    assert labels.tolist()[:3] == ["female", "male", "female"]
    assert labels.iloc[3:].isna().all()


def test_sex_check_legend_names_each_recorded_sex_once():
    scores = pd.DataFrame(
        {"xist_score": [5.0, 0.1, 4.8, 0.2], "y_score": [0.1, 6.0, 0.2, 5.5]}, index=list("abcd")
    )
    recorded = pd.Series(["F", "male", None, "unknown"], index=scores.index)
    fig = qc_figures.sex_check_plot(
        scores, recorded, pd.Series("", index=scores.index), {"female": ["XIST"], "male": ["RPS4Y1"]}
    )
    legend = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert legend == ["recorded female", "recorded male", "sex not recorded"]


def test_sex_flags_name_mismatch_and_ambiguous_calls():
    index = pd.Index(["a", "b", "c", "d"])
    recorded = pd.Series(["F", "male", "female", "unknown"], index=index)
    inferred = pd.Series(["male", "male", "ambiguous", "female"], index=index)
    score = pd.Series([6.5, 7.0, 0.4, -6.0], index=index)
    reasons = qc.sex_flags(recorded, inferred, score, margin=2)
    assert reasons["a"] == "sex_mismatch: recorded female, inferred male (score 6.50)"
    assert reasons["c"].startswith("sex_ambiguous:") and "score 0.40" in reasons["c"]
    assert reasons["b"] == "" and reasons["d"] == ""  # agrees; nothing recorded to compare


def test_outlier_flags_name_the_metric_and_the_limit():
    n = 9
    metrics = pd.DataFrame(
        {
            "library_size": [1e6, 1.1e6, 0.9e6, 1.05e6, 0.95e6, 1e6, 1.02e6, 0.98e6, 1e4],
            "detected_genes": [5000, 5010, 4990, 5005, 4995, 5000, 5002, 4998, 5001],
            "pct_counts_globin": [3, 3.3, 2.7, 3.1, 2.9, 3, 60, 3.2, 2.8],
            "pct_counts_mito": [2.0] * n,
            "pca_distance": [1, 2, 1.5, 1.2, 0.8, 1.1, 1.3, 0.9, 1.4],
        },
        index=[f"S{i}" for i in range(n)],
    )
    reasons, limits = qc.outlier_flags(metrics, threshold=5, min_relative_deviation=0.1)
    assert reasons[reasons != ""].index.tolist() == ["S6", "S8"]
    assert reasons["S8"].startswith("low_library_size: library size 1e+04 < limit ")
    assert reasons["S6"].startswith("high_globin: % counts in globin genes 60 > limit ")
    library = limits.set_index("flag").loc["low_library_size"]
    log_sizes = np.log10(metrics["library_size"])
    mad = np.median(np.abs(log_sizes - np.median(log_sizes)))
    assert library["limit"] == pytest.approx(10 ** (np.median(log_sizes) - 5 * 1.4826 * mad))
    # mito is constant: MAD 0, nothing beyond the median
    assert limits.set_index("flag").at["high_mito", "n_flagged"] == 0


def saturated_metrics(detected: list[float]) -> pd.DataFrame:
    n = len(detected)
    return pd.DataFrame(
        {
            "library_size": [1e6] * n,
            "detected_genes": detected,
            "pct_counts_globin": [3.0] * n,
            "pct_counts_mito": [2.0] * n,
            "pca_distance": [1.0] * n,
        },
        index=[f"S{i}" for i in range(n)],
    )


def test_a_saturated_metric_flags_only_real_outliers():
    """A pre-filtered matrix: every gene is detected in most samples (MAD 0). One gene fewer used to
    be flagged (limit = the median); the floor keeps limits 10% from the median."""
    rng = np.random.default_rng(3)
    counts = rng.poisson(200, (9, 2000)) + 1
    counts[6, 0] = 0  # one gene short: noise
    counts[8, :1000] = 0  # half the genes missing: a failed library
    adata = tiny_cohort(counts, [f"G{i}" for i in range(2000)], ["MT"] + ["1"] * 1999)
    metrics = qc.library_metrics(adata, globin_genes=["G1999"]).assign(pca_distance=1.0)
    assert metrics["detected_genes"].tolist() == [2000] * 6 + [1999, 2000, 1000]
    unfloored, _ = qc.outlier_flags(metrics, threshold=5, min_relative_deviation=0)
    assert "low_detected_genes" in unfloored["S6"]  # what happened without the floor
    reasons, limits = qc.outlier_flags(metrics, threshold=5, min_relative_deviation=0.1)
    detected = reasons.map(lambda r: [f for f in r.split("; ") if f.startswith("low_detected_genes")])
    assert detected[detected.str.len() > 0].to_dict() == {
        "S8": [
            "low_detected_genes: detected genes 1000 < limit 1818 (median - 10%, qc.min_relative_deviation, "
            "as 5 MAD is less)"
        ]
    }
    assert limits.set_index("flag").at["low_detected_genes", "limit"] == pytest.approx(2000 / 1.1)


def test_a_small_rna_assays_detected_flag_names_its_mirnas():
    metrics = saturated_metrics([1000, 2000, 4000, 8000, 3000, 5000, 2500, 6000, 10])
    reasons, _ = qc.outlier_flags(metrics, threshold=5, min_relative_deviation=0.1, features="miRNAs")
    assert reasons["S8"] == (
        "low_detected_genes: detected miRNAs 10 < limit 68.01 (median - 5 MAD on log10 scale)"
    )


def test_a_spread_metric_keeps_its_mad_limit_above_the_floor():
    metrics = saturated_metrics([1000, 2000, 4000, 8000, 3000, 5000, 2500, 6000, 10])
    reasons, _ = qc.outlier_flags(metrics, threshold=5, min_relative_deviation=0.1)
    assert reasons["S8"].endswith("(median - 5 MAD on log10 scale)")


def test_sex_is_called_from_the_y_genes_when_xist_is_absent():
    # 1e6 counts per sample: a count is its CPM. RPS4Y1 log2(CPM + 1): 7 (male), 0 (female), 2 (unclear)
    counts = np.array([[127, 999873], [0, 1000000], [3, 999997]])
    adata = tiny_cohort(counts, ["RPS4Y1", "GAPDH"], ["Y", "12"])
    scores = qc.sex_scores(adata, ["XIST"], ["RPS4Y1", "DDX3Y"])
    scores["sex_score"] = qc.one_sided_sex_score(scores, margin=2)
    assert scores["sex_score"].tolist() == pytest.approx([10, -4, 0])  # 2 x (Y score - margin)
    assert qc.infer_sex(scores["sex_score"], margin=2).tolist() == ["male", "female", "ambiguous"]
    genes = qc.sex_genes_used(adata.var["gene_symbol"], ["XIST"], ["RPS4Y1", "DDX3Y"])
    assert qc.sex_call_basis(genes) == "Y genes RPS4Y1 alone (no female gene in the matrix)"


def test_sex_is_called_from_xist_when_the_y_genes_are_absent():
    counts = np.array([[127, 999873], [0, 1000000]])
    adata = tiny_cohort(counts, ["XIST", "GAPDH"], ["X", "12"])
    scores = qc.sex_scores(adata, ["XIST"], ["RPS4Y1"])
    assert qc.infer_sex(qc.one_sided_sex_score(scores, margin=2), margin=2).tolist() == ["female", "male"]
    assert qc.sex_call_basis({"female": ["XIST"], "male": []}) == "XIST alone (no Y gene in the matrix)"


def test_a_sheet_with_only_the_group_column_gets_a_balance_table_and_a_log():
    """It used to crash QC with KeyError: 'pvalue'."""
    obs = pd.DataFrame({"group": ["TRD", "responder"] * 3}, index=[f"S{i}" for i in range(6)])
    balance = qc.balance_tables(obs, {"c": {"variable": "group", "test": "TRD", "reference": "responder"}})
    assert balance.drop(columns=["test", "test_statistic", "pvalue"]).to_dict("list") == {
        "grouping": ["group"],
        "covariate": ["n"],
        "level": [""],
        "statistic": ["count"],
        "TRD": [3],
        "responder": [3],
        "all": [6],
    }
    assert balance[["test", "test_statistic", "pvalue"]].isna().all(axis=None)
    metrics = pd.DataFrame({"flags": [""] * 6, "excluded": [False] * 6}, index=obs.index)
    qc.log_findings({"metrics": metrics, "limits": pd.DataFrame()}, balance)


def test_combine_flags_joins_non_empty_reasons():
    a = pd.Series(["x: 1", "", ""], index=list("abc"))
    b = pd.Series(["y: 2", "y: 3", ""], index=list("abc"))
    assert qc.combine_flags(a, b).tolist() == ["x: 1; y: 2", "y: 3", ""]


def test_pca_distance_from_the_median():
    scores = np.array([[0.0, 0, 9], [1, 1, 9], [3, 4, 9]])
    # median (1, 1); third PC ignored
    assert qc.pca_distance(scores, 2) == pytest.approx([np.sqrt(2), 0, np.sqrt(13)])


def test_pc_covariate_association_values():
    rng = np.random.default_rng(1)
    obs = pd.DataFrame({"site": ["a"] * 5 + ["b"] * 5, "age": rng.normal(40, 10, 10), "constant": ["x"] * 10})
    scores = np.column_stack([np.r_[np.zeros(5), np.ones(5)] + rng.normal(0, 0.1, 10), obs["age"] * 2 + 1])
    table = qc.pc_covariate_association(scores, np.array([0.6, 0.4]), obs).set_index(["pc", "covariate"])
    assert "constant" not in table.index.get_level_values("covariate")
    site = table.loc[("PC1", "site")]
    f, p = stats.f_oneway(scores[:5, 0], scores[5:, 0])
    assert (site["test"], site["statistic"], site["pvalue"]) == ("anova", pytest.approx(f), pytest.approx(p))
    # eta squared of two groups = squared point-biserial correlation
    assert site["r_squared"] == pytest.approx(np.corrcoef(scores[:, 0], obs["site"] == "b")[0, 1] ** 2)
    age = table.loc[("PC2", "age")]
    assert (age["test"], age["statistic"], age["r_squared"]) == (
        "pearson",
        pytest.approx(1),
        pytest.approx(1),
    )


def test_categorical_test_uses_fisher_for_small_two_by_two_tables():
    small = pd.DataFrame([[3, 1], [1, 4]])
    odds, p = stats.fisher_exact(small)
    assert qc.categorical_test(small) == ("fisher", pytest.approx(odds), pytest.approx(p))
    large = pd.DataFrame([[30, 20], [10, 25], [5, 9]])
    chi2, p, _, _ = stats.chi2_contingency(large)
    assert qc.categorical_test(large) == ("chi2", pytest.approx(chi2), pytest.approx(p))


def test_multiqc_table_has_a_yaml_header(tmp_path):
    table = pd.DataFrame({"library_size": [10, 20]}, index=pd.Index(["A", "B"], name="sample_id"))
    path = tmp_path / "x_mqc.tsv"
    qc.write_multiqc_table(table, path, "sec_id", "Section", "About it.")
    lines = path.read_text().splitlines()
    assert lines[:4] == [
        "# id: sec_id",
        "# section_name: Section",
        "# description: About it.",
        "# plot_type: table",
    ]
    assert lines[-3:] == ["sample_id\tlibrary_size", "A\t10", "B\t20"]


# --- toy run: planted hazards, confounding, balance -----------------------------------------------


@pytest.fixture(scope="module")
def toy_qc(toy_run) -> Path:
    return toy_run / "results" / "qc"


@pytest.fixture(scope="module")
def toy_metrics(toy_qc) -> pd.DataFrame:
    return pd.read_csv(toy_qc / "qc_metrics.tsv", sep="\t", index_col="sample_id", keep_default_na=False)


def test_exactly_the_planted_hazards_are_flagged_with_their_reason(toy_metrics):
    flagged = toy_metrics[toy_metrics["flags"] != ""]
    assert sorted(flagged.index) == sorted(TRUTH.index)
    for sample, hazard in TRUTH["hazard"].items():
        reasons = [r.split(":")[0] for r in flagged.at[sample, "flags"].split("; ")]
        assert hazard in reasons, (sample, flagged.at[sample, "flags"])
    swapped = TRUTH.index[TRUTH["hazard"] == "sex_mismatch"][0]
    assert TRUTH.at[swapped, "detail"] == "recorded sex female, expression male"
    assert "sex_mismatch: recorded female, inferred male" in toy_metrics.at[swapped, "flags"]
    # flag mode keeps every sample
    assert not (toy_metrics["excluded"].astype(str) == "True").any()


def test_every_other_sample_sex_is_inferred_correctly(toy_metrics):
    others = toy_metrics.index.difference(TRUTH.index[TRUTH["hazard"] == "sex_mismatch"])
    assert (toy_metrics.loc[others, "inferred_sex"] == TOY_SAMPLES.loc[others, "sex"]).all()


def test_globin_and_library_metrics_of_the_hazards(toy_metrics):
    globin = TRUTH.index[TRUTH["hazard"] == "high_globin"][0]
    tiny = TRUTH.index[TRUTH["hazard"] == "low_library_size"][0]
    median_globin = toy_metrics["pct_counts_globin"].median()
    assert toy_metrics.at[globin, "pct_counts_globin"] > 10 * median_globin
    # planted at x0.04 of its expected depth: far below a tenth of the median
    assert toy_metrics.at[tiny, "library_size"] < 0.1 * toy_metrics["library_size"].median()


def test_nothing_is_excluded_in_flag_mode(toy_qc):
    excluded = pd.read_csv(toy_qc / "excluded_samples.tsv", sep="\t")
    assert excluded.columns.tolist() == ["sample_id", "flags"] and excluded.empty


def test_pc_covariate_association_finds_the_site_effect(toy_qc):
    table = pd.read_csv(toy_qc / "pc_covariate_association.tsv", sep="\t")
    site = table[(table["covariate"] == "site") & table["pc"].isin(["PC1", "PC2", "PC3", "PC4", "PC5"])]
    assert (site["test"] == "anova").all()
    assert site["pvalue"].min() < 1e-4  # toy: 1.1e-5 on PC1
    # every sample-sheet column was tested against every PC
    assert set(table["covariate"]) == set(TOY_SAMPLES.columns)
    assert table["pc"].nunique() == 10


def test_covariate_balance_equals_independent_computation(toy_qc):
    table = pd.read_csv(toy_qc / "covariate_balance.tsv", sep="\t", keep_default_na=False, na_values=[""])
    table["level"] = table["level"].fillna("")
    rows = table.set_index(["covariate", "level", "statistic"])
    groups = TOY_SAMPLES.groupby("group")
    assert (table["grouping"] == "group").all()
    for level, size in groups.size().items():
        assert rows.at[("n", "", "count"), level] == size
    for covariate in ["age", "RIN", "neutrophil_fraction", "prs"]:
        trd, resp = (TOY_SAMPLES.loc[TOY_SAMPLES["group"] == g, covariate] for g in ["TRD", "responder"])
        assert rows.at[(covariate, "", "mean"), "TRD"] == pytest.approx(trd.mean(), rel=1e-5)
        assert rows.at[(covariate, "", "sd"), "responder"] == pytest.approx(resp.std(), rel=1e-5)
        assert rows.at[(covariate, "", "mean"), "all"] == pytest.approx(
            TOY_SAMPLES[covariate].mean(), rel=1e-5
        )
        welch = stats.ttest_ind(trd, resp, equal_var=False)
        assert rows.at[(covariate, "", "mean"), "pvalue"] == pytest.approx(welch.pvalue, rel=1e-4)
    for covariate in ["site", "sex"]:
        counts = pd.crosstab(TOY_SAMPLES[covariate], TOY_SAMPLES["group"])
        for level in counts.index:
            assert rows.at[(covariate, level, "count"), "TRD"] == counts.at[level, "TRD"]
            assert rows.at[(covariate, level, "count"), "responder"] == counts.at[level, "responder"]
        chi2, p, _, _ = stats.chi2_contingency(counts)
        assert rows.loc[(covariate, counts.index[0], "count"), "pvalue"] == pytest.approx(p, rel=1e-4)


def test_qc_figures_are_written(toy_qc):
    for name in [
        "pca",
        "scree",
        "pc_covariate_association",
        "sample_distances",
        "library_size",
        "detected_genes",
        "sex_check",
    ]:
        assert (toy_qc / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_multiqc_finds_the_custom_content(toy_qc, tmp_path):
    folder = tmp_path / "qc"
    folder.mkdir()
    for name in ["trd_qc_metrics_mqc.tsv", "trd_qc_flags_mqc.yaml"]:
        shutil.copy(toy_qc / name, folder / name)
    multiqc = Path(sys.executable).with_name("multiqc")
    subprocess.run(
        [str(multiqc), "--no-version-check", "--quiet", "--outdir", str(tmp_path / "out"), str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    data = tmp_path / "out" / "multiqc_data"
    metrics = pd.read_csv(data / "multiqc_trd_qc_metrics_table.txt", sep="\t", index_col="Sample")
    flags = pd.read_csv(data / "multiqc_trd_qc_flags_table.txt", sep="\t", index_col="Sample")
    assert len(metrics) == len(TOY_SAMPLES) and "pct_counts_globin" in metrics.columns
    assert sorted(flags.index[flags["n_flags"] > 0]) == sorted(TRUTH.index)


def test_de_writes_the_samples_it_used(toy_run):
    used = pd.read_csv(toy_run / f"results/de/{CONTRAST}/samples_used.tsv", sep="\t", index_col="sample_id")
    assert sorted(used.index) == sorted(TOY_SAMPLES.index)


def test_exclude_removes_the_flagged_samples_before_de(workflow_copy):
    run_snakemake(
        workflow_copy, f"results/de/{CONTRAST}/samples_used.tsv", "--config", "qc={action: exclude}"
    )
    excluded = pd.read_csv(workflow_copy / "results/qc/excluded_samples.tsv", sep="\t", index_col="sample_id")
    assert sorted(excluded.index) == sorted(TRUTH.index)
    for sample, hazard in TRUTH["hazard"].items():
        assert hazard + ":" in excluded.at[sample, "flags"]
    used = pd.read_csv(
        workflow_copy / f"results/de/{CONTRAST}/samples_used.tsv", sep="\t", index_col="sample_id"
    )
    assert len(used) == 45 and not used.index.isin(TRUTH.index).any()
    log = (workflow_copy / f"logs/deseq2/{CONTRAST}.log").read_text()
    assert "samples used (45)" in log
    summary = pd.read_csv(workflow_copy / "results/filter/filter_summary.tsv", sep="\t", index_col="step")
    assert summary.at["samples excluded by QC", "n"] == 3


def clustered_samples(seed: int = 4) -> tuple[np.ndarray, pd.DataFrame]:
    """Two planted clusters of samples (4 and 3) and one far outlier (s7), with annotations."""
    rng = np.random.default_rng(seed)
    vst = np.vstack([rng.normal(0, 1, (4, 30)), rng.normal(6, 1, (3, 30)), rng.normal(60, 1, (1, 30))])
    obs = pd.DataFrame(
        {"group": ["TRD", "responder"] * 4, "site": list("AABBAABB"), "sex": ["female"] * 8},
        index=[f"s{i}" for i in range(8)],
    )
    return vst, obs


def image_axes(fig, shape: tuple[int, ...]):
    return next(ax for ax in fig.axes if ax.images and np.asarray(ax.images[0].get_array()).shape == shape)


def test_distance_heatmap_shows_euclidean_distances_in_cluster_order():
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import pdist, squareform

    vst, obs = clustered_samples()
    fig = qc_figures.distance_heatmap(vst, obs, ["group", "site", "sex"], mad_threshold=5)
    heat = image_axes(fig, (8, 8))
    shown = np.asarray(heat.images[0].get_array())
    order = [int(t.get_text()[1:]) for t in heat.get_xticklabels()]
    assert order == leaves_list(linkage(pdist(vst), method="average")).tolist()
    np.testing.assert_allclose(shown, squareform(pdist(vst))[np.ix_(order, order)], atol=1e-9)
    # the two planted clusters are contiguous in the order
    for cluster in (range(4), range(4, 7)):
        positions = [order.index(i) for i in cluster]
        assert max(positions) - min(positions) == len(cluster) - 1
    # the dendrogram: one U per merge (7), its leaves under the columns in the same order
    tree = fig.axes[0]
    assert len(tree.collections[0].get_paths()) == 7
    # the annotation bars: one per column, samples in the heat map's order
    for column in ("group", "site", "sex"):
        bar = next(ax for ax in fig.axes if [t.get_text() for t in ax.get_yticklabels()] == [column])
        levels = sorted(obs[column].unique())
        codes = np.asarray(bar.images[0].get_array())[0]
        assert [levels[int(c)] for c in codes] == obs[column].iloc[order].tolist()


def test_distance_colour_scale_is_not_stretched_by_an_outlier():
    vst, obs = clustered_samples()
    fig = qc_figures.distance_heatmap(vst, obs, ["group"], mad_threshold=5)
    square = np.sqrt(((vst[:, None, :] - vst[None, :, :]) ** 2).sum(axis=2))
    between = square[~np.eye(8, dtype=bool)]
    median = np.median(between)
    low, high = image_axes(fig, (8, 8)).images[0].get_clim()
    assert low == pytest.approx(between.min())
    assert high == pytest.approx(median + 5 * 1.4826 * np.median(np.abs(between - median)))
    # the outlier's 14 distances (of the 56) lie above the top colour, every other one below it
    assert square[7, :7].min() > high > square[:7, :7].max()
    # without an outlier the scale ends at the largest distance
    fig = qc_figures.distance_heatmap(vst[:7], obs.iloc[:7], ["group"], mad_threshold=5)
    assert image_axes(fig, (7, 7)).images[0].get_clim()[1] == pytest.approx(square[:7, :7].max())


def test_counts_file_and_counts_column_are_bookkeeping_not_covariates():
    """With 8 samples, 8 file names were a categorical covariate of 8 levels: a balance row, PC
    associations, a PCA panel and a distance bar."""
    vst, obs = clustered_samples()
    obs["counts_file"] = [f"quant/{s}/quant.sf" for s in obs.index]
    obs["counts_column"] = [f"/bam/{s}.bam" for s in obs.index]
    scores = vst[:, :3]
    covariates = qc_figures.colour_covariates(obs)
    assert covariates == ["group", "site"]
    association = qc.pc_covariate_association(scores, np.array([0.5, 0.3, 0.2]), obs)
    assert sorted(association["covariate"].unique()) == ["group", "site"]
    balance = qc.balance_tables(obs, {"c": {"variable": "group", "test": "TRD", "reference": "responder"}})
    assert balance["covariate"].unique().tolist() == ["n", "site", "sex"]
    pca_titles = [
        ax.get_title()
        for ax in qc_figures.pca_plot(
            scores, np.array([0.5, 0.3, 0.2]), obs, covariates, obs["sex"] != "female"
        ).axes
    ]
    assert pca_titles == ["VST PCA by group", "VST PCA by site"]
    bars = [
        t.get_text()
        for ax in qc_figures.distance_heatmap(vst, obs, covariates, 5).axes
        for t in ax.get_yticklabels()
    ]
    assert "counts_file" not in bars and "counts_column" not in bars and {"group", "site"} <= set(bars)


def test_pca_marks_the_flagged_samples_of_qc_metrics():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 1, (6, 3))
    obs = pd.DataFrame({"group": list("ababab"), "site": list("xxyyxx")}, index=[f"s{i}" for i in range(6)])
    metrics = pd.DataFrame(
        {"flags": ["", "low_library_size: ...", "", "", "sex_mismatch: ...", ""]}, index=obs.index
    )
    fig = qc_figures.pca_plot(
        scores, np.array([0.5, 0.3, 0.2]), obs, ["group", "site"], metrics["flags"] != ""
    )
    for ax in fig.axes:
        marked = next(c for c in ax.collections if c.get_label() == "QC-flagged (2)")
        np.testing.assert_array_equal(marked.get_offsets(), scores[[1, 4], :2])
        assert "QC-flagged (2)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_library_size_bars_are_red_for_their_own_check_only():
    flags = pd.Series(
        [
            "low_library_size: library size 10 < limit 50 (median - 5 MAD)",
            "high_globin: % 40 > limit 20; low_library_size: library size 9 < limit 50",
            "sex_mismatch: recorded male, inferred female",
            "",
            "low_detected_genes: 3 < 5",
        ],
        index=[f"s{i}" for i in range(5)],
    )
    own = qc_figures.flagged_by(flags, "low_library_size")
    assert own.tolist() == [True, True, False, False, False]
    values = pd.Series([10.0, 9.0, 80.0, 90.0, 85.0], index=flags.index)
    fig = qc_figures.metric_bar_chart(
        values, own, (flags != "") & ~own, 50.0, "library size", "low_library_size"
    )
    ax = fig.axes[0]
    red = [tuple(np.round(bar.get_facecolor()[:3], 3)) == (0.753, 0.224, 0.169) for bar in ax.patches]
    assert red == [True, True, False, False, False]
    others = next(c for c in ax.collections)
    assert np.asarray(others.get_offsets())[:, 0].tolist() == [2, 4]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "flagged: low_library_size (2)",
        "flagged by another check (2)",
        "QC limit",
    ]


@pytest.mark.parametrize("features", ["genes", "miRNAs"])
def test_the_scree_plot_names_the_assays_features(features):
    fig = qc_figures.scree_plot(np.array([0.5, 0.3]), features)
    assert fig.axes[0].get_ylabel() == f"% variance (top variable {features})"


@pytest.mark.parametrize("name", ["detected_genes", "pca", "scree", "sample_distances"])
def test_a_qc_captions_words_follow_the_assay_and_nothing_else_does(name):
    """Captions shared by every assay's QC figures say genes for mRNA and miRNAs for small RNA."""
    caption = jinja2.Environment().from_string((ROOT / "workflow" / "report" / f"{name}.rst").read_text())
    config = {"qc": {"max_samples_labelled": 40, "n_top_genes": 500, "mad_threshold": 5}}
    mrna, mirna = (
        caption.render(snakemake=SimpleNamespace(params=SimpleNamespace(assay_type=kind), config=config))
        for kind in ("mrna", "small_rna")
    )
    assert "genes" in mrna.lower() and "miRNAs" not in mrna
    assert mrna.replace("Genes", "miRNAs").replace("genes", "miRNAs") == mirna
