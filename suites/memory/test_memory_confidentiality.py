"""Memory confidentiality seen from the host: a secret held in a confidential guest's private memory
must not be readable in the clear, and the guest's registers must not be readable under SEV-ES/SNP.

Every "not found" is backed by the positive control (``memory_control``): the same plant, dump
method and scanner on a plain guest must find the secret, or these tests ERROR.
(sev-facts.md §8.7; AMD SEV whitepaper "memory encryption"; SNP ABI 56860 §1 on VMSA protection.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fixtures.memory import MemoryProbe, summary
from sevkit.evidence import ArtifactDir
from sevkit.memory.judge import CANNOT_SEE, judge_confidential, judge_pages, judge_registers
from sevkit.qemu.machine import GuestVM


def test_secret_not_readable_from_host(guest: GuestVM, memory_control: dict[str, Any], dump_method: str,
                                       memory_probe: Callable[[GuestVM], MemoryProbe],
                                       artifacts: ArtifactDir) -> None:
    """A secret derived inside the guest and held in its private memory (mlock'ed anonymous pages
    and tmpfs page cache) is not found in the host's view of guest memory. The guest reports the
    guest-physical pages that hold its copies, and the host examines exactly those pages through
    procmem, dump-guest-memory (ELF) and pmemsave:
    plain: the secret is there (the positive control); SEV/SEV-ES: the pages are readable, look like
    ciphertext and never show the secret; SEV-SNP: per page, what the host saw (zero-filled, 0xFF,
    not in the view, read refused, ciphertext) and never the secret; the evidence's "proven" says
    what that shows ("no host view read the secret" is not "the pages are encrypted").
    The never-planted control needle is found nowhere.
    Spec: sev-facts.md §8.7 (SEV/SEV-ES: ciphertext; SEV-SNP with guest_memfd: not mapped)."""
    kind = guest.spec.kind
    if kind == "plain":
        artifacts.write_json("memory-scan.json", memory_control)
        assert memory_control["needle_hits"] >= 1, CANNOT_SEE
        assert memory_control["control_hits"] == 0
        assert memory_control["proven"], "the positive control examined no page of the secret"
        return
    probe = memory_probe(guest)
    planted, ms = probe.plant_and_scan(dump_method)
    evidence = summary(planted, ms, role=f"{kind} guest", positive_control=memory_control["scan"]["method"])
    failures = judge_confidential(kind, ms, planted.secret.needle, planted.secret.control, evidence)
    page_failures, evidence["proven"] = judge_pages(kind, ms.page_views, evidence)
    artifacts.write_json("memory-scan.json", evidence)
    failures += page_failures
    assert not failures, "; ".join(failures)


def test_register_state_visibility(guest: GuestVM, memory_probe: Callable[[GuestVM], MemoryProbe],
                                   artifacts: ArtifactDir) -> None:
    """The host reads live vCPU registers of a plain guest (the positive control) and of an SEV
    guest (by design: SEV does not protect register state), but not of SEV-ES or SEV-SNP guests,
    whose state lives in the encrypted VMSA. Spec: sev-facts.md §8.7 [D]; SNP ABI 56860 (VMSA)."""
    kind = guest.spec.kind
    view = memory_probe(guest).registers()
    evidence = {"kind": kind, **view.to_json()}
    if kind == "sev":
        evidence["note"] = "SEV without ES: register state is not protected, as the design intends"
    artifacts.write_json("registers.json", evidence)
    failures = judge_registers(kind, view, evidence)
    assert not failures, "; ".join(failures)
