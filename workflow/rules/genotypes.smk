# Genotypes of candidate genes (config `genotypes:`, on when `genotypes.file` is set): the genotype
# file's checked dosages of the shipped candidate variants and the user's own, each candidate gene's
# eQTL in the mRNA VST, and each variant's association with every contrast.
# Choices and checks: workflow/lib/trdpipe/genotypes/.

# The genotype checks run first, beside ingest (they need the sample sheet and the genotype file
# only): a bad genotype file stops the run before any model is fitted.
GENOTYPE_CHECK_PRIORITY = CRITICAL_PATH_PRIORITY + 1

GENOTYPE_OUTPUTS = (
    [
        "results/genotypes/dosages.tsv.gz",
        "results/genotypes/variants.tsv",
        "results/genotypes/eqtl.tsv",
        "results/genotypes/eqtl_by_genotype.png",
    ]
    + expand("results/genotypes/association/{contrast}.tsv", contrast=CONTRASTS)
    if GENOTYPES_ENABLED
    else []
)


rule genotypes:
    input:
        files=genotype_files,
        samples=config["samples"],
        candidates=GENOTYPES["candidates"],
    output:
        dosages="results/genotypes/dosages.tsv.gz",
        variants="results/genotypes/variants.tsv",
    log:
        "logs/genotypes/genotypes.log",
    benchmark:
        "results/benchmarks/genotypes/genotypes.tsv"
    priority: GENOTYPE_CHECK_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # the candidate variants' records only, fetched through the index
        mem_mb=mem_mb(300, 0),
        runtime=5,
    params:
        genotypes=GENOTYPES,
    script:
        "../scripts/genotypes.py"


rule genotype_eqtl:
    input:
        vst="results/vst/vst.h5ad",
        dosages=rules.genotypes.output.dosages,
        variants=rules.genotypes.output.variants,
    output:
        table=report(
            "results/genotypes/eqtl.tsv",
            caption="../report/genotype_eqtl.rst",
            category="Genotypes",
        ),
        figure=report(
            "results/genotypes/eqtl_by_genotype.png",
            caption="../report/eqtl_by_genotype.rst",
            category="Genotypes",
        ),
        figure_svg="results/genotypes/eqtl_by_genotype.svg",
    log:
        "logs/genotype_eqtl/genotype_eqtl.log",
    benchmark:
        "results/benchmarks/genotype_eqtl/genotype_eqtl.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # reads the whole VST to take the candidate genes' columns
        mem_mb=mem_mb(500, 10),
        runtime=runtime_min(5, 0.1),
    params:
        design=config["design"],
    script:
        "../scripts/genotype_eqtl.py"


rule genotype_association:
    input:
        cohort="results/ingest/cohort.h5ad",
        dosages=rules.genotypes.output.dosages,
        variants=rules.genotypes.output.variants,
    output:
        table="results/genotypes/association/{contrast}.tsv",
    log:
        "logs/genotype_association/{contrast}.log",
    benchmark:
        "results/benchmarks/genotype_association/{contrast}.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(300, 0),
        runtime=5,
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        genotypes={key: GENOTYPES[key] for key in ("scores", "min_allele_count")},
    script:
        "../scripts/genotype_association.py"
