QC_FIGURES = [
    "pca",
    "scree",
    "pc_covariate_association",
    "sample_distances",
    "library_size",
    "detected_genes",
    "sex_check",
]


rule qc:
    input:
        h5ad="results/ingest/cohort.h5ad",
    output:
        metrics=report(
            "results/qc/qc_metrics.tsv",
            caption="../report/qc_metrics.rst",
            category="Quality control",
        ),
        excluded="results/qc/excluded_samples.tsv",
        limits="results/qc/qc_limits.tsv",
        pcs="results/qc/pca_scores.tsv",
        association="results/qc/pc_covariate_association.tsv",
        balance=report(
            "results/qc/covariate_balance.tsv",
            caption="../report/covariate_balance.rst",
            category="Quality control",
        ),
        # every sample-sheet column against each contrast's variable, and the alarms it raises
        confounding="results/qc/confounding.tsv",
        mqc_metrics="results/qc/trd_qc_metrics_mqc.tsv",
        mqc_flags="results/qc/trd_qc_flags_mqc.yaml",
        pca=qc_figure("pca"),
        scree=qc_figure("scree"),
        pc_heatmap=qc_figure("pc_covariate_association"),
        distances=qc_figure("sample_distances"),
        library_size=qc_figure("library_size"),
        detected_genes=qc_figure("detected_genes"),
        sex_check=qc_figure("sex_check"),
        # save_figure writes each figure as SVG too, for publication
        svgs=expand("results/qc/{name}.svg", name=QC_FIGURES),
    log:
        "logs/qc/qc.log",
    benchmark:
        "results/benchmarks/qc/qc.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1  # as vst: the blind VST's threaded part is short
    resources:
        # the blind VST: a few float64 samples x genes matrices
        mem_mb=mem_mb(1000, 60),
        runtime=runtime_min(5, 1),
    params:
        qc=config["qc"],
        deseq2=de_settings("vst"),
        contrasts=config["contrasts"],
        design=config["design"],
    script:
        "../scripts/qc.py"


rule filter:
    input:
        h5ad="results/ingest/cohort.h5ad",
        metrics="results/qc/qc_metrics.tsv",
    output:
        h5ad="results/filter/cohort.h5ad",
        summary="results/filter/filter_summary.tsv",
    log:
        "logs/filter/filter.log",
    benchmark:
        "results/benchmarks/filter/filter.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 30),
        runtime=runtime_min(5, 0.5),
    params:
        filter=config["filter"],
        contrasts=config["contrasts"],
        design=config["design"],
    script:
        "../scripts/filter.py"
