# Mega- and meta-analysis side by side (config `cohorts`): the primary model, with the cohort in its
# design, is the mega-analysis; each cohort is also fitted alone (one job per cohort and contrast,
# scattered over cores or SLURM nodes) and the cohorts are combined per gene by one gathering rule.
# Engine: workflow/lib/trdpipe/model/cohorts.py and meta.py.

from trdpipe.model.cohorts import cohorts_of_contrast

META = config["meta"]
COHORTS_COLUMN = config["cohorts"] or ""


META_COHORTS = plan_meta_analysis(COHORTS_COLUMN)
META_CONTRASTS = [name for name in CONTRASTS if len(META_COHORTS.get(name, [])) >= 2]
META_OUTPUTS = expand(
    "results/meta/{contrast}/{name}",
    contrast=META_CONTRASTS,
    name=["meta_results.tsv", "concordance.tsv", "forest_top.png", "forest_candidates.png"],
)


wildcard_constraints:
    cohort="|".join(map(re.escape, sorted({c for cohorts in META_COHORTS.values() for c in cohorts})))
    or "(?!)",


rule meta_cohort:
    input:
        h5ad="results/filter/cohort.h5ad",
    output:
        table="results/meta/{contrast}/cohorts/{cohort}/deseq2_results.tsv",
        fit="results/meta/{contrast}/cohorts/{cohort}/fit.tsv",
    log:
        "logs/meta_cohort/{contrast}_{cohort}.log",
    benchmark:
        "results/benchmarks/meta_cohort/{contrast}_{cohort}.tsv"
    conda:
        "../envs/trdpipe.yml"
    # one thread per cohort: the cohorts' fits run side by side
    threads: 1
    resources:
        # a DESeq2 fit of one cohort (2.7 GB at most for 2,000 of 6,000 samples); the slope is
        # the whole cohort's, so the smaller cohorts get more than they use
        mem_mb=mem_mb(1000, 20),
        runtime=runtime_min(10, 4),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        cohorts=COHORTS_COLUMN,
        min_per_level=META["min_samples_per_level"],
        deseq2=de_settings("fit_and_test"),
    script:
        "../scripts/meta_cohort.py"


rule meta_analysis:
    input:
        mega="results/de/{contrast}/deseq2_results.tsv",
        tables=cohort_files(rules.meta_cohort.output.table, META_COHORTS),
        fits=cohort_files(rules.meta_cohort.output.fit, META_COHORTS),
    output:
        table=report(
            "results/meta/{contrast}/meta_results.tsv",
            caption="../report/meta_results.rst",
            category="Meta-analysis",
            subcategory="{contrast}",
        ),
        cohorts="results/meta/{contrast}/cohorts.tsv",
        concordance="results/meta/{contrast}/concordance.tsv",
        heterogeneity="results/meta/{contrast}/high_heterogeneity.tsv",
        forest_top="results/meta/{contrast}/forest_top.png",
        forest_candidates="results/meta/{contrast}/forest_candidates.png",
        forest_top_svg="results/meta/{contrast}/forest_top.svg",
        forest_candidates_svg="results/meta/{contrast}/forest_candidates.svg",
    log:
        "logs/meta_analysis/{contrast}.log",
    benchmark:
        "results/benchmarks/meta_analysis/{contrast}.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        mem_mb=mem_mb(500, 5),
        runtime=runtime_min(5, 0.1),
    params:
        contrast=lambda wc: config["contrasts"][wc.contrast],
        cohorts=lambda wc: META_COHORTS[wc.contrast],
        # cohorts without both compared levels: no job, listed in cohorts.tsv with the reason
        left_out=lambda wc: cohorts_of_contrast(
            read_sample_sheet(config["samples"]), COHORTS_COLUMN, config["contrasts"][wc.contrast]
        ),
        alpha=de_settings("calls")["alpha"],
        meta=META,
        candidates=config["report"]["candidate_genes"],
    script:
        "../scripts/meta_analysis.py"
