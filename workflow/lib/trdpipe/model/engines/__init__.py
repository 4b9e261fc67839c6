"""The DE engines, by the name the config gives them (`de.engine`, a sensitivity model's
`engine`). An engine's module is imported only when it is used: PyDESeq2 and pylimma load in the
jobs that fit, not in ingest or the report.
"""

import importlib
import importlib.util

from trdpipe.common import InputError
from trdpipe.model.engines.base import DEEngine

# name -> (module, class); the schema's enums of `de.engine` and a model's `engine` list these names
ENGINES = {
    "pydeseq2": ("trdpipe.model.engines.pydeseq2", "PyDESeq2Engine"),
    "limma_voom": ("trdpipe.model.engines.limma_voom", "LimmaVoomEngine"),
}
DEFAULT_ENGINE = "pydeseq2"
# engines whose package is an optional extra (requirements-extras.txt), by the package they need
OPTIONAL_PACKAGES = {"limma_voom": "pylimma"}


def missing_package_message(name: str) -> str:
    package = OPTIONAL_PACKAGES[name]
    return (
        f"the DE engine '{name}' needs {package}, which is not installed: pip install -r "
        f"requirements-extras.txt ({package} is GPL-3.0-or-later, an optional extra)"
    )


def check_engines_installed(names, where: str) -> None:
    """Stop before any rule runs when a configured engine's optional package is missing."""
    for name in dict.fromkeys(names):
        if name in OPTIONAL_PACKAGES and importlib.util.find_spec(OPTIONAL_PACKAGES[name]) is None:
            raise InputError(f"{where}: {missing_package_message(name)}")


def engine_class(name: str) -> type[DEEngine]:
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)


def make_engine(settings: dict, n_cpus: int = 1) -> DEEngine:
    """The engine the settings name (`engine`, default PyDESeq2), configured by them."""
    return engine_class(settings.get("engine", DEFAULT_ENGINE))(settings, n_cpus)
