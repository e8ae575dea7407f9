"""The JSON Schema of result.json (sevkit/data/result.schema.json) and validation with ``jsonschema``."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from ..errors import InputError


@cache
def schema() -> dict[str, Any]:
    text = (resources.files("sevkit") / "data" / "result.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def problems(doc: Any) -> list[str]:
    """Every schema violation as 'path: message' (empty when valid)."""
    validator = jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def validate(doc: Any, where: str = "result.json") -> None:
    """Raise InputError naming the first violations."""
    found = problems(doc)
    if found:
        raise InputError(f"{where} does not match the result schema: " + "; ".join(found[:3])
                         + (f" (+{len(found) - 3} more)" if len(found) > 3 else ""))
