import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, copy_workflow, run_snakemake, small_cohort_config
from trdpipe.common import InputError
from trdpipe.model.filtering import (
    contrast_cohort,
    expressed_genes,
    filter_cohort,
    min_group_size,
    samples_to_keep,
)

CONTRASTS = {"c": {"variable": "group", "test": "TRD", "reference": "responder"}}


def test_expressed_genes_follows_filterbyexpr_by_hand():
    # samples x genes; gene 1 makes library sizes ~1e6 (median 1e6), so the CPM cutoff is 10
    # and gene 0's CPMs are about 12, 5, 30, 0: two samples reach the cutoff.
    counts = np.array([[12, 999_988], [5, 999_995], [30, 999_970], [0, 2_000_000]])
    assert np.median(counts.sum(axis=1)) == 1e6
    assert expressed_genes(counts, group_size=2).tolist() == [True, True]
    assert expressed_genes(counts, group_size=3).tolist() == [False, True]
    # min_total_count applies on top: gene 0 totals 47
    assert expressed_genes(counts, group_size=2, min_total_count=48).tolist() == [False, True]


def test_large_groups_need_only_a_proportion():
    # 30 samples, gene passes the CPM cutoff in 24 of them.
    # n = 10 + (30 - 10) * 0.7 = 24 -> kept; with min_prop 0.8, n = 26 -> removed.
    counts = np.zeros((30, 2))
    counts[:, 1] = 1_000_000
    counts[:24, 0] = 50
    assert expressed_genes(counts, group_size=30).tolist() == [True, True]
    assert expressed_genes(counts, group_size=30, min_prop=0.8).tolist() == [False, True]


def small_cohort():
    obs = pd.DataFrame(
        {
            "group": ["TRD", "TRD", "TRD", "responder", "responder", "responder"],
            "age": [30, 40, 50, 35, 45, 55],
        },
        index=[f"S{i}" for i in range(6)],
    )
    rng = np.random.default_rng(1)
    X = rng.poisson(100, (6, 5))
    X[:, 4] = 0  # never expressed
    return ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=[f"g{i}" for i in range(5)]))


def metrics(excluded):
    return pd.DataFrame({"excluded": excluded}, index=pd.Index([f"S{i}" for i in range(6)], name="sample_id"))


def test_min_group_size():
    assert min_group_size(small_cohort().obs.iloc[:5], CONTRASTS["c"]) == 2


def test_samples_to_keep_reads_excluded_column_as_text_or_bool():
    m = pd.DataFrame({"excluded": ["False", "True", False, True]}, index=list("abcd"))
    assert list(samples_to_keep(m)) == ["a", "c"]


def test_filter_cohort_drops_excluded_samples_and_silent_genes():
    kept, summary = filter_cohort(
        small_cohort(),
        metrics([False, True, False, False, False, False]),
        {},
        CONTRASTS,
        "~ age + group",
        "qc_metrics.tsv",
    )
    assert list(kept.obs_names) == ["S0", "S2", "S3", "S4", "S5"]
    assert list(kept.var_names) == ["g0", "g1", "g2", "g3"]
    assert summary.set_index("step")["n"].to_dict() == {
        "samples in": 6,
        "samples excluded by QC": 1,
        "samples kept": 5,
        "genes in": 5,
        "genes removed (low counts)": 1,
        "genes kept": 4,
        "genes kept for c": 4,
    }
    assert kept.var["expressed:c"].tolist() == [True] * 4


def test_a_small_rna_assays_summary_and_messages_name_its_mirnas():
    """The summary's steps and the filter's message follow the assay's features (FEATURE_WORDS)."""
    cohort, kept_all = small_cohort(), metrics([False] * 6)
    _, summary = filter_cohort(
        cohort, kept_all, {}, CONTRASTS, "~ group", "qc_metrics.tsv", features="miRNAs"
    )
    assert list(summary["step"]) == [
        "samples in",
        "samples excluded by QC",
        "samples kept",
        "miRNAs in",
        "miRNAs removed (low counts)",
        "miRNAs kept",
        "miRNAs kept for c",
    ]
    with pytest.raises(InputError) as err:
        filter_cohort(
            cohort,
            kept_all,
            {"min_total_count": 10**9},
            CONTRASTS,
            "~ group",
            "qc_metrics.tsv",
            features="miRNAs",
        )
    assert str(err.value) == (
        "config 'filter': none of the 5 miRNAs has enough counts to pass the expression filter for "
        "contrast(s) c; lower filter.min_count or filter.min_total_count."
    )


def test_group_too_small_after_exclusion_stops_before_fitting():
    with pytest.raises(InputError) as err:
        filter_cohort(
            small_cohort(),
            metrics([True, True, False, False, False, False]),
            {},
            CONTRASTS,
            "~ group",
            "qc_metrics.tsv",
        )
    assert str(err.value) == (
        "qc_metrics.tsv after QC exclusion: contrast 'c' has 1 sample(s) with "
        "group = 'TRD'; at least 2 are needed."
    )


def test_exclusions_that_leave_too_few_for_the_prediction_stop_before_fitting():
    predict = {"enabled": True, "outer_folds": 3, "inner_folds": 2}  # 3 per group needed
    kept, _ = filter_cohort(
        small_cohort(), metrics([False] * 6), {}, CONTRASTS, "~ group", "qc_metrics.tsv", predict
    )
    assert kept.n_obs == 6
    with pytest.raises(InputError) as err:
        filter_cohort(
            small_cohort(), metrics([True] + [False] * 5), {}, CONTRASTS, "~ group", "qc_metrics.tsv", predict
        )
    assert str(err.value) == (
        "qc_metrics.tsv after QC exclusion: contrast 'c' has 2 sample(s) with group = 'TRD'; at "
        "least 3 are needed for the TRD prediction's nested cross-validation (config "
        "predict.outer_folds 3, predict.inner_folds 2): lower those, or set predict.enabled to false "
        "to skip the prediction."
    )


def test_filter_that_keeps_no_gene_stops_before_fitting():
    with pytest.raises(InputError) as err:
        filter_cohort(
            small_cohort(),
            metrics([False] * 6),
            {"min_total_count": 10**9},
            CONTRASTS,
            "~ group",
            "qc_metrics.tsv",
        )
    assert str(err.value) == (
        "config 'filter': none of the 5 genes has enough counts to pass the "
        "expression filter for contrast(s) c; lower filter.min_count or "
        "filter.min_total_count."
    )


def test_each_contrast_filters_with_its_own_smallest_group():
    """A gene seen in 3 samples passes for a contrast of 3 vs 3 but not for one whose smaller group
    has 4; adding the second contrast leaves the first's genes as they were."""
    obs = pd.DataFrame(
        {"group": ["TRD"] * 3 + ["responder"] * 5, "sex": ["female"] * 4 + ["male"] * 4},
        index=[f"S{i}" for i in range(8)],
    )
    X = np.full((8, 3), 1000)
    X[:, 2] = [50, 50, 50, 0, 0, 0, 0, 0]  # CPM well above the cutoff in 3 samples only
    adata = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=["g0", "g1", "g2"]))
    both = {**CONTRASTS, "sex": {"variable": "sex", "test": "female", "reference": "male"}}
    none_excluded = pd.DataFrame({"excluded": [False] * 8}, index=obs.index)
    alone, _ = filter_cohort(adata, none_excluded, {}, CONTRASTS, "~ group", "qc_metrics.tsv")
    kept, summary = filter_cohort(adata, none_excluded, {}, both, "~ sex + group", "qc_metrics.tsv")
    assert kept.var["expressed:c"].tolist() == [True, True, True]
    assert kept.var["expressed:sex"].tolist() == [True, True, False]
    assert contrast_cohort(kept, "c").var_names.tolist() == contrast_cohort(alone, "c").var_names.tolist()
    assert contrast_cohort(kept, "sex").var_names.tolist() == ["g0", "g1"]
    assert contrast_cohort(kept, "sex").n_obs == 8
    assert summary.set_index("step").loc[
        ["genes kept", "genes kept for c", "genes kept for sex"], "n"
    ].tolist() == [3, 3, 2]


def test_adding_a_contrast_leaves_another_contrasts_table_byte_identical(tmp_path, monkeypatch):
    """The toy cohort's smaller sex group (18) is smaller than its smaller group of TRD vs
    responder (24): under a filter that took the smallest group over all contrasts, adding
    female_vs_male kept more genes for TRD_vs_responder and changed its table."""
    # as in a fresh shell (importing batched_inference here set it): the workflow picks the folder
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    workdir = copy_workflow(tmp_path / "wf")
    counts = pd.read_csv(ROOT / "resources/toy/counts.tsv.gz", sep="\t", index_col=0, nrows=800)
    counts.to_csv(workdir / "config" / "counts.tsv", sep="\t")
    target = "results/de/TRD_vs_responder/deseq2_results.tsv"
    table = workdir / target
    small = small_cohort_config(workdir)  # 800 genes: too few for the cell markers
    run_snakemake(workdir, target, *small, "--config", "counts=config/counts.tsv")
    alone, written = table.read_bytes(), table.stat().st_mtime_ns
    (workdir / "config" / "second.yaml").write_text(
        "contrasts:\n  female_vs_male: {variable: sex, test: female, reference: male}\n"
    )
    run_snakemake(
        workdir,
        target,
        *small,
        "config/second.yaml",
        "--config",
        "counts=config/counts.tsv",
    )
    kept = pd.read_csv(workdir / "results/filter/filter_summary.tsv", sep="\t", index_col="step")["n"]
    assert (
        kept["genes kept for female_vs_male"] > kept["genes kept for TRD_vs_responder"]
    )  # the filters differ
    assert table.stat().st_mtime_ns != written  # refitted after the new filter, not left as it was
    assert table.read_bytes() == alone
    # numba's compiled kernels went to the run's .snakemake/, not beside the scripts
    assert list((workdir / ".snakemake" / "numba_cache").rglob("*.nbi"))
    assert not list((workdir / "workflow").rglob("*.nbi"))
