"""Config files: which are read (a --configfile replaces the default one), and the one-line messages
for a key given twice and for tab indentation; config paths to the shipped resources/."""

import pytest
import yaml

from conftest import ROOT, run_snakemake
from trdpipe.checks.config import check_config_file, resolve_shipped_paths, shipped_path
from trdpipe.common import InputError

DEFAULT_CONFIG = ROOT / "config" / "config.yaml"
FEMALE_VS_MALE = {"female_vs_male": {"variable": "sex", "test": "female", "reference": "male"}}


def test_the_shipped_config_has_each_key_once():
    check_config_file(DEFAULT_CONFIG)


def test_a_top_level_key_given_twice_names_the_file_and_both_lines(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "design: '~ group'\ncontrasts:\n  a: {variable: group, test: TRD, reference: responder}\n"
        "seed: 1\ncontrasts:\n  b: {variable: sex, test: female, reference: male}\n"
    )
    with pytest.raises(InputError) as error:
        check_config_file(path)
    assert str(error.value) == (
        f"{path}, line 5: the key 'contrasts' is given twice (first on line 2); YAML would keep the "
        "second alone. Give each key once."
    )


def test_a_nested_key_given_twice_is_found_too(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("qc:\n  n_pcs: 10\n  action: flag\n  n_pcs: 5\n")
    with pytest.raises(InputError) as error:
        check_config_file(path)
    assert str(error.value) == (
        f"{path}, line 4: the key 'n_pcs' is given twice (first on line 2); YAML would keep the "
        "second alone. Give each key once."
    )


def test_a_tab_in_the_indentation_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("design: '~ group'\nqc:\n  n_pcs: 10\n\taction: flag\n")
    with pytest.raises(InputError) as error:
        check_config_file(path)
    assert str(error.value) == f"{path}, line 4: a tab indents this line; YAML indents with spaces only."


def test_other_invalid_yaml_names_the_line_and_what_yaml_found(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("design: '~ group'\ncontrasts: [a, b\nseed: 1\n")
    with pytest.raises(InputError) as error:
        check_config_file(path)
    assert str(error.value) == (f"{path}, line 3: this is not valid YAML (expected ',' or ']', but got ':').")


def test_a_missing_resource_path_is_the_workflows_own(tmp_path, monkeypatch):
    """Run from a folder without resources/ (a deployment): the shipped files are the workflow's;
    a path that is in the working directory, or not shipped, or not under resources/ is kept."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resources" / "genesets").mkdir(parents=True)
    (tmp_path / "resources" / "genesets" / "mine.gmt").write_text("SET\tna\tA\tB\n")
    shipped = "resources/annotation/genes.tsv.gz"
    assert shipped_path(shipped, ROOT) == str(ROOT / shipped)
    assert shipped_path("resources/genesets/mine.gmt", ROOT) == "resources/genesets/mine.gmt"
    assert shipped_path("resources/genesets/absent.gmt", ROOT) == "resources/genesets/absent.gmt"
    assert shipped_path("config/samples.tsv", ROOT) == "config/samples.tsv"
    assert shipped_path("", ROOT) == ""

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["enrichment"]["collections"]["mine"] = "resources/genesets/mine.gmt"
    resolve_shipped_paths(config, ROOT)
    assert (config["samples"], config["counts"], config["tx2gene"], config["annotation"]) == (
        "config/samples.tsv",
        str(ROOT / "resources/toy/counts.tsv.gz"),
        "",
        str(ROOT / shipped),
    )
    assert config["enrichment"]["collections"] == {
        "GO_BP": str(ROOT / "resources/genesets/go_bp.gmt.gz"),
        "curated_TRD": str(ROOT / "resources/genesets/curated_trd.gmt"),
        "mine": "resources/genesets/mine.gmt",
    }
    assert config["cells"]["resource"] == str(ROOT / "resources/cells/blood_cell_markers.gmt")


def planned_contrasts(workdir, *args) -> set[str]:
    """The contrasts whose DE table a dry run of the whole workflow would write."""
    result = run_snakemake(workdir, "--dry-run", *args)
    return {
        line.split("results/de/")[1].split("/")[0]
        for line in result.stdout.splitlines()
        if line.strip().startswith("output:") and "results/de/" in line
    }


@pytest.mark.e2e
def test_a_configfile_replaces_the_default_config(workflow_copy):
    """Snakemake merges a --configfile into the workflow's configfile, which added the default
    TRD contrast to the user's; the default config is now read only when none is given."""
    config = yaml.safe_load((workflow_copy / "config" / "config.yaml").read_text())
    config.update(design="~ site + age + sex", contrasts=FEMALE_VS_MALE)
    (workflow_copy / "config" / "mine.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned_contrasts(workflow_copy) == {"TRD_vs_responder"}
    assert planned_contrasts(workflow_copy, "--configfile", "config/mine.yaml") == {"female_vs_male"}


@pytest.mark.e2e
def test_a_tab_in_the_default_config_stops_the_run_with_the_line(workflow_copy):
    """Snakemake's own message for this ("Config file is not valid JSON or YAML") names neither
    the file nor the line: the default config is checked before Snakemake reads it."""
    path = workflow_copy / "config" / "config.yaml"
    lines = path.read_text().splitlines(keepends=True)
    number = lines.index("  n_pcs: 10\n")
    lines[number] = "\tn_pcs: 10\n"
    path.write_text("".join(lines))
    result = run_snakemake(workflow_copy, "--dry-run", check=False)
    assert result.returncode != 0
    assert (
        f"config/config.yaml, line {number + 1}: a tab indents this line; YAML indents with spaces only."
        in result.stdout + result.stderr
    )


@pytest.mark.e2e
def test_a_key_given_twice_in_a_configfile_stops_the_run(workflow_copy):
    path = workflow_copy / "config" / "mine.yaml"
    path.write_text(
        DEFAULT_CONFIG.read_text() + "contrasts:\n  b: {variable: sex, test: female, reference: male}\n"
    )
    result = run_snakemake(workflow_copy, "--dry-run", "--configfile", "config/mine.yaml", check=False)
    assert result.returncode != 0
    first = DEFAULT_CONFIG.read_text().splitlines().index("contrasts:") + 1
    last = len(DEFAULT_CONFIG.read_text().splitlines()) + 1
    assert (
        f"{path}, line {last}: the key 'contrasts' is given twice (first on line {first}); YAML would "
        "keep the second alone. Give each key once."
    ) in result.stdout + result.stderr
