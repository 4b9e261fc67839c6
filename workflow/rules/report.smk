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


# The report's sections in page order: each is a module of trdpipe.report.sections with its
# template part in workflow/report/sections/.
REPORT_SECTIONS = [
    "key_findings",
    "cohort",
    "qc",
    "de",
    "calibration",
    # every assay beside the primary mRNA one (config assays:): its QC and DE
    "assays",
    "enrichment",
    "mirna_targets",
    "prediction",
    "robustness",
    "genotypes",
    "meta",
    "methods",
    "provenance",
]


def one_path(pattern, contrast):
    return expand(pattern, contrast=contrast)[0]


def sensitivity_files(contrast):
    """Each sensitivity model's concordance with the primary model, and its enrichment when run."""
    return {
        model: {
            "concordance": f"results/sensitivity/{contrast}/{model}/concordance.tsv",
            **(
                {"gsea": expand(rules.sensitivity_enrichment.output.gsea, contrast=contrast, model=model)[0]}
                if model in ENRICHED_MODELS
                else {}
            ),
        }
        for model in SENSITIVITY_MODELS
    }


def extra_assay_files(name, contrast):
    """An extra assay's files that the report shows: its QC and its DE and calibration of a contrast."""
    files = {
        "qc_metrics": rules.qc.output.metrics,
        "pca": rules.qc.output.pca,
        "library_size": rules.qc.output.library_size,
        "detected_genes": rules.qc.output.detected_genes,
        "table": rules.deseq2.output.table,
        "volcano": rules.deseq2.output.volcano,
        "calibration_summary": rules.calibration.output.summary,
    }
    return {key: expand(path, assay_dir=assay_dir(name), contrast=contrast)[0] for key, path in files.items()}


def report_contrast_files(contrast):
    """The report's files of one contrast by name (trdpipe.report.inputs.ReportInputs); a step this
    run skips has none."""
    files = {
        "table": f"results/de/{contrast}/deseq2_results.tsv",
        "model": f"results/de/{contrast}/model.tsv",
        "volcano": f"results/de/{contrast}/volcano.png",
        "ma": f"results/de/{contrast}/ma.png",
        "sensitivity": sensitivity_files(contrast),
        "assays": {name: extra_assay_files(name, contrast) for name in EXTRA_ASSAYS},
    }
    for name in ("gsea", "ora", "gsea_dotplot", "ora_dotplot", "running_scores"):
        files[name] = one_path(getattr(rules.enrichment.output, name), contrast)
    for name in ("summary", "qq", "null_degs"):
        files[f"calibration_{name}"] = one_path(
            primary_assay(getattr(rules.calibration.output, name)), contrast
        )
    if contrast in PREDICTED_CONTRASTS:
        for name in ("comparison", "gains", "site", "genes", "layers", "roc", "calibration"):
            files[f"predict_{name}"] = one_path(getattr(rules.predict.output, name), contrast)
    if CAMERA_OUTPUTS:
        files["camera"] = one_path(rules.camera.output.table, contrast)
    if TARGET_ASSAYS:
        files["mirna_targets"] = mirna_target_files(contrast)
    if contrast in META_CONTRASTS:
        for name in ("table", "cohorts", "concordance", "forest_top", "forest_candidates"):
            files[f"meta_{name}"] = one_path(getattr(rules.meta_analysis.output, name), contrast)
    if CELLS["enabled"]:
        files["cell_by_group"] = f"results/cells/{contrast}/scores_by_group.tsv"
        files["cell_figure"] = f"results/cells/{contrast}/scores_by_group.png"
    if GENOTYPES_ENABLED:
        files["genotype_association"] = one_path(rules.genotype_association.output.table, contrast)
    return files


REPORT_FILES = {contrast: report_contrast_files(contrast) for contrast in CONTRASTS}


# the jobs of every extra assay (config assays:), after the primary assay's and the others
EXTRA_ASSAY_BENCHMARKS = [
    path
    for name in EXTRA_ASSAYS
    for path in expand(
        [rules.ingest.benchmark, rules.qc.benchmark, rules.filter.benchmark, rules.vst.benchmark],
        assay_dir=assay_dir(name),
    )
    + expand(
        [rules.deseq2.benchmark, rules.calibration_permutations.benchmark],
        assay_dir=assay_dir(name),
        contrast=CONTRASTS,
    )
    + gather.calibration(rules.calibration_block.benchmark, contrast=CONTRASTS, assay_dir=assay_dir(name))
    + expand(rules.calibration.benchmark, assay_dir=assay_dir(name), contrast=CONTRASTS)
]


def manifest_paths(files):
    """Every path of a manifest of nested dicts, for a rule's input."""
    for value in files.values():
        yield from manifest_paths(value) if isinstance(value, dict) else [value]


rule report:
    input:
        cohort="results/ingest/cohort.h5ad",
        metrics=primary_assay(rules.qc.output.metrics),
        balance=primary_assay(rules.qc.output.balance),
        association=primary_assay(rules.qc.output.association),
        confounding=primary_assay(rules.qc.output.confounding),
        # every figure of the QC rule, each captioned by workflow/report/<name>.rst
        qc_figures=[primary_assay(path) for path in rules.qc.output if path.endswith(".png")],
        filter_summary="results/filter/filter_summary.tsv",
        vst="results/vst/vst.h5ad",
        # raw counts of the genes and samples each contrast was fitted on, for the per-gene plots
        filtered="results/filter/cohort.h5ad",
        # per contrast, by name (REPORT_FILES, which params hand to the script)
        contrast_files=list(manifest_paths(REPORT_FILES)),
        # how robust are the findings (workflow/rules/sensitivity.smk)
        cell_markers=rules.cell_composition.output.markers if CELLS["enabled"] else [],
        cell_choice=rules.cell_composition.output.choice if CELLS["enabled"] else [],
        # genotypes of candidate genes (workflow/rules/genotypes.smk)
        genotype_eqtl=rules.genotype_eqtl.output.table if GENOTYPES_ENABLED else [],
        genotype_eqtl_figure=rules.genotype_eqtl.output.figure if GENOTYPES_ENABLED else [],
        readmes=resource_readmes(),
        software_versions=rules.software_versions.output.yml,
        # what every job used (Snakemake's benchmark files), tabled in the run summary
        benchmarks=[
            primary_assay(rule.benchmark) for rule in (rules.ingest, rules.qc, rules.filter, rules.vst)
        ]
        + expand(primary_assay(rules.deseq2.benchmark), contrast=CONTRASTS)
        + expand(rules.enrichment.benchmark, contrast=CONTRASTS)
        + expand(rules.pathway_null.benchmark, contrast=CONTRASTS)
        + (expand(rules.camera.benchmark, contrast=CONTRASTS) if CAMERA_OUTPUTS else [])
        + expand(primary_assay(rules.calibration_permutations.benchmark), contrast=CONTRASTS)
        + gather.calibration(rules.calibration_block.benchmark, contrast=CONTRASTS, assay_dir="")
        + expand(primary_assay(rules.calibration.benchmark), contrast=CONTRASTS)
        + expand(rules.predict.benchmark, contrast=PREDICTED_CONTRASTS)
        + ([rules.cell_composition.benchmark] if CELLS["enabled"] else [])
        + expand(rules.sensitivity.benchmark, contrast=CONTRASTS, model=SENSITIVITY_MODELS)
        + expand(rules.sensitivity_enrichment.benchmark, contrast=CONTRASTS, model=ENRICHED_MODELS)
        + (
            [rules.genotypes.benchmark, rules.genotype_eqtl.benchmark]
            + expand(rules.genotype_association.benchmark, contrast=CONTRASTS)
            if GENOTYPES_ENABLED
            else []
        )
        + expand(rules.meta_cohort.benchmark, zip, **meta_jobs(META_COHORTS, META_CONTRASTS))
        + expand(rules.meta_analysis.benchmark, contrast=META_CONTRASTS)
        + [rules.software_versions.benchmark]
        + EXTRA_ASSAY_BENCHMARKS
        + expand(rules.mirna_targets.benchmark, assay=TARGET_ASSAYS, contrast=CONTRASTS),
        template=os.path.join(REPORT_TEMPLATE_DIR, "report.html.j2"),
        macros=os.path.join(REPORT_TEMPLATE_DIR, "macros.j2"),
        section_templates=sorted(glob.glob(os.path.join(REPORT_TEMPLATE_DIR, "sections", "*.html.j2"))),
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
        mem_mb=mem_mb(1800, 16),
        runtime=5,
    params:
        config=config,
        switched_off=SWITCHED_OFF,
        # the sensitivity model flagged key_finding (workflow/rules/sensitivity.smk), or None
        key_model=KEY_FINDING_MODEL,
        contrast_files=REPORT_FILES,
        sections=REPORT_SECTIONS,
    script:
        "../scripts/report.py"
