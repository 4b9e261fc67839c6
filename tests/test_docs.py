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
