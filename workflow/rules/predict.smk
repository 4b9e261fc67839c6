rule predict:
    input:
        vst="results/vst/vst.h5ad",
    output:
        metrics=report(
            "results/predict/{contrast}/cv_metrics.tsv",
            caption="../report/predict.rst",
            category="TRD prediction",
            subcategory="{contrast}",
        ),
        predictions="results/predict/{contrast}/predictions.tsv",
        genes="results/predict/{contrast}/model_genes.tsv",
        roc=report(
            "results/predict/{contrast}/roc.png",
            caption="../report/predict.rst",
            category="TRD prediction",
            subcategory="{contrast}",
        ),
    params:
        predict=config["predict"],
        contrast=lambda wc: config["contrasts"][wc.contrast],
        seed=config["seed"],
    threads: 1
    resources:
        # nested CV refits on the VST matrix: a few copies of samples x genes float64
        mem_mb=mem_mb(1000, 40),
        runtime=runtime_min(10, 5),
    log:
        "logs/predict/{contrast}.log",
    benchmark:
        "results/benchmarks/predict/{contrast}.tsv",
    conda:
        "../../environment.yml"
    script:
        "../scripts/predict.py"
