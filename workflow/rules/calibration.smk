# Label-permutation calibration per contrast (issue "Would these calls appear by chance?"):
# permuted labels -> refits of the primary model in scattered blocks -> one gathering rule.
# Engine: workflow/lib/trdpipe/calibration/permutation.py. A local run spreads the blocks over cores, a SLURM run
# over nodes; `--set-scatter calibration=N` changes the number of blocks, not the results.
# Every assay is calibrated by these rules ({assay_dir}: "" or "assays/{name}/").

import math

CALIBRATION = config["calibration"]


scattergather:
    calibration=math.ceil(CALIBRATION["permutations"] / CALIBRATION["block_size"]),


rule calibration_permutations:
    input:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
    output:
        labels="results/{assay_dir}calibration/{contrast}/permuted_labels.tsv",
    log:
        "logs/{assay_dir}calibration_permutations/{contrast}.log",
    benchmark:
        "results/benchmarks/{assay_dir}calibration_permutations/{contrast}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(500, 10),
        runtime=5,
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        permutations=CALIBRATION["permutations"],
        strata=CALIBRATION["strata"],
        seed=CALIBRATION["seed"],
    script:
        "../scripts/calibration_permute.py"


rule calibration_block:
    input:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
        labels="results/{assay_dir}calibration/{contrast}/permuted_labels.tsv",
    output:
        h5ad="results/{assay_dir}calibration/{contrast}/blocks/{scatteritem}.h5ad",
    log:
        "logs/{assay_dir}calibration_block/{contrast}_{scatteritem}.log",
    benchmark:
        "results/benchmarks/{assay_dir}calibration_block/{contrast}_{scatteritem}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    # one thread per block: blocks run side by side, and PyDESeq2's serial steps gain nothing
    # from a second thread
    threads: 1
    resources:
        # one refit at a time, which drops its samples x genes intermediates once used
        mem_mb=mem_mb(1800, 40),
        runtime=runtime_min(10, 0.5 * CALIBRATION["block_size"]),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        # no lfc_shrink: the null needs the Wald statistics only (calibration.refit_permuted)
        deseq2=de_settings("fit_and_test"),
    script:
        "../scripts/calibration_block.py"


rule calibration:
    input:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
        labels="results/{assay_dir}calibration/{contrast}/permuted_labels.tsv",
        table="results/{assay_dir}de/{contrast}/deseq2_results.tsv",
        blocks=gather.calibration("results/{{assay_dir}}calibration/{{contrast}}/blocks/{scatteritem}.h5ad"),
    output:
        null="results/{assay_dir}calibration/{contrast}/null_statistics.h5ad",
        calibrated=report(
            "results/{assay_dir}calibration/{contrast}/calibrated_results.tsv",
            caption="../report/calibrated_results.rst",
            category="Calibration",
            subcategory="{contrast}",
        ),
        permutations="results/{assay_dir}calibration/{contrast}/permutations.tsv",
        summary="results/{assay_dir}calibration/{contrast}/summary.tsv",
        qq=report(
            "results/{assay_dir}calibration/{contrast}/qq.png",
            caption="../report/qq.rst",
            category="Calibration",
            subcategory="{contrast}",
        ),
        null_degs=report(
            "results/{assay_dir}calibration/{contrast}/null_degs.png",
            caption="../report/null_degs.rst",
            category="Calibration",
            subcategory="{contrast}",
        ),
        qq_svg="results/{assay_dir}calibration/{contrast}/qq.svg",
        null_degs_svg="results/{assay_dir}calibration/{contrast}/null_degs.svg",
    log:
        "logs/{assay_dir}calibration/{contrast}.log",
    benchmark:
        "results/benchmarks/{assay_dir}calibration/{contrast}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # the null (permutations x genes, four float64 layers) a few times over
        mem_mb=mem_mb(1000, 0.3 * CALIBRATION["permutations"]),
        runtime=runtime_min(5, 0.2),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        deseq2=de_settings("calls"),
        permutations=CALIBRATION["permutations"],
        strata=CALIBRATION["strata"],
        seed=CALIBRATION["seed"],
    script:
        "../scripts/calibration_summary.py"
