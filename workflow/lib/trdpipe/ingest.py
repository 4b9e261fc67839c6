"""Ingest: counts + sample sheet + annotation -> one checked AnnData (samples x genes, raw counts).

Every input check runs here, the first rule that sees the data, so that a bad
input stops the run within seconds and before any model is fitted.
"""

import logging
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
from trdpipe.io.annotation import annotate_genes, load_annotation
from trdpipe.io.counts import (
    CountData,
    clean_sample_id,
    read_counts,
    read_per_sample_counts,
    read_sample_sheet,
)
from trdpipe.io.genesets import check_collections
from trdpipe.model.sensitivity import active_models, check_models
from trdpipe.qc import check_confounding

log = logging.getLogger("trd")


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
    **count_options,
) -> ad.AnnData:
    """Read and check every input; return the cohort or raise InputError.

    predict: the config's predict section (group sizes its cross-validation needs, covariates);
    collections: the config's enrichment.collections (name -> GMT), parsed here to check them;
    cells, sensitivity: the config's sections (markers, measured counts and models checked here);
    calibration: the config's calibration section (the strata of its label permutations);
    qc: the config's qc section (its confounding alarm, which stops the run with `confounding: stop`);
    count_options: strandedness, counts_layer, tx2gene (see load_counts).
    """
    sheet = read_sample_sheet(samples_path)
    check_design(sheet, design, contrasts, samples_path)
    check_collections(collections or {})
    for name, contrast in contrasts.items() if calibration else ():
        check_strata(sheet, name, contrast, design, calibration.get("strata"), str(samples_path))
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
    # after the data checks: a defect in the files is worth knowing before the cohort's size
    if predict:
        check_prediction_inputs(sheet, contrasts, design, predict, where=str(samples_path))
    check_group_sizes(sheet, contrasts, where=str(samples_path), predict=predict)
    check_models(active_models(sensitivity or {}, cells or {}), sheet, design, contrasts, str(samples_path))
    if qc:
        check_confounding(sheet, design, contrasts, qc, str(samples_path))
    var, mapping = annotate_genes(counts.index, annotation, data.gene_symbols, source=str(counts_source))
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
