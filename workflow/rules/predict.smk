def prediction_layers():
    """What the predict script needs of the layers (params.layers): the primary assay's name, the
    other assays (each with its filter and the features kept per fold) and the genotypes (with the
    sample sheet's score columns); a layer not named in predict.n_features keeps predict.n_genes."""
    n_features = lambda name: config["predict"]["n_features"].get(name, config["predict"]["n_genes"])
    return {
        "primary": ASSAYS[0],
        "assays": EXTRA_ASSAYS,
        **{
            name: {"n_features": n_features(name), "filter": ASSAY_SETTINGS[name]["filter"]}
            for name in EXTRA_ASSAYS
        },
        "genotypes": {"scores": GENOTYPES["scores"], "n_features": n_features("genotypes")},
    }


rule predict:
    input:
        # raw counts: size factors, VST, gene filter and selection are all fitted inside the folds
        h5ad="results/filter/cohort.h5ad",
        # every other assay's filtered raw counts (config assays:), each with its own in-fold VST
        assays=[f"results/{assay_dir(name)}filter/cohort.h5ad" for name in EXTRA_ASSAYS],
        # the candidate variants' dosages (samples x variants), when genotypes are given
        genotypes="results/genotypes/dosages.tsv.gz" if GENOTYPES_ENABLED else [],
    output:
        comparison=report(
            "results/predict/{contrast}/model_comparison.tsv",
            caption="../report/predict.rst",
            category="Prediction",
            subcategory="{contrast}",
        ),
        gains=report(
            "results/predict/{contrast}/layer_gains.tsv",
            caption="../report/layer_gains.rst",
            category="Prediction",
            subcategory="{contrast}",
        ),
        layers=report(
            "results/predict/{contrast}/layers.png",
            caption="../report/layers.rst",
            category="Prediction",
            subcategory="{contrast}",
        ),
        layers_svg="results/predict/{contrast}/layers.svg",
        predictions="results/predict/{contrast}/predictions.tsv",
        site="results/predict/{contrast}/site_validation.tsv",
        genes="results/predict/{contrast}/model_genes.tsv",
        null="results/predict/{contrast}/permutation_null.tsv",
        roc=report(
            "results/predict/{contrast}/roc.png",
            caption="../report/roc.rst",
            category="Prediction",
            subcategory="{contrast}",
        ),
        calibration=report(
            "results/predict/{contrast}/calibration.png",
            caption="../report/calibration.rst",
            category="Prediction",
            subcategory="{contrast}",
        ),
        roc_svg="results/predict/{contrast}/roc.svg",
        calibration_svg="results/predict/{contrast}/calibration.svg",
    log:
        "logs/predict/{contrast}.log",
    benchmark:
        "results/benchmarks/predict/{contrast}.tsv"
    priority: CRITICAL_PATH_PRIORITY
    conda:
        "../envs/trdpipe.yml"
    # outer splits and permutation blocks run in parallel (joblib), one thread each
    threads: threads_for_cohort(8)
    resources:
        # per worker: a fold's DESeq2 dataset and VST (a few copies of samples x genes float64);
        # the parent keeps the counts and the predictions
        mem_mb=mem_mb(3800, 108),
        runtime=runtime_min(10, 1),
    params:
        predict=config["predict"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        filter=config["filter"],
        deseq2=de_settings("in_fold_vst"),
        design=config["design"],
        seed=config["seed"],
        layers=prediction_layers(),
    script:
        "../scripts/predict.py"
