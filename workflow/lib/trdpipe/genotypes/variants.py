"""The variants analysed: the shipped list of candidate variants and the user's own, one table."""

import logging
import re

import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.io.counts import read_delimited

log = logging.getLogger("trd")

# what a variant needs to be found in a genotype file and tested against its gene's expression
REQUIRED_COLUMNS = ["variant_id", "gene", "chrom", "pos", "build", "ref", "alt"]
# the columns of results/genotypes/variants.tsv that describe a variant (the checks add the rest)
VARIANT_COLUMNS = ["variant_id", "gene", "chrom", "pos", "ref", "alt", "source"]

# names of the two human builds as headers, file names and lists write them
BUILD_ALIASES = {
    "grch38": "GRCh38",
    "hg38": "GRCh38",
    "b38": "GRCh38",
    "grch37": "GRCh37",
    "hg19": "GRCh37",
    "b37": "GRCh37",
    "hs37d5": "GRCh37",
}
BUILD_PATTERN = re.compile(r"(?<![a-z0-9])(" + "|".join(BUILD_ALIASES) + r")(?![0-9])", re.IGNORECASE)
ALLELE = re.compile(r"^[ACGTN]+$")


def build_name(text: str) -> str | None:
    """'GRCh38', 'GRCh37' or None: the build a text names (hg19, b37, a FASTA path holding one)."""
    found = {BUILD_ALIASES[m.lower()] for m in BUILD_PATTERN.findall(str(text))}
    return found.pop() if len(found) == 1 else None


def plain_chrom(chrom: str) -> str:
    """'chr5' and '5' name the same chromosome."""
    return re.sub(r"^chr", "", str(chrom), flags=re.IGNORECASE)


def read_variant_table(path: str, source: str) -> pd.DataFrame:
    """A list of variants (TSV or CSV; columns REQUIRED_COLUMNS, others kept), checked: one row per
    variant ID, whole-number positions, single-sequence alleles of A, C, G, T, N, a known build.
    `source` ('list' or 'user') says where a variant came from in the outputs."""
    table = read_delimited(path, "variant list")
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"{path}: the variant list lacks the column(s) {format_list(missing)}; expected "
            f"{', '.join(REQUIRED_COLUMNS)} (one row per variant)."
        )
    table = table.apply(lambda column: column.str.strip())
    duplicated = table["variant_id"][table["variant_id"].duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: duplicated variant IDs: {format_list(duplicated)}; each must appear once.")
    for row in table.itertuples():
        _check_variant_row(row, path)
    table["pos"] = table["pos"].astype(int)
    table["source"] = source
    return table


def _check_variant_row(row, path) -> None:
    where = f"{path}: variant {row.variant_id}"
    if not row.gene:
        raise InputError(f"{where} names no gene; the eQTL tests a variant against its gene's expression.")
    if not str(row.pos).isdigit() or int(row.pos) < 1:
        raise InputError(f"{where}: position {row.pos!r} is not a whole number of at least 1.")
    for column in ("ref", "alt"):
        allele = getattr(row, column)
        if not ALLELE.match(str(allele).upper()):
            raise InputError(
                f"{where}: {column} allele {allele!r} is not a sequence of A, C, G, T or N; "
                f"a multi-allelic site is one row per alternative allele."
            )
    if build_name(row.build) is None:
        raise InputError(f"{where}: build {row.build!r} is neither GRCh37 (hg19) nor GRCh38 (hg38).")


def analysed_variants(list_path: str, user_path: str = "") -> pd.DataFrame:
    """The shipped list and the user's own variants (genotypes.variants), one row per variant ID;
    a user's variant may not reuse a listed ID, and every variant must be on one build."""
    tables = [read_variant_table(list_path, "list")]
    if user_path:
        tables.append(read_variant_table(user_path, "user"))
        twice = sorted(set(tables[0]["variant_id"]) & set(tables[1]["variant_id"]))
        if twice:
            raise InputError(
                f"{user_path}: variant(s) {format_list(twice)} are already in the candidate list "
                f"{list_path}; give each variant once."
            )
    variants = pd.concat(tables, ignore_index=True)
    variants["build"] = variants["build"].map(build_name)
    if variants["build"].nunique() > 1:
        by_build = variants.groupby("build")["variant_id"].first()
        raise InputError(
            f"{user_path or list_path}: its variants are on two builds (e.g. "
            + " and ".join(f"{variant} on {build}" for build, variant in by_build.items())
            + "); give every position on one build."
        )
    return variants
