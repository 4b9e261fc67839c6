# Cell composition and sensitivity models: is the signature a per-cell change or a shift in
# cell counts, and does it hold within each sex? Scripts: workflow/lib/trdpipe/cells/composition.py,
# sensitivity.py; choices: workflow/lib/trdpipe/cells/scores.py, workflow/lib/trdpipe/model/sensitivity.py, config/README.md.

from trdpipe.model.sensitivity import active_models, key_finding_model, models_with

CELLS = config["cells"]
SENSITIVITY = active_models(config["sensitivity"], CELLS)
SENSITIVITY_MODELS = list(SENSITIVITY)
CELL_OUTPUTS = ["results/cells/cell_scores.tsv"] if CELLS["enabled"] else []
# the models flagged `enrichment: true` get GSEA and ORA too (the shipped cell-adjusted one: do the
# immune pathways survive adjustment?); the report's key findings follow the one flagged `key_finding`
ENRICHED_MODELS = models_with(SENSITIVITY, "enrichment")
KEY_FINDING_MODEL = key_finding_model(SENSITIVITY)


wildcard_constraints:
    model="|".join(SENSITIVITY_MODELS) or "^$",


rule cell_composition:
    input:
        vst="results/vst/vst.h5ad",
        markers=[CELLS["resource"], *CELLS["markers"]],
    output:
        scores="results/cells/cell_scores.tsv",
        markers="results/cells/markers.tsv",
        covariates="results/cells/covariates.tsv",
        choice="results/cells/covariate_choice.tsv",
        association="results/cells/score_pc_association.tsv",
        by_group=expand("results/cells/{contrast}/scores_by_group.tsv", contrast=CONTRASTS),
        figures=report(
            expand("results/cells/{contrast}/scores_by_group.png", contrast=CONTRASTS),
            caption="../report/scores_by_group.rst",
            category="Robustness",
            subcategory="Cell composition",
        ),
        svgs=expand("results/cells/{contrast}/scores_by_group.svg", contrast=CONTRASTS),
    log:
        "logs/cell_composition/cell_composition.log",
    benchmark:
        "results/benchmarks/cell_composition/cell_composition.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # the VST matrix and one standardised copy of it
        mem_mb=mem_mb(800, 20),
        runtime=runtime_min(5, 0.5),
    params:
        cells=CELLS,
        contrasts=config["contrasts"],
        # the cap on the cell covariates counts the primary design's degrees of freedom
        design=config["design"],
        n_top_genes=config["qc"]["n_top_genes"],
        n_pcs=config["qc"]["n_pcs"],
        seed=config["seed"],
    script:
        "../scripts/cell_composition.py"


rule sensitivity:
    input:
        h5ad="results/filter/cohort.h5ad",
        primary="results/de/{contrast}/deseq2_results.tsv",
        # the cell covariates, for the models that add them (the others need not wait for them)
        covariates=lambda wc: (
            rules.cell_composition.output.covariates if SENSITIVITY[wc.model].get("cell_scores") else []
        ),
    output:
        table="results/sensitivity/{contrast}/{model}/deseq2_results.tsv",
        model="results/sensitivity/{contrast}/{model}/model.tsv",
        samples="results/sensitivity/{contrast}/{model}/samples_used.tsv",
        concordance=report(
            "results/sensitivity/{contrast}/{model}/concordance.tsv",
            caption="../report/concordance.rst",
            category="Robustness",
            subcategory="{contrast}",
        ),
        scatter=report(
            "results/sensitivity/{contrast}/{model}/lfc_scatter.png",
            caption="../report/lfc_scatter.rst",
            category="Robustness",
            subcategory="{contrast}",
        ),
        scatter_svg="results/sensitivity/{contrast}/{model}/lfc_scatter.svg",
    log:
        "logs/sensitivity/{contrast}/{model}.log",
    benchmark:
        "results/benchmarks/sensitivity/{contrast}.{model}.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: threads_beside_vst_branch(2)
    resources:
        # as deseq2: one more DE fit, with a covariate or two more (6.3 GB at 6,000 x 20,000)
        mem_mb=mem_mb(500, 60),
        runtime=runtime_min(10, 4),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        spec=lambda wc: SENSITIVITY[wc.model],
        # no lfc_shrink: the concordance compares the maximum-likelihood fold changes
        deseq2=de_settings("fit_and_test"),
    script:
        "../scripts/sensitivity.py"


# Gene-permutation GSEA and ORA of a model flagged `enrichment: true` (the primary rule's script, on
# the model's DE table), without running-score plots.
use rule enrichment as sensitivity_enrichment with:
    input:
        de="results/sensitivity/{contrast}/{model}/deseq2_results.tsv",
        annotation=config["annotation"],
        collections=list(ENRICHMENT["collections"].values()),
    output:
        gsea="results/sensitivity/{contrast}/{model}/enrichment/gsea.tsv",
        ora="results/sensitivity/{contrast}/{model}/enrichment/ora.tsv",
        gsea_dotplot="results/sensitivity/{contrast}/{model}/enrichment/gsea_dotplot.png",
        ora_dotplot="results/sensitivity/{contrast}/{model}/enrichment/ora_dotplot.png",
        gsea_dotplot_svg="results/sensitivity/{contrast}/{model}/enrichment/gsea_dotplot.svg",
        ora_dotplot_svg="results/sensitivity/{contrast}/{model}/enrichment/ora_dotplot.svg",
        running_scores=directory("results/sensitivity/{contrast}/{model}/enrichment/running_scores"),
    log:
        "logs/sensitivity_enrichment/{contrast}/{model}.log",
    benchmark:
        "results/benchmarks/sensitivity_enrichment/{contrast}.{model}.tsv"
    params:
        # the report shows the primary model's running-score plots only
        running_score_terms=0,


SENSITIVITY_OUTPUTS = expand(
    "results/sensitivity/{contrast}/{model}/{name}",
    contrast=CONTRASTS,
    model=SENSITIVITY_MODELS,
    name=["deseq2_results.tsv", "concordance.tsv", "lfc_scatter.png"],
) + expand(
    "results/sensitivity/{contrast}/{model}/enrichment/{name}",
    contrast=CONTRASTS,
    model=ENRICHED_MODELS,
    name=["gsea.tsv", "ora.tsv"],
)
