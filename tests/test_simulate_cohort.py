import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from trdpipe import simulate as sim
from trdpipe.resources.mirna import read_mirna_annotation
from trdpipe.simulate_layers import read_candidates

COLLECTIONS = {
    "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
    "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
}


@pytest.fixture(scope="module")
def inputs():
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    return annotation, sim.load_gene_sets(COLLECTIONS)


@pytest.fixture(scope="module")
def toy(inputs):
    return sim.simulate_cohort(
        *inputs,
        None,
        read_mirna_annotation(ROOT / "resources/annotation/mirna.tsv.gz"),
        read_candidates(ROOT / "resources/genotypes/candidate_variants.tsv"),
    )


def test_bundled_toy_cohort_is_regenerated_byte_for_byte(toy):
    files = sim.cohort_files(toy)
    # every layer: mRNA, small RNA, genotypes (the VCF and its index too)
    assert {"mirna_counts.tsv.gz", "truth_mirna.tsv", "mirna_targets.gmt", "genotypes.vcf.gz"} <= set(files)
    assert {"genotypes.vcf.gz.tbi", "truth_genotypes.tsv"} <= set(files)
    for name, payload in files.items():
        assert (ROOT / "resources/toy" / name).read_bytes() == payload, name
    assert (ROOT / "config/samples.tsv").read_bytes() == (ROOT / "resources/toy/samples.tsv").read_bytes()


def test_sample_sheet_design(toy):
    s = toy.samples
    assert len(s) == 48 and s["sample_id"].is_unique
    assert (s["group"].value_counts() == 24).all()
    sites = s["site"].value_counts()
    assert len(sites) == 3 and sites.nunique() == 3  # three sites of unequal size
    trd_share = s.groupby("site")["group"].apply(lambda g: (g == "TRD").mean())
    assert trd_share.max() - trd_share.min() > 0.2  # site partly confounded with group
    assert 0.5 <= (s["sex"] == "female").mean() <= 0.8
    assert s["age"].between(18, 70).all()
    means = s.groupby("group")[["age", "bmi"]].mean()
    assert means.loc["TRD", "age"] > means.loc["responder", "age"] + 2
    assert means.loc["TRD", "bmi"] > means.loc["responder", "bmi"]


def test_genes_are_real_annotated_genes_with_markers(toy, inputs):
    annotation, _ = inputs
    genes = toy.truth_genes
    assert len(genes) == 6000
    assert set(genes["gene_id"]) <= set(annotation["gene_id"])
    required = (
        sim.SEX_GENES_FEMALE + sim.SEX_GENES_MALE + ["HBA1", "HBA2", "HBB"] + list(sim.LITERATURE_EFFECTS)
    )
    required += [gene for markers in sim.CELL_MARKERS.values() for gene in markers]
    assert set(required) <= set(genes["gene_symbol"])
    assert toy.counts.index.equals(pd.Index(genes["gene_id"]))


def test_truth_effects(toy):
    truth = toy.truth_genes.set_index("gene_symbol")
    assert truth["is_de"].mean() == pytest.approx(0.10, abs=0.01)
    for symbol, effect in sim.LITERATURE_EFFECTS.items():
        assert truth.loc[symbol, "true_log2FC"] == effect
    random_de = toy.truth_genes[toy.truth_genes["source"] == "random"]["true_log2FC"].abs()
    assert random_de.between(0.25, 1.0).all() and random_de.median() < 0.55  # mostly small
    classes = toy.truth_genes.groupby("class")["is_de"]
    assert classes.all()[["regulated", "composition"]].all() and not classes.any()["null"]
    composition = toy.truth_genes[toy.truth_genes["class"] == "composition"]
    assert set(composition["cell_type"]) == set(sim.DEFAULT_CELL_SHIFTS)


def test_planted_pathways_shift_their_members(toy, inputs):
    _, gene_sets = inputs
    truth = toy.truth_genes.set_index("gene_symbol")
    for collection, term, shift in sim.DEFAULT_PATHWAYS:
        members = truth.index.intersection(gene_sets[collection][term])
        planted = truth.loc[members]
        planted = planted[planted["source"].str.startswith("pathway")]
        assert len(planted) >= 10
        assert np.sign(planted["true_log2FC"]).eq(np.sign(shift)).all()
    for collection, term in sim.DEFAULT_NULL_THEMES:
        members = truth.loc[truth.index.intersection(gene_sets[collection][term])]
        assert (members["source"].isin(["none", "literature"])).all()


def test_counts_follow_sex_and_hazards(toy):
    counts = toy.counts.set_axis(toy.truth_genes["gene_symbol"].to_numpy(), axis=0)
    hazards = toy.truth_hazards.set_index("hazard")["sample_id"]
    recorded = toy.samples.set_index("sample_id")["sex"]
    expressed_female = counts.loc["XIST"] > counts.loc["RPS4Y1"]
    mismatched = expressed_female.index[expressed_female != (recorded == "female")]
    assert list(mismatched) == [hazards["sex_mismatch"]]
    library = counts.sum()
    assert library.idxmin() == hazards["low_library_size"] and library.min() < 0.2 * library.median()
    globin = counts.loc[["HBA1", "HBA2", "HBB"]].sum() / library
    assert globin.idxmax() == hazards["high_globin"] and globin.max() > 5 * globin.median()


def test_negative_binomial_variance_matches_dispersion_trend(inputs):
    """Without group, site or hazards, variance over mean^2 approaches a1/mean + a0."""
    params = sim.SimulationParameters(
        n_samples=400, n_genes=300, hazards=False, frac_de=0.0, dispersion_scatter_sd=0.0
    )
    rng = np.random.default_rng(0)
    mu = np.full(400, 200.0)
    alpha = sim.gene_dispersions(mu, params, rng)
    assert alpha == pytest.approx(params.dispersion_a1 / 200 + params.dispersion_a0)
    shape = 1 / alpha[:, None]
    draws = rng.poisson(rng.gamma(shape, np.full((400, 2000), 200.0) / shape))
    observed = (draws.var(axis=1, ddof=1) - draws.mean(axis=1)) / draws.mean(axis=1) ** 2
    assert np.median(observed) == pytest.approx(alpha[0], rel=0.05)


def test_split_counts_is_exact():
    assert sim._split_counts(48, (0.5, 0.3, 0.2)).tolist() == [
        24,
        14,
        10,
    ]  # 14.4 and 9.6: the spare sample goes to the larger remainder
    assert sim._split_counts(7, (1, 1)).sum() == 7


def test_same_seed_same_cohort_other_seed_differs(inputs):
    small = sim.SimulationParameters(n_samples=12, n_genes=300)
    a = sim.simulate_cohort(*inputs, small)
    b = sim.simulate_cohort(*inputs, small)
    c = sim.simulate_cohort(*inputs, sim.SimulationParameters(n_samples=12, n_genes=300, seed=7))
    assert a.counts.equals(b.counts)
    assert not a.counts.equals(c.counts)


def test_cell_shares_are_proportions_shifted_by_group(toy):
    shares = toy.truth_cells.set_index("sample_id")
    assert list(shares.columns) == list(sim.CELL_MEAN_SHARES)
    np.testing.assert_allclose(shares.sum(axis=1), 1, atol=1e-4)
    group = toy.samples.set_index("sample_id").loc[shares.index, "group"]
    log2_ratio = np.log2(shares[group == "TRD"].mean() / shares[group == "responder"].mean())
    for cell, shift in sim.DEFAULT_CELL_SHIFTS.items():
        assert np.sign(log2_ratio[cell]) == np.sign(shift) and abs(log2_ratio[cell]) > 0.4, cell
    assert abs(log2_ratio["platelets"]) < 0.2  # no planted shift, only renormalisation
    measured = toy.samples.set_index("sample_id").loc[shares.index, "neutrophil_fraction"]
    assert np.corrcoef(measured, shares["neutrophils"])[0, 1] > 0.8


def test_marker_genes_follow_their_cell_share(toy):
    counts = toy.counts.set_axis(toy.truth_genes["gene_symbol"].to_numpy(), axis=0)
    log_expression = np.log2(counts / counts.sum() * 1e6 + 1)
    shares = toy.truth_cells.set_index("sample_id").loc[counts.columns]
    for cell in ["NK", "B_cells", "monocytes", "CD8_T"]:
        score = log_expression.loc[sim.CELL_MARKERS[cell]].mean()
        assert np.corrcoef(score, np.log2(shares[cell]))[0, 1] > 0.7, cell


def test_the_null_cohort_has_no_group_effect(inputs):
    params = sim.SimulationParameters.null_cohort(n_samples=60, n_genes=1500, hazards=False)
    null = sim.simulate_cohort(*inputs, params)
    assert not null.truth_genes["is_de"].any() and (null.truth_genes["true_log2FC"] == 0).all()
    shares = null.truth_cells.set_index("sample_id")
    group = null.samples.set_index("sample_id").loc[shares.index, "group"]
    assert np.abs(np.log2(shares[group == "TRD"].mean() / shares[group == "responder"].mean())).max() < 0.2


def test_genes_of_a_module_are_correlated(inputs):
    annotation, gene_sets = inputs
    params = sim.SimulationParameters.null_cohort(n_samples=200, n_genes=2000, n_broad_factors=0)
    genes = sim.choose_genes(annotation, gene_sets, params, np.random.default_rng(0))
    effects = sim.coexpression_effects(genes, params.n_samples, gene_sets, params, np.random.default_rng(1))
    in_module = effects.std(axis=1) > 0
    assert 0.05 < in_module.mean() < 0.7 and not in_module[sim.fixed_genes(genes)].any()
    correlation = np.corrcoef(effects[in_module])
    # members of one module share a factor: many pairs correlate strongly, the rest not at all
    off_diagonal = correlation[np.triu_indices_from(correlation, 1)]
    assert (off_diagonal > 0.9).mean() > 0.01 and np.median(np.abs(off_diagonal)) < 0.2


def test_signature_strength_makes_patients_overlap(inputs):
    params = sim.SimulationParameters(n_samples=400, n_genes=300)
    samples = sim.simulate_samples(params, np.random.default_rng(0))
    strength = sim.signature_strength(samples, params.signature_sd, np.random.default_rng(0))
    trd = (samples["group"] == "TRD").to_numpy()
    assert strength[trd].mean() - strength[~trd].mean() == pytest.approx(1, abs=0.15)
    assert strength[trd].std() == pytest.approx(params.signature_sd, rel=0.15)


def test_a_batch_is_planted_without_changing_the_rest_of_the_cohort(inputs):
    params = sim.SimulationParameters(n_samples=40, n_genes=1500)
    plain = sim.simulate_cohort(*inputs, params)
    batched = sim.simulate_cohort(
        *inputs, sim.SimulationParameters(n_samples=40, n_genes=1500, batch_confounding=0.5)
    )
    assert "batch" not in plain.samples
    # its random numbers are its own: the sheet's other columns and the truth are those without it
    pd.testing.assert_frame_equal(batched.samples.drop(columns="batch"), plain.samples)
    pd.testing.assert_frame_equal(batched.truth_genes, plain.truth_genes)
    # 20 TRD x (1 + 0.5) / 2 = 15 in batch A, 20 responders x 0.25 = 5
    assert pd.crosstab(batched.samples["batch"], batched.samples["group"]).to_dict() == {
        "TRD": {"A": 15, "B": 5},
        "responder": {"A": 5, "B": 15},
    }


def test_batch_effects_shift_a_third_of_genes_in_batch_b():
    batch = np.array(["A", "B"] * 10)
    effects = sim.batch_effects(6000, batch, 0.5, np.random.default_rng(0))
    assert (effects[:, batch == "A"] == 1).all()
    log2_shift = np.log2(effects[:, batch == "B"])
    assert (log2_shift == log2_shift[:, :1]).all()  # one shift per gene, the same in every B sample
    shifted = log2_shift[:, 0] != 0
    assert shifted.mean() == pytest.approx(1 / 3, abs=0.02)
    assert log2_shift[shifted, 0].std() == pytest.approx(0.5, rel=0.05)
