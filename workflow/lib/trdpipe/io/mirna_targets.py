"""A miRNA-targets GMT: one line per mature miRNA, named as the small-RNA assay names its features,
then a description and the miRNA's target genes as Ensembl gene ids (versioned or not) or symbols
of the mRNA assay. A member is matched to an mRNA gene by its Ensembl id without version, else by its
symbol; members that match no gene, and miRNAs the assay does not measure, are left out (and counted)."""

import logging

import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.io.annotation import clean_ensembl_id
from trdpipe.io.genesets import read_gmt

log = logging.getLogger("trd")


def read_targets(path, mirnas, mrna_genes: pd.DataFrame, assay: str) -> dict[str, list[str]]:
    """{miRNA: target gene_ids of the mRNA assay} from a targets GMT. A member is a gene of the
    mRNA assay by its Ensembl id (version ignored) or its symbol; miRNAs the assay does not
    measure are left out. mrna_genes: columns gene_id, gene_symbol (the mRNA DE table)."""
    sets = read_gmt(path)
    assay_mirnas = set(map(str, mirnas))
    measured = [name for name in sets if name in assay_mirnas]
    if not measured:
        raise InputError(
            f"{path}: the targets GMT names no miRNA of assay '{assay}': its sets are "
            f"{format_list(list(sets), 5)}, the assay's miRNAs {format_list(list(mirnas), 5)}; "
            "expected one line per mature miRNA, named as in the assay's count table."
        )
    gene_of = gene_lookup(mrna_genes)
    targets = {name: member_genes(sets[name][1], gene_of) for name in measured}
    if not any(targets.values()):
        members = [g for name in measured for g in sets[name][1]]
        raise InputError(
            f"{path}: the targets GMT names no gene of the mRNA assay: its targets are "
            f"{format_list(members, 5)}; expected Ensembl gene ids or symbols of the mRNA count table."
        )
    log.info(
        "targets %s: %d of %d miRNAs measured by %s, %d target pairs in the mRNA assay",
        path,
        len(measured),
        len(sets),
        assay,
        sum(map(len, targets.values())),
    )
    return targets


def gene_lookup(mrna_genes: pd.DataFrame) -> dict[str, str]:
    """gene_id of every Ensembl id (without version) and symbol of the mRNA assay; a symbol of
    several genes goes to the first."""
    ids = mrna_genes["gene_id"].astype(str)
    lookup = dict(zip(mrna_genes["gene_symbol"].fillna("").astype(str), ids))
    lookup.pop("", None)
    lookup.update(zip(ids.map(gene_key), ids))
    return lookup


def gene_key(identifier: str) -> str:
    """An Ensembl id without its version; any other name as written."""
    return clean_ensembl_id(identifier) or identifier


def member_genes(members: list[str], gene_of: dict[str, str]) -> list[str]:
    found = (gene_of.get(gene_key(m)) for m in members)
    return list(dict.fromkeys(g for g in found if g is not None))
