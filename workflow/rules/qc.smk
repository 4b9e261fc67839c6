QC_FIGURES = [
    "pca",
    "scree",
    "pc_covariate_association",
    "sample_distances",
    "library_size",
    "detected_genes",
    "sex_check",
]


# QC and filtering of every assay, as ingest (rules/ingest.smk): {assay_dir} "" or "assays/{name}/".
rule qc:
    input:
        h5ad="results/{assay_dir}ingest/cohort.h5ad",
    output:
        metrics=report(
            "results/{assay_dir}qc/qc_metrics.tsv",
            caption="../report/qc_metrics.rst",
            category="Quality control",
        ),
        excluded="results/{assay_dir}qc/excluded_samples.tsv",
        limits="results/{assay_dir}qc/qc_limits.tsv",
        pcs="results/{assay_dir}qc/pca_scores.tsv",
        association="results/{assay_dir}qc/pc_covariate_association.tsv",
        balance=report(
            "results/{assay_dir}qc/covariate_balance.tsv",
            caption="../report/covariate_balance.rst",
            category="Quality control",
        ),
        # every sample-sheet column against each contrast's variable, and the alarms it raises
        confounding="results/{assay_dir}qc/confounding.tsv",
        mqc_metrics="results/{assay_dir}qc/trd_qc_metrics_mqc.tsv",
        mqc_flags="results/{assay_dir}qc/trd_qc_flags_mqc.yaml",
        pca=qc_figure("pca"),
        scree=qc_figure("scree"),
        pc_heatmap=qc_figure("pc_covariate_association"),
        distances=qc_figure("sample_distances"),
        library_size=qc_figure("library_size"),
        detected_genes=qc_figure("detected_genes"),
        sex_check=qc_figure("sex_check"),
        # save_figure writes each figure as SVG too, for publication
        svgs=expand("results/{{assay_dir}}qc/{name}.svg", name=QC_FIGURES),
    log:
        "logs/{assay_dir}qc/qc.log",
    benchmark:
        "results/benchmarks/{assay_dir}qc/qc.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1  # as vst: the blind VST's threaded part is short
    resources:
        # the blind VST: a few float64 samples x genes matrices
        mem_mb=mem_mb(400, 45),
        runtime=runtime_min(5, 1),
    params:
        qc=assay_setting("qc"),
        # the globin and sex checks are the mRNA assay's (trdpipe.qc.metrics.run_qc)
        assay_type=assay_setting("type"),
        deseq2=de_settings("vst"),
        contrasts=config["contrasts"],
        design=config["design"],
    script:
        "../scripts/qc.py"


rule filter:
    input:
        h5ad="results/{assay_dir}ingest/cohort.h5ad",
        metrics="results/{assay_dir}qc/qc_metrics.tsv",
    output:
        h5ad="results/{assay_dir}filter/cohort.h5ad",
        summary="results/{assay_dir}filter/filter_summary.tsv",
    log:
        "logs/{assay_dir}filter/filter.log",
    benchmark:
        "results/benchmarks/{assay_dir}filter/filter.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 30),
        runtime=runtime_min(5, 0.5),
    params:
        filter=assay_setting("filter"),
        # names the features in the summary: genes, or a small-RNA assay's miRNAs
        assay_type=assay_setting("type"),
        contrasts=config["contrasts"],
        design=config["design"],
    script:
        "../scripts/filter.py"
