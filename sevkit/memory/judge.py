"""Verdicts from scans and register views. Pure: a measurement problem raises DumpError (an ERROR),
a confidentiality breach is returned as a failure message (a FAILED test).

The rules (issue 4; sev-facts §8.7):
* plain guest = positive control: >= 1 hit of the planted secret, 0 of the never-planted
  control needle, else "this dump method cannot see guest memory" (DumpError).
* SEV, SEV-ES, SEV-SNP: 0 hits; something must have been read (never a pass on 0 bytes);
  where private memory is readable (as ciphertext), most non-zero pages look random.
* registers: a plain guest's must be live (else the method proves nothing); SEV's are recorded;
  SEV-ES/SNP must not show live state.
"""

from __future__ import annotations

from typing import Any

from ..errors import DumpError
from ..vocab import GuestKind
from .dump import MemoryScan
from .registers import RegisterView
from .scan import HIGH_ENTROPY

CANNOT_SEE = "this dump method cannot see guest memory"
# [D] Shared pages (swiotlb bounce buffers, GHCBs, console) stay plaintext by design, so not 100%.
MIN_HIGH_ENTROPY_FRACTION = 0.8


def judge_control(ms: MemoryScan, needle: bytes, control: bytes, evidence: dict[str, Any]) -> None:
    """Raise DumpError unless the plain guest's scan found the secret and not the control needle."""
    if ms.count(needle) < 1:
        raise DumpError(f"{CANNOT_SEE}: {ms.method} read {ms.coverage.bytes_read} bytes of the plain guest "
                        "and did not find the planted secret", evidence=evidence)
    _control_clean(ms, control, evidence)


def _control_clean(ms: MemoryScan, control: bytes, evidence: dict[str, Any]) -> None:
    if ms.count(control) != 0:
        raise DumpError(f"the never-planted control needle was found {ms.count(control)} time(s): "
                        "the scan is not trustworthy", evidence=evidence)


def judge_confidential(kind: str, ms: MemoryScan, needle: bytes, control: bytes,
                       evidence: dict[str, Any]) -> list[str]:
    """Failures (empty = conformant) for a confidential guest's scan; DumpError if no verdict is possible."""
    cov = ms.coverage
    if cov.bytes_read == 0:
        raise DumpError(f"{ms.method} read 0 bytes of the {kind} guest: no verdict possible", evidence=evidence)
    _control_clean(ms, control, evidence)
    failures: list[str] = []
    hits = ms.hits(needle)
    if ms.count(needle):
        gpas = [f"{h.gpa:#x}" for h in hits[:5] if h.gpa is not None]
        failures.append(f"{kind}: the planted secret is readable in plaintext from the host: {ms.count(needle)} "
                        f"hit(s) via {ms.method} at gpa {gpas} (read {cov.bytes_read}/{cov.ram_bytes} bytes)")
    if cov.private_readable:
        ent = ms.result.entropy.to_json() if ms.result.entropy else {}
        frac = ent.get("high_entropy_fraction_of_nonzero")
        if frac is None:
            raise DumpError(f"{kind}: no non-zero page among the sampled ones: entropy unknown", evidence=evidence)
        if frac < MIN_HIGH_ENTROPY_FRACTION:
            failures.append(f"{kind}: only {frac:.0%} of the readable non-zero guest pages look like ciphertext "
                            f"(>= {HIGH_ENTROPY} bits/byte); expected >= {MIN_HIGH_ENTROPY_FRACTION:.0%}")
    return failures


def judge_registers(kind: str, view: RegisterView, evidence: dict[str, Any]) -> list[str]:
    """Failures for the register check; DumpError when the plain control shows nothing."""
    if kind == GuestKind.PLAIN:
        if not view.live:
            raise DumpError("the host cannot read the plain guest's registers: the register check proves "
                            "nothing for the confidential guests", evidence=evidence)
        return []
    if kind == GuestKind.SEV:
        return []   # recorded, not judged: SEV without ES leaves registers visible by design
    if view.live:
        first = view.to_json()["samples"][:1]
        return [f"{kind}: the host reads live guest registers (RIP/CR3) through QEMU: {first}"]
    return []
