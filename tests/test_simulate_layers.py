"""The toy cohort's other layers (trdpipe.simulate_layers): small RNA with planted targets, genotypes
with a planted cis-eQTL, a weak polygenic score; their truth tables agree with their files."""

import gzip

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT
from trdpipe import simulate as sim
from trdpipe import simulate_layers as layers
from trdpipe.io.genesets import read_gmt
from trdpipe.resources.mirna import read_mirna_annotation

TOY = ROOT / "resources/toy"
COLLECTIONS = {
    "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
    "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
}


@pytest.fixture(scope="module")
def inputs():
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    mirnas = read_mirna_annotation(ROOT / "resources/annotation/mirna.tsv.gz")
    candidates = layers.read_candidates(ROOT / "resources/genotypes/candidate_variants.tsv")
    return annotation, sim.load_gene_sets(COLLECTIONS), mirnas, candidates


@pytest.fixture(scope="module")
def toy():
    """The shipped files, as other rules read them."""
    return {
        "samples": pd.read_csv(TOY / "samples.tsv", sep="\t", index_col="sample_id"),
        "counts": pd.read_csv(TOY / "counts.tsv.gz", sep="\t", index_col=0),
        "truth_genes": pd.read_csv(TOY / "truth_genes.tsv", sep="\t", index_col="gene_id"),
        "mirna_counts": pd.read_csv(TOY / "mirna_counts.tsv.gz", sep="\t", index_col="mirna_id"),
        "truth_mirna": pd.read_csv(
            TOY / "truth_mirna.tsv", sep="\t", index_col="mirna_id", keep_default_na=False
        ),
        "targets": read_gmt(TOY / "mirna_targets.gmt"),
        "truth_genotypes": pd.read_csv(TOY / "truth_genotypes.tsv", sep="\t", index_col="variant_id"),
    }


def test_other_layers_leave_the_mrna_layer_alone_but_for_the_eqtl_gene(inputs):
    annotation, gene_sets, mirnas, candidates = inputs
    params = sim.SimulationParameters(n_samples=40, n_genes=1500)
    plain = sim.simulate_cohort(annotation, gene_sets, params)
    full = sim.simulate_cohort(annotation, gene_sets, params, mirnas, candidates)
    pd.testing.assert_frame_equal(full.samples, plain.samples)  # prs is drawn either way
    pd.testing.assert_frame_equal(full.truth_genes, plain.truth_genes)
    changed = (full.counts != plain.counts).any(axis=1)
    symbols = full.truth_genes.set_index("gene_id").loc[changed[changed].index, "gene_symbol"]
    assert list(symbols) == ["HTR1A"]
    assert plain.mirna_counts is None and plain.dosages is None


def test_mirna_layer_is_real_mirnas_with_a_blood_profile(toy):
    counts, truth, samples = toy["mirna_counts"], toy["truth_mirna"], toy["samples"]
    annotation = read_mirna_annotation(ROOT / "resources/annotation/mirna.tsv.gz").set_index("mirna_id")
    assert list(counts.index) == list(truth.index) and len(counts) == 300
    assert set(counts.index) <= set(annotation.index)
    assert (truth["family"] == annotation.loc[truth.index, "family"]).all()
    # two samples of the sheet have no small-RNA library; none outside the sheet
    assert set(counts.columns) < set(samples.index) and len(samples) - counts.shape[1] == 2
    library = counts.sum()
    assert 1e6 < library.median() < 1e7
    share = (counts / library).median(axis=1)
    assert share.idxmax() == "hsa-miR-486-5p" and share.nlargest(4).sum() > 0.4


def test_mirna_truth_and_targets_agree_with_the_mrna_truth(toy):
    truth, targets, genes = toy["truth_mirna"], toy["targets"], toy["truth_genes"]
    assert 0.08 <= truth["is_de"].mean() <= 0.10
    assert (truth.loc[truth["is_de"], "log2FoldChange"] != 0).all()
    assert (truth.loc[~truth["is_de"], "log2FoldChange"] == 0).all()
    assert (
        np.sign(truth["log2FoldChange"]).map({1: "up", -1: "down", 0: "none"}) == truth["direction"]
    ).all()
    assert list(targets) == list(truth.index)
    for mirna, row in truth.iterrows():
        members = targets[mirna][1]
        assert len(members) == row["n_targets"] and 20 <= len(members) <= 60
        assert set(members) <= set(genes.index)
        opposite = genes.loc[members, "true_log2FC"] * row["log2FoldChange"] < 0
        regulated_opposite = (opposite & (genes.loc[members, "class"] == "regulated")).sum()
        if row["is_de"]:
            # the planted targets (a good share of the set) move the other way in truth
            assert row["n_planted_targets"] >= 0.5 * row["n_targets"]
            assert regulated_opposite >= row["n_planted_targets"]
        else:
            assert row["n_planted_targets"] == 0


def test_differential_mirnas_differ_between_the_groups(toy):
    counts, truth, samples = toy["mirna_counts"], toy["truth_mirna"], toy["samples"]
    log_cpm = np.log2(counts / counts.sum() * 1e6 + 1)
    trd = samples.loc[counts.columns, "group"] == "TRD"
    observed = log_cpm.loc[:, trd.to_numpy()].mean(axis=1) - log_cpm.loc[:, (~trd).to_numpy()].mean(axis=1)
    de = truth["is_de"]
    agree = np.sign(observed[de]) == np.sign(truth.loc[de, "log2FoldChange"])
    assert agree.mean() >= 0.9
    assert observed[de].abs().median() > 3 * observed[~de].abs().median()


def ols_pvalue(y: np.ndarray, dosage: np.ndarray, covariates: pd.DataFrame) -> tuple[float, float]:
    """Slope and two-sided p-value of the dosage in y ~ dosage + covariates (plain OLS)."""
    design = np.column_stack([np.ones(len(y)), dosage, covariates.to_numpy(dtype=float)])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    df = len(y) - design.shape[1]
    sigma2 = residual @ residual / df
    se = np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    return beta[1], 2 * stats.t.sf(abs(beta[1] / se), df)


def test_planted_eqtl_is_recovered_and_null_variants_are_not(toy):
    samples, counts, genes = toy["samples"], toy["counts"], toy["truth_genes"]
    truth = toy["truth_genotypes"]
    dosages = layers.read_vcf_dosages(TOY / "genotypes.vcf.gz").loc[:, counts.columns]
    log_cpm = np.log2(counts / counts.sum() * 1e6 + 0.5)
    sheet = samples.loc[counts.columns]
    covariates = pd.get_dummies(sheet[["site", "sex", "group"]], drop_first=True).assign(age=sheet["age"])
    gene_of = genes.reset_index().set_index("gene_symbol")["gene_id"]
    planted = truth[truth["eqtl_log2_per_allele"] != 0]
    assert list(planted.index) == ["rs6295"] and planted.loc["rs6295", "gene"] == "HTR1A"
    for variant, row in truth.iterrows():
        y = log_cpm.loc[gene_of[row["gene"]]].to_numpy()
        slope, p = ols_pvalue(y, dosages.loc[variant].to_numpy(dtype=float), covariates)
        if variant == "rs6295":
            assert p < 1e-6 and slope == pytest.approx(row["eqtl_log2_per_allele"], abs=0.25)
        else:
            assert p > 1e-3, variant


def test_genotypes_follow_their_truth(toy):
    truth, samples = toy["truth_genotypes"], toy["samples"]
    dosages = layers.read_vcf_dosages(TOY / "genotypes.vcf.gz")
    assert list(dosages.index) == list(truth.index) and set(dosages.columns) == set(samples.index)
    assert dosages.isin([0, 1, 2]).all().all()  # no missing call
    candidates = layers.read_candidates(ROOT / "resources/genotypes/candidate_variants.tsv")
    placed = candidates.loc[candidates["pos"] != "", "variant_id"]
    assert set(truth.index[truth["in_candidate_list"]]) == set(placed)
    assert (~truth["in_candidate_list"]).sum() == 20
    assert (truth.loc[~truth["in_candidate_list"]].index.str.match(r"^chr\d+:\d+:[ACGT]:[ACGT]$")).all()
    observed = dosages.mean(axis=1) / 2
    assert np.corrcoef(observed, truth["alt_frequency"])[0, 1] > 0.7


def test_vcf_is_grch38_and_reads_back_to_the_simulated_dosages(inputs):
    annotation, gene_sets, mirnas, candidates = inputs
    cohort = sim.simulate_cohort(
        annotation, gene_sets, sim.SimulationParameters(n_samples=30, n_genes=800), None, candidates
    )
    files = sim.cohort_files(cohort)
    header = [
        line
        for line in gzip.decompress(files["genotypes.vcf.gz"]).decode().split("\n")
        if line.startswith("##")
    ]
    assert "##reference=GRCh38" in header
    contigs = [line for line in header if line.startswith("##contig")]
    assert contigs and all("assembly=GRCh38" in line for line in contigs)
    assert sim.cohort_files(cohort)["genotypes.vcf.gz.tbi"] == files["genotypes.vcf.gz.tbi"]  # deterministic


def test_vcf_reads_back_with_pysam(toy, tmp_path):
    truth = toy["truth_genotypes"]
    dosages = layers.read_vcf_dosages(TOY / "genotypes.vcf.gz")
    import pysam

    with pysam.VariantFile(str(TOY / "genotypes.vcf.gz")) as vcf:
        records = list(vcf.fetch("chr5", 63962737, 63962738))  # the index answers a region query
        assert [r.id for r in records] == ["rs6295"]
        genotypes = {s: records[0].samples[s]["GT"] for s in vcf.header.samples}
    assert all(sum(gt) == dosages.loc["rs6295", s] for s, gt in genotypes.items())
    assert list(truth.index) == list(dosages.index)


def test_polygenic_score_is_weak_and_in_the_planted_direction(toy):
    samples = toy["samples"]
    prs = samples["prs"]
    assert prs.mean() == pytest.approx(0, abs=1e-3) and prs.std() == pytest.approx(1, abs=1e-3)
    means = prs.groupby(samples["group"]).mean()
    assert 0 < means["TRD"] - means["responder"] < 1.0  # TRD higher, but weakly
    assert (
        stats.ttest_ind(prs[samples["group"] == "TRD"], prs[samples["group"] == "responder"]).pvalue > 0.001
    )


def test_null_cohort_plants_no_mirna_or_score_effect(inputs):
    annotation, gene_sets, mirnas, candidates = inputs
    params = sim.SimulationParameters.null_cohort(n_samples=40, n_genes=800, hazards=False)
    null = sim.simulate_cohort(annotation, gene_sets, params, mirnas, candidates)
    assert not null.truth_mirna["is_de"].any() and (null.truth_mirna["n_planted_targets"] == 0).all()
