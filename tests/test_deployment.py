"""The workflow as the Snakemake workflow catalog deploys it: a folder of one's own holding config/
and a Snakefile that uses this checkout's workflow/Snakefile as a module (snakedeploy's template),
run from there while the checkout stays as it was; and the same module read from GitHub, offline."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from jinja2 import Environment, PackageLoader

from conftest import ROOT, copy_workflow
from test_snapshot import machine, read_snapshot

pytestmark = pytest.mark.e2e

CONTRAST = "TRD_vs_responder"
DE_TABLE = f"de/{CONTRAST}/deseq2_results.tsv"
# up to the DE table, and the provenance: ingest, qc, filter, deseq2, software_versions
TARGETS = (f"results/{DE_TABLE}", "results/software_versions.yml")


def deploy(dest: Path, snakefile: str) -> Path:
    """What `snakedeploy deploy-workflow` writes into dest: config/ and profiles/ copied from the
    repository, and workflow/Snakefile from snakedeploy's own template, whose module reads the
    given snakefile (a path here, where a deployment from GitHub has github(...))."""
    shutil.copytree(ROOT / "config", dest / "config")
    shutil.copytree(ROOT / "profiles", dest / "profiles")
    template = Environment(loader=PackageLoader("snakedeploy")).get_template("use_module.smk.jinja")
    (dest / "workflow").mkdir()
    (dest / "workflow" / "Snakefile").write_text(
        template.render(name="trd_deseq2", snakefile=snakefile, repo=str(ROOT), config="config/config.yaml")
    )
    return dest


def own_sample_sheet(dest: Path) -> pd.DataFrame:
    """The deployment's sample sheet as a CSV under another name, the shipped one removed: the run
    can only have read the deployment's own config and sheet."""
    sheet = pd.read_csv(dest / "config" / "samples.tsv", sep="\t")
    sheet.to_csv(dest / "config" / "cohort.csv", index=False)
    (dest / "config" / "samples.tsv").unlink()
    config = dest / "config" / "config.yaml"
    text = config.read_text()
    assert "\nsamples: config/samples.tsv\n" in text
    config.write_text(text.replace("\nsamples: config/samples.tsv\n", "\nsamples: config/cohort.csv\n"))
    return sheet


def checkout_files() -> set[str]:
    """git's account of the checkout: every changed, untracked or ignored file (results/, logs/,
    .snakemake/ included), except Python's bytecode caches."""
    status = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--ignored=traditional", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line for line in status.splitlines() if "__pycache__/" not in line}


def test_a_deployment_runs_the_toy_from_its_own_folder(tmp_path):
    before = checkout_files()
    dest = deploy(tmp_path / "my-cohort", f'"{ROOT / "workflow" / "Snakefile"}"')
    sheet = own_sample_sheet(dest)
    # no --snakefile: Snakemake finds workflow/Snakefile in the working directory
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *TARGETS],
        cwd=dest,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    assert checkout_files() == before

    used = pd.read_csv(dest / "results" / "de" / CONTRAST / "samples_used.tsv", sep="\t")
    assert sorted(used["sample_id"]) == sorted(sheet["sample_id"])
    recorded_on, snapshot = read_snapshot()
    if recorded_on == machine():
        table = (dest / "results" / DE_TABLE).read_bytes()
        assert hashlib.sha256(table).hexdigest() == snapshot[DE_TABLE]

    versions = yaml.safe_load((dest / "results" / "software_versions.yml").read_text())
    assert versions["workflow"]["version"] == (ROOT / "VERSION").read_text().strip()
    config_md5 = hashlib.md5((dest / "config" / "config.yaml").read_bytes()).hexdigest()
    assert versions["config_files"] == [{"file": "config/config.yaml", "md5": config_md5}]


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_deployment_from_github_runs_offline_from_snakemakes_clone(tmp_path):
    """snakedeploy's module from GitHub, github(...) at a release tag: Snakemake reads the Snakefile
    and the rules from its own clone of the repository (here made beforehand from one commit of
    this checkout's files, so nothing is fetched), and the workflow unpacks that commit's tree for
    the engine and the resources."""
    source = copy_workflow(tmp_path / "source")
    git(source, "init", "-q")
    git(source, "add", ".")
    git(source, "commit", "-q", "-m", "release")
    commit = git(source, "rev-parse", "HEAD")
    git(source, "tag", "v9.9.9")
    cache = tmp_path / "cache"
    # Snakemake's clones: <user cache>/snakemake/source-cache/snakemake-git-cache/<host>/<owner>/<name>
    clone = cache / "snakemake" / "snakemake" / "source-cache" / "snakemake-git-cache" / "github.com"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(clone / "example" / "trd-deseq2"))
    dest = deploy(
        tmp_path / "my-cohort", 'github("example/trd-deseq2", path="workflow/Snakefile", tag="v9.9.9")'
    )
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "results/software_versions.yml"],
        cwd=dest,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-6000:]
    unpacked = dest / ".snakemake" / "workflow_sources" / commit
    assert (unpacked / "workflow" / "lib" / "trdpipe" / "__init__.py").read_bytes() == (
        ROOT / "workflow" / "lib" / "trdpipe" / "__init__.py"
    ).read_bytes()
    versions = yaml.safe_load((dest / "results" / "software_versions.yml").read_text())
    assert versions["workflow"] == {
        "name": "trd-deseq2",
        "version": (ROOT / "VERSION").read_text().strip(),
        "source": "github.com/example/trd-deseq2",
        "ref": "v9.9.9",
        "commit": commit[:12],
    }
    config_md5 = hashlib.md5((dest / "config" / "config.yaml").read_bytes()).hexdigest()
    assert versions["config_files"] == [{"file": "config/config.yaml", "md5": config_md5}]


def test_in_a_deployment_another_config_runs_alone_with_replace_workflow_config(tmp_path):
    """The deployment's Snakefile loads config/config.yaml itself, so Snakemake merges a
    --configfile into it (both contrasts); --replace-workflow-config runs the other file alone."""
    dest = deploy(tmp_path / "my-cohort", f'"{ROOT / "workflow" / "Snakefile"}"')
    config = yaml.safe_load((dest / "config" / "config.yaml").read_text())
    config.update(
        design="~ site + age + sex",
        contrasts={"female_vs_male": {"variable": "sex", "test": "female", "reference": "male"}},
    )
    (dest / "config" / "mine.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def planned_tables(*args: str) -> set[str]:
        run = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", "--dry-run", *args],
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        return set(re.findall(r"results/de/[^/\s,]+/deseq2_results\.tsv", run.stdout))

    assert planned_tables("--configfile", "config/mine.yaml") == {
        f"results/de/{CONTRAST}/deseq2_results.tsv",
        "results/de/female_vs_male/deseq2_results.tsv",
    }
    assert planned_tables("--replace-workflow-config", "--configfile", "config/mine.yaml") == {
        "results/de/female_vs_male/deseq2_results.tsv"
    }
