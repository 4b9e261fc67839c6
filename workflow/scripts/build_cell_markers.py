"""Build the shipped blood cell-type marker resource, resources/cells/blood_cell_markers.gmt.

The lists are curated: for each cell type, genes that the publications below name as
specific to it in blood (canonical lineage genes first), chosen by us and checked against
the pipeline's annotation. Gene names published in papers are facts; no licensed matrix is
copied (CIBERSORT's LM22 is for non-commercial use only and is not used). Sources, licences
and the rules of the curation: resources/cells/README.md.

The lists are disjoint, so that each score measures one cell type; a gene that two
publications give to two types (the pan-T-cell CD3 genes, for instance) is left out."""

import pandas as pd

from trdpipe.common import run_script
from trdpipe.resources.build import gmt_text, write_text
from trdpipe.resources.cell_markers import build_cell_markers


def main(smk) -> None:
    annotation = pd.read_csv(smk.input.annotation, sep="\t", dtype=str)
    write_text(gmt_text(build_cell_markers(annotation)), smk.output.gmt)


if "snakemake" in globals():
    run_script(main, snakemake)  # noqa: F821
