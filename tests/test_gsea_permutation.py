"""Phenotype-permutation GSEA and ORA: scores against independent implementations, NES, p and FDR
against brute force, calibration on null cohorts with correlated genes, and the null input file."""

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom, kstest

from conftest import ROOT
from rule_scripts import rule_script
from trdpipe import simulate as sim
from trdpipe.common import InputError
from trdpipe.enrichment import analysis as enr
from trdpipe.enrichment import phenotype_permutation as gp
from trdpipe.model.deseq2 import run_deseq2


def random_sets(rng, genes, n_sets, low=5, high=80) -> dict[str, list[str]]:
    return {f"S{i}": list(rng.choice(genes, rng.integers(low, high), replace=False)) for i in range(n_sets)}


def t_statistics(expression: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Two-sample t statistic (pooled variance) of every gene under every labelling:
    expression samples x genes, labels samples x labellings (True = test group) -> genes x labellings."""
    test = labels.astype(float)
    ref = 1.0 - test
    n1, n0 = test.sum(0), ref.sum(0)
    mean1, mean0 = expression.T @ test / n1, expression.T @ ref / n0
    square = (expression**2).T
    ss = square @ test - n1 * mean1**2 + square @ ref - n0 * mean0**2
    pooled = ss / (n1 + n0 - 2)
    return (mean1 - mean0) / np.sqrt(pooled * (1 / n1 + 1 / n0))


def label_permutations(labels: np.ndarray, k: int, rng) -> np.ndarray:
    """samples x (1 + k): the observed labels, then k shuffles."""
    return np.column_stack([labels] + [rng.permutation(labels) for _ in range(k)])


def co_expressed_cohort(rng, n_samples=40, n_modules=30, module_size=30, n_free=600, loading=0.8):
    """Null cohort (no group effect): genes of each module share a per-sample factor, so that
    the genes of a set are correlated, as pathway genes are in blood."""
    n_genes = n_modules * module_size + n_free
    expression = rng.standard_normal((n_samples, n_genes))
    factors = rng.standard_normal((n_samples, n_modules))
    expression[:, : n_modules * module_size] += loading * np.repeat(factors, module_size, axis=1)
    genes = [f"G{i}" for i in range(n_genes)]
    sets = {f"M{m}": genes[m * module_size : (m + 1) * module_size] for m in range(n_modules)}
    labels = np.arange(n_samples) < n_samples // 2
    return expression, genes, sets, labels


# ----------------------------------------------------------------------------- enrichment scores
def test_vectorised_scores_equal_running_score_and_fgsea(monkeypatch):
    monkeypatch.setattr(gp, "BLOCK_CELLS", 5000)  # several blocks of rankings
    rng = np.random.default_rng(11)
    genes = [f"G{i}" for i in range(800)]
    sets = random_sets(rng, genes, 40)
    values = rng.standard_normal((800, 6))
    values[:, 5] = np.round(values[:, 5], 1)  # ties: ordered as running_score orders them
    scores = gp.enrichment_scores(values, gp.Membership.of(sets, genes), threads=2)
    assert scores.shape == (40, 6)
    for r in range(6):
        ranking = pd.Series(values[:, r], index=genes)
        for i, members in enumerate(sets.values()):
            running = enr.running_score(ranking, members)
            assert scores[i, r] == pytest.approx(running[np.argmax(np.abs(running))], abs=1e-12)

    from gseapy.gse import fgsea_rs

    ranking = pd.Series(values[:, 0], index=genes).sort_values(ascending=False)
    fgsea = fgsea_rs(list(ranking.index), ranking.tolist(), sets, 1.0, 1, 1000, 11, 10, 1e-50, 1, 1)
    by_term = {s.term: s.es for s in fgsea.summaries}
    assert [by_term[t] for t in sets] == pytest.approx(scores[:, 0], abs=1e-12)


def test_scores_of_a_set_whose_members_all_score_zero_take_equal_steps():
    genes = [f"G{i}" for i in range(20)]
    values = np.linspace(2, -2, 20)
    values[[3, 4, 5]] = 0.0
    ranking = pd.Series(values, index=genes)
    running = enr.running_score(ranking, ["G3", "G4", "G5"])
    score = gp.enrichment_scores(values, gp.Membership.of({"Z": ["G3", "G4", "G5"]}, genes))
    assert score[0, 0] == pytest.approx(running[np.argmax(np.abs(running))])


# ----------------------------------------------------------------------------- NES, p, FDR
def brute_force(es: np.ndarray, null: np.ndarray):
    """NES, p and FDR by explicit loops over sets and permutations."""
    n_sets, k = null.shape
    nes, nes_null, pvalue = np.empty(n_sets), np.empty((n_sets, k)), np.empty(n_sets)
    for s in range(n_sets):
        scores = [es[s], *null[s]]  # observed and null, for the means
        mean_pos = np.mean([x for x in scores if x >= 0])
        mean_neg = abs(np.mean([x for x in scores if x < 0]))
        nes[s] = es[s] / (mean_pos if es[s] >= 0 else mean_neg)
        nes_null[s] = [x / (mean_pos if x >= 0 else mean_neg) for x in null[s]]
        same = [x for x in null[s] if (x >= 0) == (es[s] >= 0)]
        extreme = sum(1 for x in same if (x >= es[s] if es[s] >= 0 else x <= es[s]))
        pvalue[s] = (extreme + 1) / (len(same) + 1)
    pooled = np.abs(nes_null.ravel())
    raw = [
        min(max(np.sum(pooled >= abs(x)), 1) / len(pooled) / np.mean(np.abs(nes) >= abs(x)), 1.0) for x in nes
    ]
    fdr = [as_q_value(raw, np.abs(nes), pvalue, s) for s in range(n_sets)]
    return nes, nes_null, pvalue, np.array(fdr)


def as_q_value(raw, extremeness, pvalue, s: int) -> float:
    """The smallest raw FDR of the sets no more extreme than set s, and at least the largest
    p-value of the sets at least as extreme, by loops."""
    lowest = min(r for r, e in zip(raw, extremeness) if e <= extremeness[s])
    floor = max(p for p, e in zip(pvalue, extremeness) if e >= extremeness[s])
    return max(lowest, floor)


def test_nes_pvalue_and_fdr_equal_brute_force():
    rng = np.random.default_rng(2)
    null = rng.normal(0, 0.3, (50, 40)) + rng.normal(0, 0.05, (50, 1))
    es = rng.normal(0, 0.45, 50)
    nes, nes_null = gp.normalise(es, null)
    expected_nes, expected_null, expected_p, expected_fdr = brute_force(es, null)
    assert nes == pytest.approx(expected_nes, rel=1e-12)
    assert nes_null == pytest.approx(expected_null, rel=1e-12)
    assert gp.permutation_pvalues(es, null) == pytest.approx(expected_p, rel=1e-12)
    fdr = gp.pooled_fdr(nes, nes_null, expected_p)
    assert fdr == pytest.approx(expected_fdr, rel=1e-12)
    assert 0 < (fdr < 1).sum() < 50  # the example is not degenerate


def test_fdr_perm_is_monotone_in_nes_never_zero_and_never_below_its_pvalue():
    """A q-value: over sets in order of |NES|, the FDR never rises; a set beyond every null score
    gets the resolution of the permutations (its own p-value, 1 / (n + 1)), not 0."""
    rng = np.random.default_rng(5)
    null = rng.normal(0, 0.3, (300, 50))
    es = rng.normal(0, 0.35, 300)
    es[0] = 3.0  # beyond every null score of every set
    nes, nes_null = gp.normalise(es, null)
    pvalue = gp.permutation_pvalues(es, null)
    fdr = gp.pooled_fdr(nes, nes_null, pvalue)
    by_nes = np.argsort(np.abs(nes))
    assert (np.diff(fdr[by_nes]) <= 0).all()
    assert (fdr >= pvalue).all() and fdr.min() > 0
    assert fdr[0] == pvalue[0] == 1 / ((null[0] >= 0).sum() + 1)
    assert gp.beyond_null(nes, nes_null).tolist() == [True] + [False] * 299


def test_ora_fdr_perm_is_monotone_in_p_and_never_zero():
    rng = np.random.default_rng(6)
    null = rng.uniform(0.001, 1, (40, 20))
    observed = rng.uniform(0, 1, 40)
    observed[0] = 1e-6  # below every null p-value
    pvalue = ((null <= observed[:, None]).sum(1) + 1) / 21
    fdr = gp.pooled_qvalues(observed, null, pvalue)
    by_p = np.argsort(-observed)
    assert (np.diff(fdr[by_p]) <= 0).all() and (fdr >= pvalue).all()
    assert fdr[0] == pytest.approx(1 / 20)  # resolution: one null p in 20 permutations, over one set


def test_nes_is_the_broad_one_up_to_the_observed_score_in_the_mean():
    """With many permutations NES_perm tends to the Broad GSEA's (gseapy's reference code)."""
    rng = np.random.default_rng(3)
    null = rng.normal(0, 0.3, (20, 2000))
    es = rng.normal(0, 0.45, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from gseapy.algorithm import normalize
    broad, _ = normalize(es, null)
    assert gp.normalise(es, null)[0] == pytest.approx(broad, rel=2e-3)


def test_a_set_without_null_scores_of_its_sign_gets_no_pvalue(caplog):
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(300)]
    ranking = pd.Series(np.sort(rng.standard_normal(300))[::-1], index=genes)
    sets = {"LOW": genes[-20:], "MID": genes[100:140]}
    null = rng.standard_normal((300, 8))
    null[-20:] += 10  # LOW tops every permuted ranking: all its null scores are positive
    res = gp.phenotype_permutation_gsea(ranking, null, sets).set_index("term")
    assert res.loc["LOW", ["NES_perm", "pvalue_perm", "fdr_perm"]].isna().all()
    assert res.loc["MID", ["NES_perm", "pvalue_perm", "fdr_perm"]].notna().all()
    assert "1 sets have no null score of the sign of their ES among the 8 permutations" in caplog.text


# ----------------------------------------------------------------------------- behaviour on cohorts
def test_planted_pathway_ranks_first_and_random_sets_get_uniform_pvalues():
    rng = np.random.default_rng(7)
    n_samples, n_genes = 40, 3000
    genes = [f"G{i}" for i in range(n_genes)]
    labels = np.arange(n_samples) < 20
    expression = rng.standard_normal((n_samples, n_genes))
    expression[:, :40] += 0.6 * labels[:, None]  # planted pathway: 40 genes up in the test group
    sets = {"PLANTED": genes[:40], **random_sets(rng, genes[40:], 300, 15, 100)}
    stats = t_statistics(expression, label_permutations(labels, 199, rng))
    ranking = pd.Series(stats[:, 0], index=genes)
    res = gp.phenotype_permutation_gsea(ranking, stats[:, 1:], sets).set_index("term")
    assert res["NES_perm"].abs().idxmax() == "PLANTED" and res.loc["PLANTED", "NES_perm"] > 0
    # beyond every null score: its FDR is its own p-value, 1 / (n + 1) of its n same-sign null scores
    planted = res.loc["PLANTED"]
    assert planted["fdr_perm_at_resolution"] and planted["fdr_perm"] == planted["pvalue_perm"] < 0.02
    random = res.drop(index="PLANTED")
    assert kstest(random["pvalue_perm"], "uniform").pvalue > 0.01
    assert 0.01 <= (random["pvalue_perm"] < 0.05).mean() <= 0.1
    assert (random["fdr_perm"] < 0.05).sum() <= 3


def test_correlated_null_gene_permutation_overcalls_and_label_permutation_does_not():
    """On null cohorts whose set genes share a factor, fgsea's gene-permutation padj calls sets
    in most cohorts; fdr_perm < 0.05 calls a set in at most the nominal share of them."""
    calls_gene_perm, cohorts_with_perm_calls = [], 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        expression, genes, sets, labels = co_expressed_cohort(rng)
        stats = t_statistics(expression, label_permutations(labels, 1000, rng))
        ranking = pd.Series(stats[:, 0], index=genes).sort_values(ascending=False)
        fgsea = enr.run_gsea(ranking, sets, permutations=1000, seed=1, threads=1)
        calls_gene_perm.append(int((enr.bh(fgsea["pvalue"].to_numpy()) < 0.05).sum()))
        res = gp.phenotype_permutation_gsea(pd.Series(stats[:, 0], index=genes), stats[:, 1:], sets)
        cohorts_with_perm_calls += bool((res["fdr_perm"] < 0.05).any())
    assert sum(c > 0 for c in calls_gene_perm) >= 9, calls_gene_perm
    assert cohorts_with_perm_calls <= 1


# ----------------------------------------------------------------------------- ORA
def test_ora_permutation_pvalues_and_fdr_equal_brute_force():
    rng = np.random.default_rng(4)
    universe = [f"G{i}" for i in range(400)]
    sets = random_sets(rng, universe, 25, 10, 60)
    null_de = rng.random((400, 30)) < rng.uniform(0, 0.08, 30)  # some permutations have no DE gene
    null_de[:, :3] = False
    observed_de = set(rng.choice(universe, 30, replace=False)) | set(sets["S0"][:8])
    observed = np.array(
        [hypergeom.sf(len(observed_de & set(g)) - 1, 400, len(g), len(observed_de)) for g in sets.values()]
    )
    res = gp.ora_permutation(observed, sets, universe, null_de).set_index("term")

    null = np.ones((25, 30))
    for j in range(30):
        de = {universe[i] for i in np.flatnonzero(null_de[:, j])}
        for s, members in enumerate(sets.values()):
            overlap = len(de & set(members))
            if overlap:
                null[s, j] = hypergeom.sf(overlap - 1, 400, len(members), len(de))
    expected_p = ((null <= observed[:, None]).sum(1) + 1) / 31
    raw = [min(max(np.mean((null <= p).sum(0)), 1 / 30) / (observed <= p).sum(), 1) for p in observed]
    expected_fdr = [as_q_value(raw, -observed, expected_p, s) for s in range(25)]
    assert res["pvalue_perm"].to_numpy() == pytest.approx(expected_p)
    assert res["fdr_perm"].to_numpy() == pytest.approx(expected_fdr)
    assert res.loc["S0", "pvalue_perm"] < 0.1 and res["pvalue_perm"].max() == 1.0


def test_null_top_lists_are_the_observed_length_by_statistic():
    stat = np.array([[3.0, -1.0], [np.nan, 2.0], [1.0, 0.5], [-2.0, -3.0], [0.0, 1.0]])
    lists = gp.null_top_lists(stat, 2, 1)
    assert lists["up"].T.tolist() == [[True, False, True, False, False], [False, True, False, False, True]]
    assert lists["down"].T.tolist() == [
        [False, False, False, True, False],
        [False, False, False, True, False],
    ]
    assert (lists["up"].sum(0) == 2).all() and (lists["down"].sum(0) == 1).all()


def test_null_top_lists_break_ties_by_gene_order_as_a_stable_sort():
    # the partial sort must choose as the first n of a stable sort: tied statistics, NaN last
    rng = np.random.default_rng(7)
    stat = rng.integers(-2, 3, size=(30, 40)).astype(float)
    stat[rng.random(stat.shape) < 0.2] = np.nan
    for n in (1, 5, 12, 30):
        order = np.argsort(-np.nan_to_num(stat, nan=-np.inf), axis=0, kind="stable")[:n]
        expected = np.zeros(stat.shape, dtype=bool)
        np.put_along_axis(expected, order, True, axis=0)
        assert (gp.null_top_lists(stat, n, 0)["up"] == expected).all()


def test_ora_with_observed_length_null_lists_does_not_call_an_unrelated_set():
    """A DE list of 40 of 1000 genes and a set of 40 genes of which 2 are in it, as chance gives
    (1.6 expected): permuted lists cut at their own padj are empty when the groups truly differ, and
    they call the set at fdr_perm < 0.05; null lists of the observed length (here from null
    statistics with no group effect) do not, and still call a set made of DE genes."""
    rng = np.random.default_rng(7)
    universe = [f"G{i}" for i in range(1000)]
    de = universe[:40]
    sets = {"unrelated": universe[38:78], "planted": universe[:30]}
    observed = np.array([hypergeom.sf(len(set(de) & set(g)) - 1, 1000, len(g), 40) for g in sets.values()])
    empty = np.zeros((1000, 50), dtype=bool)
    assert (
        gp.ora_permutation(observed, sets, universe, empty).set_index("term").loc["unrelated", "fdr_perm"]
        < 0.05
    )
    matched = gp.null_top_lists(rng.normal(size=(1000, 50)), 40, 40)["up"]
    res = gp.ora_permutation(observed, sets, universe, matched).set_index("term")
    assert res.loc["unrelated", "fdr_perm"] >= 0.05 and res.loc["planted", "fdr_perm"] < 0.05


# ----------------------------------------------------------------------------- the null input
def null_file(path, gene_ids, stat, padj) -> None:
    """A null_statistics.h5ad in the calibration's format: permutations x genes."""
    k = stat.shape[1]
    ad.AnnData(
        X=stat.T,
        obs=pd.DataFrame(index=[f"perm_{i + 1:04d}" for i in range(k)]),
        var=pd.DataFrame(
            {"gene_symbol": [f"S{g}" for g in gene_ids]}, index=pd.Index(gene_ids, name="gene_id")
        ),
        layers={"pvalue": np.full(stat.T.shape, 0.5), "padj": padj.T},
    ).write_h5ad(path)


def test_null_statistics_are_read_for_the_de_genes_in_their_order(tmp_path):
    stat = np.arange(12, dtype=float).reshape(4, 3)
    null_file(tmp_path / "null.h5ad", ["E1", "E2", "E3", "E4"], stat, stat / 100)
    got_stat = gp.load_null_statistics(tmp_path / "null.h5ad", ["E3", "E1"])
    assert got_stat.to_numpy().tolist() == [[6, 7, 8], [0, 1, 2]]
    assert list(got_stat.columns) == ["perm_0001", "perm_0002", "perm_0003"]


def test_null_statistics_missing_genes_is_one_clear_message(tmp_path):
    null_file(tmp_path / "null.h5ad", ["E1", "E2"], np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(InputError) as err:
        gp.load_null_statistics(tmp_path / "null.h5ad", ["E1", "E9", "E8"])
    assert str(err.value) == (
        f"{tmp_path / 'null.h5ad'}: 2 gene(s) of the DESeq2 results are not in the "
        "permutation null statistics (var), e.g. E8, E9; expected the genes of the "
        "contrast's DESeq2 table."
    )


# ----------------------------------------------------------------------------- DESeq2 refits
COLLECTIONS = {
    "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
    "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
}
DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
SETTINGS = {"alpha": 0.05, "inference": "batched"}


def cohort_anndata(params) -> ad.AnnData:
    """A simulated cohort's counts (samples x genes) with its sample sheet, genes with a mean
    count below 10 left out (as the filter step would)."""
    return cohort_as_anndata(simulated_cohort(params))


def simulated_cohort(params) -> sim.Cohort:
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    return sim.simulate_cohort(annotation, sim.load_gene_sets(COLLECTIONS), params)


def cohort_as_anndata(cohort: sim.Cohort) -> ad.AnnData:
    """cohort_anndata of a cohort already simulated."""
    counts = cohort.counts[cohort.counts.mean(axis=1) >= 10]
    symbols = cohort.truth_genes.set_index("gene_id").loc[counts.index, "gene_symbol"]
    return ad.AnnData(
        counts.T.to_numpy(),
        obs=cohort.samples.set_index("sample_id"),
        var=pd.DataFrame({"gene_symbol": symbols.to_numpy()}, index=counts.index),
    )


def deseq2_null(adata: ad.AnnData, k: int, seed: int) -> tuple[pd.DataFrame, ad.AnnData]:
    """The observed DESeq2 table and the calibration's null file content: the group shuffled
    k times within site x sex (covariates stay with their samples), every shuffle refitted."""
    rng = np.random.default_rng(seed)
    observed = run_deseq2(adata, DESIGN, CONTRAST, SETTINGS, 1)
    strata = adata.obs.groupby(["site", "sex"], observed=True).indices.values()
    layers = {"stat": [], "pvalue": [], "padj": []}
    for _ in range(k):
        shuffled = adata.copy()
        group = shuffled.obs["group"].to_numpy().copy()
        for rows in strata:
            group[rows] = rng.permutation(group[rows])
        shuffled.obs["group"] = group
        table = run_deseq2(shuffled, DESIGN, CONTRAST, SETTINGS, 1).set_index("gene_id").loc[adata.var_names]
        for name in layers:
            layers[name].append(table[name].to_numpy(dtype=float))
    null = ad.AnnData(
        np.vstack(layers["stat"]),
        obs=pd.DataFrame(index=[f"perm_{i + 1:04d}" for i in range(k)]),
        var=adata.var.rename_axis("gene_id"),
        layers={"pvalue": np.vstack(layers["pvalue"]), "padj": np.vstack(layers["padj"])},
    )
    return observed, null


def test_deseq2_refits_rank_the_planted_pathways_first(tmp_path):
    adata = cohort_anndata(sim.SimulationParameters(n_samples=40, n_genes=1000, hazards=False, seed=3))
    observed, null = deseq2_null(adata, k=30, seed=1)
    null.write_h5ad(tmp_path / "null_statistics.h5ad")
    gsea, ora, _, _ = enr.enrichment(
        observed,
        COLLECTIONS,
        None,
        alpha=0.05,
        min_size=10,
        max_size=500,
        permutations=200,
        seed=1,
        null=gp.load_null_statistics(tmp_path / "null_statistics.h5ad", observed["gene_id"]),
    )
    planted = {term: np.sign(shift) for _, term, shift in sim.DEFAULT_PATHWAYS}
    curated = gsea[gsea["collection"] == "curated_TRD"].set_index("term")
    # with 30 permutations p cannot go below about 1/16: the strongest sets tie, NES_perm orders them
    by_evidence = curated.assign(strength=-curated["NES_perm"].abs()).sort_values(["pvalue_perm", "strength"])
    assert set(by_evidence.index[:2]) == {"TRD_INFLAMMATION_INNATE_IMMUNITY", "TRD_NK_CYTOTOXIC"}
    # and no FDR below its own p-value: 1/16 at best, so the planted sets reach that bound
    for term in by_evidence.index[:2]:
        assert np.sign(curated.loc[term, "NES_perm"]) == planted[term], term
        assert curated.loc[term, "fdr_perm"] == curated.loc[term, "pvalue_perm"] < 0.1, term
    for _, term in sim.DEFAULT_NULL_THEMES:
        assert curated.loc[term, "fdr_perm"] >= 0.05, term
    # the planted GO term: right sign, among the strongest fifth of GO BP (10% of the sets score
    # higher with this seed: the cell shifts and co-expression modules move many GO sets)
    go = gsea[gsea["collection"] == "GO_BP"].set_index("term")
    assert np.sign(go.loc["GO:0002495", "NES_perm"]) == -1
    assert (go["NES_perm"].abs() > abs(go.loc["GO:0002495", "NES_perm"])).mean() < 0.2
    assert len(ora) and ora["pvalue_perm"].notna().all()


def test_deseq2_null_cohort_gene_permutation_overcalls_and_fdr_perm_does_not():
    """The simulator's null cohort (no group effect; genes of GO BP modules share latent factors,
    cell shares vary): fgsea's gene-permutation padj calls sets, fdr_perm from 20 refits none."""
    adata = cohort_anndata(
        sim.SimulationParameters.null_cohort(n_samples=40, n_genes=1000, hazards=False, seed=1)
    )
    observed, null = deseq2_null(adata, k=20, seed=1)
    gsea, _, _, _ = enr.enrichment(
        observed,
        COLLECTIONS,
        None,
        alpha=0.05,
        min_size=10,
        max_size=500,
        permutations=200,
        seed=1,
        null=pd.DataFrame(null.X.T, index=null.var_names),
    )
    assert (observed["padj"] < 0.05).sum() <= 5  # the Wald test's tail: 3 genes with this seed
    assert (gsea["padj"] < 0.05).sum() >= 10  # co-expressed genes make gene-permutation GSEA over-call
    assert (gsea["fdr_perm"] < 0.05).sum() == 0


# ----------------------------------------------------------------------------- the rule's script
def script_object(tmp_path, de_path, null_path, gmt):
    """What Snakemake hands enrichment.main: inputs (with or without the null), outputs, params."""
    from types import SimpleNamespace

    inputs = SimpleNamespace(
        de=str(de_path),
        annotation=str(ROOT / "resources/annotation/genes.tsv.gz"),
        **({"null": str(null_path)} if null_path else {}),
    )
    out = tmp_path / "out"
    outputs = SimpleNamespace(
        gsea=str(out / "gsea.tsv"),
        ora=str(out / "ora.tsv"),
        gsea_dotplot=str(out / "gsea_dotplot.png"),
        ora_dotplot=str(out / "ora_dotplot.png"),
        running_scores=str(out / "running_scores"),
    )
    params = SimpleNamespace(
        collections={"test": str(gmt)},
        min_size=10,
        max_size=500,
        permutations=200,
        seed=1,
        ora_padj=0.05,
        top_terms=10,
        running_score_terms=2,
        similar_terms_jaccard=0.5,
        alpha=0.05,
    )
    return SimpleNamespace(
        input=inputs,
        output=outputs,
        params=params,
        threads=1,
        wildcards=SimpleNamespace(contrast="TRD_vs_responder"),
    )


@pytest.mark.parametrize("with_null", [True, False])
def test_enrichment_script_with_and_without_a_null_input(tmp_path, with_null):
    rng = np.random.default_rng(9)
    n_samples, n_genes = 30, 1200
    genes = [f"G{i}" for i in range(n_genes)]
    labels = np.arange(n_samples) < 15
    expression = rng.standard_normal((n_samples, n_genes))
    expression[:, :30] += 1.2 * labels[:, None]
    stats = t_statistics(expression, label_permutations(labels, 200, rng))
    pvalue = 2 * __import__("scipy").stats.norm.sf(np.abs(stats))
    padj = np.column_stack([enr.bh(pvalue[:, j]) for j in range(pvalue.shape[1])])
    ids = [f"ENSG{i:011d}" for i in range(n_genes)]
    pd.DataFrame(
        {
            "gene_id": ids,
            "gene_symbol": genes,
            "baseMean": 100.0,
            "log2FoldChange": stats[:, 0] / 4,
            "lfcSE": 0.25,
            "stat": stats[:, 0],
            "pvalue": pvalue[:, 0],
            "padj": padj[:, 0],
        }
    ).to_csv(tmp_path / "de.tsv", sep="\t", index=False)
    null_file(tmp_path / "null.h5ad", ids, stats[:, 1:], padj[:, 1:])
    sets = {"PLANTED": genes[:30], **random_sets(rng, genes[30:], 20, 15, 60)}
    (tmp_path / "sets.gmt").write_text("".join(f"{t}\tx\t" + "\t".join(g) + "\n" for t, g in sets.items()))

    smk = script_object(
        tmp_path, tmp_path / "de.tsv", tmp_path / "null.h5ad" if with_null else None, tmp_path / "sets.gmt"
    )
    rule_script("enrichment").main(smk)
    gsea = pd.read_csv(smk.output.gsea, sep="\t")
    ora = pd.read_csv(smk.output.ora, sep="\t")
    assert list(gsea.columns) == enr.GSEA_COLUMNS and list(ora.columns) == enr.ORA_COLUMNS
    if with_null:
        assert gsea["term"].iloc[0] == "PLANTED" and gsea["fdr_perm"].iloc[0] < 0.05
        assert gsea["fdr_perm"].notna().all() and ora["fdr_perm"].notna().all()
        assert ora.set_index(["direction", "term"]).loc[("up", "PLANTED"), "pvalue_perm"] == pytest.approx(
            1 / 201
        )
    else:
        assert gsea[enr.GSEA_PERM_COLUMNS].isna().all().all() and ora[enr.ORA_PERM_COLUMNS].isna().all().all()
    # running-score plots only for the terms shown that pass the FDR cut: the planted set alone (the
    # random sets are shown in both directions, running_score_terms = 2, but none passes)
    plots = sorted(path.name for path in (tmp_path / "out/running_scores").glob("*.png"))
    assert plots == ["test_up_01_PLANTED.png"]
