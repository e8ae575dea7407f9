"""The JSON a guest sends back from the attestation script (guest_script.py), checked against a
schema before it is used: the guest is not trusted, so a wrong type, a huge value or a deep
nesting is an AttestationError line, never a KeyError or RecursionError (issue 10 item 9).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from ..errors import AttestationError

_B64 = "^[A-Za-z0-9+/]*={0,2}$"
_SHORT = {"type": "string", "maxLength": 4096}
_LEAF = {"type": ["string", "number", "boolean", "null"], "maxLength": 4096}
ANSWER_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "maxProperties": 64,
    "properties": {
        "report_b64": {"type": "string", "maxLength": 16384, "pattern": _B64},     # a report is 1184 bytes
        "certs_b64": {"type": "string", "maxLength": 1 << 20, "pattern": _B64},    # the kernel's cert blob
        "method": _SHORT, "error": _SHORT,
        "tried": {"type": "array", "items": _SHORT, "maxItems": 16},
    },
    # anything else the script reports (provider, generation, ext_error, prepared ...): two levels at most
    "additionalProperties": {"anyOf": [_LEAF, {"type": "array", "items": _LEAF, "maxItems": 64},
                                       {"type": "object", "additionalProperties": _LEAF, "maxProperties": 64}]},
}
_VALIDATOR = jsonschema.Draft202012Validator(ANSWER_SCHEMA)


def parse_answer(blob: bytes) -> dict[str, Any]:
    """The guest's answer as a dict that fits ANSWER_SCHEMA, or AttestationError."""
    try:
        value = json.loads(blob)
    except (ValueError, RecursionError) as exc:
        raise AttestationError(f"garbled answer from the guest: {str(exc)[:160]}") from None
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(value))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise AttestationError(f"answer from the guest does not fit its schema at {where[:80]}: {error.message[:160]}")
    assert isinstance(value, dict)     # the schema says so
    return value
