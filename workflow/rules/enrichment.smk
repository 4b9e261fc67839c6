# Pathway enrichment per contrast: preranked GSEA on the DESeq2 Wald statistic and ORA of the
# up- and down-regulated genes, for every collection under `enrichment: collections:`, with
# p-values and FDRs from label permutations (rule pathway_null) beside fgsea's gene-permutation ones.
# Choices and rules: workflow/lib/trdpipe/enrichment/analysis.py; library choice: bench/bench_enrichment.py.

ENRICHMENT = config["enrichment"]


rule enrichment:
    input:
        de="results/de/{contrast}/deseq2_results.tsv",
        null="results/enrichment/{contrast}/label_null.h5ad",
        annotation=config["annotation"],
        collections=list(ENRICHMENT["collections"].values()),
    output:
        gsea=report(
            "results/enrichment/{contrast}/gsea.tsv",
            caption="../report/gsea.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
        ora=report(
            "results/enrichment/{contrast}/ora.tsv",
            caption="../report/ora.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
        gsea_dotplot=report(
            "results/enrichment/{contrast}/gsea_dotplot.png",
            caption="../report/gsea_dotplot.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
        ora_dotplot=report(
            "results/enrichment/{contrast}/ora_dotplot.png",
            caption="../report/ora_dotplot.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
        gsea_dotplot_svg="results/enrichment/{contrast}/gsea_dotplot.svg",
        ora_dotplot_svg="results/enrichment/{contrast}/ora_dotplot.svg",
        running_scores=report(
            directory("results/enrichment/{contrast}/running_scores"),
            patterns=["{name}.png"],
            caption="../report/running_scores.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
    log:
        "logs/enrichment/{contrast}.log",
    benchmark:
        "results/benchmarks/enrichment/{contrast}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    threads: threads_for_cohort(2)
    resources:
        # gene sets x genes membership plus gseapy's per-thread null samples: grows with genes and
        # sets, not samples (~0.6 GB measured for 18,000 genes x GO BP), so no per-cell slope;
        # the permutation scores work in blocks of bounded size (trdpipe.enrichment.phenotype_permutation.BLOCK_CELLS)
        mem_mb=mem_mb(1100, 0),
        runtime=runtime_min(15, 0),
    params:
        collections=ENRICHMENT["collections"],
        min_size=ENRICHMENT["min_size"],
        max_size=ENRICHMENT["max_size"],
        permutations=ENRICHMENT["permutations"],
        seed=ENRICHMENT["seed"],
        ora_padj=ENRICHMENT["ora_padj"],
        top_terms=ENRICHMENT["top_terms"],
        running_score_terms=ENRICHMENT["running_score_terms"],
        similar_terms_jaccard=ENRICHMENT["similar_terms_jaccard"],
        alpha=config["de"]["alpha"],
    script:
        "../scripts/enrichment.py"


# The label-permutation null of the pathway tests: the score statistic of the contrast under the
# model without it, for the observed labels and enrichment.label_permutations labellings drawn as
# the calibration draws its own (seed, strata). Engine: workflow/lib/trdpipe/calibration/score_null.py.
rule pathway_null:
    input:
        h5ad="results/filter/cohort.h5ad",
    output:
        null="results/enrichment/{contrast}/label_null.h5ad",
    log:
        "logs/pathway_null/{contrast}.log",
    benchmark:
        "results/benchmarks/pathway_null/{contrast}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # one DESeq2 fit, then labellings x genes statistics (float64 while computed); 11.7 GB
        # measured at 6,000 x 20,000 (bench/measured_peaks.tsv)
        mem_mb=mem_mb(1500, 110),
        runtime=runtime_min(10, 0.5),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        deseq2=de_settings("null_fit"),
        permutations=ENRICHMENT["label_permutations"],
        strata=config["calibration"]["strata"],
        seed=config["calibration"]["seed"],
    script:
        "../scripts/pathway_null.py"


# camera (Wu & Smyth 2012) per contrast, each set's inter-gene correlation estimated from the
# residuals of a linear model of the blind VST (enrichment.camera): a competitive test that respects
# the correlation between genes without permutations. workflow/lib/trdpipe/enrichment/camera.py
CAMERA_OUTPUTS = (
    expand("results/enrichment/{contrast}/camera.tsv", contrast=CONTRASTS) if ENRICHMENT["camera"] else []
)


rule camera:
    input:
        de="results/de/{contrast}/deseq2_results.tsv",
        samples="results/de/{contrast}/samples_used.tsv",
        vst="results/vst/vst.h5ad",
        annotation=config["annotation"],
        collections=list(ENRICHMENT["collections"].values()),
    output:
        table=report(
            "results/enrichment/{contrast}/camera.tsv",
            caption="../report/camera.rst",
            category="Pathway enrichment",
            subcategory="{contrast}",
        ),
    log:
        "logs/camera/{contrast}.log",
    benchmark:
        "results/benchmarks/camera/{contrast}.tsv"
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # the VST of the contrast's samples and genes and its residual effects, a few copies of a
        # samples x genes matrix (8 MB per million cells each)
        mem_mb=mem_mb(600, 40),
        runtime=runtime_min(5, 1),
    params:
        design=config["design"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        collections=ENRICHMENT["collections"],
        min_size=ENRICHMENT["min_size"],
        max_size=ENRICHMENT["max_size"],
        fdr=ENRICHMENT["ora_padj"],
    script:
        "../scripts/camera.py"


# miRNA targets across layers, per small-RNA assay with a targets GMT (assays.<name>.targets) and
# contrast: the called miRNAs' targets among the mRNA calls of the opposite direction, against the
# pathway null's label permutations; each called miRNA's correlation with its called targets.
# Engine: workflow/lib/trdpipe/enrichment/mirna_targets.py
TARGET_ASSAYS = [name for name in EXTRA_ASSAYS if ASSAY_TYPES[name] == "small_rna" and targets_file(name)]


def mirna_target_files(contrast):
    """The target tables of a contrast by assay, for the report's manifest."""
    return {
        assay: {
            name: expand(getattr(rules.mirna_targets.output, name), assay=assay, contrast=contrast)[0]
            for name in ("enrichment", "correlation", "figure")
        }
        for assay in TARGET_ASSAYS
    }


rule mirna_targets:
    input:
        mirna_de="results/assays/{assay}/de/{contrast}/deseq2_results.tsv",
        mirna_vst="results/assays/{assay}/vst/vst.h5ad",
        mrna_de="results/de/{contrast}/deseq2_results.tsv",
        mrna_vst="results/vst/vst.h5ad",
        samples="results/de/{contrast}/samples_used.tsv",
        null="results/enrichment/{contrast}/label_null.h5ad",
        targets=lambda wc: targets_file(wc.assay),
    output:
        enrichment=report(
            "results/assays/{assay}/targets/{contrast}/target_enrichment.tsv",
            caption="../report/mirna_target_enrichment.rst",
            category="Across layers",
            subcategory="{contrast}",
        ),
        correlation=report(
            "results/assays/{assay}/targets/{contrast}/target_correlation.tsv",
            caption="../report/mirna_target_correlation.rst",
            category="Across layers",
            subcategory="{contrast}",
        ),
        figure=report(
            "results/assays/{assay}/targets/{contrast}/target_direction.png",
            caption="../report/target_direction.rst",
            category="Across layers",
            subcategory="{contrast}",
        ),
        figure_svg="results/assays/{assay}/targets/{contrast}/target_direction.svg",
    log:
        "logs/mirna_targets/{assay}/{contrast}.log",
    benchmark:
        "results/benchmarks/assays/{assay}/mirna_targets/{contrast}.tsv"
    wildcard_constraints:
        assay="|".join(map(re.escape, TARGET_ASSAYS)) or "(?!)",
    conda:
        "../envs/trdpipe.yml"
    threads: 1
    resources:
        # the null's genes x K statistics and their permuted top lists (942 MB measured at 20,000
        # genes x K = 1,000, bench/README.md): grows with genes x K, not samples
        mem_mb=mem_mb(1000, 0),
        runtime=runtime_min(5, 0),
    params:
        alpha=config["de"]["alpha"],
    script:
        "../scripts/mirna_targets.py"
