# On a cluster the report runs on the submit host: it only reads small tables and
# figures, so a SLURM job would spend longer queueing than working.
localrules:
    report,


rule report:
    input:
        metrics="results/qc/qc_metrics.tsv",
        pca="results/qc/pca.png",
        filter_summary="results/filter/filter_summary.tsv",
        tables=expand("results/de/{contrast}/deseq2_results.tsv", contrast=CONTRASTS),
        volcanos=expand("results/de/{contrast}/volcano.png", contrast=CONTRASTS),
        mas=expand("results/de/{contrast}/ma.png", contrast=CONTRASTS),
    output:
        html="results/report/report.html",
    params:
        contrasts=config["contrasts"],
        design=config["design"],
        alpha=config["deseq2"]["alpha"],
        config=config,
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    log:
        "logs/report/report.log",
    script:
        "../scripts/report.py"
