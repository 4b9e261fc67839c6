"""Config validation with one readable line per problem.

Snakemake's own schema validation prints the whole schema; this names the key, the value
and the valid choices (keys of that section, or the allowed values), then Snakemake's
`validate` fills in the defaults. Numbers and booleans nested in --config arrive as text
and are read as YAML first.
"""

import jsonschema
import yaml


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
