"""Every enum of the config schema that the code also spells out holds the same values in both, so
that a value the schema allows always has code behind it, and code is never unreachable."""

import pytest
import yaml

from conftest import ROOT
from trdpipe.cells.scores import SCORE_METHODS
from trdpipe.checks.assays import ASSAY_TYPES, MRNA_FORMATS, SMALL_RNA_FORMATS
from trdpipe.io.counts import FORMATS, STAR_STRAND_COLUMN, STRAND_SHARES
from trdpipe.io.small_rna import FORMATS as SMALL_RNA_READERS
from trdpipe.model.engines import ENGINES
from trdpipe.model.engines.pydeseq2 import INFERENCE_BACKENDS, MODEL_CLASSES
from trdpipe.predict.models import make_learner

SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_enum(*path: str) -> list:
    """The enum at a dotted place of the schema's properties (an array's items for `[]`)."""
    node = SCHEMA
    for key in path:
        node = node["items"] if key == "[]" else node["properties"][key]
    return node["enum"]


# (schema place, where the code spells it, the code's values)
CODE_ENUMS = [
    (("counts_format",), "trdpipe.io.counts.FORMATS", FORMATS),
    (("strandedness",), "trdpipe.io.counts.STAR_STRAND_COLUMN", tuple(STAR_STRAND_COLUMN)),
    (("strandedness",), "trdpipe.io.counts.STRAND_SHARES", tuple(STRAND_SHARES)),
    (("de", "engine"), "trdpipe.model.engines.ENGINES", tuple(ENGINES)),
    (("de", "inference"), "trdpipe.model.engines.pydeseq2.INFERENCE_BACKENDS", tuple(INFERENCE_BACKENDS)),
    (("de", "inference"), "trdpipe.model.engines.pydeseq2.MODEL_CLASSES", tuple(MODEL_CLASSES)),
    (("cells", "method"), "trdpipe.cells.scores.SCORE_METHODS", SCORE_METHODS),
]


@pytest.mark.parametrize(("place", "name", "values"), CODE_ENUMS, ids=[name for _, name, _ in CODE_ENUMS])
def test_the_code_enum_equals_the_schema_enum(place, name, values):
    assert sorted(values) == sorted(schema_enum(*place)), f"{name} and the schema's {'.'.join(place)}"


def test_every_learner_of_the_schema_is_built():
    predict = SCHEMA["properties"]["predict"]["properties"]
    defaults = {key: spec["default"] for key, spec in predict.items() if "default" in spec}
    learners = schema_enum("predict", "learners", "[]")
    built = {name: type(make_learner(name, defaults, seed=0)[0]).__name__ for name in learners}
    assert built == {
        "l2": "LogisticRegression",
        "elasticnet": "LogisticRegression",
        "hgb": "HistGradientBoostingClassifier",
    }
    with pytest.raises(ValueError, match="unknown learner 'svm'"):
        make_learner("svm", defaults, seed=0)


def test_an_assays_formats_and_types_are_those_the_code_reads():
    entry = SCHEMA["properties"]["assays"]["additionalProperties"]["properties"]
    assert (MRNA_FORMATS, SMALL_RNA_FORMATS) == (FORMATS, SMALL_RNA_READERS)
    assert sorted(entry["counts_format"]["enum"]) == sorted(set(FORMATS) | set(SMALL_RNA_READERS))
    assert entry["type"]["enum"] == list(ASSAY_TYPES)
