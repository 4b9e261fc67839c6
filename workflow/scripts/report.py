"""Rule report: one self-contained HTML report built from the result tables and figures (no analysis is
re-run). The work is done in trdpipe.report: page builds the sections of trdpipe.report.sections."""

import logging
from pathlib import Path

from trdpipe.common import atomic_output, run_script
from trdpipe.report.inputs import ReportInputs, Run, plain_config
from trdpipe.report.page import render_page, report_context

log = logging.getLogger("trd")


def main(smk) -> None:
    config = plain_config(smk.params.config)
    # the captions live beside the template (workflow/report/)
    template_dir = Path(smk.input.template).parent
    inputs = ReportInputs(smk.input, plain_config(smk.params.contrast_files), smk.params.key_model)
    run = Run(inputs, config, template_dir, list(smk.params.switched_off))
    context = report_context(run, list(smk.params.sections))
    page = render_page(context, template_dir)
    with atomic_output(smk.output.html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report written: %s (%.1f MB)", smk.output.html, len(page) / 1e6)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
