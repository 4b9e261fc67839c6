# On a cluster the report runs on the submit host: it only reads small tables and
# figures, so a SLURM job would spend longer queueing than working.
localrules:
    report,


REPORT_TEMPLATE_DIR = os.path.join(workflow.basedir, "workflow", "report")


def resource_readmes():
    """README.md beside the annotation (and gene sets): their provenance goes into the Methods."""
    folders = {os.path.dirname(config["annotation"])}
    readmes = (os.path.join(folder, "README.md") for folder in sorted(folders))
    return [path for path in readmes if os.path.exists(path)]


rule report:
    input:
        cohort="results/ingest/cohort.h5ad",
        metrics="results/qc/qc_metrics.tsv",
        pca="results/qc/pca.png",
        filter_summary="results/filter/filter_summary.tsv",
        vst="results/vst/vst.h5ad",
        tables=expand("results/de/{contrast}/deseq2_results.tsv", contrast=CONTRASTS),
        models=expand("results/de/{contrast}/model.tsv", contrast=CONTRASTS),
        volcanos=expand("results/de/{contrast}/volcano.png", contrast=CONTRASTS),
        mas=expand("results/de/{contrast}/ma.png", contrast=CONTRASTS),
        readmes=resource_readmes(),
        template=os.path.join(REPORT_TEMPLATE_DIR, "report.html.j2"),
        css=os.path.join(REPORT_TEMPLATE_DIR, "report.css"),
        js=os.path.join(REPORT_TEMPLATE_DIR, "report.js"),
    output:
        html="results/report/report.html",
    params:
        config=config,
        template_dir=REPORT_TEMPLATE_DIR,
        pipeline_dir=workflow.basedir,
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 20),
        runtime=5,
    log:
        "logs/report/report.log",
    script:
        "../scripts/report.py"
