"""A rule script of workflow/scripts/ loaded as a module, for the tests and benches that call its
main() with a stand-in for Snakemake's object. The scripts are not importable by name: only the
engine in workflow/lib/ is on the path."""

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPTS = Path(__file__).resolve().parents[1] / "workflow" / "scripts"


def rule_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"rule_script_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
