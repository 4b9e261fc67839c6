rule ingest:
    input:
        counts=existing_count_files,
        samples=config["samples"],
        annotation=config["annotation"],
    output:
        h5ad="results/ingest/cohort.h5ad",
    log:
        "logs/ingest/ingest.log",
    benchmark:
        "results/benchmarks/ingest/ingest.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # parsing text holds a few copies of the samples x genes matrix (~40 bytes a cell)
        mem_mb=mem_mb(1000, 40),
        runtime=runtime_min(5, 0.5),
    params:
        counts=config["counts"],
        design=config["design"],
        contrasts=config["contrasts"],
        counts_format=config["counts_format"],
        strandedness=config["strandedness"],
        counts_layer=config["counts_layer"],
        tx2gene=config["tx2gene"],
        # what the Snakefile switched off (enabled: auto), for ingest's log
        switched_off=SWITCHED_OFF,
    script:
        "../scripts/ingest.py"
