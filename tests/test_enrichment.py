"""Enrichment: ORA p-values against scipy's hypergeometric, GSEA on planted rankings, toy cohort truth."""

import logging

import numpy as np
import pandas as pd
import pytest
from scipy.special import polygamma
from scipy.stats import hypergeom

from trdpipe.enrichment import analysis as enr
from trdpipe.enrichment.analysis import (
    de_gene_lists,
    enrichment,
    leading_edge,
    ora_collection,
    run_gsea,
    running_score,
)
from trdpipe.enrichment.figures import dotplot, running_score_figure
from trdpipe.io.genesets import restrict_to_universe


def synthetic_de(n_genes=2000, seed=0, shifts=None):
    """DESeq2-like table of n_genes symbols G0..; shifts: {gene: added Wald statistic}."""
    rng = np.random.default_rng(seed)
    genes = [f"G{i}" for i in range(n_genes)]
    stat = pd.Series(rng.standard_normal(n_genes), index=genes)
    for gene, shift in (shifts or {}).items():
        stat[gene] += shift
    pvalue = 2 * (1 - __import__("scipy").stats.norm.cdf(np.abs(stat)))
    return pd.DataFrame(
        {
            "gene_id": [f"ENSG{i:011d}" for i in range(n_genes)],
            "gene_symbol": genes,
            "baseMean": 100.0,
            "log2FoldChange": stat.to_numpy() / 4,
            "lfcSE": 0.25,
            "stat": stat.to_numpy(),
            "pvalue": pvalue,
            "padj": np.minimum(pvalue * 10, 1.0),
        }
    )


def test_tested_genes_rule():
    de = pd.DataFrame(
        {
            "gene_id": ["E1", "E2", "E3", "E4", "E5", "E5_PAR_Y"],
            "gene_symbol": ["A", "B", None, "D", "E", "E"],
            "baseMean": [10.0, 5.0, 7.0, 3.0, 50.0, 0.5],
            "log2FoldChange": [1.0, -1.0, 0.5, 0.1, 2.0, 0.0],
            "stat": [3.0, -2.0, 1.0, np.nan, 5.0, 0.1],
            "pvalue": [0.003, 0.04, 0.3, np.nan, 1e-6, 0.9],
            "padj": [
                0.01,
                np.nan,
                0.5,
                np.nan,
                1e-5,
                0.9,
            ],  # B: removed by independent filtering, still tested
        }
    )
    tested = enr.tested_genes(de)
    assert list(tested.index) == ["E", "A", "B"]  # sorted by stat; no symbol / no p-value out
    assert tested.loc["E", "gene_id"] == "E5"  # duplicated symbol: largest baseMean kept
    assert de_gene_lists(tested, 0.05) == {"up": ["E", "A"], "down": []}


def test_ora_pvalues_equal_an_independent_hypergeometric_test():
    universe = [f"G{i}" for i in range(500)]
    sets = {
        "S1": ("first", universe[:40]),
        "S2": ("second", universe[30:130]),
        "S3": ("third", universe[400:420]),
    }
    collection = restrict_to_universe("c", sets, universe, 10, 500)
    de_genes = universe[:25] + universe[100:110] + universe[450:455]  # 40 DE genes
    res = ora_collection(collection, universe, de_genes, "up").set_index("term")
    for term, (_, members) in sets.items():
        overlap = len(set(members) & set(de_genes))
        # P(X >= overlap), X ~ hypergeometric(population 500, successes |set|, draws 40)
        expected = sum(
            hypergeom.pmf(k, 500, len(members), 40) for k in range(overlap, min(len(members), 40) + 1)
        )
        assert res.loc[term, "overlap"] == overlap
        assert res.loc[term, "pvalue"] == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert res.loc["S1", "overlap"] == 25 and res.loc["S3", "overlap"] == 0
    assert res.loc["S3", "pvalue"] == pytest.approx(1.0)
    assert res.loc["S1", "overlap_genes"].split(";")[:3] == ["G0", "G1", "G2"]
    # BH within the collection and direction
    p = res["pvalue"].sort_values()
    bh = np.minimum.accumulate((p * len(p) / np.arange(1, len(p) + 1))[::-1])[::-1]
    assert np.allclose(res.loc[p.index, "padj"], np.minimum(bh, 1))
    # odds ratio of S1: a=25, b=15, c=15, d=445
    assert res.loc["S1", "odds_ratio"] == pytest.approx(25 * 445 / (15 * 15))


def test_gsea_finds_planted_sets_with_the_right_sign(monkeypatch):
    monkeypatch.setattr(enr, "GSEA_CHUNK", 7)  # several chunks, so threads share them
    rng = np.random.default_rng(3)
    genes = [f"G{i}" for i in range(2000)]
    up = list(rng.choice(genes[:1000], 40, replace=False))
    down = list(rng.choice(genes[1000:], 30, replace=False))
    de = synthetic_de(shifts={**{g: 2.0 for g in up}, **{g: -2.0 for g in down}})
    tested = enr.tested_genes(de)
    sets = {"UP": up, "DOWN": down}
    unshifted = sorted(set(genes) - set(up) - set(down))
    sets.update({f"NULL{i}": list(rng.choice(unshifted, 30, replace=False)) for i in range(40)})
    res = run_gsea(tested["stat"], sets, permutations=1000, seed=1, threads=1).set_index("term")
    top2 = res.sort_values("pvalue").index[:2]
    assert set(top2) == {"UP", "DOWN"}
    assert res.loc["UP", "NES"] > 1.5 and res.loc["DOWN", "NES"] < -1.5
    assert res.loc["UP", "pvalue"] < 1e-6 and res.loc["DOWN", "pvalue"] < 1e-6
    assert (res.drop(["UP", "DOWN"])["pvalue"] > 1e-3).all()
    # ES equals the extreme of the running score computed here independently
    for term in ("UP", "DOWN", "NULL0"):
        scores = running_score(tested["stat"], sets[term])
        assert res.loc[term, "ES"] == pytest.approx(scores[np.argmax(np.abs(scores))], abs=1e-9)
    # log2err follows fgsea's formulas: the multilevel sampler's for UP and DOWN (p < 1e-6),
    # and for every set either that or the simple estimator's, sqrt(trigamma(k + 1) -
    # trigamma(1001)) / ln 2 for the k of the 1000 random sets as extreme as the set
    single_level = polygamma(1, (enr.FGSEA_SAMPLE_SIZE + 1) // 2) - polygamma(1, enr.FGSEA_SAMPLE_SIZE + 1)
    multilevel = np.sqrt(np.floor(1 - np.log2(res["pvalue"])) * single_level) / np.log(2)
    simple = np.sqrt(polygamma(1, np.arange(1, 1002)) - polygamma(1, 1001)) / np.log(2)
    assert res.loc[["UP", "DOWN"], "log2err"].to_numpy() == pytest.approx(multilevel[["UP", "DOWN"]])
    for term, error in res["log2err"].items():
        assert np.isclose(error, multilevel[term]) or np.isclose(simple, error).any(), term
    # same seed, same table, however the chunks are spread over threads
    again = run_gsea(tested["stat"], sets, permutations=1000, seed=1, threads=2).set_index("term")
    pd.testing.assert_frame_equal(res, again)


def test_bh_leaves_pvalues_that_could_not_be_estimated_out():
    # by hand, over the three estimated p-values (m = 3): 0.01*3/1, min(0.03*3/2, 0.04), 0.04
    adjusted = enr.bh(np.array([0.01, np.nan, 0.04, 0.03]))
    assert np.isnan(adjusted[1])
    assert adjusted[[0, 2, 3]] == pytest.approx([0.03, 0.04, 0.04])
    assert enr.bh(np.array([])).shape == (0,)


def test_gsea_on_a_ranking_of_mostly_one_sign_warns_instead_of_failing(caplog):
    """fgsea gives no p-value to a set whose sign almost no random set of its size shares."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(3000)]
    ranking = pd.Series(rng.standard_normal(3000) + 1.0, index=genes).sort_values(ascending=False)
    sets = {
        "LOWEST": ("the 300 lowest", list(ranking.index[-300:])),
        "RANDOM": ("300 at random", list(rng.choice(genes, 300, replace=False))),
        "LOWEST20": ("the 20 lowest", list(ranking.index[-20:])),
    }
    collection = restrict_to_universe("skewed", sets, genes, 10, 500)
    with caplog.at_level(logging.WARNING, logger="trd"):
        res = enr.gsea_collection(ranking, collection, permutations=1000, seed=1, threads=1)
    res = res.set_index("term")
    assert res.loc["LOWEST", ["pvalue", "padj", "NES"]].isna().all()
    assert res.loc["LOWEST", "ES"] == pytest.approx(-1.0)
    estimated = res.loc[["RANDOM", "LOWEST20"]]
    assert estimated[["pvalue", "padj", "NES"]].notna().all().all()
    assert list(estimated["padj"]) == pytest.approx(list(enr.bh(estimated["pvalue"].to_numpy())))
    assert (
        "GSEA skewed: 1 sets have no p-value, padj or NES (LOWEST): fewer than 10 of the 1000 "
        "random sets of their size had an enrichment score of their sign"
    ) in caplog.text


def test_leading_edge_matches_the_running_score_peak():
    values = np.array([5.0, 4.0, 3.0, 1.0, 0.5, -0.5, -1.0, -2.0, -3.0, -4.0])
    ranking = pd.Series(values, index=[f"G{i}" for i in range(10)])
    for hits in ([0, 2, 5], [3, 8, 9], [1, 4, 6, 9]):
        scores = running_score(ranking, [f"G{i}" for i in hits])
        es = scores[np.argmax(np.abs(scores))]
        peak = int(np.argmax(np.abs(scores)))
        edge = leading_edge(values, np.array(hits), es)
        expected = [h for h in hits if h <= peak] if es > 0 else [h for h in hits if h > peak]
        assert list(edge) == expected


def test_enrichment_reports_each_collection_separately(tmp_path):
    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(1500)]
    planted = list(rng.choice(genes, 25, replace=False))
    unshifted = sorted(set(genes) - set(planted))
    de = synthetic_de(n_genes=1500, seed=5, shifts={g: 3.0 for g in planted})
    null_sets = [list(rng.choice(unshifted, 20, replace=False)) for _ in range(5)]
    (tmp_path / "a.gmt").write_text(
        "P\tplanted\t"
        + "\t".join(planted)
        + "\n"
        + "".join(f"N{i}\tnull\t" + "\t".join(genes) + "\n" for i, genes in enumerate(null_sets))
    )
    (tmp_path / "b.gmt").write_text("TINY\tx\tG1\tG2\nOTHER\ty\t" + "\t".join(genes[:15]) + "\n")
    gsea, ora, _, collections = enrichment(
        de,
        {"A": tmp_path / "a.gmt", "B": tmp_path / "b.gmt"},
        None,
        alpha=0.05,
        min_size=10,
        max_size=500,
        permutations=500,
        seed=1,
    )
    assert set(gsea["collection"]) == {"A", "B"}
    assert collections["B"].dropped_small == ["TINY"]
    a = gsea[gsea["collection"] == "A"].set_index("term")
    assert a["pvalue"].idxmin() == "P" and a.loc["P", "NES"] > 0
    # padj is BH within each collection: B's single set keeps its p-value
    b = gsea[gsea["collection"] == "B"]
    assert b["padj"].tolist() == pytest.approx(b["pvalue"].tolist())
    up = ora[(ora["collection"] == "A") & (ora["direction"] == "up")].set_index("term")
    assert up["pvalue"].idxmin() == "P"
    # ORA's universe: the tested genes that some set of the collection annotates
    annotated_a = set(planted).union(*null_sets)
    assert (up["universe"] == len(annotated_a)).all()
    assert up.loc["P", "n_de"] == len(set(de_gene_lists(enr.tested_genes(de), 0.05)["up"]) & annotated_a)


@pytest.mark.e2e
def test_toy_cohort_planted_pathways_are_top_hits(toy_run):
    truth = pd.read_csv(toy_run / "resources/toy/truth_pathways.tsv", sep="\t")
    gsea = pd.read_csv(toy_run / "results/enrichment/TRD_vs_responder/gsea.tsv", sep="\t")
    for _, row in truth.iterrows():
        hits = gsea[gsea["collection"] == row["collection"]].sort_values("pvalue").reset_index(drop=True)
        found = hits[hits["term"] == row["term"]]
        if row["direction"] == "none":
            # a planted-null theme is either not testable in the data or not significant
            assert found.empty or found["padj"].iloc[0] >= 0.05, row["term"]
            continue
        assert not found.empty, row["term"]
        assert found["padj"].iloc[0] < 0.05, row["term"]
        assert np.sign(found["NES"].iloc[0]) == (1 if row["direction"] == "up" else -1), row["term"]
        assert found.index[0] < 5, f"{row['term']} ranks {found.index[0] + 1} in {row['collection']}"


def ora_table(odds: dict[str, list[float]], fdr: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for direction in odds:
        for i, (value, q) in enumerate(zip(odds[direction], fdr[direction])):
            rows.append(
                {
                    "collection": "GO_BP",
                    "direction": direction,
                    "term": f"T{direction}{i}",
                    "name": f"term {i}",
                    "size": 20 + i,
                    "odds_ratio": value,
                    "pvalue": q / 10,
                    "padj": q,
                }
            )
    return pd.DataFrame(rows)


def test_ora_dotplot_labels_several_ticks_and_colours_each_panel_by_its_own_fdrs():
    # odds ratios within one decade (a single decade tick before), FDRs 1e-12 apart from 1e-2
    table = ora_table(
        {"down": [3.1, 3.5, 4.2], "up": [2.2, 6.0, 8.5]},
        {"down": [1e-12, 1e-3, 0.2], "up": [0.01, 0.03, 0.5]},
    )
    fig = dotplot(table, "odds_ratio", 10, 0.05, "ORA", ["collection", "direction"])
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.get_xlabel() == "odds_ratio"]
    assert [ax.get_title() for ax in panels] == ["GO_BP / down", "GO_BP / up"]
    for ax, direction in zip(panels, ("down", "up")):
        low, high = ax.get_xlim()
        labelled = [t for t in ax.get_xticklabels() if t.get_text() and low <= t.get_position()[0] <= high]
        assert len(labelled) >= 2, [t.get_text() for t in labelled]
        colours = ax.collections[0]
        expected = -np.log10(table.loc[table["direction"] == direction, "padj"])
        assert colours.norm.vmax == pytest.approx(max(expected.max(), -np.log10(0.05)))
        np.testing.assert_allclose(np.sort(colours.get_array()), np.sort(expected))


def test_a_long_running_score_title_is_wrapped_inside_the_figure():
    name = "antigen processing and presentation of exogenous peptide antigen via MHC class I, TAP-dependent"
    row = pd.Series(
        {
            "collection": "GO_BP",
            "term": "GO:0002479",
            "name": name,
            "NES_perm": -2.11,
            "fdr_perm": 0.067,
            "NES": -2.5,
            "padj": 1.1e-6,
            "size": 24,
        }
    )
    ranking = pd.Series(np.linspace(5, -5, 400), index=[f"G{i}" for i in range(400)])
    fig = running_score_figure(ranking, [f"G{i}" for i in range(350, 374)], row)
    fig.canvas.draw()
    title = fig.axes[0].title
    assert " ".join(title.get_text().split()) == " ".join(
        f"GO_BP GO:0002479: {name} label permutations: NES -2.11, fdr 0.067; gene permutations: "
        "NES -2.50, padj 1.1e-06; 24 genes".split()
    )
    box, canvas = title.get_window_extent(), fig.bbox
    assert canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and box.y1 <= canvas.y1
