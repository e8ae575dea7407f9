"""What a QEMU binary offers, asked from the binary itself (not inferred from its version number).

A distribution may backport ``sev-snp-guest`` into an older release (the version says 8.2, the
binary has the object), so "can this QEMU launch an SNP guest" is answered by ``-object help``
(the user-creatable QOM types) and ``-object sev-snp-guest,help`` (its properties), as libvirt's
capability probe does; ``query-sev-capabilities`` (caps.py) then gives the C-bit facts.
Sources: qemu/qemu qom/object_interfaces.c (``user_creatable_print_help``: "List of user creatable
objects:" and "<type> options:" followed by ``  name=<type>  - text`` lines, the format Debian's 7.2
prints too); qapi/qom.json (SevSnpGuestProperties, "Since: 9.1" upstream).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from ..deadline import Deadline
from ..errors import LaunchError
from ..versions import version_tuple

SEV_GUEST = "sev-guest"
SEV_SNP_GUEST = "sev-snp-guest"


@dataclass(frozen=True, slots=True)
class QemuOffers:
    """One QEMU binary: its version (informational), its user-creatable objects and, for the SEV
    objects it has, their properties (empty when not asked)."""

    path: str
    version: tuple[int, int, int]
    objects: frozenset[str]
    properties: tuple[tuple[str, frozenset[str]], ...] = ()
    version_text: str = ""

    def has(self, obj: str) -> bool:
        return obj in self.objects

    def properties_of(self, obj: str) -> frozenset[str]:
        return next((props for name, props in self.properties if name == obj), frozenset())

    @property
    def version_label(self) -> str:
        return ".".join(map(str, self.version))

    def missing_object(self, obj: str) -> str:
        """'' when the binary offers ``obj``; else the reason with its evidence."""
        if self.has(obj):
            return ""
        return f"QEMU {self.version_label} ({self.path}) has no {obj} object (-object help)"


_PROPERTY = re.compile(r"^\s+([a-z][\w-]*)=<")


def parse_object_help(text: str) -> frozenset[str]:
    """``-object help`` output -> the object type names (lines after the heading, one per line)."""
    return frozenset(line.strip() for line in text.splitlines()[1:] if line.strip() and " " not in line.strip())


def parse_properties(text: str) -> frozenset[str]:
    """``-object TYPE,help`` output -> the property names (``  name=<type>  - text`` lines)."""
    return frozenset(m.group(1) for line in text.splitlines() if (m := _PROPERTY.match(line)))


def _run(argv: list[str], deadline: Deadline) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=max(deadline.remaining, 0.1), check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LaunchError(f"cannot ask {argv[0]} what it offers ({' '.join(argv[1:])}): {exc}",
                          evidence={"argv": argv}) from None
    if proc.returncode != 0:
        raise LaunchError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}",
                          evidence={"argv": argv, "stderr": proc.stderr[-2000:]})
    return proc.stdout


def probe_qemu(binary: str, *, timeout: float = 20.0) -> QemuOffers:
    """Ask ``binary`` for its version, its objects and the SEV objects' properties.
    Raises LaunchError (with the argv) when the binary cannot be run or refuses."""
    deadline = Deadline(timeout)
    version_text = _run([binary, "--version"], deadline).strip().splitlines()[:1]
    text = version_text[0] if version_text else ""
    m = re.search(r"version\s+(\d+\.\d+(?:\.\d+)?)", text)
    parts = (*version_tuple(m.group(1)), 0, 0, 0) if m else (0, 0, 0)
    version = (parts[0], parts[1], parts[2])
    objects = parse_object_help(_run([binary, "-object", "help"], deadline))
    props = tuple((obj, parse_properties(_run([binary, "-object", f"{obj},help"], deadline)))
                  for obj in (SEV_GUEST, SEV_SNP_GUEST) if obj in objects)
    return QemuOffers(binary, version, objects, props, text)
