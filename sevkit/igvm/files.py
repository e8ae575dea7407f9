"""IGVM files on disk: read one a person named (checked whole), write one sevkit built."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..userfiles import IGVM, read_file, shown, write_output
from .format import IgvmFile, parse, serialize


@dataclass(frozen=True, slots=True)
class IgvmImage:
    """An IGVM file, its SHA-256 (the evidence that names exactly which file was booted) and its content."""

    path: Path
    sha256: str
    size: int
    file: IgvmFile

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "sha256": self.sha256, "size": self.size,
                "directives": len(self.file.directives)}


def read_igvm(path: str | Path, what: str = "IGVM file") -> IgvmImage:
    """Read and parse a user-named IGVM file. Raises InputError / IgvmFormatError (one line each)."""
    data = read_file(path, IGVM, what)
    return IgvmImage(Path(path), hashlib.sha256(data).hexdigest(), len(data), parse(data, f"{what} {shown(path)}"))


def write_igvm(path: str | Path, f: IgvmFile, what: str = "IGVM output") -> IgvmImage:
    data = serialize(f)
    write_output(path, data, what, mode=0o644)
    return IgvmImage(Path(path), hashlib.sha256(data).hexdigest(), len(data), f)
