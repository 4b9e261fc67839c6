"""The genotype file (a bgzipped, indexed VCF or BCF read with pysam, or a plain dosage table) as
alt-allele dosages of the analysed variants, checked before any fitting: its samples against the
sample sheet, its build against the variant list's, no multi-allelic site, no variant with more
missing calls than allowed. A variant of the list that the file lacks is logged and left out."""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trdpipe.common import InputError, format_list
from trdpipe.genotypes.variants import VARIANT_COLUMNS, build_name, plain_chrom
from trdpipe.io.counts import clean_sample_id, read_delimited
from trdpipe.io.sample_sheet import MISSING_VALUES

log = logging.getLogger("trd")

VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz", ".bcf")


@dataclass
class Genotypes:
    """Dosages (samples x variant IDs, NaN = no call) and the variants found, with their checks."""

    dosages: pd.DataFrame
    variants: pd.DataFrame


def genotype_format(path: str, fmt: str) -> str:
    """'vcf' or 'dosage': as configured, or for `auto` by the file's name (a VCF or BCF suffix)."""
    if fmt != "auto":
        return fmt
    return "vcf" if str(path).lower().endswith(VCF_SUFFIXES) else "dosage"


def read_genotypes(
    path: str,
    fmt: str,
    variants: pd.DataFrame,
    sheet: pd.DataFrame,
    sheet_path: str,
    max_missing: float,
    list_path: str = "the variant list",
) -> Genotypes:
    """The checked dosages of `variants` (trdpipe.genotypes.variants.analysed_variants) for the
    file's samples, every one of which must be in the sheet."""
    fmt = genotype_format(path, fmt)
    log.info("genotypes: %s read as %s", path, "a VCF/BCF" if fmt == "vcf" else "a dosage table")
    dosages = read_vcf(path, variants, list_path) if fmt == "vcf" else read_dosage_table(path, variants)
    check_samples(dosages.index, sheet, path, sheet_path)
    found = (
        variants.set_index("variant_id").loc[list(dosages.columns)].rename_axis("variant_id").reset_index()
    )
    log_absent(variants, found, path, list_path)
    missing_rate = dosages.isna().mean(axis=0)
    check_missing_calls(missing_rate, max_missing, path)
    table = found[VARIANT_COLUMNS].assign(
        missing_rate=missing_rate.to_numpy(), alt_frequency=(dosages.mean(axis=0) / 2).to_numpy()
    )
    return Genotypes(dosages, table)


# --- VCF / BCF ----------------------------------------------------------------------------------


def read_vcf(path: str, variants: pd.DataFrame, list_path: str) -> pd.DataFrame:
    """Dosages of the variants found in an indexed VCF or BCF, by position and alleles: DS where a
    sample has it, else the alt alleles of GT; a site with the alleles swapped is read as 2 - dosage."""
    import pysam  # here: only a VCF run needs it

    try:
        vcf = pysam.VariantFile(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable VCF or BCF ({err}).") from None
    with vcf:
        if vcf.index is None:
            raise InputError(
                f"{path}: the VCF/BCF has no index (.tbi or .csi beside it); bgzip it and index it "
                f"with `bcftools index -t {path}` (or `tabix -p vcf {path}`)."
            )
        check_build(vcf.header, variants, path, list_path)
        samples = [clean_sample_id(s) for s in vcf.header.samples]
        columns = {}
        for variant in variants.itertuples():
            dosage = variant_dosage(vcf, variant, path)
            if dosage is not None:
                columns[variant.variant_id] = dosage
    dosages = pd.DataFrame(columns, index=pd.Index(samples, name="sample_id"), dtype=float)
    return dosages


def vcf_build(header) -> tuple[str | None, str]:
    """The build a VCF header names (##reference, ##contig assembly=) and the line that names it."""
    for record in header.records:
        if record.key == "reference" and build_name(record.value):
            return build_name(record.value), f"##reference={record.value}"
        if record.type == "CONTIG" and build_name(record.get("assembly", "")):
            return build_name(
                record["assembly"]
            ), f"##contig=<ID={record['ID']},assembly={record['assembly']}>"
    return None, ""


def check_build(header, variants: pd.DataFrame, path: str, list_path: str) -> None:
    build, line = vcf_build(header)
    expected = variants["build"].iloc[0]
    if build is None:
        log.warning(
            "genotypes: %s names no build (no ##reference or contig assembly); its positions are taken "
            "as %s, the variant list's.",
            path,
            expected,
        )
    elif build != expected:
        raise InputError(
            f"{path}: the file is on {build} ({line}), the variant list {list_path} on {expected}; "
            f"lift the file over to {expected}, or give the variants' positions on {build}."
        )


def vcf_contig(vcf, chrom: str) -> str | None:
    """The file's name of a chromosome ('chr5' or '5'), among those its index holds records of (a
    header need not declare its contigs)."""
    names = {plain_chrom(name): name for name in vcf.index}
    return names.get(plain_chrom(chrom))


def variant_dosage(vcf, variant, path: str) -> np.ndarray | None:
    """The variant's dosages, or None (logged) when the file has no biallelic record of its alleles."""
    contig = vcf_contig(vcf, variant.chrom)
    records = (
        []
        if contig is None
        else [r for r in vcf.fetch(contig, variant.pos - 1, variant.pos) if r.pos == variant.pos]
    )
    for record in records:
        if record.alts and len(record.alts) > 1:
            raise InputError(
                f"{path}: variant {variant.variant_id} ({variant.chrom}:{variant.pos}) is at a multi-allelic "
                f"site ({record.ref} > {','.join(record.alts)}); split it into biallelic records "
                f"(`bcftools norm -m -any`)."
            )
    for record in records:
        alleles = (record.ref, record.alts[0]) if record.alts else None
        if alleles == (variant.ref, variant.alt):
            return record_dosages(record)
        if alleles == (variant.alt, variant.ref):
            log.info(
                "genotypes: %s has %s with its alleles swapped; read as 2 - dosage.", path, variant.variant_id
            )
            return 2.0 - record_dosages(record)
    if records:
        found = ", ".join(f"{r.ref}>{','.join(r.alts or ['.'])}" for r in records)
        log.warning(
            "genotypes: %s has %s at %s:%d, not the list's %s>%s of %s.",
            path,
            found,
            variant.chrom,
            variant.pos,
            variant.ref,
            variant.alt,
            variant.variant_id,
        )
    return None


def record_dosages(record) -> np.ndarray:
    """Per sample: DS where the FORMAT has it and the sample a value, else the number of alt alleles
    of GT; NaN for a missing call."""
    has_ds = "DS" in record.format
    values = []
    for call in record.samples.values():
        ds = call["DS"] if has_ds else None
        ds = ds[0] if isinstance(ds, tuple) else ds
        if ds is not None:
            values.append(float(ds))
            continue
        gt = call["GT"] if "GT" in record.format else None
        values.append(np.nan if not gt or None in gt else float(sum(a > 0 for a in gt)))
    return np.array(values, dtype=float)


# --- dosage table -------------------------------------------------------------------------------


def read_dosage_table(path: str, variants: pd.DataFrame) -> pd.DataFrame:
    """A samples x variants table (TSV or CSV; first column or `sample_id` the sample IDs, one column
    per variant ID of the list) of alt-allele dosages from 0 to 2, empty or NA when not called."""
    table = read_delimited(path, "dosage table")
    id_column = "sample_id" if "sample_id" in table.columns else table.columns[0]
    ids = table[id_column].map(clean_sample_id)
    duplicated = ids[ids.duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: duplicated sample IDs: {format_list(duplicated)}; each must appear once.")
    listed = [c for c in table.columns if c in set(variants["variant_id"])]
    in_rows = [v for v in variants["variant_id"] if v in set(ids)]
    if not listed and in_rows:
        raise InputError(
            f"{path}: the table looks transposed: variant(s) {format_list(in_rows, 5)} are row names; "
            f"expected one row per sample and one column per variant."
        )
    ignored = [c for c in table.columns if c != id_column and c not in listed]
    if ignored:
        log.info(
            "genotypes: %s: column(s) %s are no variant of the list; ignored.", path, format_list(ignored)
        )
    cells = table[listed].apply(lambda column: column.str.strip()).replace(list(MISSING_VALUES), np.nan)
    dosages = cells.apply(pd.to_numeric, errors="coerce")
    dosages.index = pd.Index(ids, name="sample_id")
    bad = (dosages.isna() & cells.notna().to_numpy()) | (dosages < 0) | (dosages > 2)
    if bad.to_numpy().any():
        row, column = np.argwhere(bad.to_numpy())[0]
        raise InputError(
            f"{path}: the dosage of variant {listed[column]} in sample {ids.iat[row]} "
            f"({cells.iat[row, column]!r}) is not a number from 0 to 2 ({int(bad.to_numpy().sum())} such "
            f"values in all); expected the count of alt alleles, empty or NA when not called."
        )
    return dosages.astype(float)


# --- checks -------------------------------------------------------------------------------------


def check_samples(samples: pd.Index, sheet: pd.DataFrame, path: str, sheet_path: str) -> None:
    """Every sample of the genotype file is in the sheet; the sheet's samples it lacks are logged."""
    duplicated = samples[samples.duplicated()].unique()
    if len(duplicated):
        raise InputError(f"{path}: duplicated sample IDs: {format_list(duplicated)}; each must appear once.")
    unknown = [s for s in samples if s not in sheet.index]
    if unknown:
        raise InputError(
            f"{path}: {len(unknown)} sample(s) of the genotype file are not in the sample sheet "
            f"{sheet_path}: {format_list(unknown)}; keep only the sheet's samples "
            f"(`bcftools view -S samples.txt`) or correct their IDs."
        )
    absent = [s for s in sheet.index if s not in set(samples)]
    if absent:
        log.info(
            "genotypes: %d sample(s) of %s have no genotypes in %s (left out of the genotype analyses): %s",
            len(absent),
            sheet_path,
            path,
            format_list(absent),
        )


def log_absent(variants: pd.DataFrame, found: pd.DataFrame, path: str, list_path: str) -> None:
    """A variant of the list that the file lacks is logged, not fatal; none found at all is an error."""
    absent = variants[~variants["variant_id"].isin(found["variant_id"])]
    for row in absent.itertuples():
        log.warning(
            "genotypes: variant %s (%s, %s:%d %s>%s) of %s is not in %s; left out.",
            row.variant_id,
            row.gene,
            row.chrom,
            row.pos,
            row.ref,
            row.alt,
            "genotypes.variants" if row.source == "user" else list_path,
            path,
        )
    if found.empty:
        raise InputError(
            f"{path}: none of the {len(variants)} variants of {list_path} (and genotypes.variants) is in "
            f"the file, by position and alleles; is it the cohort's genotype file, on the list's build?"
        )


def check_missing_calls(missing_rate: pd.Series, max_missing: float, path: str) -> None:
    """At most `max_missing` (genotypes.max_missing) of a variant's calls may be missing."""
    over = missing_rate[missing_rate > max_missing]
    if len(over):
        shown = format_list([f"{variant} ({rate:.1%})" for variant, rate in over.items()], 5)
        raise InputError(
            f"{path}: variant(s) with more missing calls than genotypes.max_missing ({max_missing:.1%}) "
            f"allows: {shown}; impute them, or remove them from the file or the list."
        )


def check_scores(sheet: pd.DataFrame, scores: list[str], sheet_path: str) -> None:
    """The polygenic scores (genotypes.scores) are numeric columns of the sample sheet."""
    for score in scores:
        if score not in sheet.columns:
            raise InputError(
                f"{sheet_path}: genotypes.scores names the column {score!r}, which the sample sheet "
                f"lacks; its columns are {format_list(sheet.columns)}."
            )
        if not pd.api.types.is_numeric_dtype(sheet[score]):
            text = sheet[score][pd.to_numeric(sheet[score], errors="coerce").isna() & sheet[score].notna()]
            raise InputError(
                f"{sheet_path}: column {score} (genotypes.scores) holds {text.iat[0]!r} in sample "
                f"{text.index[0]}; a polygenic score is a number (empty or NA when missing)."
            )
