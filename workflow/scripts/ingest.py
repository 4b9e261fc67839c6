"""Rule ingest: an assay's counts + sample sheet + annotation -> one checked AnnData (samples x
genes or miRNAs, raw counts). The work is done in trdpipe.ingest."""

import logging

from trdpipe.checks.assays import SMALL_RNA
from trdpipe.common import atomic_output, run_script
from trdpipe.ingest import ingest, ingest_small_rna

log = logging.getLogger("trd")


def main(smk) -> None:
    if smk.params.assay_type == SMALL_RNA:
        adata = ingest_small_rna(
            smk.params.counts,
            smk.input.samples,
            smk.input.annotation,
            smk.params.design,
            dict(smk.params.contrasts),
            smk.params.counts_format,
            targets=smk.params.targets,
            mrna_annotation=smk.input.mrna_annotation,
            assay=smk.params.assay,
        )
    else:  # the primary mRNA assay, with every check of the config against the sample sheet
        for note in smk.params.switched_off:
            log.info("%s", note)
        adata = ingest(
            smk.params.counts or "",  # empty or null in the config: counts come from counts_file
            smk.input.samples,
            smk.input.annotation,
            smk.params.design,
            dict(smk.params.contrasts),
            smk.params.counts_format,
            # read from the config, not params: checks only, so a new fold count or gene-set file must
            # not redo ingest and all after it (the enrichment rule reads the files again anyway)
            predict=dict(smk.config["predict"]),
            collections=dict(smk.config["enrichment"]["collections"]),
            cells=dict(smk.config["cells"]),
            sensitivity=dict(smk.config["sensitivity"]),
            calibration=dict(smk.config["calibration"]),
            qc=dict(smk.config["qc"]),
            cohorts=smk.config["cohorts"],
            strandedness=smk.params.strandedness,
            counts_layer=smk.params.counts_layer or "",
            tx2gene=smk.params.tx2gene or "",
        )
    log.info("cohort: %d samples x %d features", adata.n_obs, adata.n_vars)
    with atomic_output(smk.output.h5ad) as tmp:
        adata.write_h5ad(tmp)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
