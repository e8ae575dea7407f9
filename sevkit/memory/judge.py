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
from .pages import PageView, tally
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
                       evidence: dict[str, Any], *, ciphertext_hiding: bool = False) -> list[str]:
    """Failures (empty = conformant) for a confidential guest's scan; DumpError if no verdict is possible.
    With ``ciphertext_hiding`` the host is meant to read 0xFF, not ciphertext, at private pages, so the
    whole-RAM entropy rule does not apply; judge_pages decides per page of the secret."""
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
    if cov.private_readable and ciphertext_hiding:
        evidence["entropy_rule"] = "not applied: with ciphertext hiding private pages read as 0xFF, not ciphertext"
    elif cov.private_readable:
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


# --- the secret's own pages (sevkit.memory.pages): verdict rules per outcome -----------------------
# What each outcome proves, per guest kind. SEV/SEV-ES keep private pages in QEMU's mapping,
# encrypted: the host must read them, as ciphertext. SEV-SNP with guest_memfd keeps them out of every
# host view: zeros (QEMU's shared memfd), 0xFF (ciphertext hiding), not present or a refused read all
# mean the host did not get the data; ciphertext means it saw them encrypted.
SNP_OK = {"zero": "zero-filled", "ones": "0xFF (ciphertext hiding)", "absent": "not in the view",
          "unreadable": "read refused", "ciphertext": "ciphertext"}
# Ciphertext hiding (Turin; KVM "Add SEV-SNP CipherTextHiding support", A. Kalra, 2025, the text of
# kvm-amd.ciphertext_hiding_asids): "Instead of reading ciphertext, the host reads will see constant
# default values (0xff)." So ciphertext at a private page of such a guest is a failure.
CTH_SOURCE = "KVM SEV-SNP CipherTextHiding support (kvm-amd.ciphertext_hiding_asids): host reads see 0xff"


def _gpas(views: list[PageView], outcome: str) -> list[str]:
    return [f"{v.gpa:#x}" for v in views if v.outcome == outcome][:5]


def judge_pages(kind: str, views: dict[str, list[PageView]], evidence: dict[str, Any], *,
                ciphertext_hiding: bool = False) -> tuple[list[str], str]:
    """(failures, what was proven) for the secret's pages in each method's view. With
    ``ciphertext_hiding`` (an SNP guest launched with policy bit 24 on a host that enables it), a page
    read as ciphertext fails, since the host must see 0xFF there (CTH_SOURCE).

    Raises DumpError when a method examined none of them, or (plain) never saw the secret there, or
    (SEV/SEV-ES) could not read a page that must be readable: no verdict is possible then."""
    failures: list[str] = []
    proofs: list[str] = []
    if not any(v.outcome != "not-examined" for vs in views.values() for v in vs):
        raise DumpError(f"{kind}: no method could examine any of the pages that hold the secret "
                        f"({ {m: tally(vs) for m, vs in views.items()} })", evidence=evidence)
    for method, vs in sorted(views.items()):
        seen = [v for v in vs if v.outcome != "not-examined"]
        counts = tally(vs)
        if not seen:
            why = vs[0].detail if vs else "no pages"
            proofs.append(f"{method}: not examined ({why})")
            continue
        n = len(seen)
        before = len(failures)          # this method's own failures decide its proof text
        if kind == "plain":
            hits = counts.get("secret", 0)
            if not hits:
                raise DumpError(f"{CANNOT_SEE}: {method} did not show the secret at any of the {n} pages that hold "
                                f"it in the plain guest ({counts})", evidence=evidence)
            proofs.append(f"{method}: the host read the secret at {hits} of {n} pages that hold it (positive control)")
            continue
        if counts.get("secret"):
            failures.append(f"{kind}: {method} reads the secret in plaintext at {counts['secret']} of its {n} pages "
                            f"(gpa {_gpas(seen, 'secret')})")
        if counts.get("plaintext"):
            failures.append(f"{kind}: {method} reads unencrypted-looking data (entropy < {HIGH_ENTROPY} bits/byte) at "
                            f"{counts['plaintext']} of the secret's {n} pages (gpa {_gpas(seen, 'plaintext')})")
        if kind in ("sev", "sev-es"):
            hidden = {k: v for k, v in counts.items() if k in ("zero", "ones", "absent", "unreadable")}
            if hidden:
                raise DumpError(f"{kind}: {method} does not show {sum(hidden.values())} of the secret's {n} pages "
                                f"as data ({hidden}); they are private memory QEMU maps, so no verdict about them",
                                evidence=evidence)
            if len(failures) == before:
                proofs.append(f"{method}: all {n} pages that hold the secret read as ciphertext-like data, never the "
                              "secret: the host sees them only encrypted")
            continue
        if ciphertext_hiding and counts.get("ciphertext"):
            failures.append(f"{kind} with ciphertext hiding: {method} reads ciphertext at {counts['ciphertext']} of "
                            f"the secret's {n} pages (gpa {_gpas(seen, 'ciphertext')}); the host must read 0xFF "
                            f"there ({CTH_SOURCE})")
        if ciphertext_hiding and len(failures) == before:
            ones = counts.get("ones", 0)
            proofs.append(f"{method}: ciphertext hiding seen at {ones} of {n} pages (0xFF)" if ones else
                          f"{method}: ciphertext hiding not observable in this view: none of the {n} pages reached "
                          "private memory (e.g. guest_memfd keeps them out of QEMU's mappings), and none read "
                          "as ciphertext")
        if len(failures) == before:
            said = ", ".join(f"{SNP_OK[k]} {c}" for k, c in sorted(counts.items()) if k in SNP_OK)
            text = f"{method}: at the {n} pages that hold the secret the host saw {said}; no host view read the secret"
            if not counts.get("ciphertext"):
                text += " (not proven: that those pages are encrypted, since the host never saw their contents)"
            proofs.append(text)
    moved_n = sum(1 for vs in views.values() for v in vs if v.outcome == "not-examined" and "moved" in v.detail)
    if moved_n:
        proofs.append(f"{moved_n} page view(s) not examined: the copy moved in the guest during the reads")
    return failures, "; ".join(proofs)
