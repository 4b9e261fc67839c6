"""camera with the inter-gene correlation estimated per set: against R limma's camera() on the toy,
its empirical Bayes pieces against planted truth, its calls on null cohorts with co-expressed genes
(simulated and a real whole-blood cohort with shuffled timepoints) beside limma's preset
correlation, and the planted pathways of the toy."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.special import polygamma
from scipy.stats import norm
from scipy.stats import t as t_distribution

from conftest import ROOT
from test_gsea_permutation import co_expressed_cohort
from trdpipe import simulate as sim
from trdpipe.enrichment import camera as cam
from trdpipe.io.genesets import read_gmt, restrict_to_universe
from trdpipe.model.filtering import expressed_genes
from trdpipe.model.vst import variance_stabilise

R_CAMERA = ROOT / "tests/data/r_camera"  # R limma 3.54.1 camera(); make_reference.R
TOY = ROOT / "resources/toy"
GO_BP = ROOT / "resources/genesets/go_bp.gmt.gz"
CURATED = ROOT / "resources/genesets/curated_trd.gmt"
TOY_DESIGN = "~ site + sex + age + group"
TOY_CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
LEMAY = ROOT / "tests/data/lemay2019_whole_blood"


def collection_sets(path, genes, min_size=10, max_size=500) -> dict[str, list[str]]:
    collection = restrict_to_universe("sets", read_gmt(path), genes, min_size, max_size)
    return {term: members for term, (_, members) in collection.sets.items()}


# ----------------------------------------------------------------------------- against R
def toy_log_cpm() -> tuple[pd.DataFrame, pd.DataFrame]:
    """make_reference.R's matrix: voom's log-CPM of the toy genes with a mean count of at least
    10, rows named by symbol; and the sample sheet in its columns' order."""
    counts = pd.read_csv(TOY / "counts.tsv.gz", sep="\t", index_col=0)
    counts = counts[counts.mean(axis=1) >= 10]
    symbols = pd.read_csv(TOY / "truth_genes.tsv", sep="\t", index_col=0)["gene_symbol"]
    log_cpm = np.log2((counts + 0.5) / (counts.sum() + 1) * 1e6).set_axis(symbols.loc[counts.index])
    samples = pd.read_csv(TOY / "samples.tsv", sep="\t", index_col=0).loc[counts.columns]
    return log_cpm, samples


@pytest.fixture(scope="module")
def toy_r_case():
    log_cpm, samples = toy_log_cpm()
    sets = {**collection_sets(GO_BP, log_cpm.index), **collection_sets(CURATED, log_cpm.index)}
    design, contrast = cam.design_and_contrast(samples, TOY_DESIGN, TOY_CONTRAST)
    reference = pd.read_csv(R_CAMERA / "camera.tsv", sep="\t", index_col="term")
    return log_cpm.to_numpy(), cam.gene_positions(log_cpm.index, sets), design, contrast, reference


def test_camera_with_estimated_correlation_equals_r_camera_on_the_toy(toy_r_case):
    """PValue to a relative 1e-6 (the reference keeps 8 significant digits), Direction exactly,
    the correlation to 1e-7, for all 3,094 sets."""
    expression, sets, design, contrast, reference = toy_r_case
    assert set(sets) == set(reference.index) and len(sets) == 3094
    ours = cam.camera(expression, sets, design, contrast).set_index("term").loc[reference.index]
    assert (ours["n_genes"] == reference["n_genes"]).all()
    np.testing.assert_allclose(ours["pvalue"], reference["pvalue"], rtol=1e-6)
    np.testing.assert_allclose(ours["correlation"], reference["correlation"], atol=1e-7)
    assert (ours["direction"] == reference["direction"].str.lower()).all()
    assert (reference["correlation"] < 0).any()  # sets with vif < 1 are in the comparison


def test_camera_with_the_preset_correlation_equals_r_camera_on_the_toy(toy_r_case):
    expression, sets, design, contrast, reference = toy_r_case
    ours = cam.camera(expression, sets, design, contrast, 0.01).set_index("term").loc[reference.index]
    np.testing.assert_allclose(ours["pvalue"], reference["pvalue_preset"], rtol=1e-6)
    assert (ours["direction"] == reference["direction_preset"].str.lower()).all()
    assert (ours["correlation"] == 0.01).all()


def test_a_contrast_of_cell_means_equals_the_treatment_coefficient(toy_r_case):
    """The contrast TRD - responder of a design without intercept (weights -1, 1) is the
    treatment coding's coefficient: the same camera, whatever the other columns."""
    expression, sets, design, contrast, _ = toy_r_case
    _, samples = toy_log_cpm()
    means = pd.get_dummies(samples["group"]).astype(float)[["responder", "TRD"]].to_numpy()
    cell_means = np.column_stack([means, design[:, 1:-1] * 3.0])  # nuisance columns rescaled too
    first = dict(list(sets.items())[:300])
    expected = cam.camera(expression, first, design, contrast)
    ours = cam.camera(expression, first, cell_means, np.r_[-1.0, 1.0, np.zeros(design.shape[1] - 2)])
    np.testing.assert_allclose(ours["pvalue"], expected["pvalue"], rtol=1e-9)
    np.testing.assert_allclose(ours["correlation"], expected["correlation"], rtol=1e-9)
    assert ours["direction"].tolist() == expected["direction"].tolist()


def test_a_design_that_is_not_full_rank_is_refused():
    design = np.column_stack([np.ones(6), [0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="^design matrix is not of full rank$"):
        cam.camera(np.zeros((5, 6)), {"S": np.arange(3)}, design, np.r_[0.0, 1.0, 0.0])


# ----------------------------------------------------------------------------- empirical Bayes
def test_trigamma_inverse_inverts_trigamma():
    for x in (1e-4, 0.05, 1.0, 30.0, 5e4):
        assert float(polygamma(1, cam.trigamma_inverse(x))) == pytest.approx(x, rel=1e-7)


def test_fit_f_dist_recovers_the_planted_prior():
    """Gene variances drawn from the model squeezeVar assumes: true variances s0^2 d0 / chi2(d0),
    sample variances sigma^2 chi2(d) / d. Prior scale 0.3, prior df 8, residual df 6."""
    rng = np.random.default_rng(5)
    true = 0.3 * 8 / rng.chisquare(8, 200_000)
    observed = true * rng.chisquare(6, 200_000) / 6
    scale, df_prior = cam.fit_f_dist(observed, 6)
    assert scale == pytest.approx(0.3, rel=0.02) and df_prior == pytest.approx(8, rel=0.05)
    posterior, df = cam.squeeze_var(observed, 6)
    assert df == df_prior
    np.testing.assert_allclose(posterior, (6 * observed + df_prior * scale) / (6 + df_prior))


def test_variances_that_spread_less_than_chance_get_infinite_prior_df():
    """Equal variances spread less than residual df 4 alone would make them: no prior spread is
    left, so the prior df is infinite and every posterior variance is their mean."""
    observed = np.array([2.0, 2.0, 2.1, 1.9, 2.0])
    posterior, df_prior = cam.squeeze_var(observed, 4)
    assert np.isinf(df_prior)
    np.testing.assert_allclose(posterior, 2.0)


def test_hill_z_scores_are_the_normal_quantiles_of_t():
    t = np.array([-8.0, -2.5, -0.3, 0.0, 1.0, 4.0])
    for df in (4.0, 30.0, 1e6):
        exact = norm.ppf(t_distribution.cdf(t, df))
        np.testing.assert_allclose(cam.zscore_t_hill(t, df), exact, atol=2e-3 if df == 4.0 else 1e-5)


# ----------------------------------------------------------------------------- null cohorts
def test_correlated_null_estimated_correlation_calls_no_set_and_the_preset_does():
    """Null cohorts whose 30 sets are co-expressed modules (tests/test_gsea_permutation.py): with the
    correlation estimated, a set at FDR < 0.05 in at most 1 of 10 cohorts; with limma's preset 0.01,
    sets in at least 9."""
    estimated, preset = [], []
    for seed in range(10):
        expression, _, sets, labels = co_expressed_cohort(np.random.default_rng(100 + seed))
        design = np.column_stack([np.ones(len(labels)), labels.astype(float)])
        positions = {term: np.array([int(g[1:]) for g in genes]) for term, genes in sets.items()}
        contrast = np.r_[0.0, 1.0]
        estimated.append(int((cam.camera(expression.T, positions, design, contrast)["fdr"] < 0.05).sum()))
        preset.append(int((cam.camera(expression.T, positions, design, contrast, 0.01)["fdr"] < 0.05).sum()))
    assert sum(n > 0 for n in estimated) <= 1, estimated
    assert sum(n > 0 for n in preset) >= 9, preset


def test_simulated_null_cohort_calls_almost_nothing_and_the_preset_calls_many():
    """The simulator's null cohort (co-expression modules on GO BP sets, broad factors, varying cell
    shares; no group effect) through the count-matrix entry point the power bench uses."""
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    collections = {"GO_BP": GO_BP, "curated_TRD": CURATED}
    params = sim.SimulationParameters.null_cohort(n_samples=40, n_genes=3000, hazards=False, seed=2)
    cohort = sim.simulate_cohort(annotation, sim.load_gene_sets(collections), params)
    counts = cohort.counts[cohort.counts.mean(axis=1) >= 10]
    symbols = cohort.truth_genes.set_index("gene_id").loc[counts.index, "gene_symbol"]
    counts = counts.set_axis(symbols).T
    sets = collection_sets(GO_BP, counts.columns)
    samples = cohort.samples.set_index("sample_id")
    estimated = cam.camera_from_counts(counts, samples, TOY_DESIGN, TOY_CONTRAST, sets)
    preset = cam.camera_from_counts(counts, samples, TOY_DESIGN, TOY_CONTRAST, sets, inter_gene_cor=0.01)
    assert len(estimated) > 500
    assert (estimated["fdr"] < 0.05).sum() <= 1
    assert (preset["fdr"] < 0.05).sum() >= 10


@pytest.fixture(scope="module")
def lemay_vst():
    """The real cohort's blind VST (genes kept by filterByExpr's rule for groups of 15), genes x
    samples, its sample sheet and its GO BP sets."""
    counts = pd.read_csv(LEMAY / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(LEMAY / "samples.tsv", sep="\t", index_col=0)
    counts = counts[samples.index].T
    counts = counts.loc[:, expressed_genes(counts.to_numpy(), 15)]
    adata = ad.AnnData(counts.to_numpy(), obs=samples, var=pd.DataFrame(index=counts.columns))
    expression = variance_stabilise(adata, {}, 1).T
    sets = cam.gene_positions(counts.columns, collection_sets(GO_BP, counts.columns))
    return expression, samples, sets


def test_real_cohort_with_timepoints_shuffled_within_subject_calls_almost_nothing(lemay_vst):
    """Lemay et al. 2019 (45 whole-blood samples, 5 subjects x 3 arms x 3 timepoints): timepoints
    shuffled within subject (arm and subject stay), 6hr vs Fast under ~ subject + arm + timepoint.
    With the estimated correlation at most one GO BP set at FDR < 0.05 over 5 shuffles; the preset
    0.01 calls dozens in some shuffle (85 and 36 of the 4,967 sets with these seeds)."""
    expression, samples, sets = lemay_vst
    contrast = {"variable": "timepoint", "test": "6hr", "reference": "Fast"}
    estimated, preset = [], []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shuffled = samples.copy()
        for rows in samples.groupby("subject").indices.values():
            shuffled.iloc[rows, shuffled.columns.get_loc("timepoint")] = rng.permutation(
                samples["timepoint"].to_numpy()[rows]
            )
        design, vector = cam.design_and_contrast(shuffled, "~ subject + arm + timepoint", contrast)
        estimated.append(int((cam.camera(expression, sets, design, vector)["fdr"] < 0.05).sum()))
        preset.append(int((cam.camera(expression, sets, design, vector, 0.01)["fdr"] < 0.05).sum()))
    assert len(sets) > 4000
    assert sum(estimated) <= 1, estimated
    assert max(preset) >= 20, preset


# ----------------------------------------------------------------------------- planted truth
def test_toy_planted_pathways_are_found():
    """The toy's planted pathways (truth_pathways.tsv) in the pipeline's matrix, the blind VST: the
    curated ones at FDR < 0.05 in their direction, the planted-null themes not; the planted GO BP
    set (32 co-expressed genes, correlation about 0.4) in its direction among the top 2% of GO BP."""
    counts = pd.read_csv(TOY / "counts.tsv.gz", sep="\t", index_col=0)
    counts = counts[counts.mean(axis=1) >= 10]
    symbols = pd.read_csv(TOY / "truth_genes.tsv", sep="\t", index_col=0)["gene_symbol"]
    counts = counts.set_axis(symbols.loc[counts.index]).T
    samples = pd.read_csv(TOY / "samples.tsv", sep="\t", index_col=0)
    truth = pd.read_csv(TOY / "truth_pathways.tsv", sep="\t").set_index("term")
    found = {}
    for path in (CURATED, GO_BP):
        sets = collection_sets(path, counts.columns)
        found |= (
            cam.camera_from_counts(counts, samples, TOY_DESIGN, TOY_CONTRAST, sets)
            .set_index("term")
            .to_dict("index")
        )
    for term in ("TRD_INFLAMMATION_INNATE_IMMUNITY", "TRD_NK_CYTOTOXIC"):
        assert found[term]["fdr"] < 0.05 and found[term]["direction"] == truth.loc[term, "direction"], term
    for term in truth.index[truth["direction"] == "none"]:
        assert found[term]["fdr"] >= 0.05, term
    go = pd.DataFrame(found).T.loc[lambda t: t.index.str.startswith("GO:")]
    assert found["GO:0002495"]["direction"] == truth.loc["GO:0002495", "direction"]
    assert (go["pvalue"] < found["GO:0002495"]["pvalue"]).mean() < 0.02


def test_camera_collections_tests_the_genes_and_sets_gsea_ranks(tmp_path):
    """The rule's table: the VST rows of the DE table's tested genes (a gene without a p-value and
    the weaker row of a duplicated symbol left out, as enrichment.tested_genes does), of the
    contrast's samples, each collection BH-adjusted on its own."""
    counts = pd.read_csv(TOY / "counts.tsv.gz", sep="\t", index_col=0)
    counts = counts[counts.mean(axis=1) >= 10].T
    samples = pd.read_csv(TOY / "samples.tsv", sep="\t", index_col=0)
    symbols = pd.read_csv(TOY / "truth_genes.tsv", sep="\t", index_col=0).loc[counts.columns, "gene_symbol"]
    vst = ad.AnnData(counts.to_numpy(), obs=samples.loc[counts.index], var=pd.DataFrame(index=counts.columns))
    vst.X = variance_stabilise(vst, {}, 1)
    de = pd.DataFrame(
        {
            "gene_id": counts.columns,
            "gene_symbol": symbols.to_numpy(),
            "baseMean": counts.mean().to_numpy(),
            "stat": 1.0,
            "pvalue": 0.5,
        }
    )
    de.loc[0, "pvalue"] = np.nan
    de.loc[1, ["gene_symbol", "baseMean"]] = [de.loc[2, "gene_symbol"], 0.0]  # a weaker copy of gene 2
    kept_samples = samples.index[:40]
    table = cam.camera_collections(
        de,
        vst,
        kept_samples,
        TOY_DESIGN,
        TOY_CONTRAST,
        {"curated_TRD": CURATED, "GO_BP": GO_BP},
        None,
        min_size=10,
        max_size=500,
    )
    assert table.columns.tolist() == cam.CAMERA_COLUMNS
    assert table["pvalue"].is_monotonic_increasing
    tested = de.drop(index=[0, 1])
    expression = pd.DataFrame(vst[kept_samples, tested["gene_id"]].X.T, index=tested["gene_symbol"])
    design, contrast = cam.design_and_contrast(samples.loc[kept_samples], TOY_DESIGN, TOY_CONTRAST)
    for name, path in (("curated_TRD", CURATED), ("GO_BP", GO_BP)):
        sets = cam.gene_positions(expression.index, collection_sets(path, expression.index))
        expected = cam.camera(expression.to_numpy(), sets, design, contrast).set_index("term")
        ours = table[table["collection"] == name].set_index("term").loc[expected.index]
        np.testing.assert_allclose(ours["pvalue"], expected["pvalue"], rtol=1e-12)
        np.testing.assert_allclose(ours["fdr"], expected["fdr"], rtol=1e-12)
    assert table.set_index("term").loc["TRD_NK_CYTOTOXIC", "name"] == read_gmt(CURATED)["TRD_NK_CYTOTOXIC"][0]


# ----------------------------------------------------------------------------- the report
def test_report_adds_camera_counts_and_top_sets_to_the_enrichment_section():
    from trdpipe.report.sections import enrichment as enrichment_section

    table = pd.DataFrame(
        {
            "collection": ["curated_TRD", "GO_BP", "curated_TRD", "GO_BP", "curated_TRD"],
            "term": [
                "TRD_NK_CYTOTOXIC",
                "GO:1",
                "TRD_INFLAMMATION_INNATE_IMMUNITY",
                "GO:2",
                "TRD_CIRCADIAN_CLOCK",
            ],
            "name": ["NK", "a", "inflammation", "b", "clock"],
            "n_genes": [28, 40, 27, 12, 20],
            "correlation": [0.18, 0.05, 0.21, -0.01, 0.03],
            "direction": ["down", "up", "up", "down", "up"],
            "pvalue": [2.3e-5, 0.004, 3.1e-4, 0.2, 0.62],
            "fdr": [1.4e-4, 0.3, 9.4e-4, 0.6, 0.91],
        }
    )
    section = {"anchor": "enrichment-TRD", "findings": "GSEA ...", "collections": ["dot plots"]}
    enrichment_section.add_camera(section, table, {"ora_padj": 0.05, "top_terms": 2})
    assert section["findings"] == (
        "GSEA ... camera, each set's inter-gene correlation estimated from the residuals: "
        "GO_BP: 0 of 2 sets at FDR < 0.05 (0 up, 0 down); "
        "curated_TRD: 2 of 3 sets at FDR < 0.05 (1 up, 1 down)."
    )
    dots, go, curated = section["collections"]
    assert dots == "dot plots"
    assert curated["title"] == (
        "camera, curated_TRD: top 2 sets by p-value (inter-gene correlation estimated per set)"
    )
    assert curated["id"] == "enrichment-TRD-camera-curated_TRD"
    assert curated["table"]["rows"] == [
        ["TRD_NK_CYTOTOXIC", "NK", "28", "0.18", "down", "2.3e-05", "0.00014"],
        ["TRD_INFLAMMATION_INNATE_IMMUNITY", "inflammation", "27", "0.21", "up", "0.00031", "0.00094"],
    ]
    assert [row[0] for row in go["table"]["rows"]] == ["GO:1", "GO:2"]
