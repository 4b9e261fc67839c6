# MultiQC's report of the sample QC (the qc rule's metrics and flags as MultiQC custom content),
# part of `all` when MultiQC is installed (multiqc.enabled: auto) or asked for (true).
# Script: workflow/lib/trdpipe/provenance/multiqc.py (offline: no version check, no upload).

MULTIQC_OUTPUTS = ["results/multiqc/multiqc_report.html"] if multiqc_enabled(config["multiqc"]) else []


# seconds of work on two small tables: on a cluster it runs on the submit host, as the report does
localrules:
    multiqc,


rule multiqc:
    input:
        # the primary mRNA assay's QC only
        metrics=primary_assay(rules.qc.output.mqc_metrics),
        flags=primary_assay(rules.qc.output.mqc_flags),
    output:
        html="results/multiqc/multiqc_report.html",
        data=directory("results/multiqc/multiqc_data"),
    log:
        "logs/multiqc/multiqc.log",
    benchmark:
        "results/benchmarks/multiqc/multiqc.tsv"
    conda:
        "../envs/multiqc.yml"
    threads: 1
    resources:
        # MultiQC reads two small tables: its own footprint, whatever the cohort
        mem_mb=mem_mb(600, 0),
        runtime=5,
    params:
        title=config["multiqc"]["title"],
    script:
        "../scripts/multiqc_report.py"
