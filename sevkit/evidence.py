"""Evidence folders: one per test or per shared resource, written as files a person can read."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ArtifactDir:
    """A folder that is created on first use.

    Files are small, human-readable evidence. Bulky or secret material (memory dumps,
    private keys) never goes here: the owners of those keep them elsewhere.
    """

    path: Path

    def ensure(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path

    def file(self, name: str) -> Path:
        """Path of ``name`` inside the folder (the folder is created)."""
        return self.ensure() / name

    def write_text(self, name: str, text: str) -> Path:
        p = self.file(name)
        p.write_text(text)
        return p

    def write_bytes(self, name: str, data: bytes) -> Path:
        p = self.file(name)
        p.write_bytes(data)
        return p

    def write_json(self, name: str, obj: Any) -> Path:
        return self.write_text(name, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def append(self, name: str, text: str) -> None:
        with open(self.file(name), "a") as fh:
            fh.write(text)

    def sub(self, name: str) -> ArtifactDir:
        return ArtifactDir(self.path / name)

    def write_script(self, name: str, text: str) -> Path:
        p = self.write_text(name, text)
        os.chmod(p, 0o755)
        return p


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (evidence manifests, fleet payloads)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
