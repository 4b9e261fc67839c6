"""Rule pathway_null: the score statistic of one contrast under the observed labels and K label
permutations within strata (results/enrichment/{contrast}/label_null.h5ad), the null of the
pathway tests. The work is done in trdpipe.calibration.score_null."""

import anndata as ad

from trdpipe.calibration.permutation import check_strata
from trdpipe.calibration.score_null import score_null
from trdpipe.common import atomic_output
from trdpipe.model.filtering import contrast_cohort


def main(smk) -> None:
    # the primary model's samples and genes (the deseq2 rule fits the same subset)
    adata = contrast_cohort(ad.read_h5ad(smk.input.h5ad), smk.wildcards.contrast)
    contrast = dict(smk.params.contrast)
    strata = check_strata(
        adata.obs,
        smk.wildcards.contrast,
        contrast,
        smk.params.design,
        smk.params.strata,
        f"{smk.input.h5ad} (samples kept after QC)",
    )
    null = score_null(
        adata,
        smk.params.design,
        contrast,
        dict(smk.params.deseq2),
        strata,
        int(smk.params.permutations),
        int(smk.params.seed),
        smk.threads,
    )
    with atomic_output(smk.output.null) as tmp:
        null.write_h5ad(tmp)


if "snakemake" in globals():
    from trdpipe.common import run_script

    run_script(main, snakemake)  # noqa: F821
