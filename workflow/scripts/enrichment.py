"""Rule enrichment: pathway enrichment of one DESeq2 contrast: preranked GSEA on the Wald statistic,
and ORA of up- and down-regulated genes, for every configured gene-set collection separately. The
work is done in trdpipe.enrichment.analysis, the figures are drawn by trdpipe.enrichment.figures."""

from trdpipe.common import atomic_directory, run_script, save_figure, write_table
from trdpipe.enrichment import phenotype_permutation as perm
from trdpipe.enrichment.analysis import enrichment, load_de_results, log_top, running_score_file
from trdpipe.enrichment.figures import dotplot, running_score_figure
from trdpipe.enrichment.terms import called_terms, lead_fdr, top_terms_by_direction


def main(smk) -> None:
    from trdpipe.io.annotation import load_annotation

    p = smk.params
    de = load_de_results(smk.input.de)
    # a rule without a calibration (a sensitivity model's table) gives no null: columns NA
    null_path = getattr(smk.input, "null", None)
    null = perm.load_null_statistics(null_path, de["gene_id"]) if null_path else None
    observed = perm.load_observed_statistic(null_path, de["gene_id"]) if null_path else None
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
        null_observed=observed,
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
        # the terms the report shows first, up and down (near-duplicates folded: workflow/lib/trdpipe/enrichment/terms.py),
        # drawn only when called: a curve of a set that random splits move as much invites a false reading
        shown = top_terms_by_direction(gsea, int(p.running_score_terms), float(p.similar_terms_jaccard))
        for (name, direction), terms in called_terms(shown, lead_fdr(gsea), float(p.ora_padj)).items():
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
