"""Rule meta_cohort: one cohort's own fit of a contrast for the meta-analysis (the primary design
without the cohort term, by the configured DE engine, unshrunk). A cohort too small for its own
model is left out: its table has the header only and fit.tsv says why."""

import logging

import anndata as ad
import pandas as pd

from trdpipe.common import run_script, write_table
from trdpipe.model.cohorts import cohort_design, cohort_shortfall
from trdpipe.model.engines import make_engine
from trdpipe.model.filtering import contrast_cohort
from trdpipe.model.results import RESULT_COLUMNS

log = logging.getLogger("trd")


def main(smk) -> None:
    contrast, column, cohort = dict(smk.params.contrast), smk.params.cohorts, smk.wildcards.cohort
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), smk.wildcards.contrast)
    adata = adata[adata.obs[column].astype(str) == cohort].copy()
    design = cohort_design(smk.params.design, column)
    levels = adata.obs[contrast["variable"]].astype(str).value_counts()
    shortfall = cohort_shortfall(adata.obs, design, contrast, int(smk.params.min_per_level))
    table = pd.DataFrame(columns=RESULT_COLUMNS)
    if shortfall:
        log.warning(
            "cohort %s left out of the meta-analysis of %s: %s", cohort, smk.wildcards.contrast, shortfall
        )
    else:
        log.info("cohort %s: %d samples, design %s", cohort, adata.n_obs, design)
        table = make_engine(dict(smk.params.deseq2), smk.threads).fit_contrast(adata, design, contrast).table
    fit = {
        "cohort": cohort,
        "samples": adata.n_obs,
        "n_test": int(levels.get(contrast["test"], 0)),
        "n_reference": int(levels.get(contrast["reference"], 0)),
        "fitted": shortfall is None,
        "reason": shortfall or "",
    }
    write_table(table, smk.output.table, float_format="%.8g")
    write_table(pd.DataFrame([fit]), smk.output.fit)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
