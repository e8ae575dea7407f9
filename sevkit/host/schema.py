"""The JSON Schema of the collector's output (``raw.json`` in a bundle, the answer of a remote
collector over SSH): every section the grader reads, with its types, and sizes everywhere.

Untrusted JSON (a bundle from a ticket, a host under test that lies) is checked against it
before the grader sees it, so a wrong type, a null, a huge string or a deep nesting is one
InputError line instead of a crash. Free-form evidence (``detail``) may nest at most
``DETAIL_DEPTH`` levels. Checked with ``jsonschema`` (Draft 2020-12).
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from .collector import SCHEMA

MIB = 1 << 20
DETAIL_DEPTH = 6
MAX_KEYS = 4096           # properties per object
MAX_ITEMS = 100_000       # items per array (a /sys listing on a big host is ~thousands)

STR: dict[str, Any] = {"type": "string", "maxLength": MIB}
TEXT: dict[str, Any] = {"type": "string", "maxLength": 16 * MIB}     # dmesg, cpuinfo, QEMU help
INT: dict[str, Any] = {"type": "integer", "minimum": -(1 << 63), "maximum": (1 << 64) - 1}
OPT_INT: dict[str, Any] = {"type": ["integer", "null"], "minimum": -(1 << 63), "maximum": (1 << 64) - 1}
U32: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 0xFFFFFFFF}
DETAIL: dict[str, Any] = {"$ref": f"#/$defs/detail{DETAIL_DEPTH}"}


def _obj(props: dict[str, Any], *, required: tuple[str, ...] = (), extra: Any = DETAIL) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required),
            "additionalProperties": extra, "maxProperties": MAX_KEYS}


def _map(value: Any, *, keys: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": value, "maxProperties": MAX_KEYS}
    if keys is not None:
        out["propertyNames"] = {"pattern": keys}
    return out


def _array(item: Any) -> dict[str, Any]:
    return {"type": "array", "items": item, "maxItems": MAX_ITEMS}


def _details() -> dict[str, Any]:
    """detail0 = a scalar; detailN = a scalar, or an array/object of detail(N-1): depth-bounded."""
    scalar = {"type": ["string", "number", "boolean", "null"], "maxLength": 16 * MIB}
    defs: dict[str, Any] = {"detail0": scalar}
    for n in range(1, DETAIL_DEPTH + 1):
        inner = {"$ref": f"#/$defs/detail{n - 1}"}
        defs[f"detail{n}"] = {"anyOf": [scalar, _array(inner), _map(inner)]}
    return defs


ERRNO = {"errno": OPT_INT, "error": STR, "errname": STR}
RUN = _obj({"argv": _array(STR), "rc": OPT_INT, "stdout": TEXT, "stderr": TEXT, **ERRNO})
FILE = _obj({"text": TEXT, **ERRNO})
LISTING = _obj({"entries": _array(STR), **ERRNO})
DEVICE = _obj({"exists": {"type": "boolean"}, "mode": STR, "uid": INT, "gid": INT, "readable": {"type": "boolean"},
               "writable": {"type": "boolean"}, "api_version": OPT_INT, "sev_vmsa_features": DETAIL, **ERRNO})
B64 = {"type": "string", "maxLength": MIB,      # exact base64, so decoding cannot fail
       "pattern": "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"}


def _ioctl(size: int) -> dict[str, Any]:
    """An ioctl's answer: the whole status buffer (``size`` bytes, as the collector asks) or an error."""
    return {"anyOf": [{"type": "null"},
                      _obj({"hex": {"type": "string", "pattern": f"^[0-9a-fA-F]{{{2 * size}}}$"},
                            "fw_error": OPT_INT, **ERRNO})]}


# collector.py: SEV_PLATFORM_STATUS into 12 bytes, SNP_PLATFORM_STATUS into 32
IOCTL = _obj({"SEV_PLATFORM_STATUS": _ioctl(12), "SNP_PLATFORM_STATUS": _ioctl(32)})
HEX_KEY = "^0x[0-9a-fA-F]{8}$"
OVMF_IMAGE = _obj({"path": STR, "realpath": STR, "size": INT, **ERRNO}, required=("path",))
OVMF_CONTENT = _obj({"sha256": STR, "head_b64": B64, "tail_b64": B64, **ERRNO})

RAW_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sevkit collector output (raw.json)",
    "$defs": _details(),
    **_obj({
        "schema": {"const": SCHEMA},
        "collected_at": {"type": ["string", "null"], "maxLength": 64},
        "collector": _obj({"euid": OPT_INT, "hostname": STR, "python": STR, "seconds": {"type": "number"}}),
        "uname": _obj({k: STR for k in ("sysname", "release", "version", "machine")}),
        "cpuid": _obj({"source": STR, "leaves": _map(_array(U32) | {"minItems": 4, "maxItems": 4}, keys=HEX_KEY),
                       **ERRNO}),
        "msr": _obj({"source": STR, "values": _map(_obj({"name": STR, "value": INT, **ERRNO}), keys=HEX_KEY),
                     **ERRNO}),
        "modprobe": _map(RUN),
        "cpuinfo": _obj({"text": TEXT, "processors": INT, **ERRNO}),
        "iomem": _obj({"ranges": INT, "system_ram_end": OPT_INT, **ERRNO}),
        "files": _map(FILE),
        "dirs": _map(LISTING),
        "iommu_groups": _obj({"types": _map(INT), **ERRNO}),
        "rlimit_memlock": _obj({"soft": INT, "hard": INT, **ERRNO}),
        "devices": _map(DEVICE),
        "ioctl": IOCTL,
        "dmesg": _obj({"text": TEXT, "source": STR, "attempts": _array(DETAIL), **ERRNO}),
        "qemu": _obj({"path": {"type": ["string", "null"], "maxLength": 4096}, "version": RUN, "object_help": RUN,
                      **ERRNO}),
        "ovmf": _obj({"images": _array(OVMF_IMAGE), "searched": _array(STR), "content": _map(OVMF_CONTENT),
                      **ERRNO}),
        # issue 13's section: QMP replies nest deeper than free-form detail, so their frame is typed here
        "capabilities": _obj({"qemu_qmp": _obj({"argv": _array(STR), "rc": OPT_INT, "stderr": TEXT,
                                                "answers": _array(_obj({"command": DETAIL, "reply": DETAIL})),
                                                **ERRNO})}),
    }, required=("schema", "cpuid", "msr", "files", "devices", "dmesg", "uname")),
}

_VALIDATOR = jsonschema.Draft202012Validator(RAW_SCHEMA)


def schema_problem(data: Any) -> str | None:
    """None when ``data`` fits RAW_SCHEMA, else one line naming the first wrong place."""
    try:
        error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(data))
    except RecursionError:
        return f"nested deeper than {DETAIL_DEPTH} levels"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{json.dumps(where)[1:-1][:120]}: {message}"


def loads_bounded(blob: bytes | str) -> Any:
    """json.loads that turns a nesting too deep for the parser into ValueError (not RecursionError)."""
    try:
        return json.loads(blob)
    except RecursionError:
        raise ValueError("nested too deeply") from None
