# Simulated cohorts with a known answer (the toy cohort is one; see resources/toy/README.md).
# `snakemake --cores 2 simulate --config sim_samples=300 sim_genes=20000 sim_seed=1`
# writes results/simulated/n300_g20000_seed1/.


rule simulate:
    input:
        expand(
            "results/simulated/n{n_samples}_g{n_genes}_seed{seed}/counts.tsv.gz",
            n_samples=config["sim_samples"],
            n_genes=config["sim_genes"],
            seed=config["sim_seed"],
        ),


rule simulate_cohort:
    input:
        annotation=config["annotation"],
        mirna_annotation=shipped_path("resources/annotation/mirna.tsv.gz", WORKFLOW_TOP),
        candidate_variants=shipped_path("resources/genotypes/candidate_variants.tsv", WORKFLOW_TOP),
        gene_sets=[
            shipped_path("resources/genesets/go_bp.gmt.gz", WORKFLOW_TOP),
            shipped_path("resources/genesets/curated_trd.gmt", WORKFLOW_TOP),
        ],
    output:
        counts="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/counts.tsv.gz",
        samples="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/samples.tsv",
        truth_genes="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_genes.tsv",
        truth_pathways="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_pathways.tsv",
        truth_hazards="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_hazards.tsv",
        truth_cells="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_cells.tsv",
        mirna_counts="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/mirna_counts.tsv.gz",
        truth_mirna="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_mirna.tsv",
        mirna_targets="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/mirna_targets.gmt",
        genotypes="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/genotypes.vcf.gz",
        genotypes_index="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/genotypes.vcf.gz.tbi",
        truth_genotypes="results/simulated/n{n_samples}_g{n_genes}_seed{seed}/truth_genotypes.tsv",
    log:
        "logs/simulate/n{n_samples}_g{n_genes}_seed{seed}.log",
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # counts are drawn as float64 matrices of samples x genes (a few copies at once)
        mem_mb=lambda wc, attempt: int(
            (JOB_RUNNER_MB + 1000 + 60 * int(wc.n_samples) * int(wc.n_genes) / 1e6) * attempt
        ),
        runtime=lambda wc: int(5 + 2 * int(wc.n_samples) * int(wc.n_genes) / 1e6),
    params:
        n_samples=lambda wc: int(wc.n_samples),
        n_genes=lambda wc: int(wc.n_genes),
        seed=lambda wc: int(wc.seed),
        collections={
            "GO_BP": shipped_path("resources/genesets/go_bp.gmt.gz", WORKFLOW_TOP),
            "curated_TRD": shipped_path("resources/genesets/curated_trd.gmt", WORKFLOW_TOP),
        },
    script:
        "../scripts/simulate_cohort.py"
