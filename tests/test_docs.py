"""The documents a newcomer reads: every relative link resolves inside the repository."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [
    "README.md",
    "CONTRIBUTING.md",
    "CHANGELOG.md",
    "config/README.md",
    "docs/design.md",
    "bench/README.md",
]
MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def relative_links(text: str) -> list[str]:
    return [
        target
        for target in MARKDOWN_LINK.findall(text)
        if "://" not in target and not target.startswith("mailto:")
    ]


def test_relative_links_are_found():
    text = "see [a](docs/a.md), [b](https://x.org/b), [c](../c.md#part) and [d](#anchor)"
    assert relative_links(text) == ["docs/a.md", "../c.md"]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_relative_link_points_inside_the_repository(document):
    path = ROOT / document
    for target in relative_links(path.read_text(encoding="utf-8")):
        resolved = (path.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{document}: {target} leaves the repository"
        assert resolved.exists(), f"{document}: {target} does not exist"


# ---------------------------------------------------------------- names that must exist
# What a newcomer reads to find their way: the docs, and the comments and docstrings of the code
# (not the tests, whose paths are often of files they write).
NAMED_IN = [
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "README.md",
    ROOT / "config" / "README.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "workflow").rglob("*.py")),
    *sorted((ROOT / "workflow" / "rules").glob("*.smk")),
    ROOT / "workflow" / "Snakefile",
    *sorted((ROOT / "bench").glob("*.py")),
]
LIB = ROOT / "workflow" / "lib"
DOTTED = re.compile(r"(?<![\w./-])(?:trdpipe|batched_deseq2)(?:\.\w+)+")
# a path inside the repository, from one of its top folders; none with a placeholder ({contrast},
# <rule>, *) and none that a run writes (results/, logs/, bench/out/)
REPO_PATH = re.compile(
    r"(?<![\w./-])(?:workflow|tests|bench|docs|resources|profiles|config|\.ci)/[\w./-]*[\w/]"
)
PLACEHOLDER = re.compile(r"[{<*]|\.\.\.|^bench/out/")
IMPORT_LINE = re.compile(r"^\s*(?:from\s+\S+\s+)?import\s.*$", re.M)


def module_file(parts: list[str]) -> tuple[Path | None, list[str]]:
    """The file of the longest module prefix of a dotted name, and the names after it."""
    for n in range(len(parts), 0, -1):
        base = LIB.joinpath(*parts[:n])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[n:]
    return None, parts


def defines(source: str, name: str) -> bool:
    """A module's source defines or imports `name` (a function, class, constant or submodule)."""
    return (
        re.search(rf"^\s*(?:def|class)\s+{name}\b|^\s*{name}\s*[:=]|\bimport\b.*\b{name}\b", source, re.M)
        is not None
    )


def dotted_name_exists(dotted: str) -> bool:
    path, rest = module_file(dotted.split("."))
    return path is not None and all(defines(path.read_text(), name) for name in rest)


def named_in(path: Path) -> str:
    """The text whose names are checked: code without its import lines (Python checks those)."""
    text = path.read_text(encoding="utf-8")
    return text if path.suffix == ".md" else IMPORT_LINE.sub("", text)


def missing_names() -> dict[str, list[str]]:
    found = {}
    for path in NAMED_IN:
        text = named_in(path)
        absent = sorted(
            {name for name in DOTTED.findall(text) if not dotted_name_exists(name)}
            | {
                name
                for name in REPO_PATH.findall(text)
                if not PLACEHOLDER.search(name) and not (ROOT / name).exists()
            }
        )
        if absent:
            found[str(path.relative_to(ROOT))] = absent
    return found


def test_the_name_checks_tell_real_names_from_stale_ones():
    assert dotted_name_exists("trdpipe.model.sensitivity.key_finding_model")
    assert dotted_name_exists("batched_deseq2.dds.WarmStarts")
    assert not dotted_name_exists("trdpipe.model.sensitivity_fits")
    assert not dotted_name_exists("trdpipe.model.design.no_such_function")
    assert REPO_PATH.findall("see `workflow/rules/common.smk`, results/de/x.tsv and docs/design.md.") == [
        "workflow/rules/common.smk",
        "docs/design.md",
    ]


def test_every_module_name_and_repository_path_named_in_docs_and_comments_exists():
    missing = missing_names()
    listing = "\n".join(f"  {where}: {', '.join(names)}" for where, names in missing.items())
    assert not missing, f"names that do not exist (file: names):\n{listing}"
