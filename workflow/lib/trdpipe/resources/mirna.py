"""Build the shipped human miRNA annotation (resources/annotation/mirna.tsv.gz) from miRBase 22.

Inputs (provenance, commits and checksums in resources/annotation/README.md):
  hsa.gff3   miRBase 22's genome coordinates of human miRNAs (GRCh38): every stem-loop precursor
             (`miRNA_primary_transcript`, ID=MI...) and every mature miRNA (`miRNA`, Alias=MIMAT...,
             Name=hsa-miR-..., Derives_from=MI...)
  families   miRBase 22.1's families, either miRBase's own `miFam.dat` (AC / ID / MI lines) or
             PyOBO's conversion of it, `mirbase.family.obo` (biopragmatics/obo-db-ingest)

Output: one row per human mature miRNA (MIMAT accession), sorted by accession:
  mirna_id       mature name, miRBase 22 (hsa-miR-21-5p)
  mimat          mature accession (MIMAT0000076)
  precursor      its stem-loop precursor(s), ';'-joined in accession order (hsa-mir-21); a mature
                 sequence made by several loci (hsa-miR-16-5p: mir-16-1 and mir-16-2) has several
  precursor_acc  their accessions (MI0000077)
  family         miRBase family ID of the precursors (mir-21); '' when miRBase gives none;
                 ';'-joined when the precursors belong to different families
  family_acc     the family accession(s) (MIPF0000060)
"""

import logging
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd

from trdpipe.common import InputError, atomic_output, deterministic_gzip

log = logging.getLogger("trd")

MIRNA_COLUMNS = ["mirna_id", "mimat", "precursor", "precursor_acc", "family", "family_acc"]


def _attributes(field: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in field.strip().split(";") if "=" in item)


def read_gff3(path: str | Path) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]]]:
    """({MI: precursor name}, {MIMAT: mature name}, {MIMAT: {MI, ...}}) from miRBase's hsa.gff3."""
    precursors, matures, products = {}, {}, defaultdict(set)
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith("#") or not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 9:
                raise InputError(f"{path}, line {number}: not a GFF3 line of 9 tab-separated fields")
            kind, attributes = fields[2], _attributes(fields[8])
            if kind == "miRNA_primary_transcript":
                precursors[attributes["ID"]] = attributes["Name"]
            elif kind == "miRNA":
                accession = attributes.get("Alias", attributes["ID"].split("_")[0])
                if matures.setdefault(accession, attributes["Name"]) != attributes["Name"]:
                    raise InputError(f"{path}: {accession} has two names")
                products[accession].add(attributes["Derives_from"])
    if not matures:
        raise InputError(f"{path}: no mature miRNA (type miRNA); is this miRBase's hsa.gff3?")
    unknown = {mi for mis in products.values() for mi in mis} - set(precursors)
    if unknown:
        raise InputError(
            f"{path}: mature miRNAs derive from precursors it does not list: {sorted(unknown)[:5]}"
        )
    return precursors, matures, products


def read_families(path: str | Path) -> dict[str, tuple[str, str]]:
    """{MI: (family ID, family accession)} from miRBase's miFam.dat or PyOBO's mirbase.family.obo."""
    family_of = {}
    accession = name = None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            # miFam.dat: "AC   MIPF0000001" / "ID   mir-17" / "MI   MI0000071  hsa-mir-17" / "//"
            # OBO: "[Term]" / "id: mirbase.family:MIPF0000001" / "name: mir-17" /
            #      "relationship: RO:0002351 mirbase:MI0000071 ! has member hsa-mir-17"
            if line.startswith(("//", "[Term]")):
                accession = name = None
            elif match := re.match(r"^(?:AC\s+|id: mirbase\.family:)(MIPF\d+)", line):
                accession = match.group(1)
            elif match := re.match(r"^(?:ID\s+|name: )(\S+)", line):
                name = match.group(1)
            elif (
                match := re.match(r"^(?:MI\s+|relationship: RO:0002351 mirbase:)(MI\d+)", line)
            ) and accession:
                family_of[match.group(1)] = (name or "", accession)
    if not family_of:
        raise InputError(
            f"{path}: no family member; expected miRBase's miFam.dat or PyOBO's mirbase.family.obo"
        )
    return family_of


def build_mirna_table(gff3, families) -> pd.DataFrame:
    precursor_names, mature_names, products = read_gff3(gff3)
    family_of = read_families(families)
    rows = []
    for mimat in sorted(mature_names):
        precursors = sorted(products[mimat])
        found = sorted({family_of[mi] for mi in precursors if mi in family_of}, key=lambda f: f[1])
        rows.append(
            (
                mature_names[mimat],
                mimat,
                ";".join(precursor_names[mi] for mi in precursors),
                ";".join(precursors),
                ";".join(f[0] for f in found),
                ";".join(f[1] for f in found),
            )
        )
    table = pd.DataFrame(rows, columns=MIRNA_COLUMNS)
    if not table["mirna_id"].is_unique:
        raise InputError(f"{gff3}: two mature accessions share a name")
    return table


def build_mirna(gff3, families, out) -> None:
    table = build_mirna_table(gff3, families)
    log.info("%d human mature miRNAs, %d with a family", len(table), (table["family"] != "").sum())
    with atomic_output(out) as tmp:
        tmp.write_bytes(deterministic_gzip(table.to_csv(sep="\t", index=False, lineterminator="\n")))


def read_mirna_annotation(path: str | Path) -> pd.DataFrame:
    """The shipped table, every column as text (no family: '')."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
