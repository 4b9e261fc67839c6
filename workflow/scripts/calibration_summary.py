"""Rule calibration_summary: gather the permutation blocks of one contrast: null statistics, calibrated
gene table, summary, figures. The work is done in trdpipe.calibration.permutation,
the figures are drawn by trdpipe.calibration.figures."""

import logging

import anndata as ad
import pandas as pd

from trdpipe.calibration.figures import null_degs_plot, qq_plot
from trdpipe.calibration.permutation import (
    calibrate,
    calibration_strata,
    gather_blocks,
    label_associations,
    labellings_available,
)
from trdpipe.checks.inputs import design_variables
from trdpipe.common import atomic_output, read_sample_table, run_script, save_figure, write_table

log = logging.getLogger("trd")


def main(smk) -> None:
    contrast, name = dict(smk.params.contrast), smk.wildcards.contrast
    settings = dict(smk.params.deseq2)
    alpha, thresholds = settings["alpha"], list(settings.get("lfc_thresholds", []))
    obs = ad.read_h5ad(smk.input.h5ad, backed="r").obs.copy()
    labels = read_sample_table(smk.input.labels, text=True)
    strata = calibration_strata(obs, smk.params.design, contrast["variable"], smk.params.strata)
    compared = (contrast["test"], contrast["reference"])
    enumerated = labellings_available(obs, contrast["variable"], strata, compared) <= int(
        smk.params.permutations
    )
    null = gather_blocks(
        [ad.read_h5ad(path) for path in smk.input.blocks], smk.params.seed, strata, enumerated
    )
    table = pd.read_csv(smk.input.table, sep="\t", keep_default_na=False, na_values=[""])
    calibrated, per_permutation, summary = calibrate(table, null, alpha, thresholds)
    covariates = [
        v for v in dict.fromkeys(design_variables(smk.params.design) + strata) if v != contrast["variable"]
    ]
    per_permutation = per_permutation.merge(
        label_associations(labels[null.obs_names], obs, contrast["variable"], contrast["test"], covariates),
        on="permutation",
    )
    log.info("contrast %s:\n%s", name, summary[["statistic", "value"]].to_string(index=False))

    with atomic_output(smk.output.null) as tmp:
        null.write_h5ad(tmp)
    write_table(calibrated, smk.output.calibrated, float_format="%.8g")
    write_table(per_permutation, smk.output.permutations, float_format="%.6g")
    write_table(summary, smk.output.summary, float_format="%.6g")
    title = f"{contrast['test']} vs {contrast['reference']}"
    genes = table.set_index("gene_id").loc[null.var_names]
    save_figure(qq_plot(genes["pvalue"].to_numpy(float), null.layers["pvalue"], title), smk.output.qq)
    observed = int(summary.set_index("statistic").loc["observed_degs", "value"])
    save_figure(
        null_degs_plot(per_permutation["degs"].to_numpy(), observed, alpha, title), smk.output.null_degs
    )


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
