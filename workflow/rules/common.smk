import gzip
import importlib.util
import logging
import os
import re
import zlib
from functools import lru_cache

from snakemake.logging import logger
from snakemake.utils import validate

# The engine, workflow/lib/ (packages trdpipe and batched_deseq2; LIB_DIR, put on sys.path by
# rules/paths.smk): the rule scripts in workflow/scripts/ import it, and so does the Snakefile (the config
# check, the sheet reader). Every job of the run inherits PYTHONPATH, locally and on SLURM.
SCRIPTS_DIR = os.path.join(WORKFLOW_DIR, "scripts")
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [LIB_DIR, os.environ.get("PYTHONPATH")]))
# Figures are drawn to files, never to a screen, by every job (locally and on SLURM, where there is none)
os.environ["MPLBACKEND"] = "Agg"
# Compiled numba kernels are cached in the working directory, not in the (maybe read-only)
# source tree; every job of the run inherits the variable (workflow/lib/batched_deseq2/numba_cache.py);
# set before the engine's first import below, which would otherwise set the user's cache.
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.abspath(os.path.join(".snakemake", "numba_cache")))
from trdpipe.checks.assays import assay_settings, mirror_primary
from trdpipe.checks.config import check_config, resolve_shipped_paths, shipped_path
from trdpipe.checks.config_keys import section_settings
from trdpipe.checks.deprecations import rename_deprecated_sections
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.common import InputError
from trdpipe.ingest import decide_optional_parts
from trdpipe.model.engines import check_engines_installed
from trdpipe.model.cohorts import meta_cohorts

for note in rename_deprecated_sections(config):
    logger.warning(note)
check_config(config, os.path.join(WORKFLOW_DIR, "schemas", "config.schema.yaml"))
validate(config, schema="../schemas/config.schema.yaml")
# a deployment's config names the shipped resources/ as the repository's does
resolve_shipped_paths(config, WORKFLOW_TOP)
# The count layers (config assays:, trdpipe.checks.assays), the primary mRNA assay first; its
# settings are also the top-level keys, which the mRNA-only steps read.
ASSAY_SETTINGS = assay_settings(config, lambda path: shipped_path(path, WORKFLOW_TOP))
mirror_primary(config, ASSAY_SETTINGS)


def decide_auto_parts():
    """Decide the `enabled: auto` parts (the prediction, the shipped sex-stratified models) from the
    sample sheet, with the function ingest uses, and write true or false into the config: the DAG
    then leaves out what ingest switches off, and every rule sees what runs. Returns ingest's notes
    on what was switched off. An unreadable sheet decides nothing: ingest stops on it."""
    # the checks' warnings (a design column's levels, say) are ingest's to log, once
    logging.getLogger("trd").addHandler(logging.NullHandler())
    try:
        sheet = read_sample_sheet(config["samples"])
    except InputError:
        return []
    parts = decide_optional_parts(
        sheet,
        config["design"],
        config["contrasts"],
        config["predict"],
        config["sensitivity"],
        config["samples"],
    )
    config["predict"], config["sensitivity"] = parts.predict, parts.sensitivity
    for note in parts.notes:
        logger.info(note)
    return parts.notes


SWITCHED_OFF = decide_auto_parts()
# an engine's optional package (pylimma) missing stops the run here, before any job
check_engines_installed(
    [config["de"]["engine"]]
    + [spec["engine"] for spec in config["sensitivity"].values() if spec.get("enabled") and "engine" in spec],
    "config, de.engine and sensitivity models",
)

CONTRASTS = list(config["contrasts"])
# genotypes of candidate genes (workflow/rules/genotypes.smk): on when a genotype file is given
GENOTYPES = config["genotypes"]
GENOTYPES_ENABLED = bool(GENOTYPES["file"])
# the TRD prediction is optional (predict.enabled): too small a cohort cannot be cross-validated
PREDICTED_CONTRASTS = CONTRASTS if config["predict"]["enabled"] else []


ASSAYS = list(ASSAY_SETTINGS)
ASSAY_TYPES = {name: settings["type"] for name, settings in ASSAY_SETTINGS.items()}
EXTRA_ASSAYS = ASSAYS[1:]


def assay_dir(name):
    """The folder of an assay's results under results/ (and logs/, results/benchmarks/): the
    primary assay's are today's ("": results/qc/, results/de/...), every other one's
    results/assays/{name}/. Rules take it as the wildcard {assay_dir}."""
    return "" if name == ASSAYS[0] else f"assays/{name}/"


ASSAY_DIRS = {assay_dir(name): name for name in ASSAYS}


def assay_setting(key):
    """A rule's params (or input) function: the setting `key` of the assay of its {assay_dir}."""
    return lambda wildcards: ASSAY_SETTINGS[ASSAY_DIRS[wildcards.assay_dir]][key]


def targets_file(assay):
    """A small-RNA assay's targets GMT (assays.<name>.targets; a shipped resources/ path resolved as
    the others), or None."""
    path = ASSAY_SETTINGS[assay].get("targets")
    return shipped_path(path, WORKFLOW_TOP) if path else None


def primary_assay(pattern):
    """A rule's path pattern for the primary assay ({assay_dir} ""), its other wildcards kept."""
    return expand(pattern, assay_dir="", allow_missing=True)[0]


# Names are checked against the schema's safe pattern; escaped all the same, since '.' is allowed.
wildcard_constraints:
    contrast="|".join(map(re.escape, CONTRASTS)),
    # "" (the primary assay) or "assays/{name}/" of a configured assay; the group keeps the
    # constraint from being empty, which Snakemake would read as none
    assay_dir="(?:" + "|".join(map(re.escape, ASSAY_DIRS)) + ")",


def _count_lines(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", errors="replace") as handle:
        return sum(1 for _ in handle)


@lru_cache
def cohort_size():
    """(samples, genes) of the configured cohort, for the resources a job asks for.

    Read cheaply from the sample sheet and the count matrix; when they cannot be
    read the ingest rule reports why, so here we fall back to an everyday cohort.
    """
    try:
        n_samples = _count_lines(config["samples"]) - 1
        # per-sample count files (no `counts`): a whole GENCODE annotation has ~60,000 genes
        n_genes = _count_lines(config["counts"]) - 1 if config["counts"] else 60000
    except (OSError, EOFError, zlib.error):
        return 300, 20000
    return max(n_samples, 1), max(n_genes, 1)


def cells_millions():
    n_samples, n_genes = cohort_size()
    return n_samples * n_genes / 1e6


# On a cluster each job also runs a Snakemake process beside the rule's script, and
# SLURM counts both against the request (about 220 MB measured on the toy cohort: qc's
# job step peaked at 1068 MB, its script alone at 847 MB).
JOB_RUNNER_MB = 400


# Each rule's base and slope cover the peaks measured at 300, 3,000 and 6,000 samples
# (bench/measured_peaks.tsv) with the margin of tests/test_resource_formulas.py.
def mem_mb(base, per_million_cells):
    """Memory request: job runner + base + per-million-cells slope (counts are samples x genes), times the attempt."""

    def request(wildcards, attempt):
        return int((JOB_RUNNER_MB + base + per_million_cells * cells_millions()) * attempt)

    return request


def threads_beside_vst_branch(threads):
    """Threads of deseq2: `threads`, but one core fewer than --cores (at least 1).

    deseq2 and the vst -> predict branch (one thread each) are independent; leaving them a
    core lets them run side by side instead of one after the other. At 300 x 20,000 on 2
    cores the whole run took 51 s this way and 70 s with deseq2 on both cores (bench/README.md):
    deseq2's gene blocks gain less from a second thread than the branch costs in series.
    A cluster run without --cores has no such limit: the rule's own number.
    """
    cores = workflow.resource_settings.cores
    return threads if cores is None else max(1, min(threads, cores - 1))


# Below this many matrix cells (samples x genes) a rule's threads gain nothing: on the toy
# cohort (48 x 6,000) predict used 0.9 of its 2 cores and enrichment 0.8, and each held both
# cores so that no other job could run beside it.
SMALL_COHORT_MILLION_CELLS = 1


def threads_for_cohort(threads):
    """A rule's threads, or one for a cohort too small to gain from more."""
    return 1 if cells_millions() < SMALL_COHORT_MILLION_CELLS else threads


# The longest chains to the report, the calibration, the enrichment (with its pathway null) and
# the prediction: start them before the jobs that can wait (sensitivity models, cell scores).
# On the toy cohort the scheduler otherwise started the calibration last, and the enrichment,
# then the prediction, ran alone on one core (2 cores: 104 s without priorities, 89 s with the
# calibration's alone).
CRITICAL_PATH_PRIORITY = 10


def runtime_min(base, per_million_cells):
    """Runtime request in minutes: base + slope per million matrix cells."""
    return int(base + per_million_cells * cells_millions())


def existing_count_files(wildcards):
    """Count files of the assay that exist (its counts, tx2gene; the primary's also from the
    sheet's counts_file column).

    They are inputs so that a changed file reruns ingest; a missing one is left to ingest,
    whose message names the sample and the sheet (Snakemake's missing-input error does not).
    """
    settings = ASSAY_SETTINGS[ASSAY_DIRS[wildcards.assay_dir]]
    paths = [settings["counts"], settings["tx2gene"]]
    if wildcards.assay_dir:
        return [p for p in paths if p and os.path.isfile(p)]
    try:
        sheet = read_sample_sheet(config["samples"])
    except InputError:
        sheet = None  # ingest reports why the sheet cannot be read
    if sheet is not None and "counts_file" in sheet.columns:
        paths += list(sheet["counts_file"].dropna())
    return [p for p in paths if p and os.path.isfile(p)]


def genotype_files(wildcards):
    """The genotype file, its index and the user's variant list, those that exist: a missing one is
    left to the rule, whose message names it and the config key."""
    file = GENOTYPES["file"]
    paths = [file, f"{file}.tbi", f"{file}.csi", GENOTYPES["variants"]]
    return [p for p in paths if p and os.path.isfile(p)]


def qc_figure(name):
    """A QC figure in results/{assay_dir}qc/ with its caption workflow/report/{name}.rst."""
    return report(
        f"results/{{assay_dir}}qc/{name}.png",
        caption=f"../report/{name}.rst",
        category="Quality control",
    )


# The HTML report's template, style and script, beside the captions of `snakemake --report`.
REPORT_TEMPLATE_DIR = os.path.join(WORKFLOW_DIR, "report")


def resource_readmes():
    """README.md beside every assay's annotation, the gene-set collections and, when genotypes are
    analysed, the candidate-variant list: provenance for the report's Methods."""
    annotations = [settings["annotation"] for settings in ASSAY_SETTINGS.values()]
    files = [*annotations, *config.get("enrichment", {}).get("collections", {}).values()]
    files += [GENOTYPES["candidates"]] if GENOTYPES_ENABLED else []
    readmes = dict.fromkeys(os.path.join(os.path.dirname(f), "README.md") for f in files)
    return [readme for readme in readmes if os.path.exists(readme)]


def de_settings(*groups):
    """The de keys of the named key groups (trdpipe.checks.config_keys), with the schema's defaults."""
    return section_settings(config, "de", *groups)


def multiqc_enabled(settings):
    """multiqc.enabled: true or false as given; auto when MultiQC can be imported here."""
    if settings["enabled"] == "auto":
        return importlib.util.find_spec("multiqc") is not None
    return bool(settings["enabled"])


def plan_meta_analysis(column):
    """contrast -> the cohorts of `column` fitted for its meta-analysis (those holding both compared
    levels). Nothing when the meta-analysis is off or the sheet cannot serve it: ingest then stops
    with the reason."""
    if not column:
        return {}
    try:
        sheet = read_sample_sheet(config["samples"])
    except InputError:
        return {}
    if column not in sheet.columns:
        return {}
    return {name: meta_cohorts(sheet, column, contrast) for name, contrast in config["contrasts"].items()}


def meta_jobs(cohorts_by_contrast, contrasts):
    """The (contrast, cohort) pairs of the cohorts' own fits, as lists for expand(..., zip)."""
    pairs = [(name, cohort) for name in contrasts for cohort in cohorts_by_contrast[name]]
    return {"contrast": [p[0] for p in pairs], "cohort": [p[1] for p in pairs]}


def cohort_files(pattern, cohorts_by_contrast):
    """An input function: the pattern for each cohort fitted for the job's contrast."""
    return lambda wc: expand(pattern, contrast=wc.contrast, cohort=cohorts_by_contrast[wc.contrast])
