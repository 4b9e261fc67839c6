# Every assay (config assays:) is ingested by this rule: {assay_dir} is "" for the primary mRNA
# assay (results/ingest/) and "assays/{name}/" for the others (common.smk's assay_dir).
rule ingest:
    input:
        counts=existing_count_files,
        samples=config["samples"],
        annotation=assay_setting("annotation"),
        # another assay after the primary one, whose ingest checks the config against the sheet:
        # a problem there stops the run before any assay writes its cohort
        checked=lambda wildcards: "results/ingest/cohort.h5ad" if wildcards.assay_dir else [],
        # a small-RNA assay's targets GMT, checked against its miRNAs and the mRNA annotation
        targets=lambda wc: targets_file(ASSAY_DIRS[wc.assay_dir]) or [],
        mrna_annotation=config["annotation"],
    output:
        h5ad="results/{assay_dir}ingest/cohort.h5ad",
    log:
        "logs/{assay_dir}ingest/ingest.log",
    benchmark:
        "results/benchmarks/{assay_dir}ingest/ingest.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # parsing text holds a few copies of the samples x genes matrix (~40 bytes a cell)
        mem_mb=mem_mb(1000, 40),
        runtime=runtime_min(5, 0.5),
    params:
        assay=lambda wc: ASSAY_DIRS[wc.assay_dir],
        assay_type=assay_setting("type"),
        targets=lambda wc: targets_file(ASSAY_DIRS[wc.assay_dir]) or "",
        counts=assay_setting("counts"),
        design=config["design"],
        contrasts=config["contrasts"],
        counts_format=assay_setting("counts_format"),
        strandedness=assay_setting("strandedness"),
        counts_layer=assay_setting("counts_layer"),
        tx2gene=assay_setting("tx2gene"),
        # what the Snakefile switched off (enabled: auto), for ingest's log
        switched_off=SWITCHED_OFF,
    script:
        "../scripts/ingest.py"
