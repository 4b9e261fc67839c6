import glob


# On a cluster the report runs on the submit host: it only reads what the other rules
# wrote (tables, figures, the VST matrix for a heat map; under 300 MB on the toy
# cohort) and takes seconds, so a SLURM job would spend longer queueing than working.
localrules:
    report,
    software_versions,


# The workflow's version (VERSION) and every package its scripts and rule files import, with
# their versions (nf-core's software_versions.yml); the report reads it.
rule software_versions:
    input:
        version=os.path.join(WORKFLOW_TOP, "VERSION"),
        # the code whose imports are listed: a new import is listed at the next run
        scripts=sorted(glob.glob(os.path.join(SCRIPTS_DIR, "*.py"))),
        engine=sorted(glob.glob(os.path.join(LIB_DIR, "**", "*.py"), recursive=True)),
        rules=sorted(glob.glob(os.path.join(WORKFLOW_DIR, "rules", "*.smk")))
        + [os.path.join(WORKFLOW_DIR, "Snakefile")],
        # the run's config files, named with their checksums
        config_files=list(map(str, workflow.configfiles)),
        # after ingest has checked the inputs: a run that bad input stops leaves no results
        checked="results/ingest/cohort.h5ad",
    output:
        yml="results/software_versions.yml",
    log:
        "logs/software_versions/software_versions.log",
    benchmark:
        "results/benchmarks/software_versions/software_versions.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(200, 0),
        runtime=2,
    params:
        lib=LIB_DIR,
        source=WORKFLOW_SOURCE,
    script:
        "../scripts/software_versions.py"


rule report:
    input:
        cohort="results/ingest/cohort.h5ad",
        metrics=rules.qc.output.metrics,
        balance=rules.qc.output.balance,
        association=rules.qc.output.association,
        confounding=rules.qc.output.confounding,
        # every figure of the QC rule, each captioned by workflow/report/<name>.rst
        qc_figures=[path for path in rules.qc.output if path.endswith(".png")],
        filter_summary="results/filter/filter_summary.tsv",
        vst="results/vst/vst.h5ad",
        # raw counts of the genes and samples each contrast was fitted on, for the per-gene plots
        filtered="results/filter/cohort.h5ad",
        tables=expand("results/de/{contrast}/deseq2_results.tsv", contrast=CONTRASTS),
        models=expand("results/de/{contrast}/model.tsv", contrast=CONTRASTS),
        volcanos=expand("results/de/{contrast}/volcano.png", contrast=CONTRASTS),
        mas=expand("results/de/{contrast}/ma.png", contrast=CONTRASTS),
        gsea=expand(rules.enrichment.output.gsea, contrast=CONTRASTS),
        ora=expand(rules.enrichment.output.ora, contrast=CONTRASTS),
        gsea_dotplots=expand(rules.enrichment.output.gsea_dotplot, contrast=CONTRASTS),
        ora_dotplots=expand(rules.enrichment.output.ora_dotplot, contrast=CONTRASTS),
        calibration_summaries=expand(rules.calibration.output.summary, contrast=CONTRASTS),
        calibration_qq=expand(rules.calibration.output.qq, contrast=CONTRASTS),
        calibration_null_degs=expand(rules.calibration.output.null_degs, contrast=CONTRASTS),
        predict_comparison=expand(rules.predict.output.comparison, contrast=PREDICTED_CONTRASTS),
        predict_site=expand(rules.predict.output.site, contrast=PREDICTED_CONTRASTS),
        predict_genes=expand(rules.predict.output.genes, contrast=PREDICTED_CONTRASTS),
        predict_roc=expand(rules.predict.output.roc, contrast=PREDICTED_CONTRASTS),
        predict_calibration=expand(rules.predict.output.calibration, contrast=PREDICTED_CONTRASTS),
        # how robust are the findings (workflow/rules/sensitivity.smk)
        cell_markers=rules.cell_composition.output.markers if CELLS["enabled"] else [],
        cell_choice=rules.cell_composition.output.choice if CELLS["enabled"] else [],
        cell_by_group=rules.cell_composition.output.by_group if CELLS["enabled"] else [],
        cell_figures=rules.cell_composition.output.figures if CELLS["enabled"] else [],
        concordance=[path for path in SENSITIVITY_OUTPUTS if path.endswith("concordance.tsv")],
        # the GSEA of the model the key findings follow, when it has one (`enrichment: true`)
        cell_adjusted_gsea=expand(
            rules.sensitivity_enrichment.output.gsea,
            contrast=CONTRASTS,
            model=[m for m in ENRICHED_MODELS if m == KEY_FINDING_MODEL],
        ),
        readmes=resource_readmes(),
        software_versions=rules.software_versions.output.yml,
        running_scores=expand(rules.enrichment.output.running_scores, contrast=CONTRASTS),
        camera=CAMERA_OUTPUTS,
        # what every job used (Snakemake's benchmark files), tabled in the run summary
        benchmarks=[rules.ingest.benchmark, rules.qc.benchmark, rules.filter.benchmark, rules.vst.benchmark]
        + expand(rules.deseq2.benchmark, contrast=CONTRASTS)
        + expand(rules.enrichment.benchmark, contrast=CONTRASTS)
        + expand(rules.pathway_null.benchmark, contrast=CONTRASTS)
        + (expand(rules.camera.benchmark, contrast=CONTRASTS) if CAMERA_OUTPUTS else [])
        + expand(rules.calibration_permutations.benchmark, contrast=CONTRASTS)
        + gather.calibration(rules.calibration_block.benchmark, contrast=CONTRASTS)
        + expand(rules.calibration.benchmark, contrast=CONTRASTS)
        + expand(rules.predict.benchmark, contrast=PREDICTED_CONTRASTS)
        + ([rules.cell_composition.benchmark] if CELLS["enabled"] else [])
        + expand(rules.sensitivity.benchmark, contrast=CONTRASTS, model=SENSITIVITY_MODELS)
        + expand(rules.sensitivity_enrichment.benchmark, contrast=CONTRASTS, model=ENRICHED_MODELS)
        + [rules.software_versions.benchmark],
        template=os.path.join(REPORT_TEMPLATE_DIR, "report.html.j2"),
        macros=os.path.join(REPORT_TEMPLATE_DIR, "macros.j2"),
        css=os.path.join(REPORT_TEMPLATE_DIR, "report.css"),
        js=os.path.join(REPORT_TEMPLATE_DIR, "report.js"),
        volcano_js=os.path.join(REPORT_TEMPLATE_DIR, "volcano.js"),
    output:
        html=report(
            "results/report/report.html",
            caption="../report/html_report.rst",
            category="Summary",
        ),
    log:
        "logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(1000, 20),
        runtime=5,
    params:
        config=config,
        switched_off=SWITCHED_OFF,
    script:
        "../scripts/report.py"
