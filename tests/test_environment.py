"""workflow/envs/trdpipe.yml (conda) and requirements.txt (pip) must describe the same environment,
every package the workflow's code imports is in them (or an optional extra, said so), and every
rule names its conda environment in workflow/envs/."""

import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pip_requirements() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    reqs = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "trdpipe.yml").read_text())
    deps = [d for d in env["dependencies"] if isinstance(d, str) and not d.startswith("python=")]
    reqs = [
        Requirement(d.replace("=", "==") if "=" in d and not any(op in d for op in "<>!") else d)
        for d in deps
    ]
    return {r.name.lower(): str(r.specifier) for r in reqs}


def test_same_packages_and_version_ranges():
    assert conda_requirements() == pip_requirements()


def test_conda_channels_are_conda_forge_and_bioconda():
    env = yaml.safe_load((ROOT / "workflow" / "envs" / "trdpipe.yml").read_text())
    assert env["channels"][:2] == ["conda-forge", "bioconda"]


# ---------------------------------------------------------------- what the code imports
WORKFLOW = ROOT / "workflow"
LOCAL = {"trdpipe", "batched_deseq2"}
# GPL-3.0 extras, so not required (README): multiqc, imported only by the multiqc rule, which runs
# when it is installed; pylimma (the limma_voom engine) and pytximport (salmon and kallisto inputs),
# imported only when used (requirements-extras.txt)
OPTIONAL = {"multiqc", "pylimma", "pytximport"}
# required, though no code imports them
NOT_IMPORTED = {
    "snakemake-executor-plugin-slurm": "the executor of profiles/slurm",
    "pygments": "snakemake --report needs it",
}
IMPORT = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))", re.M)


def code_files() -> list[Path]:
    """The engine, the rule scripts, the rule files and the Snakefile."""
    return [
        *(WORKFLOW / "lib").rglob("*.py"),
        *(WORKFLOW / "scripts").glob("*.py"),
        *(WORKFLOW / "rules").glob("*.smk"),
        WORKFLOW / "Snakefile",
    ]


def imported_packages() -> set[str]:
    """Top-level names of the modules the workflow's code imports, beyond the standard library and
    its own packages (a rule file's Python and imports inside functions too)."""
    names = {
        (match.group(1) or match.group(2)).split(".")[0]
        for path in code_files()
        for match in IMPORT.finditer(path.read_text())
    }
    return names - set(sys.stdlib_module_names) - LOCAL


@functools.cache
def distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(name: str) -> str:
    """The installed distribution that provides an import name (sklearn -> scikit-learn)."""
    return distributions()[name][0].lower()


def test_every_imported_package_is_required():
    required = set(pip_requirements())
    missing = sorted(
        f"{name} (distribution {distribution(name)})"
        for name in imported_packages() - OPTIONAL
        if distribution(name) not in required
    )
    assert missing == [], "imported by workflow/ but not in requirements.txt"


def test_every_requirement_is_imported_or_says_why():
    imported = {distribution(name) for name in imported_packages() - OPTIONAL}
    assert sorted(set(pip_requirements()) - imported) == sorted(NOT_IMPORTED)


def test_the_optional_extras_are_imported_and_not_required():
    assert imported_packages() >= OPTIONAL
    assert OPTIONAL & set(pip_requirements()) == set()


def rule_blocks(text: str):
    """(name, own rule or `use rule`, its text) of each rule of a rule file."""
    starts = list(re.finditer(r"^(?:rule (\w+)|use rule \w+ as (\w+) with):", text, re.M))
    for match, following in zip(starts, [*starts[1:], None]):
        end = following.start() if following else len(text)
        yield match.group(1) or match.group(2), match.group(1) is not None, text[match.start() : end]


def test_every_rule_that_runs_code_names_a_conda_environment_of_workflow_envs():
    wrong = []
    for path in sorted((WORKFLOW / "rules").glob("*.smk")):
        for name, own, block in rule_blocks(path.read_text()):
            conda = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", block, re.M)
            env = (path.parent / conda.group(1)).resolve() if conda else None
            runs_code = re.search(r"^\s+(script|shell|run):", block, re.M)
            if (own and runs_code and env is None) or (
                env and not (env.parent == WORKFLOW / "envs" and env.exists())
            ):
                wrong.append(f"{path.name}: rule {name}: {conda.group(1) if conda else 'no conda:'}")
    assert wrong == []
