# TRD-vs-responder differential expression of blood transcriptomes.
# Data flow and choices: docs/design.md (summarised in README.md).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/diffexp.smk"
include: "workflow/rules/enrichment.smk"
include: "workflow/rules/calibration.smk"
include: "workflow/rules/predict.smk"
include: "workflow/rules/sensitivity.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/multiqc.smk"


rule all:
    default_target: True
    input:
        "results/qc/qc_metrics.tsv",
        "results/filter/cohort.h5ad",
        "results/vst/vst.h5ad",
        expand("results/de/{contrast}/deseq2_results.tsv", contrast=CONTRASTS),
        expand("results/de/{contrast}/volcano.png", contrast=CONTRASTS),
        expand("results/de/{contrast}/ma.png", contrast=CONTRASTS),
        expand(
            "results/enrichment/{contrast}/{name}",
            contrast=CONTRASTS,
            name=["gsea.tsv", "ora.tsv", "gsea_dotplot.png", "ora_dotplot.png", "running_scores"],
        ),
        CAMERA_OUTPUTS,
        expand("results/predict/{contrast}/model_comparison.tsv", contrast=PREDICTED_CONTRASTS),
        CELL_OUTPUTS,
        SENSITIVITY_OUTPUTS,
        expand(
            "results/calibration/{contrast}/{name}",
            contrast=CONTRASTS,
            name=[
                "summary.tsv",
                "calibrated_results.tsv",
                "null_statistics.h5ad",
                "qq.png",
                "null_degs.png",
            ],
        ),
        "results/report/report.html",
        MULTIQC_OUTPUTS,
