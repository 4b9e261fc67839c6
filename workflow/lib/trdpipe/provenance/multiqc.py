"""MultiQC's report of what the workflow wrote for it: the qc rule's custom content
(results/qc/*_mqc.*), offline (no version check, no upload, no AI summary)."""

import logging
import shutil
import tempfile
from pathlib import Path

from trdpipe.common import atomic_directory, atomic_output

log = logging.getLogger("trd")

REPORT_NAME = "multiqc_report.html"


def multiqc_options(outdir: Path, title: str) -> dict:
    """MultiQC's settings: its report and data folder in outdir, nothing sent over the network."""
    return {
        "output_dir": str(outdir),
        "filename": REPORT_NAME,
        "title": title,
        "force": True,
        "make_data_dir": True,
        "no_version_check": True,
        "no_megaqc_upload": True,
        "no_ai": True,
        "no_ansi": True,
        "quiet": True,
    }


def run_multiqc(inputs: list[str], outdir: Path, title: str) -> None:
    """MultiQC over the given files; raises when MultiQC reports a failure."""
    import multiqc
    from multiqc.core.update_config import ClConfig

    result = multiqc.run(*inputs, cfg=ClConfig(**multiqc_options(outdir, title)))
    if result.sys_exit_code != 0:
        raise RuntimeError(f"MultiQC failed (exit code {result.sys_exit_code}): {result.message}")


def write_report(inputs: list[str], html: Path, data_dir: Path, title: str) -> None:
    """Run MultiQC in a scratch folder beside the outputs, then move its report and data folder
    into place, each only when complete."""
    html.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".multiqc.", dir=html.parent) as scratch:
        run_multiqc(inputs, Path(scratch), title)
        with atomic_output(html) as tmp_html:
            shutil.move(Path(scratch) / REPORT_NAME, tmp_html)
        # MultiQC names its data folder after the report (multiqc_report_data): the only folder there
        written = next(path for path in Path(scratch).iterdir() if path.is_dir())
        with atomic_directory(data_dir) as tmp_data:
            for item in written.iterdir():
                shutil.move(item, tmp_data / item.name)
