"""One block of label permutations refitted with the primary model (a scattered job)."""

import logging

import anndata as ad

from trdpipe.calibration.permutation import block_of, fit_block
from trdpipe.common import atomic_output, read_sample_table
from trdpipe.model.filtering import contrast_cohort

log = logging.getLogger("trd")


def main(smk) -> None:
    # the primary model's samples and genes (the deseq2 rule fits the same subset)
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), smk.wildcards.contrast)
    labels = read_sample_table(smk.input.labels, text=True)
    block = block_of(smk.wildcards.scatteritem, list(labels.columns))
    log.info(
        "contrast %s, block %s: %d permutations (%s), %d samples x %d genes",
        smk.wildcards.contrast,
        smk.wildcards.scatteritem,
        len(block),
        ", ".join(block[:1] + block[-1:]),
        adata.n_obs,
        adata.n_vars,
    )
    null = fit_block(
        adata,
        labels[block],
        smk.params.design,
        dict(smk.params.contrast),
        dict(smk.params.deseq2),
        smk.threads,
    )
    with atomic_output(smk.output.h5ad) as tmp:
        null.write_h5ad(tmp)


if "snakemake" in globals():
    from trdpipe.common import run_script

    run_script(main, snakemake)  # noqa: F821
