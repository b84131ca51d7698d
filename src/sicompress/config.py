"""Checks of the workflow's configuration, with one message per problem naming its key.

The schema (workflow/schemas/config.schema.yaml) is the single source of types, ranges,
known keys and defaults; this module only turns its verdicts into lines a person can act on,
e.g. ``lr_search.lrs[0]: -0.1 must be > 0``, before any job starts.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class ConfigError(ValueError):
    """The configuration breaks the schema; the message lists every problem by key."""


# Keys that moved to the compute section (how fast a result comes, not what it is), named in
# place of "unknown key" so that an older config says where its key went.
MOVED = {"train.bf16": "compute.bf16", "train.channels_last": "compute.channels_last",
         "train.compile": "compute.compile", "si.batch_size": "compute.si_batch_size"}

_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _type_name(types) -> str:
    names = {"integer": "an integer", "number": "a number", "string": "a string",
             "boolean": "true or false", "array": "a list", "object": "a mapping",
             "null": "null"}
    types = [types] if isinstance(types, str) else list(types)
    return " or ".join(names.get(t, t) for t in types)


def config_problems(config: dict, schema: dict) -> list[str]:
    """Every violation of `schema` by `config`, as 'key: what is wrong' lines."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in validator.iter_errors(config):
        path = list(err.absolute_path)
        kind = err.validator
        if kind == "additionalProperties":
            known = sorted(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - set(known)):
                key = _key(path + [extra])
                problems.append(f"{key}: moved to {MOVED[key]}" if key in MOVED else
                                f"{key}: unknown key (known here: {', '.join(known)})")
            continue
        key, value = _key(path), err.instance
        if kind == "type":
            msg = f"{value!r} is not {_type_name(err.validator_value)}"
        elif kind in _BOUNDS:
            msg = f"{value!r} must be {_BOUNDS[kind]} {err.validator_value}"
        elif kind == "minItems":
            msg = "must not be empty" if err.validator_value == 1 else \
                f"needs at least {err.validator_value} items"
        elif kind == "enum":
            msg = f"{value!r} is not one of {', '.join(map(str, err.validator_value))}"
        else:
            msg = err.message
        problems.append(f"{key}: {msg}")
    return sorted(problems)


def check_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError listing every problem of `config` against the schema file."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    problems = config_problems(config, schema)
    if problems:
        raise ConfigError("invalid configuration (config.yaml and any --configfile/--config):\n  "
                          + "\n  ".join(problems))
