"""Which GSEA terms a reader is shown: the top terms up and down, near-duplicates folded.

GO holds many variants of one process ("antigen processing and presentation", "... of exogenous
antigen", "... via MHC class II"), which would fill a top-20 with one finding. The rule, also in
docs/design.md: terms are taken in rank order (label-permutation FDR, then p-values) separately
for positive and negative NES; a term whose leading edge has a Jaccard index of at least the
threshold (`enrichment.similar_terms_jaccard`, 0.5) with that of a better-ranked term already
shown is folded under the first such term ("and k similar terms") instead of taking a place of
its own. Folding stops with the first term that would be shown beyond the n places.
"""

import re

import pandas as pd

DIRECTIONS = ("up", "down")


def lead_fdr(table: pd.DataFrame) -> str:
    """The FDR column that figures and the report lead with: the label-permutation one when it
    was computed, else the gene-permutation (GSEA) or hypergeometric (ORA) padj."""
    return "fdr_perm" if "fdr_perm" in table and table["fdr_perm"].notna().any() else "padj"


def gsea_order(table: pd.DataFrame) -> list[str]:
    """Sort keys of GSEA terms: the FDR the report leads with, then the p-values, then the id."""
    if lead_fdr(table) == "fdr_perm":
        return ["fdr_perm", "pvalue_perm", "pvalue", "term"]
    return ["padj", "pvalue", "term"]


def lead_nes(table: pd.DataFrame) -> str:
    """The NES of the lead FDR: the label-permutation one when it was computed."""
    return "NES_perm" if lead_fdr(table) == "fdr_perm" else "NES"


def leading_edge_genes(text) -> frozenset[str]:
    return frozenset(g for g in re.split(r"[;,\s]+", str(text) if pd.notna(text) else "") if g)


def jaccard(a: frozenset, b: frozenset) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def collapse_similar_terms(ranked: pd.DataFrame, n: int, threshold: float) -> pd.DataFrame:
    """The first n terms of `ranked` (best first) that are not near-duplicates of a term shown
    before them, each with `similar_terms`: the names of the terms folded under it, in rank order."""
    shown: list[tuple[object, frozenset]] = []
    folded: dict[object, list[str]] = {}
    for index, name, text in zip(ranked.index, ranked["name"].astype(str), ranked["leading_edge"]):
        edge = leading_edge_genes(text)
        host = next((kept for kept, kept_edge in shown if jaccard(edge, kept_edge) >= threshold), None)
        if host is not None:
            folded[host].append(name)
        elif len(shown) < n:
            shown.append((index, edge))
            folded[index] = []
        else:
            break
    keep = [index for index, _ in shown]
    return ranked.loc[keep].assign(similar_terms=[folded[index] for index in keep])


def top_terms_by_direction(
    gsea: pd.DataFrame, n: int, threshold: float
) -> dict[tuple[str, str], pd.DataFrame]:
    """Per collection and direction (up: NES > 0, down: NES < 0), the top n terms with their
    near-duplicates folded (collapse_similar_terms); a direction without terms is left out."""
    nes, order = lead_nes(gsea), gsea_order(gsea)
    out = {}
    for collection, terms in gsea.groupby("collection", sort=True):
        for direction, sign in zip(DIRECTIONS, (1, -1)):
            ranked = terms[terms[nes] * sign > 0].sort_values(order, kind="mergesort")
            if len(ranked):
                out[(collection, direction)] = collapse_similar_terms(ranked, n, threshold)
    return out


def called_terms(
    shown: dict[tuple[str, str], pd.DataFrame], fdr: str, cut: float
) -> dict[tuple[str, str], pd.DataFrame]:
    """Of the terms shown (top_terms_by_direction, ranked by `fdr` first), those called at fdr < cut: the
    first ranks of each list, so that a term keeps its rank. A list with none called is left out."""
    called = {key: terms[terms[fdr] < cut] for key, terms in shown.items()}
    return {key: terms for key, terms in called.items() if len(terms)}
