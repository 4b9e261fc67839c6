"""The candidate-gene eQTL: each candidate gene's blind VST expression against the dosage of each of
its variants, with the design's covariates (ordinary least squares, statsmodels), BH across the
table's tests."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import statsmodels.api as sm
from formulaic import model_matrix

from trdpipe.model.design import prepare_metadata
from trdpipe.model.tables import bh

log = logging.getLogger("trd")

EQTL_COLUMNS = [
    "gene",
    "gene_id",
    "variant_id",
    "ref",
    "alt",
    "source",
    "n",
    "alt_frequency",
    "beta",
    "se",
    "t",
    "pvalue",
    "padj",
    "note",
]


def covariate_matrix(obs: pd.DataFrame, design: str) -> pd.DataFrame:
    """The design's model matrix (intercept and covariates, coded as the DE fit codes them)."""
    metadata, _ = prepare_metadata(obs, design)
    return pd.DataFrame(np.asarray(model_matrix(design, metadata), dtype=float), index=obs.index)


def gene_columns(vst: ad.AnnData, gene: str) -> list[str]:
    """The VST's columns of a gene symbol (or gene ID)."""
    symbols = vst.var["gene_symbol"].astype(str) if "gene_symbol" in vst.var else pd.Series(dtype=str)
    return list(vst.var_names[(symbols == gene).to_numpy() | (vst.var_names == gene)])


def ols_dosage(expression: np.ndarray, covariates: np.ndarray, dosage: np.ndarray) -> dict:
    """The dosage's coefficient of expression ~ covariates + dosage on the samples with a call."""
    called = ~np.isnan(dosage)
    n = int(called.sum())
    if n == 0 or np.ptp(dosage[called]) == 0:
        return {"n": n, "note": "one genotype in every sample: nothing to test"}
    design = np.column_stack([covariates[called], dosage[called]])
    if n <= design.shape[1] or np.linalg.matrix_rank(design) < design.shape[1]:
        return {"n": n, "note": "the dosage is collinear with the covariates, or too few samples"}
    fit = sm.OLS(expression[called], design).fit()
    return {
        "n": n,
        "beta": fit.params[-1],
        "se": fit.bse[-1],
        "t": fit.tvalues[-1],
        "pvalue": fit.pvalues[-1],
        "note": "",
    }


def eqtl_table(vst: ad.AnnData, dosages: pd.DataFrame, variants: pd.DataFrame, design: str) -> pd.DataFrame:
    """One row per candidate gene x its variant (genes as variants.tsv names them); a gene that the
    VST lacks (not expressed enough to pass the filter) is a row with its reason. beta: VST units
    (about log2) per alt allele."""
    samples = [s for s in vst.obs_names if s in dosages.index]
    log.info("eQTL: %d samples with expression and genotypes, design %s", len(samples), design)
    covariates = covariate_matrix(vst.obs.loc[samples], design).to_numpy()
    rows = []
    for variant in variants.itertuples():
        dosage = dosages.loc[samples, variant.variant_id].to_numpy(dtype=float)
        base = {
            "gene": variant.gene,
            "variant_id": variant.variant_id,
            "ref": variant.ref,
            "alt": variant.alt,
        }
        base["source"] = variant.source
        base["alt_frequency"] = np.nanmean(dosage) / 2 if len(samples) else np.nan
        columns = gene_columns(vst, variant.gene)
        if not columns:
            rows.append(
                {**base, "gene_id": "", "n": len(samples), "note": "gene not in the VST (filtered out)"}
            )
        for gene_id in columns:
            expression = np.asarray(vst[samples, gene_id].X, dtype=float).ravel()
            rows.append({**base, "gene_id": gene_id, **ols_dosage(expression, covariates, dosage)})
    table = pd.DataFrame(rows).reindex(columns=EQTL_COLUMNS)
    table["padj"] = bh(table["pvalue"].to_numpy())
    return table.sort_values(["pvalue", "gene", "variant_id"], kind="mergesort", ignore_index=True)


def adjusted_expression(
    vst: ad.AnnData, dosages: pd.DataFrame, gene_id: str, variant_id: str, design: str
) -> pd.DataFrame:
    """A gene's VST expression with the design's covariates regressed out (residuals of the model
    without the dosage), beside the sample's genotype (the dosage rounded: 0, 1, 2)."""
    samples = [s for s in vst.obs_names if s in dosages.index and not np.isnan(dosages.at[s, variant_id])]
    covariates = covariate_matrix(vst.obs.loc[samples], design).to_numpy()
    expression = np.asarray(vst[samples, gene_id].X, dtype=float).ravel()
    fit = sm.OLS(expression, covariates).fit()
    genotype = np.rint(dosages.loc[samples, variant_id].to_numpy(dtype=float)).astype(int)
    return pd.DataFrame({"residual": fit.resid, "genotype": genotype}, index=samples)
