"""The memory each rule asks for (`mem_mb(...)` in workflow/rules/common.smk) covers the peaks measured
at 300, 3,000 and 6,000 samples (bench/measured_peaks.tsv, with the command of each), with a margin."""

import pandas as pd
import pytest
from snakemake.api import SnakemakeApi
from snakemake.settings.types import OutputSettings, ResourceSettings

from conftest import ROOT, copy_workflow

# a request must hold the job runner (JOB_RUNNER_MB, a cluster job's Snakemake beside the script) plus
# this much more than the script's measured peak
MARGIN = 1.2
MEASURED = pd.read_csv(ROOT / "bench" / "measured_peaks.tsv", sep="\t")


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """The parsed workflow (the default config) whose cohort size the test sets."""
    workdir = copy_workflow(tmp_path_factory.mktemp("formulas"))
    with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=2),
            snakefile=workdir / "workflow" / "Snakefile",
            workdir=workdir,
        )
        yield workflow_api._workflow


def requested_mb(workflow, rule: str, samples: int, genes: int) -> int:
    """The rule's mem_mb at the first attempt for a cohort of samples x genes."""
    workflow.globals["cohort_size"] = lambda: (samples, genes)
    return workflow.get_rule(rule).resources["mem_mb"].evaluate({}, attempt=1).value


def test_the_table_has_the_three_sizes():
    assert {300, 3000, 6000} <= set(MEASURED["samples"])
    assert MEASURED["source"].str.len().gt(0).all()


def test_every_request_covers_its_measured_peak_with_the_margin(workflow):
    job_runner = workflow.globals["JOB_RUNNER_MB"]
    short = [
        (row.rule, row.samples, row.genes, row.max_rss_mb, asked)
        for row in MEASURED.itertuples()
        if (asked := requested_mb(workflow, row.rule, row.samples, row.genes))
        < job_runner + MARGIN * row.max_rss_mb
    ]
    assert short == []


def test_a_request_grows_with_the_cohort(workflow):
    """The check above is not met by a constant: deseq2 asks for more at 6,000 samples than at 300."""
    assert requested_mb(workflow, "deseq2", 6000, 20000) > 2 * requested_mb(workflow, "deseq2", 300, 20000)
