"""Rule filter: drop samples excluded by QC, then genes with too few counts (edgeR filterByExpr
rule). The work is done in trdpipe.model.filtering."""

import logging

import anndata as ad

from trdpipe.checks.assays import FEATURE_WORDS
from trdpipe.common import atomic_output, read_sample_table, run_script, write_table
from trdpipe.model.filtering import filter_cohort

log = logging.getLogger("trd")


def main(smk) -> None:
    adata = ad.read_h5ad(smk.input.h5ad)
    metrics = read_sample_table(smk.input.metrics)
    filtered, summary = filter_cohort(
        adata,
        metrics,
        dict(smk.params.filter),
        dict(smk.params.contrasts),
        smk.params.design,
        smk.input.metrics,
        # a check only: from the config, so that it redoes nothing
        dict(smk.config["predict"]),
        features=FEATURE_WORDS[smk.params.assay_type],
    )
    log.info("filter summary:\n%s", summary.to_string(index=False))
    with atomic_output(smk.output.h5ad) as tmp:
        filtered.write_h5ad(tmp)
    write_table(summary, smk.output.summary)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
