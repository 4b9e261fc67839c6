"""The DE engines, by the name the config gives them (`de.engine`, a sensitivity model's
`engine`). An engine's module is imported only when it is used: PyDESeq2 and pylimma load in the
jobs that fit, not in ingest or the report.
"""

import importlib

from trdpipe.model.engines.base import DEEngine

# name -> (module, class); the schema's enums of `de.engine` and a model's `engine` list these names
ENGINES = {
    "pydeseq2": ("trdpipe.model.engines.pydeseq2", "PyDESeq2Engine"),
    "limma_voom": ("trdpipe.model.engines.limma_voom", "LimmaVoomEngine"),
}
DEFAULT_ENGINE = "pydeseq2"


def engine_class(name: str) -> type[DEEngine]:
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)


def make_engine(settings: dict, n_cpus: int = 1) -> DEEngine:
    """The engine the settings name (`engine`, default PyDESeq2), configured by them."""
    return engine_class(settings.get("engine", DEFAULT_ENGINE))(settings, n_cpus)
