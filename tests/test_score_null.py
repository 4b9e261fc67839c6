"""The pathway tests' label-permutation null: the score statistic of the contrast under the model
without it, against the NB likelihood computed independently, against the exact Wald statistic
on the toy cohort, the calibration's labellings, and the pathway answers it gives."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.special import gammaln
from scipy.stats import spearmanr

from conftest import ROOT
from test_camera import GO_BP, LEMAY, collection_sets
from test_gsea_permutation import COLLECTIONS, CONTRAST, DESIGN, SETTINGS, cohort_anndata, deseq2_null
from trdpipe import simulate as sim
from trdpipe.calibration.permutation import permute_labels
from trdpipe.calibration.score_null import score_null, score_statistics
from trdpipe.checks.config import check_config
from trdpipe.enrichment import analysis as enr
from trdpipe.enrichment import phenotype_permutation as perm
from trdpipe.enrichment.camera import camera_from_counts
from trdpipe.model.deseq2 import run_deseq2
from trdpipe.model.engines.pydeseq2 import nb_null_fit
from trdpipe.model.filtering import expressed_genes
from trdpipe.report.sections.key_findings import contrast_pathway_verdict

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def nb_loglik(y: np.ndarray, mu: np.ndarray, alpha: float) -> float:
    """Negative binomial log-likelihood (mean mu, variance mu + alpha mu^2)."""
    r = 1 / alpha
    return float(
        np.sum(
            gammaln(y + r)
            - gammaln(r)
            - gammaln(y + 1)
            + r * np.log(r / (r + mu))
            + y * np.log(mu / (r + mu))
        )
    )


def test_score_statistic_is_the_nb_score_over_its_efficient_information():
    """U is the derivative of the NB log-likelihood in the contrast's coefficient at 0 (by finite
    differences); V is 1 over the contrast's element of the inverse Fisher information of the
    model with it, both computed here without the projection the module uses."""
    rng = np.random.default_rng(3)
    n, genes = 30, 4
    z = np.column_stack([np.ones(n), rng.integers(0, 2, n), rng.standard_normal(n)])
    x = (np.arange(n) < 14).astype(float)
    mu = np.exp(z @ rng.normal([3, 0.3, 0.2], 0.1, (genes, 3)).T)
    alpha = np.array([0.05, 0.1, 0.3, 1.0])
    y = rng.negative_binomial(1 / alpha, 1 / (1 + alpha * mu))
    stat = score_statistics(np.column_stack([x, 1 - x]), nb_null_fit(y.astype(float), mu, alpha, z))
    h = 1e-6
    for g in range(genes):
        lik = [nb_loglik(y[:, g], mu[:, g] * np.exp(b * x), alpha[g]) for b in (-h, h)]
        u = (lik[1] - lik[0]) / (2 * h)
        full = np.column_stack([x, z])
        info = full.T @ (full * (mu[:, g] / (1 + alpha[g] * mu[:, g]))[:, None])
        v = 1 / np.linalg.inv(info)[0, 0]
        assert stat[0, g] == pytest.approx(u / np.sqrt(v), rel=1e-5)


def test_a_gene_without_counts_gets_no_statistic_and_the_others_theirs():
    rng = np.random.default_rng(4)
    z = np.column_stack([np.ones(12), rng.standard_normal(12)])
    x = np.column_stack([np.arange(12) < 6, np.arange(12) % 2 == 0])
    mu = np.column_stack([np.full(12, 20.0), np.zeros(12)])
    counts = np.column_stack([rng.poisson(20, 12), np.zeros(12)]).astype(float)
    stat = score_statistics(x, nb_null_fit(counts, mu, np.array([0.1, 0.1]), z))
    alone = score_statistics(x, nb_null_fit(counts[:, :1], mu[:, :1], np.array([0.1]), z))
    assert np.isnan(stat[:, 1]).all() and stat[:, 0] == pytest.approx(alone[:, 0])


def toy_cohort() -> ad.AnnData:
    """The bundled toy cohort, genes kept by the toy config's expression filter."""
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(ROOT / "config/samples.tsv", sep="\t", index_col=0)
    counts = counts[samples.index]
    kept = expressed_genes(counts.T.to_numpy(), int(samples["group"].value_counts().min()))
    counts = counts[kept]
    return ad.AnnData(
        counts.T.to_numpy(), obs=samples, var=pd.DataFrame({"gene_symbol": counts.index}, index=counts.index)
    )


def test_score_statistic_ranks_the_toy_genes_as_the_wald_statistic():
    """On the toy cohort (48 samples, ~6,000 genes above the filter) the score statistic of the
    observed labels has a rank correlation of 0.9998 with DESeq2's Wald statistic; its null over
    the permutations has the Wald statistic's scale (standard deviation 1)."""
    adata = toy_cohort()
    null = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 200, 1)
    wald = run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1).set_index("gene_id")["stat"]
    tested = wald.notna()
    score = null.var["observed_statistic"]
    assert spearmanr(wald[tested], score[wald.index[tested]]).statistic >= 0.999
    assert np.std(null.X) == pytest.approx(1.0, abs=0.03)


def test_permutations_are_the_calibrations_labellings():
    """Permutation j's statistic is that of the calibration's labelling j (same seed and strata)."""
    adata = toy_cohort()[:, :300].copy()
    null = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 200, 7)
    labels = permute_labels(adata.obs, "group", ["site", "sex"], 200, 7)
    assert list(null.obs_names) == list(labels.columns)
    one = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 200, 7)
    assert np.array_equal(one.X, null.X)  # same seed, same null
    by_hand = adata.copy()
    by_hand.obs["group"] = labels["perm_0005"]
    relabelled = score_null(by_hand, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 200, 7)
    assert relabelled.var["observed_statistic"].to_numpy() == pytest.approx(null.X[4], abs=1e-5)


def enrichment_with(observed: pd.DataFrame, null: ad.AnnData):
    return enr.enrichment(
        observed,
        COLLECTIONS,
        None,
        alpha=0.05,
        min_size=10,
        max_size=500,
        permutations=200,
        seed=1,
        null=pd.DataFrame(np.asarray(null.X, dtype=float).T, index=null.var_names),
        null_observed=null.var.get("observed_statistic"),
    )


def test_fast_null_calls_the_planted_pathways_as_the_exact_refits_rank_them():
    """The cohort of test_deseq2_refits_rank_the_planted_pathways_first: its 30 exact refits put
    the two planted curated sets first; the fast null's 1,000 permutations call exactly those
    two among the curated sets, with the planted signs, and not the null themes."""
    adata = cohort_anndata(sim.SimulationParameters(n_samples=40, n_genes=1000, hazards=False, seed=3))
    observed, exact = deseq2_null(adata, k=30, seed=1)
    fast = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 1000, 1)
    planted = {term: np.sign(shift) for _, term, shift in sim.DEFAULT_PATHWAYS}
    by_exact = enrichment_with(observed, exact)[0]
    by_fast = enrichment_with(observed, fast)[0]
    curated_exact = by_exact[by_exact["collection"] == "curated_TRD"].set_index("term")
    curated = by_fast[by_fast["collection"] == "curated_TRD"].set_index("term")
    first_two = curated_exact.assign(s=-curated_exact["NES_perm"].abs()).sort_values(["pvalue_perm", "s"])
    called = set(curated.index[curated["fdr_perm"] < 0.05])
    assert called == set(first_two.index[:2]) == {"TRD_INFLAMMATION_INNATE_IMMUNITY", "TRD_NK_CYTOTOXIC"}
    for term in called:
        assert np.sign(curated.loc[term, "NES_perm"]) == planted[term], term
    for _, term in sim.DEFAULT_NULL_THEMES:
        assert curated.loc[term, "fdr_perm"] >= 0.05, term
    go = by_fast[by_fast["collection"] == "GO_BP"].set_index("term")
    assert np.sign(go.loc["GO:0002495", "NES_perm"]) == -1


def test_fast_null_calls_no_set_on_the_simulators_correlated_null_cohort():
    """The cohort of test_deseq2_null_cohort_gene_permutation_overcalls_and_fdr_perm_does_not
    (GO BP modules sharing latent factors, no group effect), at the default K = 1,000: gene
    permutation calls sets, label permutation and camera none, and the key findings' pathway
    verdict says so in words."""
    adata = cohort_anndata(
        sim.SimulationParameters.null_cohort(n_samples=40, n_genes=1000, hazards=False, seed=1)
    )
    observed = run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1)
    null = score_null(adata, DESIGN, CONTRAST, SETTINGS, ["site", "sex"], 1000, 1)
    gsea, _, _, collections = enrichment_with(observed, null)
    n_gene = int((gsea["padj"] < 0.05).sum())
    assert n_gene >= 10  # gene permutations over-call co-expressed sets
    assert (gsea["fdr_perm"] < 0.05).sum() == 0
    # camera on the same sets agrees, and the key findings say why gene permutation is not believed
    counts = pd.DataFrame(adata.X, index=adata.obs_names, columns=adata.var["gene_symbol"].to_numpy())
    counts = counts.loc[:, ~counts.columns.duplicated()]
    sets = {t: genes for c in collections.values() for t, (_, genes) in c.sets.items()}
    camera = camera_from_counts(counts, adata.obs, DESIGN, CONTRAST, sets)
    assert (camera["fdr"] < 0.05).sum() == 0
    assert contrast_pathway_verdict(gsea, camera, 0.05) == (
        "No pathway changed more than random splits of these samples change it (0 sets at "
        f"label-permutation FDR < 0.05; camera agrees). If genes were independent, {n_gene} sets would "
        "pass, but genes of one pathway rise and fall together between people, and with shuffled labels "
        "that assumption calls hundreds of sets on real data."
    )


def test_real_cohort_with_timepoints_swapped_within_subject_calls_almost_no_set():
    """Lemay et al. 2019 (whole blood, tests/data/lemay2019_whole_blood): 6hr vs Fast, 30 samples,
    a pair per subject and arm, under ~ subject + arm + timepoint. Each permuted labelling swaps
    timepoints within some pairs, a real null: taken as the observed one (the others as its
    null), at most one of five such labellings calls any of the ~5,000 GO BP sets at
    fdr_perm < 0.05, as a test at the 5% level would (two or more of five: chance 2%)."""
    counts = pd.read_csv(LEMAY / "counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(LEMAY / "samples.tsv", sep="\t", index_col=0)
    samples = samples[samples["timepoint"].isin(["6hr", "Fast"])]
    counts = counts[samples.index].T
    counts = counts.loc[:, expressed_genes(counts.to_numpy(), 15)]
    adata = ad.AnnData(
        counts.to_numpy(),
        obs=samples,
        var=pd.DataFrame({"gene_symbol": counts.columns}, index=counts.columns),
    )
    contrast = {"variable": "timepoint", "test": "6hr", "reference": "Fast"}
    null = score_null(adata, "~ subject + arm + timepoint", contrast, SETTINGS, ["subject", "arm"], 200, 1)
    sets = collection_sets(GO_BP, counts.columns)
    membership = perm.Membership.of(sets, counts.columns)
    rankings = np.column_stack([null.var["observed_statistic"], null.X.T]).astype(float)
    scores = perm.enrichment_scores(perm.null_rankings(rankings), membership)
    calls = [
        int(
            (
                perm.gsea_columns(membership.terms, scores[:, j], np.delete(scores, j, axis=1))["fdr_perm"]
                < 0.05
            ).sum()
        )
        for j in range(1, 6)
    ]
    assert len(sets) > 4000
    assert sum(c > 0 for c in calls) <= 1, calls


@pytest.mark.parametrize("k", [150, 6000])
def test_pathway_permutations_outside_their_range_stop_at_the_config_check(k):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    config["enrichment"]["label_permutations"] = k
    with pytest.raises(ValueError) as err:
        check_config(config, SCHEMA)
    bound = "less than the minimum of 200" if k < 200 else "greater than the maximum of 5000"
    assert str(err.value) == (
        f"invalid configuration:\n  config key 'enrichment.label_permutations': {k} is {bound}."
    )


@pytest.mark.e2e
def test_toy_run_calls_the_planted_curated_sets_by_the_pathway_null(toy_run):
    """The toy run's gsea.tsv: the two planted curated sets at fdr_perm < 0.05 with their planted
    sign, the planted-null themes not; in each collection fdr_perm is positive, never below
    pvalue_perm, and does not rise with |NES_perm|."""
    gsea = pd.read_csv(toy_run / "results/enrichment/TRD_vs_responder/gsea.tsv", sep="\t")
    truth = pd.read_csv(toy_run / "resources/toy/truth_pathways.tsv", sep="\t").set_index("term")
    curated = gsea[gsea["collection"] == "curated_TRD"].set_index("term")
    called = curated[curated["fdr_perm"] < 0.05]
    assert set(called.index) == {"TRD_INFLAMMATION_INNATE_IMMUNITY", "TRD_NK_CYTOTOXIC"}
    for term, row in called.iterrows():
        assert np.sign(row["NES_perm"]) == (1 if truth.loc[term, "direction"] == "up" else -1), term
    for _, terms in gsea.groupby("collection"):
        terms = terms.dropna(subset=["fdr_perm"]).sort_values("NES_perm", key=np.abs)
        assert (np.diff(terms["fdr_perm"]) <= 0).all()
        assert (terms["fdr_perm"] > 0).all() and (terms["fdr_perm"] >= terms["pvalue_perm"]).all()
