"""The shape of the code: the engine (workflow/lib/) at the bottom, one thin entry script per rule
(workflow/scripts/) above it, and no import running back up."""

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT

LIB = ROOT / "workflow" / "lib"
SCRIPTS = ROOT / "workflow" / "scripts"
# trdpipe's subpackages and top-level modules, bottom first: each imports only from those before
# it (and from itself); the order is the one trdpipe/__init__.py gives
LAYERS = [
    "common",
    "checks",
    "io",
    "model",
    "enrichment",
    "qc",
    "cells",
    "calibration",
    "genotypes",
    "predict",
    "report",
    "ingest",
    "provenance",
    "resources",
    "simulate_layers",
    "simulate",
]


def imports(path: Path) -> set[str]:
    """Dotted names of the modules a file imports (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def script_names() -> set[str]:
    return {p.stem for p in SCRIPTS.glob("*.py")}


def engine_files(package: str) -> list[Path]:
    return sorted((LIB / package).rglob("*.py"))


def layer(dotted: str) -> str:
    """'trdpipe.model.deseq2' -> 'model'."""
    return dotted.split(".")[1]


def test_every_engine_module_is_in_a_layer():
    found = {p.relative_to(LIB / "trdpipe").with_suffix("").parts[0] for p in engine_files("trdpipe")}
    assert found - {"__init__"} == set(LAYERS)


@pytest.mark.parametrize("package", ["trdpipe", "batched_deseq2"])
def test_the_engine_never_imports_a_rule_script(package):
    scripts = script_names()
    offending = {
        str(path.relative_to(LIB)): sorted(n for n in imports(path) if n.split(".")[0] in scripts)
        for path in engine_files(package)
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_batched_deseq2_needs_nothing_of_the_pipeline():
    offending = {
        str(path.relative_to(LIB)): sorted(n for n in imports(path) if n.split(".")[0] == "trdpipe")
        for path in engine_files("batched_deseq2")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_each_part_of_the_engine_imports_only_the_parts_beneath_it():
    upward = []
    for path in engine_files("trdpipe"):
        own = path.relative_to(LIB / "trdpipe").with_suffix("").parts[0]
        if own == "__init__":
            continue
        for name in imports(path):
            above = name.startswith("trdpipe.") and LAYERS.index(layer(name)) > LAYERS.index(own)
            if above:
                upward.append(f"{path.relative_to(LIB)} imports {name}")
    assert upward == []


def draws(path: Path) -> bool:
    """A concern's figures module, the report (which shows figures) or common (which saves them)."""
    part = path.relative_to(LIB / "trdpipe").with_suffix("").parts
    return part[-1] == "figures" or part[0] in ("report", "common")


def test_computation_imports_no_figures():
    # each concern's figures sit in a figures module beside its computation (scanpy's pl beside tl):
    # a figures module may import its computation, never the other way round, and nothing else
    # needs matplotlib
    offending = {
        str(path.relative_to(LIB)): sorted(
            n
            for n in imports(path)
            if n.split(".")[0] in ("matplotlib", "adjustText") or "figures" in n.split(".")
        )
        for path in engine_files("trdpipe")
        if not draws(path)
    }
    assert {k: v for k, v in offending.items() if v} == {}


@pytest.mark.parametrize("script", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.stem)
def test_a_rule_script_is_main_alone_calling_the_engine(script):
    tree = ast.parse(script.read_text())
    definitions = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert definitions == ["main"]
    assert not {n.split(".")[0] for n in imports(script)} & script_names()
    guard = tree.body[-1]
    assert isinstance(guard, ast.If) and ast.unparse(guard.test) == "'snakemake' in globals()"


def test_every_rule_script_belongs_to_a_rule():
    used = set()
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        used.update(re.findall(r'"\.\./scripts/(\w+)\.py"', rules.read_text()))
    assert used == script_names()


def test_no_module_chooses_the_matplotlib_backend():
    # the backend is set once, by MPLBACKEND (workflow/rules/common.smk for the jobs, conftest.py for
    # the tests): a module that chose it would do so on import, for whatever imported it
    files = [*engine_files("trdpipe"), *SCRIPTS.glob("*.py")]
    choosing = [str(p.relative_to(ROOT)) for p in files if "matplotlib.use(" in p.read_text()]
    assert choosing == []
    assert 'os.environ["MPLBACKEND"] = "Agg"' in (ROOT / "workflow" / "rules" / "common.smk").read_text()


# the DE engine: the fits themselves (PyDESeq2, the batched backend and the model's fitting modules)
ENGINE_MODULES = (
    "pydeseq2",
    "batched_deseq2",
    "trdpipe.model.design",
    "trdpipe.model.deseq2",
    "trdpipe.model.vst",
    "trdpipe.model.engines",
)


def imports_an_engine(name: str) -> bool:
    return any(name == engine or name.startswith(engine + ".") for engine in ENGINE_MODULES)


def test_the_report_sections_import_no_de_engine():
    """A section turns result tables into what the page shows; it fits nothing."""
    sections = engine_files("trdpipe/report/sections")
    assert len(sections) > 5
    offending = {
        str(path.relative_to(LIB)): sorted(n for n in imports(path) if imports_an_engine(n))
        for path in sections
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_de_engines_import_nothing_of_the_report_or_of_figures():
    offending = {
        str(path.relative_to(LIB)): sorted(
            n for n in imports(path) if n.startswith("trdpipe.report") or n.split(".")[0] == "matplotlib"
        )
        for path in engine_files("trdpipe/model/engines")
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_imports_an_engine_recognises_the_fitting_modules():
    assert imports_an_engine("pydeseq2.dds") and imports_an_engine("trdpipe.model.design.fit_vst")
    assert not imports_an_engine("trdpipe.model.tables") and not imports_an_engine("trdpipe.model.designs")


# PyDESeq2's private methods, and the replacement of its size-factor fit, that the pipeline uses
PYDESEQ2_INTERNALS = re.compile(
    r"_cooks_filtering|_independent_filtering|_p_value_adjustment|fit_size_factors\s*="
)


def test_pydeseq2_internals_are_used_inside_the_pydeseq2_engine_only():
    engine = LIB / "trdpipe/model/engines/pydeseq2.py"
    assert PYDESEQ2_INTERNALS.search(engine.read_text())
    users = [
        str(p.relative_to(LIB)) for p in engine_files("trdpipe") if PYDESEQ2_INTERNALS.search(p.read_text())
    ]
    assert users == ["trdpipe/model/engines/pydeseq2.py"]
