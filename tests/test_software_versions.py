"""results/software_versions.yml: the workflow's version and the packages its code imports."""

import hashlib
import importlib.metadata
import platform
import subprocess

import yaml

from conftest import ROOT
from trdpipe.provenance import versions as sv


def test_imported_modules_of_a_script_and_a_rule_file(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(
        '"""Docstring.\nimport notamodule\n"""\nimport os\nimport numpy as np, scipy.stats\n'
        "from sklearn.linear_model import LogisticRegression\nfrom pipeline_common import X\n"
        "from . import sibling\n\ndef f():\n    import matplotlib.pyplot as plt\n"
    )
    rules = tmp_path / "common.smk"
    rules.write_text("import os\nfrom snakemake.utils import validate\n\nrule a:\n    input: 'x'\n")
    assert sv.imported_modules(script) == {"os", "numpy", "scipy", "sklearn", "pipeline_common", "matplotlib"}
    assert sv.imported_modules(rules) == {"os", "snakemake"}


def test_third_party_distributions_leave_out_the_standard_library_and_local_modules():
    names = sv.third_party_distributions(
        {"os", "yaml", "sklearn", "pipeline_common", "no_such_module_xyz"}, local={"pipeline_common"}
    )
    assert names == ["no_such_module_xyz", "PyYAML", "scikit-learn"]
    versions = sv.package_versions(names)
    assert versions == {
        "python": platform.python_version(),
        "no_such_module_xyz": "not installed",
        "PyYAML": importlib.metadata.version("PyYAML"),
        "scikit-learn": importlib.metadata.version("scikit-learn"),
    }


def test_version_outside_git_is_the_version_file_without_a_commit(tmp_path):
    (tmp_path / "VERSION").write_text("1.2.3\n")
    (tmp_path / "a.py").write_text("import pandas\n")
    document = sv.versions_document(tmp_path / "VERSION", [tmp_path / "a.py"], set())
    assert document["workflow"] == {"name": "trd-deseq2", "version": "1.2.3"}
    assert document["packages"] == {
        "python": platform.python_version(),
        "pandas": importlib.metadata.version("pandas"),
        "snakemake": importlib.metadata.version("snakemake"),
    }


def test_version_of_the_repository_with_its_commit():
    document = sv.versions_document(ROOT / "VERSION", [], set())
    assert document["workflow"]["version"] == (ROOT / "VERSION").read_text().strip() == "0.1.0.dev0"
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True
    )
    if head.returncode == 0:  # a git checkout (an unpacked archive has no commit to show)
        assert document["workflow"]["commit"].removesuffix("-dirty") == head.stdout.strip()


def test_toy_run_lists_every_package_the_pipeline_imports(toy_run):
    document = yaml.safe_load((toy_run / "results/software_versions.yml").read_text())
    # the toy run's copy of the workflow is not a git checkout: the version, no commit
    assert document["workflow"] == {"name": "trd-deseq2", "version": (ROOT / "VERSION").read_text().strip()}
    config_md5 = hashlib.md5((toy_run / "config/config.yaml").read_bytes()).hexdigest()
    assert document["config_files"] == [{"file": "config/config.yaml", "md5": config_md5}]
    packages = document["packages"]
    for name in (
        "pydeseq2",
        "anndata",
        "pandas",
        "numpy",
        "scipy",
        "gseapy",
        "scikit-learn",
        "matplotlib",
        "scanpy",
        "PyYAML",
        "snakemake",
    ):
        assert packages[name] == importlib.metadata.version(name), name
    assert "not installed" not in packages.values()


def git_repository(path) -> str:
    """A git repository at path with a workflow file, VERSION, a config and a README committed;
    returns the short commit."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    (path / "workflow").mkdir(parents=True)
    (path / "config").mkdir()
    (path / "workflow" / "step.py").write_text("import os\n")
    (path / "VERSION").write_text("1.0.0\n")
    (path / "config" / "config.yaml").write_text("seed: 1\n")
    (path / "README.md").write_text("# Title\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    return git("rev-parse", "--short=12", "HEAD")


def test_a_module_from_github_records_its_source_not_the_checkout_it_was_unpacked_into(tmp_path):
    """A GitHub module's files are unpacked under the user's folder, which may be a checkout of its
    own: its commit is not the workflow's."""
    git_repository(tmp_path)
    source = {"source": "github.com/example/trd-deseq2", "ref": "v1.0.0", "commit": "0123456789ab"}
    document = sv.versions_document(tmp_path / "VERSION", [], set(), source=source)
    assert document["workflow"] == {"name": "trd-deseq2", "version": "1.0.0", **source}


def test_only_a_change_of_the_workflows_code_marks_the_commit_dirty(tmp_path):
    commit = git_repository(tmp_path)
    (tmp_path / "config" / "config.yaml").write_text("seed: 2\n")
    (tmp_path / "README.md").write_text("# Another title\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.tsv").write_text("a\n")
    assert sv.git_commit(tmp_path) == commit
    (tmp_path / "VERSION").write_text("1.0.1\n")
    assert sv.git_commit(tmp_path) == commit + "-dirty"
    (tmp_path / "VERSION").write_text("1.0.0\n")
    (tmp_path / "workflow" / "step.py").write_text("import sys\n")
    assert sv.git_commit(tmp_path) == commit + "-dirty"


def test_config_files_are_named_from_the_working_directory_with_their_md5(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("seed: 1\n")
    (tmp_path / "config" / "mine.yaml").write_text("seed: 2\n")
    elsewhere = tmp_path.parent / f"{tmp_path.name}_other.yaml"
    elsewhere.write_text("seed: 3\n")
    rows = sv.config_file_checksums(["config/config.yaml", tmp_path / "config" / "mine.yaml", elsewhere])
    assert rows == [
        {"file": "config/config.yaml", "md5": hashlib.md5(b"seed: 1\n").hexdigest()},
        {"file": "config/mine.yaml", "md5": hashlib.md5(b"seed: 2\n").hexdigest()},
        {"file": str(elsewhere), "md5": hashlib.md5(b"seed: 3\n").hexdigest()},
    ]
    document = sv.versions_document(ROOT / "VERSION", [], set(), ["config/config.yaml"])
    assert document["config_files"] == rows[:1]
