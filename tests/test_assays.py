"""Assays (config `assays:`): the config normaliser, the small-RNA count readers on real-layout
fixtures (tests/data/small_rna/), their ingest and QC, and the wiring of every assay's chain (a
dry run)."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT, run_snakemake
from trdpipe.checks.assays import assay_settings
from trdpipe.checks.config import shipped_path
from trdpipe.checks.inputs import match_samples
from trdpipe.common import InputError
from trdpipe.ingest import ingest_small_rna
from trdpipe.io.small_rna import annotate_mirnas, detect_format, load_mirna_annotation, read_small_rna_counts
from trdpipe.qc.metrics import run_qc
from trdpipe.report.sections.assays import assay_finding

DATA = ROOT / "tests" / "data" / "small_rna"
ANNOTATION = DATA / "mirna_annotation.tsv"
# the counts every fixture holds (tests/data/small_rna/README.md)
EXPECTED = pd.DataFrame(
    {
        "S1": [1520, 12, 9833, 4410, 20544, 803],
        "S2": [1311, 0, 8721, 3902, 18702, 950],
        "S3": [1702, 7, 10210, 5011, 22310, 611],
    },
    index=[
        "hsa-let-7a-5p",
        "hsa-miR-1-3p",
        "hsa-miR-21-5p",
        "hsa-miR-16-5p",
        "hsa-miR-451a",
        "hsa-miR-150-5p",
    ],
)
FIXTURES = [
    ("mature_counts.csv", "smrnaseq"),
    ("mirna.tsv", "matrix"),
    ("miRNAs_expressed_all_samples_1717171717.csv", "mirdeep2"),
    ("miR.Counts.csv", "mirge3"),
]


def top_level_config() -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.pop("assays", None)
    return config | {"strandedness": "unstranded", "counts_layer": "", "tx2gene": ""}


# --- readers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), FIXTURES)
def test_each_small_rna_layout_is_detected_and_read_to_the_same_counts(name, fmt):
    assert detect_format(DATA / name)[0] == fmt
    for given in ("auto", fmt):
        data = read_small_rna_counts(DATA / name, given)
        counts = data.counts.apply(pd.to_numeric).loc[EXPECTED.index, EXPECTED.columns]
        assert (counts.to_numpy() == EXPECTED.to_numpy()).all()
        assert sorted(data.counts.index) == sorted(EXPECTED.index)


def test_mirdeep2_keeps_one_row_per_mature_mirna_and_says_so():
    data = read_small_rna_counts(DATA / "miRNAs_expressed_all_samples_1717171717.csv")
    # let-7a-5p has 3 precursors, miR-1-3p and miR-16-5p 2 each: 7 rows of 3 miRNAs
    assert data.notes == [
        "7 rows of 3 mature miRNAs with several precursors: the largest row of each kept "
        "(the same reads, counted once per precursor)"
    ]


def test_mirge3_drops_its_total_row():
    data = read_small_rna_counts(DATA / "miR.Counts.csv")
    assert "miRNAtotal" not in data.counts.index
    assert data.notes == ["row miRNAtotal (all miRNA reads of each sample) removed"]


def test_a_count_that_is_not_a_number_names_its_line_and_column(tmp_path):
    lines = (DATA / "miRNAs_expressed_all_samples_1717171717.csv").read_text().splitlines()
    cells = lines[3].split("\t")
    cells[5] = "n/a"
    lines[3] = "\t".join(cells)
    path = tmp_path / "miRNAs_expressed_all_samples_1.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        read_small_rna_counts(path)
    assert (
        str(err.value)
        == f"{path}: line 4, column 'S2' of the miRDeep2 expression table is 'n/a'; expected a count."
    )


def test_mimat_accessions_are_named_and_families_annotated():
    annotation = load_mirna_annotation(ANNOTATION)
    var, summary = annotate_mirnas(
        pd.Index(["MIMAT0000076", "hsa-let-7a-5p", "hsa-miR-9999"]), annotation, "counts.tsv", ANNOTATION
    )
    assert list(var.index) == ["hsa-miR-21-5p", "hsa-let-7a-5p", "hsa-miR-9999"]
    assert list(var["gene_symbol"]) == list(var.index)
    assert list(var["family"]) == ["mir-21", "let-7", ""]
    assert summary == {
        "miRNAs": 3,
        "named by MIMAT accession": 1,
        "not in the annotation (kept, no family)": 1,
    }


def test_counts_with_no_known_mirna_stop_with_the_annotation_named():
    with pytest.raises(InputError) as err:
        annotate_mirnas(pd.Index(["ENSG00000141510"]), load_mirna_annotation(ANNOTATION), "c.tsv", ANNOTATION)
    assert str(err.value) == (
        f"c.tsv: none of its 1 miRNAs (ENSG00000141510) is in the miRNA annotation {ANNOTATION}; "
        "expected mature miRNA names (hsa-miR-21-5p) or MIMAT accessions."
    )


# --- samples -----------------------------------------------------------------------------------


def sheet_of(samples: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {"group": ["TRD", "responder"] * (len(samples) // 2)}, index=pd.Index(samples, name="sample_id")
    )


def test_samples_missing_from_an_assay_are_left_out_and_logged(caplog):
    counts = EXPECTED.copy()
    with caplog.at_level(logging.INFO, logger="trd"):
        kept = match_samples(
            counts, sheet_of(["S1", "S4", "S2", "S3"]), "mirna.tsv", "samples.tsv", allow_missing=True
        )
    assert list(kept.columns) == ["S1", "S2", "S3"]
    assert (
        "1 sample(s) of the sample sheet samples.tsv are not in the counts mirna.tsv and are left out of "
        "this assay: S4" in caplog.messages
    )


def test_a_sample_of_an_assay_not_in_the_sheet_stops_as_in_the_mrna_assay():
    with pytest.raises(InputError) as err:
        match_samples(EXPECTED, sheet_of(["S1", "S2"]), "mirna.tsv", "samples.tsv", allow_missing=True)
    assert (
        str(err.value) == "1 sample(s) of the counts mirna.tsv are not in the sample sheet samples.tsv: S3."
    )


def test_ingest_of_a_small_rna_assay_checks_the_design_on_its_own_samples(tmp_path):
    sheet = tmp_path / "samples.tsv"
    rows = ["sample_id\tgroup", "S1\tTRD", "S2\tresponder", "S3\tTRD", "S4\tresponder"]
    sheet.write_text("\n".join(rows) + "\n")
    contrasts = {"TRD_vs_responder": {"variable": "group", "test": "TRD", "reference": "responder"}}
    with pytest.raises(InputError) as err:
        ingest_small_rna(str(DATA / "mirna.tsv"), str(sheet), str(ANNOTATION), "~ group", contrasts)
    # S4 is left out: one responder is too few for the model (check_group_sizes)
    assert "responder" in str(err.value) and f"{sheet} (the 3 samples of {DATA / 'mirna.tsv'})" in str(
        err.value
    )


# --- QC ----------------------------------------------------------------------------------------


def test_small_rna_qc_has_no_mrna_checks_and_flags_a_small_library():
    rng = np.random.default_rng(3)
    n_samples, n_mirnas = 24, 120
    counts = rng.negative_binomial(5, 5 / (5 + rng.lognormal(5, 1.5, n_mirnas)), size=(n_samples, n_mirnas))
    counts[7] = counts[7] // 50  # a failed library
    names = [f"hsa-miR-{i}-5p" for i in range(n_mirnas)]
    obs = pd.DataFrame({"group": ["TRD", "responder"] * 12}, index=[f"S{i}" for i in range(n_samples)])
    adata = ad.AnnData(
        counts.astype(np.int64), obs=obs, var=pd.DataFrame({"gene_symbol": names}, index=names)
    )
    vst = np.log2(counts / counts.sum(axis=1, keepdims=True) * 1e6 + 1)
    settings = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["qc"]
    results = run_qc(adata, vst, settings | {"n_top_genes": 50}, mrna=False)
    metrics = results["metrics"]
    assert not {"pct_counts_globin", "pct_counts_mito", "sex_score", "inferred_sex"} & set(metrics.columns)
    assert list(results["limits"]["flag"]) == ["low_library_size", "low_detected_genes", "pca_outlier"]
    assert metrics.index[metrics["flags"].str.contains("low_library_size")].tolist() == ["S7"]


# --- config ------------------------------------------------------------------------------------


def test_a_config_without_assays_is_the_single_mrna_assay_of_the_top_level_keys():
    config = top_level_config()
    settings = assay_settings(config)
    assert list(settings) == ["mrna"]
    assert settings["mrna"] == {
        "type": "mrna",
        **{
            key: config[key] for key in ("counts", "counts_format", "strandedness", "counts_layer", "tx2gene")
        },
        "annotation": config["annotation"],
        "filter": config["filter"],
        "qc": config["qc"],
    }


def test_an_extra_assay_takes_its_own_keys_and_the_top_level_sections_it_leaves_out():
    config = top_level_config() | {
        "assays": {
            "mirna": {
                "type": "small_rna",
                "counts": "m.tsv",
                "annotation": "a.tsv",
                "filter": {"min_count": 5},
            }
        }
    }
    settings = assay_settings(config, resolve_path=lambda path: "/top/" + path)
    assert list(settings) == ["mrna", "mirna"]
    mirna = settings["mirna"]
    assert (mirna["counts"], mirna["annotation"], mirna["counts_format"]) == (
        "/top/m.tsv",
        "/top/a.tsv",
        "auto",
    )
    assert mirna["filter"] == {"min_count": 5}
    assert mirna["qc"] == config["qc"]


@pytest.mark.parametrize(
    "entry", [{}, {"annotation": ""}, {"annotation": None}], ids=["left out", "empty", "null"]
)
def test_a_small_rna_assay_without_annotation_takes_the_shipped_one_from_any_folder(
    entry, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a deployment: config/ copied, resources/ the workflow's
    config = top_level_config() | {"assays": {"mirna": {"type": "small_rna", "counts": "m.tsv", **entry}}}
    settings = assay_settings(config, resolve_path=lambda path: shipped_path(path, ROOT))
    assert settings["mirna"]["annotation"] == str(ROOT / "resources" / "annotation" / "mirna.tsv.gz")


def test_an_assay_switched_off_is_not_in_the_run():
    config = top_level_config() | {
        "assays": {
            "mirna": {"type": "small_rna", "counts": "m.tsv", "enabled": False},
            "other": {"type": "small_rna", "counts": "o.tsv", "enabled": True},
        }
    }
    settings = assay_settings(config)
    assert list(settings) == ["mrna", "other"]
    assert "enabled" not in settings["other"]


def test_the_primary_may_be_named_in_assays_and_its_keys_win():
    config = top_level_config() | {"assays": {"rna": {"type": "mrna", "counts": "genes.tsv"}}}
    settings = assay_settings(config)
    assert list(settings) == ["rna"]
    assert settings["rna"]["counts"] == "genes.tsv"
    assert settings["rna"]["annotation"] == config["annotation"]


@pytest.mark.parametrize(
    ("assays", "message"),
    [
        (
            {"a": {"type": "mrna"}, "b": {"type": "mrna"}},
            "config assays: a, b are all of type mrna; one mRNA assay is the primary one (the top-level keys "
            "are its settings), give the others as their own runs.",
        ),
        (
            {"mrna": {"type": "small_rna", "counts": "m.tsv", "annotation": "a.tsv"}},
            "config assays.mrna: the name 'mrna' is the primary mRNA assay's; give this small_rna assay another "
            "name (mirna, say).",
        ),
        (
            {"mirna": {"type": "small_rna", "annotation": "a.tsv"}},
            "config assays.mirna.counts is empty; a small_rna assay needs its counts file.",
        ),
        (
            {
                "mirna": {
                    "type": "small_rna",
                    "counts": "m.tsv",
                    "annotation": "a.tsv",
                    "counts_format": "salmon",
                }
            },
            "config assays.mirna.counts_format is 'salmon', which a small_rna assay cannot read; choose one of: "
            "auto, matrix, smrnaseq, mirdeep2, mirge3.",
        ),
        (
            {"genotypes": {"type": "small_rna", "counts": "m.tsv"}},
            "config assays.genotypes: the name 'genotypes' is a feature set of the prediction (clinical, "
            "combined, stacked, genotypes), whose tables name each assay's set by the assay's name; give "
            "this assay another name.",
        ),
        (
            {"clinical": {"type": "mrna"}},
            "config assays.clinical: the name 'clinical' is a feature set of the prediction (clinical, "
            "combined, stacked, genotypes), whose tables name each assay's set by the assay's name; give "
            "this assay another name.",
        ),
        (
            {"rna": {"type": "mrna", "targets": "t.gmt"}},
            "config assays.rna.targets is given on an mrna assay, which does not read it; the targets GMT "
            "(miRNAs and their target genes) belongs to the small_rna assay's entry.",
        ),
    ],
    ids=[
        "two mrna",
        "mrna name taken",
        "no counts",
        "mrna format",
        "feature set name",
        "primary named clinical",
        "mrna targets",
    ],
)
def test_a_bad_assays_section_gets_one_clear_message(assays, message):
    with pytest.raises(InputError) as err:
        assay_settings(top_level_config() | {"assays": assays})
    assert str(err.value) == message


# --- wiring ------------------------------------------------------------------------------------


def job_stats(output: str) -> str:
    """Snakemake's table of jobs per rule, from a dry run's output."""
    return output[output.index("Job stats") :].split("\n\n")[0]


@pytest.mark.e2e
def test_every_assay_goes_through_the_same_rules_in_either_form_of_the_config(workflow_copy):
    """The shipped config's mirna layer is planned through the same rules under its own folder,
    and the config's commented form, both layers under assays:, plans the same jobs."""
    result = run_snakemake(workflow_copy, "--dry-run")
    outputs = [line.split("output:")[1] for line in result.stdout.splitlines() if "output:" in line]
    planned = {path.strip() for line in outputs for path in line.split(",")}
    for step in ("ingest/cohort.h5ad", "qc/qc_metrics.tsv", "filter/cohort.h5ad", "vst/vst.h5ad"):
        assert {f"results/{step}", f"results/assays/mirna/{step}"} <= planned
    for step in ("de/{c}/deseq2_results.tsv", "calibration/{c}/summary.tsv"):
        path = step.format(c="TRD_vs_responder")
        assert {f"results/{path}", f"results/assays/mirna/{path}"} <= planned
    # the mRNA-only steps (their folders enrichment/, sensitivity/, cells/) run on the primary assay
    # alone; the small-RNA assay's own steps beside the chain are its targets' (targets/)
    mrna_only = ("/enrichment/", "/sensitivity/", "/cells/")
    assert not [
        p for p in planned if p.startswith("results/assays/mirna/") and any(d in p for d in mrna_only)
    ]
    assert "results/assays/mirna/targets/TRD_vs_responder/target_enrichment.tsv" in planned

    path = workflow_copy / "config" / "config.yaml"
    text = path.read_text()
    commented = text[text.index("#   counts: ") : text.index("\nassays:")]
    config = yaml.safe_load(text)
    config.pop("assays")
    config.update(yaml.safe_load("\n".join(line.removeprefix("# ") for line in commented.splitlines())))
    other = workflow_copy / "config" / "other_form.yaml"
    other.write_text(yaml.safe_dump(config, sort_keys=False))
    other_form = run_snakemake(
        workflow_copy, "--dry-run", "--configfile", str(other.relative_to(workflow_copy))
    )
    assert job_stats(other_form.stdout) == job_stats(result.stdout)


# --- report ------------------------------------------------------------------------------------


def test_an_extra_assays_key_finding_counts_its_calls_and_the_calibrations_null():
    table = pd.DataFrame(
        {
            "log2FoldChange": [1.2, -0.8, 0.9, 0.1],
            "padj": [0.001, 0.01, 0.2, np.nan],
            "pvalue": [1e-5, 1e-4, 0.01, 0.5],
        }
    )
    summary = pd.DataFrame(
        {
            "statistic": ["permutations", "pvalue_observed_degs", "null_degs_median"],
            "value": ["30", "0.0322581", "0"],
        }
    )
    assert assay_finding("miRNAs", table, summary, 0.05, "TRD") == (
        "2 of 4 miRNAs tested at padj < 0.05: 1 higher and 1 lower in TRD; shuffled labels called as many "
        "or more in 0 of 30 permutations (median 0)."
    )
    # p = (b + 1) / (K + 1) = 3 / 31: b = 2 permutations called as many
    summary.loc[1, "value"] = "0.0967742"
    assert assay_finding("miRNAs", table, summary, 0.05, "TRD").endswith(
        "shuffled labels called as many or more in 2 of 30 permutations (median 0)."
    )


# --- the toy run's mirna layer (the session's toy run; no run of its own) -----------------------


@pytest.mark.e2e
def test_the_toy_mirna_layer_recovers_its_planted_calls_and_calls_nothing_under_shuffled_labels(toy_run):
    truth = pd.read_csv(ROOT / "resources/toy/truth_mirna.tsv", sep="\t", index_col="mirna_id")
    results = toy_run / "results" / "assays" / "mirna"
    table = pd.read_csv(results / "de/TRD_vs_responder/deseq2_results.tsv", sep="\t", index_col="gene_id")
    called = table.index[table["padj"] < 0.05]
    planted = truth.index[truth["is_de"]]
    assert len(called.intersection(planted)) >= 0.85 * len(planted)
    assert len(called.difference(planted)) <= 0.15 * len(called)
    both = called.intersection(planted)
    assert (np.sign(table.loc[both, "log2FoldChange"]) == np.sign(truth.loc[both, "log2FoldChange"])).all()
    summary = pd.read_csv(
        results / "calibration/TRD_vs_responder/summary.tsv", sep="\t", index_col="statistic"
    )
    assert float(summary.loc["null_degs_median", "value"]) <= 1
    # the two samples the toy's small-RNA table lacks are left out of this layer alone
    layer, sheet = (
        ad.read_h5ad(results / "ingest/cohort.h5ad"),
        pd.read_csv(ROOT / "config/samples.tsv", sep="\t"),
    )
    assert sorted(set(sheet["sample_id"]) - set(layer.obs_names)) == ["PRM042", "PRM043"]
    assert ad.read_h5ad(toy_run / "results/ingest/cohort.h5ad").n_obs == len(sheet)
    assert "sex_score" not in pd.read_csv(results / "qc/qc_metrics.tsv", sep="\t").columns
    report = (toy_run / "results/report/report.html").read_text()
    assert f'data-key="assay-mirna">{len(called)} of {len(table)} miRNAs tested at padj &lt; 0.05' in report
