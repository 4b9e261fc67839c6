"""Rule build_cell_markers: build the shipped blood cell-type marker resource,
resources/cells/blood_cell_markers.gmt. The work is done in trdpipe.resources.cell_markers."""

import pandas as pd

from trdpipe.common import run_script
from trdpipe.resources.build import gmt_text, write_text
from trdpipe.resources.cell_markers import build_cell_markers


def main(smk) -> None:
    annotation = pd.read_csv(smk.input.annotation, sep="\t", dtype=str)
    write_text(gmt_text(build_cell_markers(annotation)), smk.output.gmt)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
