"""Config validation with one readable line per problem.

Snakemake's own schema validation prints the whole schema; this names the key, the value
and the valid choices (keys of that section, or the allowed values), then Snakemake's
`validate` fills in the defaults. Numbers and booleans nested in --config arrive as text
and are read as YAML first. Before that, every config file is read strictly (a key given twice,
a tab in the indentation: the file and the line), and after it the paths to the shipped
resources/ are resolved for a run from another folder.
"""

import os
from pathlib import Path

import jsonschema
import yaml

from trdpipe.common import InputError


def _describe(error: jsonschema.ValidationError) -> list[str]:
    key = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        section = f" of '{key}'" if key else ""
        return [
            f"config key '{key + '.' if key else ''}{name}' does not exist; valid keys{section}: "
            f"{', '.join(allowed)}."
            for name in error.instance
            if name not in allowed
        ]
    if error.validator == "enum":
        return [
            f"config key '{key}' is {error.instance!r}; valid choices: "
            f"{', '.join(map(str, error.validator_value))}."
        ]
    if error.validator == "pattern" and "propertyNames" in error.schema_path:
        return [
            f"config key '{key}': the name {error.instance!r} cannot be used, because names under "
            f"'{key}' become parts of file paths; a name must match {error.validator_value} "
            f"({error.schema.get('description', '').rstrip('.')})."
        ]
    if error.validator == "type":
        return [
            f"config key '{key}' is {error.instance!r} ({type(error.instance).__name__}); "
            f"expected {error.validator_value}."
        ]
    return [f"config key '{key}': {error.message}."]


def config_problems(config: dict, schema: dict) -> list[str]:
    """Every violation of the schema, one sentence each, in key order."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [line for error in errors for line in _describe(error)]


def read_command_line_text(config: dict, schema: dict) -> None:
    """Snakemake reads the values nested in --config (`deseq2={alpha: 0.1}`) as text: turn the
    text the schema wants as a number or a boolean into one, as the YAML config file gives it."""
    validator = jsonschema.Draft202012Validator(schema)
    for error in validator.iter_errors(config):
        from_text = isinstance(error.instance, str) and error.absolute_path
        if error.validator not in ("type", "enum") or not from_text:
            continue
        try:
            value = yaml.safe_load(error.instance)
        except yaml.YAMLError:
            continue
        if _read_as_expected(validator, error, value):
            *parents, last = error.absolute_path
            container = config
            for part in parents:
                container = container[part]
            container[last] = value


def _read_as_expected(validator, error: jsonschema.ValidationError, value) -> bool:
    """Whether the text read as YAML is what the schema wants: one of its types, or (as for
    multiqc.enabled: auto, true or false) one of its choices."""
    if error.validator == "enum":
        return not isinstance(value, str) and value in error.validator_value
    expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    return any(validator.is_type(value, kind) for kind in expected)


def check_config(config: dict, schema_path: str) -> None:
    """Raise ValueError listing every problem of the config (Snakemake shows the message)."""
    with open(schema_path, encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    read_command_line_text(config, schema)
    problems = config_problems(config, schema)
    if problems:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(problems))


class _KeyGivenTwice(Exception):
    """A mapping's key at `line` that it already had at `first_line`."""

    def __init__(self, key, line: int, first_line: int):
        super().__init__(key, line, first_line)
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a mapping with a key given twice is an error (PyYAML
    keeps the last value silently: a second `contrasts:` block would replace the first)."""

    def construct_mapping(self, node, deep=False):
        first_lines = {}
        for key_node, _ in node.value:
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            if key in first_lines:
                raise _KeyGivenTwice(key, line, first_lines[key])
            first_lines[key] = line
        return super().construct_mapping(node, deep)


def _yaml_problem(error: yaml.MarkedYAMLError) -> str:
    if error.problem and "'\\t'" in error.problem:
        return "a tab indents this line; YAML indents with spaces only."
    return f"this is not valid YAML ({error.problem})."


def check_config_file(path) -> None:
    """Raise InputError, naming the file and the line, when a config file has a key twice (in any
    mapping) or is not valid YAML (a tab in the indentation, most often)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        yaml.load(text, Loader=_UniqueKeyLoader)
    except _KeyGivenTwice as twice:
        raise InputError(
            f"{path}, line {twice.line}: the key '{twice.key}' is given twice (first on line "
            f"{twice.first_line}); YAML would keep the second alone. Give each key once."
        ) from None
    except yaml.MarkedYAMLError as error:
        raise InputError(f"{path}, line {error.problem_mark.line + 1}: {_yaml_problem(error)}") from None


def shipped_path(path: str, workflow_top) -> str:
    """A config path, read from the working directory; one under resources/ that is not there is
    the workflow's own (the shipped annotation, gene sets, markers and toy cohort), so that a
    deployment's config, a copy of config/, finds them as the repository's does."""
    if not path or os.path.isabs(path) or Path(path).parts[0] != "resources" or os.path.exists(path):
        return path
    shipped = os.path.join(workflow_top, path)
    return shipped if os.path.exists(shipped) else path


def resolve_shipped_paths(config: dict, workflow_top) -> None:
    """Every file path of the config through shipped_path (the sample sheet's counts_file column
    names the user's own files)."""
    for key in ("samples", "counts", "tx2gene", "annotation"):
        config[key] = shipped_path(config[key], workflow_top)
    collections = config["enrichment"]["collections"]
    for name, path in collections.items():
        collections[name] = shipped_path(path, workflow_top)
    config["cells"]["resource"] = shipped_path(config["cells"]["resource"], workflow_top)
    genotypes = config["genotypes"]
    for key in ("file", "candidates", "variants"):
        genotypes[key] = shipped_path(genotypes[key], workflow_top)
