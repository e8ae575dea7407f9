"""What a guest image is: the files the launcher boots, and the manifest (``image.json``) that names them.

Two kinds of images share this type: those ``sevkit image build`` makes (a manifest with a recipe
hash) and those a lab brings (``GuestImage.from_files`` or a small JSON spec read by
``load_image_spec``). Paths in a JSON spec are relative to the JSON file's folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from ..errors import InputError
from ..userfiles import MANIFEST, read_file, shown

MANIFEST_NAME = "image.json"
MANIFEST_FORMAT = 1
DEFAULT_APPEND = "root=LABEL=sevroot ro console=ttyS0,115200"
QCOW2_MAGIC = b"QFI\xfb"

# image.json: sevkit's manifest or a lab's spec. Known keys typed; everything else (build facts,
# timings) may nest at most 4 levels, so a hostile manifest is one error line, not a RecursionError.
_STR = {"type": "string", "maxLength": 65536}
_LEAF = {"type": ["string", "number", "boolean", "null"], "maxLength": 65536}
_NEST: dict[str, Any] = _LEAF
for _ in range(4):
    _NEST = {"anyOf": [_LEAF, {"type": "array", "items": _NEST, "maxItems": 10000},
                       {"type": "object", "additionalProperties": _NEST, "maxProperties": 1000}]}
MANIFEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object", "maxProperties": 1000, "required": ["disk", "kernel", "initrd"],
    "properties": {
        "format": {"const": MANIFEST_FORMAT},
        **{k: _STR for k in ("disk", "kernel", "initrd", "append", "firmware", "credentials", "suite",
                             "recipe_hash", "kernel_version", "disk_format")},
        "host_keys": {"type": "array", "items": _STR, "maxItems": 64},
        "sizes": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
                  "maxProperties": 64},
    },
    "additionalProperties": _NEST,
}
_MANIFEST_VALIDATOR = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)


@dataclass(frozen=True)
class GuestImage:
    """A bootable guest: a base disk (never written: boot it through an overlay) plus kernel and initrd
    for direct kernel boot.

    ``credentials`` says how a run hands its SSH key and console password in: ``"fw_cfg"`` for images
    built by sevkit (see sevkit.image.credentials); a lab image built another way must say ``"none"``
    and the launcher then has no way in but what the lab arranged.
    """

    root: Path
    disk: Path
    kernel: Path
    initrd: Path
    append: str = DEFAULT_APPEND
    suite: str = ""
    kernel_version: str = ""
    recipe_hash: str = ""
    disk_format: str = "qcow2"
    firmware: Path | None = None
    host_keys: tuple[str, ...] = ()           # baked host keys; empty: the run hands one in (fw_cfg)
    credentials: str = "fw_cfg"
    manifest: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_files(cls, *, disk: str | Path, kernel: str | Path, initrd: str | Path,
                   append: str = DEFAULT_APPEND, firmware: str | Path | None = None,
                   credentials: str = "fw_cfg", suite: str = "") -> GuestImage:
        """A lab's own image. Raises InputError (one clear line) for anything that cannot boot."""
        disk_p = _existing(disk, "disk")
        kernel_p = _existing(kernel, "kernel")
        initrd_p = _existing(initrd, "initrd")
        firmware_p = _existing(firmware, "firmware") if firmware not in (None, "") else None
        if not isinstance(append, str) or not append.strip():
            raise InputError("guest image: append (the kernel command line) is empty")
        if any(c in append for c in "\n\r\0"):
            raise InputError("guest image: append must be one line without control characters")
        if credentials not in ("fw_cfg", "none"):
            raise InputError(f"guest image: credentials must be 'fw_cfg' or 'none', not {credentials!r}")
        version = kernel_version_of(kernel_p)   # also proves it is a bzImage
        if initrd_p.stat().st_size == 0:
            raise InputError(f"guest image: initrd {initrd_p} is empty")
        return cls(root=disk_p.parent, disk=disk_p, kernel=kernel_p, initrd=initrd_p, append=append.strip(),
                   suite=suite, kernel_version=version, disk_format=disk_format_of(disk_p),
                   firmware=firmware_p, credentials=credentials)


def _existing(path: str | Path | None, what: str) -> Path:
    if path is None or str(path) == "":
        raise InputError(f"guest image: no {what} given")
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"guest image: {what} {p} does not exist or is not a file")
    try:
        with open(p, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise InputError(f"guest image: {what} {p} cannot be read: {exc.strerror}") from None
    return p.resolve()


def disk_format_of(path: Path) -> str:
    """``qcow2`` by its magic, else ``raw``; an empty file is refused."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head:
        raise InputError(f"guest image: disk {path} is empty")
    return "qcow2" if head == QCOW2_MAGIC else "raw"


def kernel_version_of(path: Path) -> str:
    """The release string from a bzImage's setup header (``HdrS`` at 0x202, version pointer at 0x20E)."""
    with open(path, "rb") as fh:
        head = fh.read(0x10000 + 0x200)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise InputError(f"guest image: kernel {path} is not an x86 bzImage (no HdrS setup header)")
    ptr = int.from_bytes(head[0x20E:0x210], "little")
    if ptr == 0 or ptr + 0x200 >= len(head):
        return ""
    raw = head[ptr + 0x200:ptr + 0x200 + 256].split(b"\0", 1)[0]
    return raw.decode("ascii", "replace").split(" ", 1)[0]



# -- manifest ------------------------------------------------------------------------------------------

def manifest_dict(image: GuestImage, **extra: Any) -> dict[str, Any]:
    """The JSON form; file paths are stored relative to the image folder."""
    def rel(p: Path) -> str:
        try:
            return str(p.relative_to(image.root))
        except ValueError:
            return str(p)
    data: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "suite": image.suite,
        "kernel_version": image.kernel_version,
        "recipe_hash": image.recipe_hash,
        "disk": rel(image.disk),
        "disk_format": image.disk_format,
        "kernel": rel(image.kernel),
        "initrd": rel(image.initrd),
        "append": image.append,
        "credentials": image.credentials,
        "host_keys": list(image.host_keys),
    }
    if image.firmware is not None:
        data["firmware"] = rel(image.firmware)
    data.update(dict(image.extra))
    data.update(extra)
    return data


def write_manifest(image: GuestImage, folder: Path, **extra: Any) -> Path:
    path = folder / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest_dict(image, **extra), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def load_image_spec(path: str | Path) -> GuestImage:
    """Read an ``image.json``: sevkit's own manifest or a lab's spec with at least
    ``disk``, ``kernel``, ``initrd`` (``append``, ``firmware``, ``credentials`` optional).
    Relative paths are taken from the JSON file's folder. Raises InputError with one clear line."""
    p = Path(path).expanduser()
    label = f"guest image spec {shown(p)}"
    try:
        if p.is_dir():
            p = p / MANIFEST_NAME
    except OSError as exc:
        raise InputError(f"{label}: cannot be read: {exc.strerror or exc}") from None
    label = f"guest image spec {shown(p)}"
    blob = read_file(p, MANIFEST, "guest image spec")
    try:
        data = json.loads(blob)
    except RecursionError:
        raise InputError(f"{label} is not JSON: nested too deeply") from None
    except ValueError as exc:
        raise InputError(f"{label} is not JSON: {str(exc)[:160]}") from None
    if not isinstance(data, dict):
        raise InputError(f"{label} must be a JSON object")
    fmt = data.get("format", MANIFEST_FORMAT)
    if fmt != MANIFEST_FORMAT:
        raise InputError(f"{label}: format {str(fmt)[:40]} is not supported (this sevkit reads {MANIFEST_FORMAT})")
    missing = [k for k in ("disk", "kernel", "initrd") if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise InputError(f"{label}: missing {', '.join(missing)}")
    error = jsonschema.exceptions.best_match(_MANIFEST_VALIDATOR.iter_errors(data))
    if error is not None:
        where = "/".join(str(x) for x in error.absolute_path) or "(top level)"
        raise InputError(f"{label}: does not fit the manifest schema at {where[:120]}: {error.message[:160]}")
    base = p.resolve().parent

    def at(key: str) -> Path:
        q = Path(data[key]).expanduser()
        return q if q.is_absolute() else base / q

    firmware = at("firmware") if data.get("firmware") else None
    image = GuestImage.from_files(disk=at("disk"), kernel=at("kernel"), initrd=at("initrd"),
                                  append=str(data.get("append", DEFAULT_APPEND)), firmware=firmware,
                                  credentials=str(data.get("credentials", "fw_cfg")),
                                  suite=str(data.get("suite", "")))
    host_keys = data.get("host_keys", [])
    if not isinstance(host_keys, list) or not all(isinstance(k, str) for k in host_keys):
        raise InputError(f"guest image spec {p}: host_keys must be a list of strings")
    known = set(manifest_dict(image)) | {"format"}
    return GuestImage(root=base, disk=image.disk, kernel=image.kernel, initrd=image.initrd, append=image.append,
                      suite=image.suite, kernel_version=image.kernel_version,
                      recipe_hash=str(data.get("recipe_hash", "")), disk_format=image.disk_format,
                      firmware=image.firmware, host_keys=tuple(host_keys), credentials=image.credentials,
                      manifest=p.resolve(), extra={k: v for k, v in data.items() if k not in known})
