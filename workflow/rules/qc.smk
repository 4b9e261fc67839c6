rule qc:
    input:
        h5ad="results/ingest/cohort.h5ad",
    output:
        metrics="results/qc/qc_metrics.tsv",
        pca=report(
            "results/qc/pca.png",
            caption="../report/pca.rst",
            category="Quality control",
        ),
    params:
        n_top_genes=config["qc"]["n_top_genes"],
    threads: 2
    resources:
        # VST needs dispersions of every gene: a few float64 samples x genes matrices
        mem_mb=mem_mb(1000, 60),
        runtime=runtime_min(5, 1),
    log:
        "logs/qc/qc.log",
    script:
        "../scripts/qc.py"


rule filter:
    input:
        h5ad="results/ingest/cohort.h5ad",
        metrics="results/qc/qc_metrics.tsv",
    output:
        h5ad="results/filter/cohort.h5ad",
        summary="results/filter/filter_summary.tsv",
    params:
        filter=config["filter"],
        contrasts=config["contrasts"],
        design=config["design"],
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 30),
        runtime=runtime_min(5, 0.5),
    log:
        "logs/filter/filter.log",
    script:
        "../scripts/filter.py"
