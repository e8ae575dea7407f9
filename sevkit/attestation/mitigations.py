"""The SNP mitigation-vector verdict (issue 13 §5): the report's vectors against the host's and the lab's.

Sources, and what each one allows us to conclude:
- SNP ABI 1.58 ATTESTATION_REPORT (report version 5): LAUNCH_MIT_VECTOR at 0x1F8, the mitigation vector
  when the guest was launched, and CURRENT_MIT_VECTOR at 0x200, the mitigation vector when the report
  was made (virtee/sev PR 312; microsoft/TEE-Attestation-Verification issue 148).
- SNP_VERIFY_MITIGATION (SNP ABI 1.58, §3.5.2 per virtee/snphost#130; linux drivers/crypto/ccp/sev-dev.c
  and include/linux/psp-sev.h, ccp 2026): STATUS returns ``mit_verified_vector`` ("mitigations
  verified") and ``mit_supported_vector`` ("mitigations supported"), shown by the kernel as
  /sys/firmware/sev/vulnerabilities/{verified,supported}_mitigations; the only other subcommand is
  VERIFY, which applies a mitigation. No subcommand withdraws one. Per mitigation, the kernel patch
  speaks of one "corresponding vector" bit, published in AMD's Security Bulletin: one bit space.
- go-sev-guest validate.go (v0.15.0) ``MinimumLaunchMitigationVector`` / ``MinimumCurrentMitigationVector``:
  a verifier's required bits are floors, ``report & required == required``.

Rules (each failure names the bits):
1. verified ⊆ supported: the firmware cannot have verified a mitigation it does not support.
2. verified ⊆ CURRENT_MIT_VECTOR: a mitigation the firmware says it verified, before and after the report
   was made, is in effect, so the report's current vector carries its bit. Bits in CURRENT beyond the
   verified ones are recorded, not failed (a firmware build may carry a mitigation without VERIFY).
3. LAUNCH_MIT_VECTOR ⊆ CURRENT_MIT_VECTOR: mitigations only accumulate on a running platform (no
   subcommand withdraws one), so what was in effect at launch is still in effect.
4. The lab's floors (``--sev-min-launch-mit-vector``, ``--sev-min-current-mit-vector``), go-sev-guest's rule.
If the host's verified vector changed while the report was fetched, rule 2 has no fixed reference:
that is a MeasurementError (ERROR), not a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MeasurementError

SYSFS = Path("/sys/firmware/sev/vulnerabilities")


def bits(value: int) -> list[int]:
    """The set bit numbers of a 64-bit vector, lowest first."""
    return [b for b in range(64) if value >> b & 1]


def read_host_vectors(base: Path = SYSFS) -> dict[str, int]:
    """{"supported", "verified"} read now from the kernel's sysfs (root only, mode 0400/0600); each file
    is "0x%llx" (sev-dev.c supported_mitigations_show). MeasurementError names the file that failed."""
    out: dict[str, int] = {}
    for name in ("supported", "verified"):
        path = base / f"{name}_mitigations"
        try:
            text = path.read_text(encoding="ascii").strip()
            out[name] = int(text, 16)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise MeasurementError(f"cannot read the host's {name} mitigation vector from {path}: {exc}",
                                   evidence={"path": str(path)}) from exc
    return out


@dataclass(frozen=True, slots=True)
class MitigationFloors:
    """The lab's required bits (0 = no requirement)."""

    launch: int = 0
    current: int = 0


@dataclass(frozen=True, slots=True)
class MitigationVerdict:
    failures: tuple[str, ...]
    evidence: dict[str, Any]


def judge_mitigations(*, launch: int, current: int, host_before: dict[str, int], host_after: dict[str, int],
                      floors: MitigationFloors = MitigationFloors()) -> MitigationVerdict:
    """The verdict on one v5 report's vectors, with the host's vectors read before and after it was made."""
    evidence: dict[str, Any] = {
        "report": {"launch_mit_vector": hex(launch), "current_mit_vector": hex(current)},
        "host_before": {k: hex(v) for k, v in host_before.items()},
        "host_after": {k: hex(v) for k, v in host_after.items()},
        "floors": {"launch": hex(floors.launch), "current": hex(floors.current)},
    }
    if host_before != host_after:
        raise MeasurementError("the host's mitigation vectors changed while the report was fetched "
                               f"(before {evidence['host_before']}, after {evidence['host_after']}): "
                               "no fixed reference to judge the report against", evidence=evidence)
    supported, verified = host_before["supported"], host_before["verified"]
    evidence["verified_bits"] = bits(verified)
    evidence["supported_bits"] = bits(supported)
    evidence["current_beyond_verified_bits"] = bits(current & ~verified)
    failures: list[str] = []
    if verified & ~supported:
        failures.append(f"the host's verified mitigations {verified:#x} include bits {bits(verified & ~supported)} "
                        f"that its supported vector {supported:#x} lacks")
    if verified & ~current:
        failures.append(f"CURRENT_MIT_VECTOR {current:#x} lacks bits {bits(verified & ~current)} that the host's "
                        f"SNP_VERIFY_MITIGATION STATUS lists as verified ({verified:#x})")
    if launch & ~current:
        failures.append(f"LAUNCH_MIT_VECTOR {launch:#x} has bits {bits(launch & ~current)} that CURRENT_MIT_VECTOR "
                        f"{current:#x} lacks: a mitigation in effect at launch is no longer in effect")
    for name, have, need in (("LAUNCH_MIT_VECTOR", launch, floors.launch),
                             ("CURRENT_MIT_VECTOR", current, floors.current)):
        if need & ~have:
            failures.append(f"{name} {have:#x} lacks bits {bits(need & ~have)} the lab requires ({need:#x})")
    return MitigationVerdict(tuple(failures), evidence)
