"""results/software_versions.yml: the workflow's version and that of every package it imports.

The nf-core layout, {workflow: {name, version[, source, ref][, commit]}, packages: {python, <distribution>: version}}:
the version is the VERSION file at the repository's top (the one a release tags), so it reads the
same in a clone, an unpacked archive or a container; the git commit is added when the workflow is a
git checkout, marked "-dirty" when the workflow's own code differs from it (edits of config/ do not
count: the run's config files are listed with their checksums). A module read from GitHub or GitLab
(snakedeploy's deployment) is no checkout: its repository, the ref its deployment names and that
ref's commit are recorded instead. The packages are found by reading
the import lines of the rule scripts and rule files, so a package a new script imports is listed
without anyone keeping a list.
"""

import ast
import importlib.metadata
import logging
import platform
import re
import subprocess
import sys
from pathlib import Path

from trdpipe.common import file_md5

log = logging.getLogger("trd")

WORKFLOW_NAME = "trd-deseq2"
# A rule file is not Python that ast parses: its import lines are read as text.
SMK_IMPORT = re.compile(r"^\s*(?:from\s+(\w+)\S*\s+import\b|import\s+(\w+))", re.M)
# The workflow's own code, relative to the repository's top: what a release tags and a run executes.
WORKFLOW_CODE = ("workflow", "VERSION")


def read_version(path) -> str:
    """The workflow's version: the first line of the VERSION file."""
    return Path(path).read_text(encoding="utf-8").strip().splitlines()[0].strip()


def git_commit(directory) -> str | None:
    """The commit of the checkout whose top is `directory`, marked "-dirty" when the workflow's own
    code has uncommitted changes, or None when it is not a git checkout or git is missing."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=20
        )

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        if commit.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *WORKFLOW_CODE).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit.stdout.strip() + ("-dirty" if dirty else "")


def imported_modules(path) -> set[str]:
    """Top-level module names a Python file (any depth, lazy imports too) or a rule file imports."""
    text = Path(path).read_text(encoding="utf-8")
    if Path(path).suffix != ".py":
        return {source or name for source, name in SMK_IMPORT.findall(text)}
    modules = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def third_party_distributions(modules: set[str], local: set[str]) -> list[str]:
    """The installed distributions providing the modules, leaving out the standard library and the
    workflow's own modules (a module no installed distribution provides is kept by its name, so
    that the yml shows it as not installed)."""
    providers = importlib.metadata.packages_distributions()
    names = set()
    for module in modules - set(sys.stdlib_module_names) - local:
        names.update(providers.get(module, [module]))
    return sorted(names, key=str.lower)


def package_versions(distributions: list[str]) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in distributions:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def config_file_checksums(paths) -> list[dict]:
    """[{file, md5}] of the run's config files, each named relative to the working directory when it
    lies there (Snakemake gives those of --configfile as absolute paths)."""
    rows = []
    for path in map(Path, paths):
        inside = path.is_absolute() and path.is_relative_to(Path.cwd())
        rows.append({"file": str(path.relative_to(Path.cwd()) if inside else path), "md5": file_md5(path)})
    return rows


def versions_document(version_file, sources, local_modules: set[str], config_files=(), source=None) -> dict:
    """{workflow: {name, version[, source, ref], commit}, config_files: [{file, md5}], packages: {...}};
    source: {source, ref, commit} of a module read from GitHub or GitLab, whose unpacked files are
    no checkout (`hosted_source` of workflow/rules/paths.smk); else the commit is git's, if any.
    Snakemake itself is always listed, since the rule files import it only in part."""
    workflow = {"name": WORKFLOW_NAME, "version": read_version(version_file)}
    if source:
        # not git's: the unpacked files may lie inside the user's own checkout
        workflow.update(source)
    elif commit := git_commit(Path(version_file).parent):
        workflow["commit"] = commit
    modules = set().union(*map(imported_modules, sources)) | {"snakemake"}
    return {
        "workflow": workflow,
        "config_files": config_file_checksums(config_files),
        "packages": package_versions(third_party_distributions(modules, local_modules)),
    }
