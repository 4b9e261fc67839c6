"""Ingest: counts + sample sheet + annotation -> one checked AnnData (samples x genes, raw counts).

Every input check runs here, the first rule that sees the data, so that a bad
input stops the run before any model is fitted; the config is checked against the sample sheet
before any count file is read.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from trdpipe.calibration.permutation import check_strata
from trdpipe.cells.scores import check_cell_inputs
from trdpipe.checks.inputs import (
    check_counts,
    check_design,
    check_group_sizes,
    check_libraries,
    check_prediction_inputs,
    match_samples,
)
from trdpipe.common import InputError, file_md5, format_list
from trdpipe.io.annotation import annotate_genes, are_entrez_ids, entrez_to_ensembl, load_annotation
from trdpipe.io.counts import (
    CountData,
    clean_sample_id,
    read_counts,
    read_per_sample_counts,
)
from trdpipe.io.genesets import check_collections
from trdpipe.io.mirna_targets import read_targets
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.io.small_rna import annotate_mirnas, load_mirna_annotation, read_small_rna_counts
from trdpipe.model.cohorts import check_cohorts_column, cohorts_of_contrast, meta_cohorts
from trdpipe.model.sensitivity import active_models, check_model

log = logging.getLogger("trd")

# `enabled: auto` (the prediction, the shipped sex-stratified models): the part runs when the
# sample sheet has what it needs and is switched off, with a log line, when it does not
AUTO = "auto"


def build_cohort(counts: pd.DataFrame, sheet: pd.DataFrame, var: pd.DataFrame) -> ad.AnnData:
    """AnnData with samples as observations, raw integer counts in X, annotation in var."""
    obs = sheet.copy()
    obs.index = obs.index.astype(str)
    for column in obs.columns:
        if not pd.api.types.is_numeric_dtype(obs[column]):
            obs[column] = obs[column].astype(str)
    adata = ad.AnnData(
        X=np.ascontiguousarray(counts.to_numpy(dtype=np.int64).T),
        obs=obs,
        var=var,
    )
    adata.obs_names.name = "sample_id"
    adata.var_names.name = "gene_id"
    return adata


def counts_files_from_sheet(sheet: pd.DataFrame, samples_path: str) -> dict[str, str] | None:
    """sample -> count file from the sheet's `counts_file` column (None without that column).

    Relative paths are taken from the working directory, like every path of the config.
    """
    if "counts_file" not in sheet.columns:
        return None
    files = sheet["counts_file"]
    empty = files.index[files.isna()]
    if len(empty):
        raise InputError(
            f"{samples_path}: column 'counts_file' is empty for sample(s) "
            f"{format_list(empty)}; every sample needs its count file."
        )
    missing = [f"{sample} ({path})" for sample, path in files.items() if not Path(path).is_file()]
    if missing:
        raise InputError(
            f"{samples_path}: column 'counts_file' names {len(missing)} file(s) that do "
            f"not exist: {format_list(missing)}."
        )
    return {sample: str(path) for sample, path in files.items()}


def columns_from_sheet(sheet: pd.DataFrame, samples_path: str) -> dict[str, str] | None:
    """counts column -> sample from the sheet's optional `counts_column` column."""
    if "counts_column" not in sheet.columns:
        return None
    columns = sheet["counts_column"].dropna().map(clean_sample_id)
    duplicated = columns[columns.duplicated()].unique()
    if len(duplicated):
        raise InputError(
            f"{samples_path}: column 'counts_column' names {format_list(duplicated)} for "
            "several samples; each counts column belongs to one sample."
        )
    return dict(zip(columns, columns.index))


@dataclass
class OptionalParts:
    """The config's optional parts with every `auto` decided for one sample sheet."""

    predict: dict  # the predict section, `enabled` true or false
    sensitivity: dict  # every sensitivity model, `enabled` true or false where it was auto
    notes: list[str] = field(default_factory=list)  # one line per part switched off, saying why


def prediction_shortfall(sheet: pd.DataFrame, contrasts: dict, predict: dict, where: str) -> str | None:
    """Why the sheet cannot feed the prediction (no clinical column, groups too small for the
    folds), or None. A covariate with missing values is not a shortfall: it stays an error."""
    covariates = predict.get("covariates", [])
    if covariates and not any(c in sheet.columns for c in covariates):
        return (
            f"{where}: none of the columns of config predict.covariates ({format_list(covariates)}) "
            "is in the sample sheet"
        )
    try:
        check_group_sizes(sheet, contrasts, where, predict={**predict, "enabled": True})
    except InputError as err:
        return str(err).rstrip(".")
    return None


def decide_optional_parts(
    sheet: pd.DataFrame, design: str, contrasts: dict, predict: dict, sensitivity: dict, where: str
) -> OptionalParts:
    """Decide each `enabled: auto` from the sheet: the part runs when the sheet has what it needs,
    else it is switched off with a note saying why. `true` stays a demand (its problems are
    errors), `false` stays off. The Snakefile calls this too, so the DAG leaves out what is off."""
    notes = []
    predict = dict(predict)
    if predict.get("enabled") == AUTO:
        shortfall = prediction_shortfall(sheet, contrasts, predict, where)
        predict["enabled"] = shortfall is None
        if shortfall:
            notes.append(
                f"prediction switched off (predict.enabled: auto): {shortfall}; "
                "set predict.enabled to true to make this an error"
            )
    models = {}
    for name, spec in sensitivity.items():
        models[name] = spec = dict(spec)
        if spec.get("enabled") != AUTO:
            continue
        try:
            check_model(name, spec, sheet, design, contrasts, where)
        except InputError as err:
            spec["enabled"] = False
            notes.append(
                f"sensitivity model '{name}' switched off (enabled: auto): {str(err).rstrip('.')}; "
                f"set sensitivity.{name}.enabled to true to make this an error"
            )
        else:
            spec["enabled"] = True
    return OptionalParts(predict, models, notes)


def config_sheet_problems(
    sheet: pd.DataFrame,
    design: str,
    contrasts: dict,
    parts: OptionalParts,
    where: str,
    cells: dict,
    calibration: dict | None,
    collections: dict,
    qc: dict | None = None,
    cohorts: str = "",
) -> list[str]:
    """Every problem of the config against the sample sheet (and of the gene-set files), each
    check run even when another failed, so that one message can list them all."""
    checks: list[Callable[[], object]] = [lambda: check_design(sheet, design, contrasts, where)]
    for name, contrast in contrasts.items() if calibration else ():
        checks.append(
            lambda name=name, contrast=contrast: check_strata(
                sheet, name, contrast, design, calibration.get("strata"), where
            )
        )
    predict = parts.predict or None  # no section: the DE model's group sizes only
    if predict and predict.get("enabled", True):
        checks.append(lambda: check_prediction_inputs(sheet, contrasts, design, predict, where))
    checks.append(lambda: check_group_sizes(sheet, contrasts, where=where, predict=predict))
    for name, spec in active_models(parts.sensitivity, cells).items():
        checks.append(lambda name=name, spec=spec: check_model(name, spec, sheet, design, contrasts, where))
    checks.append(lambda: check_collections(collections))
    if cohorts:
        checks.append(lambda: check_cohorts_column(sheet, cohorts, design, where))
    problems = run_checks(checks)
    # the confounding alarm needs a design and contrasts that the sheet serves
    if qc and not problems:
        # imported here, not above: the Snakefile imports this module when it is parsed, and QC's
        # plotting stack (scanpy, matplotlib) would add 2 s to every start of snakemake
        from trdpipe.qc.metrics import check_confounding

        problems = run_checks([lambda: check_confounding(sheet, design, contrasts, qc, where)])
    # a broken primary design fails the models built on it too: each problem is listed once
    return [p for i, p in enumerate(problems) if not any(q in p for q in problems[:i])]


def run_checks(checks: list[Callable[[], object]]) -> list[str]:
    """The message of every check that raised InputError, each check run whatever the others gave."""
    problems = []
    for check in checks:
        try:
            check()
        except InputError as err:
            problems.append(str(err))
    return problems


def stop_on_problems(problems: list[str], where: str) -> None:
    """One InputError listing every problem (a single one as it is)."""
    if len(problems) == 1:
        raise InputError(problems[0])
    if problems:
        listed = "\n".join(f"  {number}. {problem}" for number, problem in enumerate(problems, start=1))
        raise InputError(
            f"{len(problems)} problems of the config and the sample sheet {where}, found before any "
            f"count file was read:\n{listed}"
        )


def log_cohorts_left_out(sheet: pd.DataFrame, cohorts: str, contrasts: dict) -> None:
    """A cohort without both levels of a contrast is left out of that contrast's meta-analysis:
    logged, not an error (the Snakefile leaves out its job); so is a contrast that keeps fewer than
    two cohorts."""
    for name, contrast in contrasts.items() if cohorts else ():
        for cohort, reason in cohorts_of_contrast(sheet, cohorts, contrast).items():
            log.warning(
                "cohort %s (column %s) is left out of the meta-analysis of contrast %s: %s",
                cohort,
                cohorts,
                name,
                reason,
            )
        fitted = meta_cohorts(sheet, cohorts, contrast)
        if len(fitted) < 2:
            log.warning(
                "contrast %s has no meta-analysis: %d cohort(s) of column %s hold both of its levels, "
                "fewer than two",
                name,
                len(fitted),
                cohorts,
            )


def entrez_rows_as_ensembl(
    counts: pd.DataFrame, symbols: pd.Series | None, annotation: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Counts whose gene IDs are Entrez Gene IDs on the Ensembl IDs the shipped annotation links them
    to, the rows it cannot link dropped (logged); other counts as they are. symbols: the matrix's
    symbol column, aligned by position, kept aligned."""
    if not are_entrez_ids(counts.index):
        return counts, symbols
    ensembl, summary = entrez_to_ensembl(counts.index, annotation, source)
    for key, value in summary.items():
        log.info("gene IDs: %s = %s", key, value)
    linked = counts.index.astype(str).str.strip().isin(ensembl.index)
    counts = counts[linked].set_axis(pd.Index(ensembl.to_numpy(), name=counts.index.name), axis=0)
    if symbols is not None:
        symbols = pd.Series(symbols).reset_index(drop=True)[linked].reset_index(drop=True)
    return counts, symbols


def load_counts(
    counts_path: str,
    sheet: pd.DataFrame,
    samples_path: str,
    counts_format: str = "auto",
    strandedness: str = "unstranded",
    counts_layer: str = "",
    tx2gene: str = "",
) -> CountData:
    """Counts from config `counts` (one file) or from the sheet's `counts_file` column (one per sample)."""
    files = counts_files_from_sheet(sheet, samples_path)
    if files is not None and counts_path:
        raise InputError(
            f"counts are given twice: config counts is {counts_path} and the sample sheet "
            f"{samples_path} has a counts_file column; set counts to '' to use the per-sample files."
        )
    if files is not None:
        return read_per_sample_counts(files, counts_format, strandedness=strandedness, tx2gene=tx2gene)
    if not counts_path:
        raise InputError(
            f"no counts: config counts is empty and the sample sheet {samples_path} has no "
            "counts_file column; give one of them."
        )
    return read_counts(
        counts_path,
        counts_format,
        layer=counts_layer,
        column_to_sample=columns_from_sheet(sheet, samples_path),
    )


def ingest(
    counts_path: str,
    samples_path: str,
    annotation_path: str,
    design: str,
    contrasts: dict,
    counts_format: str = "auto",
    predict: dict | None = None,
    collections: dict | None = None,
    cells: dict | None = None,
    sensitivity: dict | None = None,
    calibration: dict | None = None,
    qc: dict | None = None,
    cohorts: str = "",
    **count_options,
) -> ad.AnnData:
    """Read and check every input; return the cohort or raise InputError.

    predict: the config's predict section (group sizes its cross-validation needs, covariates);
    collections: the config's enrichment.collections (name -> GMT), parsed here to check them;
    cells, sensitivity: the config's sections (markers, measured counts and models checked here);
    calibration: the config's calibration section (the strata of its label permutations);
    qc: the config's qc section (its confounding alarm, which stops the run with `confounding: stop`);
    cohorts: the config's cohorts column (the meta-analysis; '' = none);
    count_options: strandedness, counts_layer, tx2gene (see load_counts).
    """
    sheet = read_sample_sheet(samples_path)
    where = str(samples_path)
    parts = decide_optional_parts(sheet, design, contrasts, predict or {}, sensitivity or {}, where)
    for note in parts.notes:
        log.info("%s", note)
    problems = config_sheet_problems(
        sheet, design, contrasts, parts, where, cells or {}, calibration, collections or {}, qc, cohorts
    )
    stop_on_problems(problems, where)
    log_cohorts_left_out(sheet, cohorts, contrasts)
    annotation = load_annotation(annotation_path)
    data = load_counts(counts_path, sheet, samples_path, counts_format, **count_options)
    counts_source = counts_path or f"counts_file of {samples_path}"
    log.info(
        "counts %s read as format '%s': %d genes x %d samples", counts_source, data.format, *data.counts.shape
    )
    for note in data.notes:
        log.info("%s", note)
    counts = check_counts(data.counts, str(counts_source), estimated=data.estimated)
    counts = match_samples(counts, sheet, str(counts_source), str(samples_path))
    check_libraries(counts, str(counts_source))
    counts, symbols = entrez_rows_as_ensembl(counts, data.gene_symbols, annotation, str(counts_source))
    var, mapping = annotate_genes(counts.index, annotation, symbols, source=str(counts_source))
    for key, value in mapping.items():
        log.info("gene IDs: %s = %s", key, value)
    counts.index = var.index
    if cells and cells.get("enabled", True):
        check_cell_inputs(cells, sheet, var, str(samples_path))
    adata = build_cohort(counts, sheet, var)
    inputs = [counts_path] if counts_path else list(sheet.get("counts_file", []))
    adata.uns["ingest"] = {
        "counts_file": str(counts_source),
        "counts_format": data.format,
        "samples_file": str(samples_path),
        # two parallel arrays, not a dict keyed by path: h5ad would store 'a/b' keys as groups
        "input_files": [str(p) for p in (*inputs, samples_path, annotation_path)],
        "input_md5": [file_md5(p) for p in (*inputs, samples_path, annotation_path)],
    }
    return adata


def ingest_small_rna(
    counts_path: str,
    samples_path: str,
    annotation_path: str,
    design: str,
    contrasts: dict,
    counts_format: str = "auto",
    targets: str = "",
    mrna_annotation: str = "",
    assay: str = "",
) -> ad.AnnData:
    """A small-RNA assay (mature miRNAs x the samples it measured): read and check it, or raise
    InputError. Samples of the sheet that it lacks are logged and left out; a sample it has that
    the sheet lacks stops the run, as in the mRNA assay. The design and the contrasts' group sizes
    are checked on the samples it has; the mRNA assay's ingest checks the rest of the config. A
    targets GMT (assays.<assay>.targets) must name some of its miRNAs and some gene of the mRNA
    annotation (trdpipe.io.mirna_targets)."""
    sheet = read_sample_sheet(samples_path)
    annotation = load_mirna_annotation(annotation_path)
    data = read_small_rna_counts(counts_path, counts_format)
    log.info(
        "counts %s read as format '%s': %d miRNAs x %d samples", counts_path, data.format, *data.counts.shape
    )
    for note in data.notes:
        log.info("%s", note)
    counts = check_counts(data.counts, str(counts_path), estimated=data.estimated)
    counts = match_samples(counts, sheet, str(counts_path), str(samples_path), allow_missing=True)
    check_libraries(counts, str(counts_path))
    sheet = sheet.loc[counts.columns]
    where = f"{samples_path} (the {len(sheet)} samples of {counts_path})"
    stop_on_problems(
        run_checks(
            [
                lambda: check_design(sheet, design, contrasts, where),
                lambda: check_group_sizes(sheet, contrasts, where=where),
            ]
        ),
        where,
    )
    var, summary = annotate_mirnas(counts.index, annotation, str(counts_path), annotation_path)
    for key, value in summary.items():
        log.info("miRNA names: %s = %s", key, value)
    counts.index = var.index
    if targets:
        read_targets(targets, var.index, load_annotation(mrna_annotation), assay)
    adata = build_cohort(counts, sheet, var)
    inputs = [counts_path, samples_path, annotation_path, *([targets] if targets else [])]
    adata.uns["ingest"] = {
        "counts_file": str(counts_path),
        "counts_format": data.format,
        "samples_file": str(samples_path),
        "input_files": [str(p) for p in inputs],
        "input_md5": [file_md5(p) for p in inputs],
    }
    return adata
