"""Runs last in the session (fixtures/guest.py moves it behind every suite that uses the shared
guests): the guest kernel log stayed clean while the suites used it."""

from __future__ import annotations

from sevkit.evidence import ArtifactDir
from sevkit.inguest import kernel_problems
from sevkit.qemu.machine import GuestVM


def test_guest_kernel_log_clean(guest: GuestVM, artifacts: ArtifactDir) -> None:
    """After the guest's tests, its kernel log shows no oops, call trace, panic or ``#VC``
    failure. Spec: sev-facts.md §3.1 and §3.6 (#VC exception lines, sev-guest errors)."""
    via = "ssh" if guest.access.ssh_key else "serial"
    dmesg = guest.run("dmesg", via=via).check()
    artifacts.write_text("dmesg.txt", dmesg.stdout)
    problems = kernel_problems(dmesg.stdout)
    assert not problems, f"{guest.spec.kind} guest kernel log shows problems:\n" + "\n".join(problems[:20])
