"""The limma-voom engine (trdpipe.model.engines.limma_voom) against R limma on the toy cohort.

pylimma is an optional extra (GPL-3.0-or-later, requirements-extras.txt): without it the tests
that fit are skipped and say so; .ci/run installs it, so CI runs them.
"""

import builtins
import importlib.util
from types import SimpleNamespace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from conftest import ROOT
from rule_scripts import rule_script
from trdpipe.calibration.score_null import score_statistics
from trdpipe.common import InputError, write_table
from trdpipe.model.deseq2 import run_deseq2
from trdpipe.model.engines import check_engines_installed, make_engine
from trdpipe.model.results import RESULT_COLUMNS

REFERENCE = ROOT / "tests/data/r_limma_voom/results.tsv.gz"
DESIGN = "~ site + sex + age + group"
CONTRAST = {"variable": "group", "test": "TRD", "reference": "responder"}
# R limma 3.54.1 (Debian) against pylimma, a port of limma 3.66, whose voom differs from earlier
# releases by up to a few percent (pylimma's README). Measured on these 3,677 genes: log2 fold
# change within 0.010, lfcSE within 1.8%, t within 0.028, -log10 p within 0.02, 2 calls of 166.
TOLERANCE = {"log2FoldChange": 0.02, "stat": 0.05, "log10_pvalue": 0.05, "lfcSE_relative": 0.03}

needs_pylimma = pytest.mark.skipif(
    importlib.util.find_spec("pylimma") is None,
    reason="pylimma is not installed (optional, GPL-3.0: pip install -r requirements-extras.txt)",
)


def reference_cohort() -> ad.AnnData:
    """The toy cohort as make_reference.R reads it: genes with a mean count of at least 100."""
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0)
    samples = pd.read_csv(ROOT / "resources/toy/samples.tsv", sep="\t", index_col=0).loc[counts.columns]
    counts = counts[counts.mean(axis=1) >= 100]
    var = pd.DataFrame({"gene_symbol": [f"S{i}" for i in range(len(counts))]}, index=counts.index)
    return ad.AnnData(counts.T.to_numpy(), obs=samples, var=var)


@pytest.fixture(scope="module")
def fitted():
    adata = reference_cohort()
    engine = make_engine({"engine": "limma_voom", "alpha": 0.05}, 1)
    return adata, engine, engine.fit_contrast(adata, DESIGN, CONTRAST, shrink=True)


@needs_pylimma
def test_limma_voom_matches_r_limma_on_the_toy(fitted):
    _, _, fit = fitted
    reference = pd.read_csv(REFERENCE, sep="\t", index_col=0)
    ours = fit.table.set_index("gene_id").loc[reference.index]
    assert len(reference) == 3677
    for column in ("log2FoldChange", "stat"):
        np.testing.assert_allclose(ours[column], reference[column], rtol=0, atol=TOLERANCE[column])
    np.testing.assert_allclose(ours["lfcSE"], reference["lfcSE"], rtol=TOLERANCE["lfcSE_relative"])
    np.testing.assert_allclose(
        np.log10(ours["pvalue"]), np.log10(reference["pvalue"]), rtol=0, atol=TOLERANCE["log10_pvalue"]
    )
    called, called_in_r = ours["padj"] < 0.05, reference["padj"] < 0.05
    assert called_in_r.sum() == 164
    assert (called != called_in_r).sum() <= 3


@needs_pylimma
def test_limma_voom_table_follows_the_results_contract(fitted):
    adata, _, fit = fitted
    table = fit.table
    # every contract column filled; no shrunk fold change in limma, asked for or not
    assert list(table.columns) == RESULT_COLUMNS
    assert table[RESULT_COLUMNS[2:]].notna().all().all()
    assert (table["pvalue"].diff().dropna() >= 0).all()
    # baseMean: the mean of the normalised counts, counts over library size / its geometric mean
    counts = np.asarray(adata.X, dtype=float)
    sizes = counts.sum(axis=1)
    expected = (counts / (sizes / np.exp(np.log(sizes).mean()))[:, None]).mean(axis=0)
    np.testing.assert_allclose(table.set_index("gene_id").loc[adata.var_names, "baseMean"], expected)
    np.testing.assert_allclose(fit.normalised_counts.mean(axis=0), expected)


@needs_pylimma
def test_limma_voom_score_statistic_ranks_genes_as_the_moderated_t(fitted):
    """The fit without the contrast gives the weighted least-squares score of the contrast: on the
    toy its rank correlation with the moderated t of the full fit is 0.99997."""
    adata, engine, fit = fitted
    indicator = (adata.obs["group"] == "TRD").to_numpy()[:, None]
    score = score_statistics(indicator, engine.fit_without_contrast(adata, DESIGN, CONTRAST))[0]
    t = fit.table.set_index("gene_id").loc[adata.var_names, "stat"]
    assert spearmanr(score, t).statistic > 0.9999


@needs_pylimma
def test_limma_voom_refit_under_the_observed_labels_is_the_fit(fitted):
    adata, engine, fit = fitted
    refit = engine.permutation_refits(adata, DESIGN, CONTRAST)
    observed = refit(adata.obs["group"])
    expected = fit.table.set_index("gene_id").loc[adata.var_names]
    pd.testing.assert_frame_equal(observed, expected)
    shuffled = refit(pd.Series(np.random.default_rng(1).permutation(adata.obs["group"]), adata.obs_names))
    assert not np.allclose(shuffled["stat"], expected["stat"])


def test_limma_voom_without_pylimma_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_pylimma(name, *args, **kwargs):
        if name == "pylimma":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pylimma)
    with pytest.raises(InputError) as err:
        make_engine({"engine": "limma_voom"}).fit_contrast(reference_cohort(), DESIGN, CONTRAST)
    message = (
        "the DE engine 'limma_voom' needs pylimma, which is not installed: pip install -r "
        "requirements-extras.txt (pylimma is GPL-3.0-or-later, an optional extra)"
    )
    assert str(err.value) == message


def test_a_configured_engine_without_its_package_stops_before_any_rule(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    check_engines_installed(["pydeseq2"], "config/config.yaml")  # not an optional package
    with pytest.raises(InputError, match=r"^config/config.yaml: the DE engine 'limma_voom' needs pylimma"):
        check_engines_installed(["pydeseq2", "limma_voom"], "config/config.yaml")


@needs_pylimma
def test_a_sensitivity_model_naming_limma_voom_is_a_second_opinion_on_the_primary_calls(tmp_path, fitted):
    """The sensitivity rule's script with `engine: limma_voom` writes limma's table and its
    concordance with the primary (PyDESeq2) table."""
    adata, _, limma = fitted
    cohort = adata.copy()
    cohort.var["expressed:TRD_vs_responder"] = True
    cohort.obs = cohort.obs.astype({"age": float})
    cohort.write_h5ad(tmp_path / "cohort.h5ad")
    primary = run_deseq2(adata, DESIGN, CONTRAST, {"alpha": 0.05}, 1)
    write_table(primary, tmp_path / "primary.tsv", float_format="%.8g")
    names = ["table", "model", "samples", "concordance", "scatter"]
    files = ["deseq2_results.tsv", "model.tsv", "samples_used.tsv", "concordance.tsv", "lfc_scatter.png"]
    smk = SimpleNamespace(
        input=SimpleNamespace(
            h5ad=str(tmp_path / "cohort.h5ad"), primary=str(tmp_path / "primary.tsv"), covariates=""
        ),
        output=SimpleNamespace(**{name: str(tmp_path / "out" / file) for name, file in zip(names, files)}),
        params=SimpleNamespace(
            design=DESIGN,
            contrast=CONTRAST,
            spec={"engine": "limma_voom"},
            deseq2={"engine": "pydeseq2", "alpha": 0.05},
        ),
        threads=1,
        wildcards=SimpleNamespace(contrast="TRD_vs_responder", model="second_opinion"),
    )
    rule_script("sensitivity").main(smk)
    table = pd.read_csv(tmp_path / "out/deseq2_results.tsv", sep="\t", index_col="gene_id")
    expected = limma.table.set_index("gene_id")
    np.testing.assert_allclose(table.loc[expected.index, "stat"], expected["stat"], rtol=1e-7)
    row = pd.read_csv(tmp_path / "out/concordance.tsv", sep="\t").iloc[0]
    called_primary = set(primary.loc[primary["padj"] < 0.05, "gene_id"])
    called_limma = set(expected.index[expected["padj"] < 0.05])
    assert (row["model"], row["degs_primary"], row["degs_model"]) == (
        "second_opinion",
        len(called_primary),
        len(called_limma),
    )
    assert row["overlap"] == len(called_primary & called_limma) > 100
