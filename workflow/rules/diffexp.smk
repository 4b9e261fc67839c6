# DE and VST of every assay: {assay_dir} is "" for the primary assay, "assays/{name}/" for the others.
rule deseq2:
    input:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
    output:
        table=report(
            "results/{assay_dir}de/{contrast}/deseq2_results.tsv",
            caption="../report/deseq2_results.rst",
            category="Differential expression",
            subcategory="{contrast}",
        ),
        model="results/{assay_dir}de/{contrast}/model.tsv",
        samples="results/{assay_dir}de/{contrast}/samples_used.tsv",
        volcano=report(
            "results/{assay_dir}de/{contrast}/volcano.png",
            caption="../report/volcano.rst",
            category="Differential expression",
            subcategory="{contrast}",
        ),
        ma=report(
            "results/{assay_dir}de/{contrast}/ma.png",
            caption="../report/ma.rst",
            category="Differential expression",
            subcategory="{contrast}",
        ),
        volcano_svg="results/{assay_dir}de/{contrast}/volcano.svg",
        ma_svg="results/{assay_dir}de/{contrast}/ma.svg",
        normalised="results/{assay_dir}de/{contrast}/normalised_counts.tsv.gz",
    log:
        "logs/{assay_dir}deseq2/{contrast}.log",
    benchmark:
        "results/benchmarks/{assay_dir}deseq2/{contrast}.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: threads_beside_vst_branch(2)
    resources:
        # at most 6 samples x genes matrices of 8-byte values at once (the counts twice, normalised
        # counts, IRLS means and hat values, Cook's distances): 5.3 GB at 6,000 x 18,364
        # (bench/measured_peaks.tsv)
        mem_mb=mem_mb(1000, 50),
        runtime=runtime_min(10, 4),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        deseq2=de_settings("fit_and_test", "de_table"),
    script:
        "../scripts/deseq2.py"


rule vst:
    input:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
    output:
        h5ad="results/{assay_dir}vst/vst.h5ad",
        tsv="results/{assay_dir}vst/vst.tsv.gz",
    log:
        "logs/{assay_dir}vst/vst.log",
    benchmark:
        "results/benchmarks/{assay_dir}vst/vst.tsv"
    conda:
        "../envs/trdpipe.yml"
    # the VST is numpy on whole matrices; its one threaded part, a dispersion fit of
    # 1000 genes (deseq2.vst_nsub), takes well under a second
    threads: 1
    resources:
        mem_mb=mem_mb(400, 50),
        runtime=runtime_min(5, 2),
    params:
        deseq2=de_settings("vst"),
    script:
        "../scripts/vst.py"
