"""Ingest: counts + sample sheet + annotation -> one checked AnnData (samples x genes, raw counts).

Every input check runs here, the first rule that sees the data, so that a bad
input stops the run within seconds and before any model is fitted.
"""

import hashlib
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from count_readers import read_counts, read_sample_sheet
from gene_ids import annotate_genes, load_annotation
from input_checks import check_counts, check_design, check_group_sizes, match_samples
from pipeline_common import atomic_output

log = logging.getLogger("trd")


def file_md5(path: str | Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


def ingest(counts_path: str, samples_path: str, annotation_path: str, design: str,
           contrasts: dict, counts_format: str = "auto") -> ad.AnnData:
    """Read and check every input; return the cohort or raise InputError."""
    sheet = read_sample_sheet(samples_path)
    check_design(sheet, design, contrasts, samples_path)
    check_group_sizes(sheet, contrasts, where=str(samples_path))
    annotation = load_annotation(annotation_path)
    data = read_counts(counts_path, counts_format)
    log.info("counts %s read as format '%s': %d genes x %d samples",
             counts_path, data.format, *data.counts.shape)
    for note in data.notes:
        log.info("%s", note)
    counts = check_counts(data.counts, str(counts_path))
    counts = match_samples(counts, sheet, str(counts_path), str(samples_path))
    var, mapping = annotate_genes(counts.index, annotation, data.gene_symbols)
    for key, value in mapping.items():
        log.info("gene IDs: %s = %s", key, value)
    counts.index = var.index
    adata = build_cohort(counts, sheet, var)
    adata.uns["ingest"] = {
        "counts_file": str(counts_path),
        "counts_format": data.format,
        "samples_file": str(samples_path),
        "md5": {str(p): file_md5(p) for p in (counts_path, samples_path, annotation_path)},
    }
    return adata


def main(smk) -> None:
    adata = ingest(
        smk.input.counts,
        smk.input.samples,
        smk.input.annotation,
        smk.params.design,
        dict(smk.params.contrasts),
        smk.params.counts_format,
    )
    log.info("cohort: %d samples x %d genes", adata.n_obs, adata.n_vars)
    with atomic_output(smk.output.h5ad) as tmp:
        adata.write_h5ad(tmp)


if "snakemake" in globals():
    from pipeline_common import run_script

    run_script(main, snakemake)  # noqa: F821
