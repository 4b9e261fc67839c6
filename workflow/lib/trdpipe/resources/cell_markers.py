"""Build the shipped blood cell-type marker resource, resources/cells/blood_cell_markers.gmt.

The lists are curated: for each cell type, genes that the publications below name as
specific to it in blood (canonical lineage genes first), chosen by us and checked against
the pipeline's annotation. Gene names published in papers are facts; no licensed matrix is
copied (CIBERSORT's LM22 is for non-commercial use only and is not used). Sources, licences
and the rules of the curation: resources/cells/README.md.

The lists are disjoint, so that each score measures one cell type; a gene that two
publications give to two types (the pan-T-cell CD3 genes, for instance) is left out.
"""

import pandas as pd

from trdpipe.resources.build import checked_curated_sets

# cell type -> (description, short citations (in full in resources/cells/README.md), genes)
CELL_MARKERS: dict[str, tuple[str, str, list[str]]] = {
    "neutrophils": (
        "Neutrophils (Fc receptor CD16b, CXCL8 receptors, G-CSF receptor, formyl peptide receptors)",
        "Abbas 2005; Chaussabel 2008; Becht 2016; Monaco 2019",
        [
            "FCGR3B",
            "CXCR2",
            "CXCR1",
            "CSF3R",
            "FPR1",
            "FPR2",
            "MME",
            "CMTM2",
            "PROK2",
            "KCNJ15",
            "MGAM",
            "CYP4F3",
            "FFAR2",
            "TNFRSF10C",
            "ALPL",
            "STEAP4",
        ],
    ),
    "eosinophils": (
        "Eosinophils (Charcot-Leyden crystal protein, IL-5 receptor, eotaxin receptor, granule proteins)",
        "Abbas 2005; Aran 2017",
        ["CLC", "IL5RA", "CCR3", "SIGLEC8", "PRG2", "EPX", "ALOX15", "HRH4", "SMPD3", "ADGRE1", "THBS4"],
    ),
    "monocytes": (
        "Classical and non-classical monocytes",
        "Abbas 2005; Becht 2016; Monaco 2019",
        [
            "CD14",
            "LYZ",
            "CSF1R",
            "FCN1",
            "VCAN",
            "CD163",
            "FPR3",
            "TFEC",
            "ADAP2",
            "PLA2G7",
            "RASSF4",
            "MS4A7",
            "CD300E",
        ],
    ),
    "B_cells": (
        "Naive and memory B cells (B-cell receptor complex, CD19/CD20/CD22, PAX5)",
        "Abbas 2005; Becht 2016; Monaco 2019",
        [
            "MS4A1",
            "CD19",
            "CD79A",
            "CD79B",
            "CD22",
            "BANK1",
            "PAX5",
            "CR2",
            "FCRL1",
            "FCRL2",
            "FCRLA",
            "BLK",
            "VPREB3",
            "TCL1A",
            "FCER2",
        ],
    ),
    "plasma_cells": (
        "Plasma cells and plasmablasts (J chain, BCMA, immunoglobulin secretion)",
        "Abbas 2005; Li 2014; Monaco 2019",
        [
            "JCHAIN",
            "MZB1",
            "TNFRSF17",
            "TXNDC5",
            "IGLL5",
            "SDC1",
            "DERL3",
            "FKBP11",
            "ELL2",
            "IGHG1",
            "IGHA1",
        ],
    ),
    "CD4_T": (
        "CD4 T cells (helper and regulatory)",
        "Abbas 2005; Palmer 2006; Monaco 2019",
        ["CD4", "CD40LG", "ICOS", "CTLA4", "FOXP3", "ANKRD55", "IL7R", "TRAT1", "CCR4", "TSHZ2", "MAL"],
    ),
    "CD8_T": (
        "CD8 T cells",
        "Palmer 2006; Becht 2016; Monaco 2019",
        ["CD8A", "CD8B", "NELL2", "CRTAM", "JAKMIP1", "ZNF683"],
    ),
    "NK": (
        "NK cells (natural cytotoxicity and killer-cell receptors, CD56)",
        "Abbas 2005; Becht 2016; Monaco 2019",
        [
            "KLRF1",
            "NCR1",
            "SH2D1B",
            "KIR2DL1",
            "KIR2DL3",
            "KIR2DL4",
            "KIR3DL1",
            "KIR3DL2",
            "NCAM1",
            "GNLY",
            "NKG7",
            "KLRD1",
        ],
    ),
    "dendritic": (
        "Myeloid (CD1c+, CLEC9A+) and plasmacytoid dendritic cells",
        "Becht 2016; Villani 2017; Monaco 2019",
        ["CD1C", "FCER1A", "CLEC10A", "LILRA4", "CLEC4C", "IL3RA", "CLEC9A", "XCR1", "PLD4"],
    ),
    "platelets": (
        "Platelets (glycoprotein Ib-IX, integrin alpha-IIb/beta-3, platelet chemokines)",
        "Chaussabel 2008; Li 2014; Aran 2017",
        [
            "PPBP",
            "PF4",
            "ITGA2B",
            "GP9",
            "GP1BA",
            "GP1BB",
            "TUBB1",
            "SPARC",
            "CLEC1B",
            "GNG11",
            "TREML1",
            "ITGB3",
            "PF4V1",
            "CMTM5",
        ],
    ),
    "erythroid": (
        "Erythroid cells and reticulocytes (haem synthesis, band 3, glycophorin; HBA/HBB left out, "
        "which globin depletion removes)",
        "Chaussabel 2008; Li 2014; Aran 2017",
        [
            "ALAS2",
            "CA1",
            "SLC4A1",
            "EPB42",
            "GYPA",
            "AHSP",
            "RHAG",
            "SELENBP1",
            "TRIM58",
            "BPGM",
            "HEMGN",
            "SNCA",
            "FECH",
            "HBD",
            "HBM",
        ],
    ),
}
MIN_MARKERS = 5


def build_cell_markers(annotation: pd.DataFrame) -> list[tuple[str, str, list[str]]]:
    """The GMT's sets, after checking every symbol against the annotation and the lists' rules."""
    return checked_curated_sets(CELL_MARKERS, annotation, "cell markers", MIN_MARKERS, 50)
