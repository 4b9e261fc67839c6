"""Rule qc: per-sample quality control before any model is fitted. The work is done in trdpipe.qc.metrics, the
figures are drawn by trdpipe.qc.figures."""

import logging

import anndata as ad

from trdpipe.checks.assays import FEATURE_WORDS, MRNA
from trdpipe.common import run_script, save_figure, write_table
from trdpipe.model.vst import variance_stabilise
from trdpipe.qc.figures import (
    association_heatmap,
    colour_covariates,
    distance_heatmap,
    flagged_by,
    metric_chart,
    not_applicable_plot,
    pca_plot,
    scree_plot,
    sex_check_plot,
)
from trdpipe.qc.metrics import (
    balance_tables,
    confounding_alarms,
    confounding_tables,
    log_findings,
    run_qc,
    write_multiqc_flags,
    write_multiqc_table,
)

log = logging.getLogger("trd")


def main(smk) -> None:
    adata = ad.read_h5ad(smk.input.h5ad)
    settings = dict(smk.params.qc)
    vst = variance_stabilise(adata, dict(smk.params.deseq2), smk.threads)
    mrna = smk.params.assay_type == MRNA
    features = FEATURE_WORDS[smk.params.assay_type]
    results = run_qc(adata, vst, settings, mrna=mrna)
    balance = balance_tables(adata.obs, dict(smk.params.contrasts))
    log_findings(results, balance)
    # the samples the models will see: not those that qc.action exclude removes
    kept = adata.obs.loc[~results["metrics"]["excluded"].to_numpy()]
    confounding = confounding_tables(kept, smk.params.design, dict(smk.params.contrasts), settings)
    for warning in confounding_alarms(confounding):
        log.warning("confounding alarm: %s", warning)
    metrics, pcs, explained = results["metrics"], results["pcs"], results["explained"]

    write_table(metrics, smk.output.metrics, index=True, float_format="%.6g")
    write_table(metrics.loc[metrics["excluded"], ["flags"]], smk.output.excluded, index=True)
    write_table(results["limits"], smk.output.limits, float_format="%.6g")
    write_table(pcs, smk.output.pcs, index=True, float_format="%.6g")
    write_table(results["association"], smk.output.association, float_format="%.6g")
    write_table(balance, smk.output.balance, float_format="%.6g")
    write_table(confounding, smk.output.confounding, float_format="%.6g")
    write_multiqc_table(
        metrics.drop(columns=["flags"]),
        smk.output.mqc_metrics,
        "trd_qc_metrics",
        "TRD QC metrics",
        "Per-sample library, globin, mitochondrial and sex-check metrics."
        if mrna
        else "Per-sample library size, detected miRNAs and PCA distance.",
    )
    write_multiqc_flags(metrics, smk.output.mqc_flags, settings["action"])

    flagged = metrics["flags"] != ""
    limits = results["limits"].set_index("flag")["limit"]
    covariates = colour_covariates(adata.obs)
    save_figure(pca_plot(pcs.to_numpy(), explained, adata.obs, covariates, flagged), smk.output.pca)
    save_figure(scree_plot(explained, features), smk.output.scree)
    save_figure(association_heatmap(results["association"]), smk.output.pc_heatmap)
    max_labelled = settings["max_samples_labelled"]
    save_figure(
        distance_heatmap(vst, adata.obs, covariates, settings["mad_threshold"], max_labelled),
        smk.output.distances,
    )
    bar_charts = [
        ("library_size", "low_library_size", "library size", smk.output.library_size),
        ("detected_genes", "low_detected_genes", f"detected {features}", smk.output.detected_genes),
    ]
    for metric, flag, label, path in bar_charts:
        own = flagged_by(metrics["flags"], flag)
        chart = metric_chart(metrics[metric], own, flagged & ~own, limits[flag], label, flag, max_labelled)
        save_figure(chart, path)
    if mrna:
        sex_check = sex_check_plot(metrics, results["recorded_sex"], metrics["flags"], results["sex_genes"])
    else:
        sex_check = not_applicable_plot("Sex check", "it uses mRNA genes (XIST, Y-chromosome genes)")
    save_figure(sex_check, smk.output.sex_check)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
