"""The config's assays: the count layers measured on the one sample sheet (config `assays:`).

`assay_settings` is the one place that turns a config into its assays; the rules read an assay's
settings through common.smk, the scripts through their params. A config without `assays:` is the
single assay `mrna`, made of today's top-level keys.
"""

from collections.abc import Callable

from trdpipe.common import InputError, format_list

MRNA = "mrna"
SMALL_RNA = "small_rna"
ASSAY_TYPES = (MRNA, SMALL_RNA)
# the top-level keys that make the primary mRNA assay, and that an assay entry may set
FILE_KEYS = ("counts", "counts_format", "strandedness", "counts_layer", "tx2gene", "annotation")
SECTIONS = ("filter", "qc")
# what an assay's features are called in its tables' labels, logs and figures
FEATURE_WORDS = {MRNA: "genes", SMALL_RNA: "miRNAs"}
# the file keys a small-RNA assay entry leaves out; its `filter:` and `qc:`, when left out, are
# the top-level sections, and when given replace them (their left-out keys take the schema's defaults)
SMALL_RNA_DEFAULTS = {
    "counts": "",
    "counts_format": "auto",
    "strandedness": "unstranded",
    "counts_layer": "",
    "tx2gene": "",
    "annotation": "resources/annotation/mirna.tsv.gz",
}
# count formats by assay type: the mRNA ones are trdpipe.io.counts.FORMATS, the small-RNA ones
# trdpipe.io.small_rna.FORMATS (tests/test_schema_enums.py holds the three lists together)
SMALL_RNA_ONLY_FORMATS = ("smrnaseq", "mirdeep2", "mirge3")
SMALL_RNA_FORMATS = ("auto", "matrix", *SMALL_RNA_ONLY_FORMATS)
MRNA_FORMATS = ("auto", "matrix", "featurecounts", "star", "htseq", "salmon", "kallisto", "h5ad")
# the prediction's feature sets beside the assays (trdpipe.predict.features.feature_sets), whose
# tables name an assay's set by the assay's name: an assay of one of these names would clash
FEATURE_SET_NAMES = ("clinical", "combined", "stacked", "genotypes")


def check_name(name: str) -> None:
    """An assay's name is its feature set's name in the prediction tables."""
    if name in FEATURE_SET_NAMES:
        raise InputError(
            f"config assays.{name}: the name '{name}' is a feature set of the prediction "
            f"({format_list(FEATURE_SET_NAMES)}), whose tables name each assay's set by the assay's "
            "name; give this assay another name."
        )


def primary_name(entries: dict) -> str:
    """The primary assay: the one entry of type mrna, or `mrna` made of the top-level keys."""
    mrna = [name for name, entry in entries.items() if entry["type"] == MRNA]
    if len(mrna) > 1:
        raise InputError(
            f"config assays: {format_list(mrna)} are all of type mrna; one mRNA assay is the primary "
            "one (the top-level keys are its settings), give the others as their own runs."
        )
    if not mrna and MRNA in entries:
        raise InputError(
            f"config assays.{MRNA}: the name '{MRNA}' is the primary mRNA assay's; give this "
            f"{entries[MRNA]['type']} assay another name (mirna, say)."
        )
    return mrna[0] if mrna else MRNA


def check_entry(name: str, settings: dict) -> None:
    """An extra assay needs its counts (the primary may take them from the sample sheet's
    counts_file column), in a format of its type."""
    if settings["type"] == SMALL_RNA and not settings["counts"]:
        raise InputError(f"config assays.{name}.counts is empty; a small_rna assay needs its counts file.")
    if settings["type"] == MRNA and settings.get("targets"):
        raise InputError(
            f"config assays.{name}.targets is given on an mrna assay, which does not read it; the "
            "targets GMT (miRNAs and their target genes) belongs to the small_rna assay's entry."
        )
    allowed = SMALL_RNA_FORMATS if settings["type"] == SMALL_RNA else MRNA_FORMATS
    if settings["counts_format"] not in allowed:
        raise InputError(
            f"config assays.{name}.counts_format is '{settings['counts_format']}', which a "
            f"{settings['type']} assay cannot read; choose one of: {', '.join(allowed)}."
        )


def given_keys(entry: dict) -> dict:
    """An entry's keys with a value: one left empty (`annotation:` with no value) takes its default,
    as one left out does (a small-RNA assay's shipped annotation, say)."""
    return {key: value for key, value in entry.items() if value not in ("", None)}


def assay_settings(config: dict, resolve_path: Callable[[str], str] = str) -> dict[str, dict]:
    """Every assay of a validated config by name, the primary mRNA assay first, each with its
    type, FILE_KEYS and its `filter` and `qc` sections.

    resolve_path: applied to every assay's counts and annotation (the shipped resources/ of a
    deployment, trdpipe.checks.config.shipped_path).
    """
    # an assay switched off (enabled: false) is not in the run
    entries = {
        name: given_keys(entry)
        for name, entry in (config.get("assays") or {}).items()
        if entry.get("enabled", True)
    }
    for name in entries:
        check_name(name)
    primary = primary_name(entries)
    top = {key: config[key] for key in (*FILE_KEYS, *SECTIONS)}
    settings = {primary: {"type": MRNA, **top, **entries.pop(primary, {})}}
    settings[primary].pop("enabled", None)
    check_entry(primary, settings[primary])
    for name, entry in entries.items():  # small RNA: primary_name allows one mRNA assay
        settings[name] = {**top, **SMALL_RNA_DEFAULTS, **entry}
        settings[name].pop("enabled", None)
        check_entry(name, settings[name])
    for assay in settings.values():
        for key in ("counts", "tx2gene", "annotation"):
            assay[key] = resolve_path(assay[key]) if assay[key] else assay[key]
    return settings


def mirror_primary(config: dict, settings: dict[str, dict]) -> None:
    """Write the primary assay's settings to the top-level keys, which the mRNA-only steps read
    (enrichment, sensitivity models, cell composition, the report's methods)."""
    primary = next(iter(settings.values()))
    for key in (*FILE_KEYS, *SECTIONS):
        config[key] = primary[key]
