"""Which GSEA terms are shown: the split by direction and the folding of near-duplicates."""

import numpy as np
import pandas as pd

from trdpipe.enrichment.terms import (
    called_terms,
    collapse_similar_terms,
    jaccard,
    leading_edge_genes,
    top_terms_by_direction,
)


def terms(edges: dict[str, str]) -> pd.DataFrame:
    """A ranked table (best first) of terms named by their id, with these leading edges."""
    return pd.DataFrame(
        {"term": list(edges), "name": [f"name {t}" for t in edges], "leading_edge": list(edges.values())}
    )


def test_jaccard_of_leading_edges():
    a, b = leading_edge_genes("A;B;C;D"), leading_edge_genes("C;D;E")
    assert a == {"A", "B", "C", "D"}
    assert jaccard(a, b) == 2 / 5
    assert leading_edge_genes(np.nan) == frozenset() and jaccard(frozenset(), frozenset()) == 0.0


def test_near_duplicates_fold_under_the_first_similar_term_shown():
    ranked = terms(
        {
            "T1": "A;B;C;D",  # shown
            "T2": "A;B;C;E",  # J(T1) = 3/5: folded under T1
            "T3": "X;Y;Z",  # shown
            "T4": "A;B;X;Y",  # J(T1) = 2/6, J(T3) = 2/5: shown
            "T5": "X;Y;Z;W",  # J(T3) = 3/4 (also J(T4) = 2/5): folded under T3
            "T6": "A;B;C;D;X;Y",  # J(T1) = 4/6: folded under T1, the first similar term shown
            "T7": "P;Q",  # a fourth distinct term: not shown with n = 3, and folding stops
            "T8": "A;B;C;D",  # identical to T1, but after the stop: not counted
        }
    )
    shown = collapse_similar_terms(ranked, 3, 0.5)
    assert shown["term"].tolist() == ["T1", "T3", "T4"]
    assert shown["similar_terms"].tolist() == [["name T2", "name T6"], ["name T5"], []]
    # a stricter threshold folds only T5 (3/4) and T6 (4/6)
    strict = collapse_similar_terms(ranked, 10, 0.65)
    assert strict["term"].tolist() == ["T1", "T2", "T3", "T4", "T7"]
    assert strict.set_index("term")["similar_terms"].to_dict() == {
        "T1": ["name T6", "name T8"],
        "T2": [],
        "T3": ["name T5"],
        "T4": [],
        "T7": [],
    }


def gsea_table(with_permutations: bool = True) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "collection": ["go"] * 5 + ["curated"],
            "term": ["GO:1", "GO:2", "GO:3", "GO:4", "GO:5", "SET"],
            "name": ["a", "b", "c", "d", "e", "f"],
            "NES_perm": [-2.0, 1.5, -1.8, 1.2, -1.9, 2.2],
            "pvalue_perm": [0.01, 0.02, 0.01, 0.2, 0.01, 0.001],
            "fdr_perm": [0.05, 0.04, 0.03, 0.5, 0.05, 0.01],
            "NES": [-2.5, 1.1, -2.6, 1.9, -2.0, 2.5],
            "pvalue": [1e-6, 0.01, 1e-7, 1e-4, 1e-5, 1e-8],
            "padj": [1e-5, 0.02, 1e-6, 1e-3, 1e-4, 1e-7],
            "leading_edge": ["A;B", "C;D", "E;F", "G;H", "A;B;Z", "K;L"],
        }
    )
    if not with_permutations:
        table[["NES_perm", "pvalue_perm", "fdr_perm"]] = np.nan
    return table


def test_top_terms_up_and_down_apart_by_the_permutation_fdr():
    shown = top_terms_by_direction(gsea_table(), 5, 0.5)
    assert list(shown) == [("curated", "up"), ("go", "up"), ("go", "down")]
    assert shown[("go", "up")]["term"].tolist() == ["GO:2", "GO:4"]
    # GO:3 (FDR 0.03) first; GO:1 and GO:5 tie on FDR and pvalue_perm, GO:1 has the smaller p; GO:5
    # (leading edge J = 2/3 with GO:1) folds under it
    down = shown[("go", "down")]
    assert down["term"].tolist() == ["GO:3", "GO:1"]
    assert down["similar_terms"].tolist() == [[], ["e"]]


def test_top_terms_without_permutations_use_fgsea_nes_and_padj():
    shown = top_terms_by_direction(gsea_table(with_permutations=False), 5, 0.5)
    assert shown[("go", "down")]["term"].tolist() == ["GO:3", "GO:1"]
    assert shown[("go", "up")]["term"].tolist() == ["GO:4", "GO:2"]  # padj 1e-3 before 0.02


def test_running_score_plots_are_of_the_called_terms_only():
    """Terms at FDR 0.2-0.9 get no running-score plot: of the terms shown, only those at the lead FDR < cut,
    at their ranks, and no list where none is called."""
    shown = top_terms_by_direction(gsea_table(), 5, 0.5)
    called = called_terms(shown, "fdr_perm", 0.05)
    assert {key: terms["term"].tolist() for key, terms in called.items()} == {
        ("curated", "up"): ["SET"],
        ("go", "up"): ["GO:2"],  # GO:4, at FDR 0.5, is shown but not drawn
        ("go", "down"): ["GO:3"],  # GO:1 at 0.05 is not below the cut
    }
    assert called_terms(shown, "fdr_perm", 0.01) == {}
    # without label permutations fgsea's padj decides
    plain = top_terms_by_direction(gsea_table(with_permutations=False), 5, 0.5)
    assert called_terms(plain, "padj", 1e-5)[("go", "down")]["term"].tolist() == ["GO:3"]
