"""environment.yml (conda) and requirements.txt (pip) must describe the same environment."""

from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pip_requirements() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith("python=")]
    reqs = [
        Requirement(d.replace("=", "==") if "=" in d and not any(op in d for op in "<>!") else d)
        for d in deps
    ]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_same_packages_and_version_ranges():
    assert conda_requirements() == pip_requirements()


def test_conda_channels_are_conda_forge_and_bioconda():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][:2] == ["conda-forge", "bioconda"]
