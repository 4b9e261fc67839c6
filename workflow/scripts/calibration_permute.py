"""Label permutations of one contrast, within strata (results/calibration/{contrast}/permuted_labels.tsv)."""

import logging

import anndata as ad

from trdpipe.calibration.permutation import check_strata, permute_labels
from trdpipe.common import write_table

log = logging.getLogger("trd")


def main(smk) -> None:
    obs = ad.read_h5ad(smk.input.h5ad, backed="r").obs.copy()
    contrast, name = dict(smk.params.contrast), smk.wildcards.contrast
    # checked in ingest on the whole sheet; again here on the samples QC kept
    strata = check_strata(
        obs, name, contrast, smk.params.design, smk.params.strata, f"{smk.input.h5ad} (samples kept after QC)"
    )
    labels = permute_labels(
        obs,
        contrast["variable"],
        strata,
        int(smk.params.permutations),
        int(smk.params.seed),
        (contrast["test"], contrast["reference"]),
    )
    log.info(
        "contrast %s: %d permutations of %s within strata %s (seed %s)",
        name,
        labels.shape[1],
        contrast["variable"],
        " x ".join(strata) or "none",
        smk.params.seed,
    )
    write_table(labels, smk.output.labels, index=True)


if "snakemake" in globals():
    from trdpipe.common import run_script

    run_script(main, snakemake)  # noqa: F821
