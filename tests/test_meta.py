"""The meta-analysis of cohorts beside the pooled model (config `cohorts`, results/meta/)."""

import logging
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from conftest import ROOT, run_snakemake
from trdpipe import simulate as sim
from trdpipe.calibration.permutation import calibration_strata
from trdpipe.common import InputError
from trdpipe.ingest import ingest, log_cohorts_left_out
from trdpipe.io.sample_sheet import read_sample_sheet
from trdpipe.model.cohorts import (
    check_cohorts_column,
    cohort_design,
    cohort_shortfall,
    cohorts_of_contrast,
    meta_cohorts,
)
from trdpipe.model.engines import make_engine
from trdpipe.model.filtering import expressed_genes
from trdpipe.model.meta import chance_of_high_i2, meta_table

CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
DESIGN = "~ site + sex + age + group"
SHEET = ROOT / "config/samples.tsv"
PLANTED_FOLD = 8.0  # counts of the planted gene in one cohort's TRD samples, times this
NOMINAL_P, K = 0.05, 2


@pytest.fixture(scope="module")
def cohort_fits() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, str]:
    """Each site of a simulated null cohort (90 samples, realistic gene-gene correlation) fitted
    alone, with one gene planted in the TRD samples of one site only: the cohorts' tables, the
    genes, and the planted gene."""
    annotation = pd.read_csv(ROOT / "resources/annotation/genes.tsv.gz", sep="\t", dtype=str)
    collections = {
        "GO_BP": ROOT / "resources/genesets/go_bp.gmt.gz",
        "curated_TRD": ROOT / "resources/genesets/curated_trd.gmt",
    }
    params = sim.SimulationParameters.null_cohort(n_samples=90, n_genes=400, seed=11, hazards=False)
    cohort = sim.simulate_cohort(annotation, sim.load_gene_sets(collections), params)
    obs = cohort.samples.set_index("sample_id")
    counts = cohort.counts.T.to_numpy()
    keep = expressed_genes(counts, int(obs["group"].value_counts().min()))
    var = cohort.truth_genes.set_index("gene_id")[["gene_symbol"]][keep]
    counts = counts[:, keep]
    planted = var.index[np.argmax(counts.mean(axis=0) * (counts.mean(axis=0) < 500))]
    site = sorted(obs["site"].unique())[0]
    in_site_trd = ((obs["site"] == site) & (obs["group"] == "TRD")).to_numpy()
    counts[in_site_trd, var.index.get_loc(planted)] = np.round(
        counts[in_site_trd, var.index.get_loc(planted)] * PLANTED_FOLD
    )
    adata = ad.AnnData(X=counts, obs=obs, var=var)
    engine = make_engine({"engine": "pydeseq2", "alpha": 0.05})
    tables = {
        s: engine.fit_contrast(
            adata[(obs["site"] == s).to_numpy()].copy(), cohort_design(DESIGN, "site"), CONTRAST
        ).table
        for s in sorted(obs["site"].unique())
    }
    return tables, var, planted


def paule_mandel(y: np.ndarray, v: np.ndarray) -> dict:
    """The random-effects meta-analysis of one gene by hand: tau^2 solves the generalised Q statistic
    = k - 1 (Paule & Mandel 1982), 0 when Q with fixed-effect weights is already below it."""
    k = len(y)

    def generalised_q(tau2: float) -> float:
        w = 1 / (v + tau2)
        return float(np.sum(w * (y - np.sum(w * y) / np.sum(w)) ** 2))

    q = generalised_q(0.0)
    tau2 = 0.0 if q <= k - 1 else brentq(lambda t: generalised_q(t) - (k - 1), 0, 100 * np.var(y) + 1)
    w = 1 / (v + tau2)
    mean, se = np.sum(w * y) / np.sum(w), 1 / np.sqrt(np.sum(w))
    return {
        "log2FoldChange": mean,
        "lfcSE": se,
        "tau2": tau2,
        "Q": q,
        "I2": max(0.0, (q - (k - 1)) / q),
        "pvalue": 2 * norm.sf(abs(mean / se)),
    }


def test_meta_analysis_equals_a_computation_by_hand(cohort_fits):
    tables, var, planted = cohort_fits
    meta = meta_table(tables, var, NOMINAL_P, K).set_index("gene_id")
    lfc = pd.DataFrame({c: t.set_index("gene_id")["log2FoldChange"] for c, t in tables.items()})
    se = pd.DataFrame({c: t.set_index("gene_id")["lfcSE"] for c, t in tables.items()})
    complete = lfc.dropna().index.intersection(se.dropna().index)
    # genes with and without heterogeneity: the planted one and the first four others
    genes = [planted, *[g for g in complete if g != planted][:4]]
    assert (meta.loc[genes, "tau2"] > 0).any() and (meta.loc[genes, "tau2"] == 0).any()
    for gene in genes:
        expected = paule_mandel(lfc.loc[gene].to_numpy(), se.loc[gene].to_numpy() ** 2)
        row = meta.loc[gene]
        for column, value in expected.items():
            # statsmodels stops Paule-Mandel's iteration at |Q(tau2) - (k - 1)| < 1e-5
            assert row[column] == pytest.approx(value, rel=1e-3, abs=1e-6), (gene, column)
        assert row["n_cohorts"] == 3


def test_a_gene_planted_in_one_cohort_is_heterogeneous_and_not_replicated(cohort_fits):
    tables, var, planted = cohort_fits
    meta = meta_table(tables, var, NOMINAL_P, K).set_index("gene_id")
    assert meta.loc[planted, "I2"] >= 0.75
    assert meta.loc[planted, "n_replicating"] == 1
    assert not meta.loc[planted, "replicated"]


def test_few_genes_replicate_on_a_null_cohort(cohort_fits):
    """No gene but the planted one differs: by chance two of three cohorts reach p < 0.05 with the
    same sign for about 3 x (0.05 / 2)^2 x 2 = 0.4% of genes."""
    tables, var, _ = cohort_fits
    meta = meta_table(tables, var, NOMINAL_P, K)
    assert meta["replicated"].mean() <= 0.02
    assert (meta["padj"] < 0.05).sum() <= 2
    # high heterogeneity as often as chance gives it when the cohorts agree
    expected = chance_of_high_i2(meta, 0.75)
    assert 0 < expected < 0.05 * len(meta)
    assert (meta["I2"] >= 0.75).sum() <= 2 * expected + 3


# ---------------------------------------------------------------- bad input


@pytest.fixture
def sheet() -> pd.DataFrame:
    return read_sample_sheet(SHEET)


def test_an_absent_cohorts_column_stops_with_its_name(sheet):
    with pytest.raises(InputError) as err:
        check_cohorts_column(sheet, "cohort", DESIGN, "samples.tsv")
    assert str(err.value) == (
        "samples.tsv: config cohorts names column 'cohort', which the sample sheet does not have; its "
        "columns are group, site, sex, age, bmi, RIN, neutrophil_fraction, prs."
    )


def test_a_cohorts_column_of_one_level_stops(sheet):
    sheet["study"] = "PROMPT"
    with pytest.raises(InputError) as err:
        check_cohorts_column(sheet, "study", DESIGN, "samples.tsv")
    assert str(err.value) == (
        "samples.tsv: column 'study' (config cohorts) holds one cohort only (PROMPT); a meta-analysis "
        "needs two at least: set cohorts to '' to switch it off."
    )


def test_a_cohorts_column_outside_the_design_stops(sheet):
    with pytest.raises(InputError) as err:
        check_cohorts_column(sheet, "site", "~ sex + age + group", "samples.tsv")
    assert str(err.value) == (
        "config cohorts is 'site', which the design '~ sex + age + group' does not adjust for; the "
        "pooled model is the mega-analysis and needs the cohort: add site to the design."
    )


def test_a_cohort_without_a_compared_level_is_left_out_and_logged(sheet, caplog):
    sheet.loc[(sheet["site"] == "siteC") & (sheet["group"] == "TRD"), "group"] = "responder"
    assert cohorts_of_contrast(sheet, "site", CONTRAST) == {"siteC": "no sample with group = TRD"}
    assert meta_cohorts(sheet, "site", CONTRAST) == ["siteA", "siteB"]
    with caplog.at_level(logging.WARNING, logger="trd"):
        log_cohorts_left_out(sheet, "site", {"TRD_vs_responder": CONTRAST})
    assert caplog.messages == [
        "cohort siteC (column site) is left out of the meta-analysis of contrast TRD_vs_responder: "
        "no sample with group = TRD"
    ]
    caplog.clear()
    sheet.loc[(sheet["site"] == "siteB") & (sheet["group"] == "TRD"), "group"] = "responder"
    with caplog.at_level(logging.WARNING, logger="trd"):
        log_cohorts_left_out(sheet, "site", {"TRD_vs_responder": CONTRAST})
    assert caplog.messages[-1] == (
        "contrast TRD_vs_responder has no meta-analysis: 1 cohort(s) of column site hold both of its "
        "levels, fewer than two"
    )


def test_a_cohort_too_small_for_its_own_model_says_why(sheet):
    site_c = sheet[sheet["site"] == "siteC"]  # 3 TRD, 7 responders
    design = cohort_design(DESIGN, "site")
    assert design == "~ sex + age + group"
    assert cohort_shortfall(site_c, design, CONTRAST, 3) is None
    assert cohort_shortfall(site_c, design, CONTRAST, 4) == (
        "3 sample(s) with group = TRD, fewer than meta.min_samples_per_level (4)"
    )


def test_ingest_stops_on_an_absent_cohorts_column_before_reading_counts():
    with pytest.raises(InputError) as err:
        ingest(
            "no_such_counts.tsv",
            SHEET,
            ROOT / "resources/annotation/genes.tsv.gz",
            DESIGN,
            {"TRD_vs_responder": CONTRAST},
            cohorts="cohort",
        )
    assert str(err.value) == (
        f"{SHEET}: config cohorts names column 'cohort', which the sample sheet does not have; its "
        "columns are group, site, sex, age, bmi, RIN, neutrophil_fraction, prs."
    )


# ---------------------------------------------------------------- wiring


def test_each_cohort_is_a_job_of_its_own(workflow_copy):
    """The toy split by site: one fit per site, gathered by one meta-analysis per contrast."""
    result = run_snakemake(workflow_copy, "--dry-run", "--quiet", "rules", "--config", "cohorts=site")
    counts = dict(re.findall(r"^(meta_\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts == {"meta_cohort": "3", "meta_analysis": "1"}


def test_the_calibration_permutes_within_cohort_by_default(sheet):
    """The cohort column is in the design (check_cohorts_column), so the calibration's default strata,
    the design's categorical covariates, hold it: no label moves between cohorts."""
    check_cohorts_column(sheet, "site", DESIGN, "samples.tsv")
    assert calibration_strata(sheet, DESIGN, "group", None) == ["site", "sex"]
