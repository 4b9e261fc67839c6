"""Rule multiqc_report: MultiQC's report of what the workflow wrote for it: the qc rule's custom
content (results/qc/*_mqc.*), offline (no version check, no upload, no AI summary). The work is done
in trdpipe.provenance.multiqc."""

import logging
from pathlib import Path

from trdpipe.common import run_script
from trdpipe.provenance.multiqc import write_report

log = logging.getLogger("trd")


def main(smk) -> None:
    inputs = [str(path) for path in smk.input]
    log.info("MultiQC over %d files: %s", len(inputs), ", ".join(inputs))
    write_report(inputs, Path(smk.output.html), Path(smk.output.data), smk.params.title)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
