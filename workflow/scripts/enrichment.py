"""Pathway enrichment of one DESeq2 contrast: preranked GSEA on the Wald statistic, and ORA of
up- and down-regulated genes, for every configured gene-set collection separately.

Genes used (the "tested" genes): rows of the DESeq2 table with a Wald statistic and a p-value
(genes removed by independent filtering have padj NaN but were tested, so they stay; genes
without a p-value -- all-zero counts or Cook's outliers -- are left out) and a gene symbol.
A symbol on several rows (e.g. a GENCODE _PAR_Y copy) is counted once, through its row with
the largest baseMean.

GSEA: gseapy's fgsea multilevel algorithm (adaptive multilevel p-values, not limited to
1/permutations; chosen in bench/bench_enrichment.py), genes ranked by the Wald statistic
(weight 1), seed and number of permutations (for the NES normalisation) from the config;
padj = BH over the collection's sets; leading edge = the set's genes from the top of the
ranking to the running-score peak (ES > 0), or from the trough to the bottom (ES < 0).

GSEA with a permutation null (the p-values the report leads with): given the Wald statistics
of the contrast refitted under K label permutations (results/calibration/{contrast}/
null_statistics.h5ad), NES_perm, pvalue_perm and fdr_perm compare every set's enrichment score
with its scores on the K permuted rankings (workflow/lib/trdpipe/enrichment/phenotype_permutation.py). fgsea's NES, pvalue and padj
come from gene permutations, which treat genes as independent; they stay in the table, labelled
gene-permutation. Without a null input the permutation columns are empty (NA).

ORA: the universe of a collection is the tested genes that some set of the collection (before
the size limits) annotates, as in clusterProfiler; the DE lists are the universe's genes with
padj < the contrast's alpha and log2FoldChange > 0 (up) or < 0 (down); one-sided hypergeometric
p = P(X >= overlap); padj = BH within collection and direction; odds ratio of the 2x2 table
(0.5 added to every cell when one is 0). With a null input, pvalue_perm and fdr_perm compare
each set's p with its p on the DE lists of the K permuted fits (workflow/lib/trdpipe/enrichment/phenotype_permutation.py)."""

from trdpipe.common import atomic_directory, run_script, save_figure, write_table
from trdpipe.enrichment import phenotype_permutation as perm
from trdpipe.enrichment.analysis import (
    dotplot,
    enrichment,
    load_de_results,
    log_top,
    running_score_figure,
    running_score_file,
)
from trdpipe.enrichment.terms import lead_fdr, top_terms_by_direction


def main(smk) -> None:
    from trdpipe.io.annotation import load_annotation

    p = smk.params
    de = load_de_results(smk.input.de)
    # a rule without a calibration (a sensitivity model's table) gives no null: columns NA
    null_path = getattr(smk.input, "null", None)
    null = perm.load_null_statistics(null_path, de["gene_id"]) if null_path else None
    annotation = load_annotation(smk.input.annotation)
    gsea, ora, ranking, collections = enrichment(
        de,
        dict(p.collections),
        annotation,
        alpha=float(p.alpha),
        min_size=int(p.min_size),
        max_size=int(p.max_size),
        permutations=int(p.permutations),
        seed=int(p.seed),
        threads=smk.threads,
        null=null,
    )
    log_top(gsea, ora, float(p.ora_padj))
    top = int(p.top_terms)
    nes = "NES_perm" if lead_fdr(gsea) == "fdr_perm" else "NES"
    save_figure(
        dotplot(gsea, nes, top, float(p.ora_padj), f"GSEA {smk.wildcards.contrast}", ["collection"]),
        smk.output.gsea_dotplot,
    )
    save_figure(
        dotplot(
            ora,
            "odds_ratio",
            top,
            float(p.ora_padj),
            f"ORA {smk.wildcards.contrast}",
            ["collection", "direction"],
        ),
        smk.output.ora_dotplot,
    )
    with atomic_directory(smk.output.running_scores) as tmp:
        # the terms the report shows first, up and down (near-duplicates folded: workflow/lib/trdpipe/enrichment/terms.py)
        shown = top_terms_by_direction(gsea, int(p.running_score_terms), float(p.similar_terms_jaccard))
        for (name, direction), terms in shown.items():
            for rank, (_, row) in enumerate(terms.iterrows(), start=1):
                genes = collections[name].sets[row["term"]][1]
                save_figure(
                    running_score_figure(ranking, genes, row),
                    tmp / running_score_file(name, direction, rank, row["term"]),
                )
    write_table(ora, smk.output.ora)
    write_table(gsea, smk.output.gsea)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
