"""Rule deseq2: differential expression of one contrast by the configured engine (de.engine; PyDESeq2's
Wald test by default). The work is done in trdpipe.model.engines, the figures are drawn by
trdpipe.model.figures."""

import logging

import anndata as ad

from trdpipe.common import run_script, save_figure, write_table
from trdpipe.model.design import prepare_metadata
from trdpipe.model.engines import make_engine
from trdpipe.model.figures import ma_plot, volcano_plot
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.tables import count_calls, write_gene_by_sample_table
from trdpipe.qc.metrics import confounding_alarms, confounding_table

log = logging.getLogger("trd")


def main(smk) -> None:
    contrast, settings = dict(smk.params.contrast), dict(smk.params.deseq2)
    thresholds = list(settings.get("lfc_thresholds", []))
    name = smk.wildcards.contrast
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), name)
    log.info(
        "contrast %s: %s = %s vs %s, design %s, alpha %s, shrunk fold changes %s",
        name,
        contrast["variable"],
        contrast["test"],
        contrast["reference"],
        smk.params.design,
        settings["alpha"],
        settings.get("lfc_shrink", False),
    )
    log.info("samples used (%d): %s", adata.n_obs, ", ".join(adata.obs_names))
    # read from the config, not params: the alarm is a line of the log (the table is qc's), and a new
    # threshold must not refit the model and everything after it
    confounding = confounding_table(adata.obs, smk.params.design, name, contrast, dict(smk.config["qc"]))
    for warning in confounding_alarms(confounding):
        log.warning("confounding alarm: %s", warning)
    fit = make_engine(settings, smk.threads).fit_contrast(
        adata, smk.params.design, contrast, shrink=settings.get("lfc_shrink", False)
    )
    table = fit.table
    calls = count_calls(table, settings["alpha"], thresholds)
    log.info("calls at padj < %s:\n%s", settings["alpha"], calls.to_string(index=False))
    _, coding = prepare_metadata(adata.obs, smk.params.design, contrast)
    write_table(table, smk.output.table, float_format="%.8g")
    write_table(coding, smk.output.model)
    # The samples the model saw (after any QC exclusion), with the covariates it used.
    write_table(adata.obs, smk.output.samples, index=True)
    write_gene_by_sample_table(
        fit.normalised_counts, adata.obs_names, adata.var, smk.output.normalised, float_format="%.6g"
    )
    # the normalised counts and the counts (samples x genes, 880 MB each at 6,000 x 18,364) are
    # written: freed before the figures, which draw the table
    del fit, adata
    save_figure(volcano_plot(table, settings["alpha"], contrast, thresholds), smk.output.volcano)
    save_figure(ma_plot(table, settings["alpha"], contrast, thresholds), smk.output.ma)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
