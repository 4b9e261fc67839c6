"""The config's `de:` section: its engine, and the `deseq2:` name it replaces, still read for one
release with a line in the log."""

import importlib.util

import pytest
import yaml

from conftest import ROOT, copy_workflow, run_snakemake
from test_outputs import jobs_after_config_change
from trdpipe.checks.deprecations import rename_deprecated_sections
from trdpipe.model.engines import ENGINES

DEPRECATION = (
    "config: the section 'deseq2:' is deprecated and will be removed in the next release; "
    "its keys were read as 'de:' (rename it in your config)"
)


def test_a_deseq2_section_is_read_as_de_and_said_so():
    config = {"deseq2": {"alpha": 0.1, "fit_type": "mean"}, "seed": 1}
    assert rename_deprecated_sections(config) == [DEPRECATION]
    assert config == {"de": {"alpha": 0.1, "fit_type": "mean"}, "seed": 1}


def test_keys_given_under_de_win_over_the_deprecated_section():
    config = {"deseq2": {"alpha": 0.1, "fit_type": "mean"}, "de": {"alpha": 0.01}}
    rename_deprecated_sections(config)
    assert config == {"de": {"alpha": 0.01, "fit_type": "mean"}}
    assert rename_deprecated_sections(config) == []


def test_the_schema_offers_the_registered_engines():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]
    assert schema["de"]["properties"]["engine"]["default"] == "pydeseq2"
    assert schema["de"]["properties"]["engine"]["enum"] == list(ENGINES)
    model = schema["sensitivity"]["additionalProperties"]["properties"]["engine"]
    assert model["enum"] == list(ENGINES) and "default" not in model


def test_an_old_config_with_deseq2_runs_and_the_log_says_it_is_deprecated(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config = yaml.safe_load((workdir / "config/config.yaml").read_text())
    section = config.pop("de")
    section.pop("engine")
    config["deseq2"] = {**section, "alpha": 0.1}
    (workdir / "old.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(workdir, "--dry-run", "--configfile", "old.yaml", "--printshellcmds")
    assert DEPRECATION in result.stdout + result.stderr
    assert "deseq2" in result.stdout  # the DAG has its DE jobs


@pytest.mark.skipif(
    importlib.util.find_spec("pylimma") is None,
    reason="pylimma is not installed (optional, GPL-3.0: pip install -r requirements-extras.txt)",
)
def test_a_new_engine_refits_every_model_of_the_contrast_not_qc_vst_or_prediction(toy_run, tmp_path):
    jobs = jobs_after_config_change(toy_run, tmp_path, "  engine: pydeseq2\n", "  engine: limma_voom\n")
    assert {"deseq2", "calibration_block", "pathway_null", "sensitivity", "report"} <= jobs
    # camera reruns only because it reads the DE table's tested genes
    assert not jobs & {"ingest", "qc", "filter", "vst", "predict", "cell_composition"}
