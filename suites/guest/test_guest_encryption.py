"""Inside each guest, over the serial console and, separately, over SSH: does the guest see the
memory encryption its type promises, and nothing more? (sev-facts.md §2.3, §3.1, §4, §11.3)"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sevkit.evidence import ArtifactDir
from sevkit.image import version_tuple
from sevkit.inguest import (
    EXPECTED_CPUID_EAX,
    EXPECTED_FEATURES,
    EXPECTED_STATUS_LOW3,
    GuestProbe,
    encryption_banner,
    read_dmesg,
    run_probe,
)
from sevkit.qemu.machine import GuestVM
from sevkit.results import Shell

TSM_MIN_KERNEL = (6, 7)
_PROBES: dict[tuple[str, str], GuestProbe] = {}


def _transport(shell: Any) -> str:
    return str(shell.via)


@pytest.fixture
def probe(guest: GuestVM, guest_shell: Shell, artifacts: ArtifactDir) -> GuestProbe:
    """The in-guest probe (SEV_STATUS, CPUID, devices), run once per guest and transport."""
    key = (guest.spec.kind, _transport(guest_shell))
    if key not in _PROBES:
        _PROBES[key] = run_probe(guest_shell, timeout=guest.timeouts.command)
    result = _PROBES[key]
    artifacts.write_json("probe.json", {"transport": key[1], **result.raw})
    return result


def test_memory_encryption_banner(guest: GuestVM, guest_shell: Shell, artifacts: ArtifactDir) -> None:
    """The guest kernel announces exactly the features of its type on the
    ``Memory Encryption Features active:`` line; a plain guest announces none.
    Spec: sev-facts.md §3.1 (Linux print_mem_encrypt_feature_info), §11.3."""
    kind = guest.spec.kind
    dmesg = read_dmesg(guest_shell, timeout=guest.timeouts.command)
    artifacts.write_text("dmesg.txt", dmesg.stdout)
    banner = encryption_banner(dmesg.stdout)
    artifacts.write_json("banner.json", {"line": banner.line, "features": sorted(banner.features)})
    if kind == "plain":
        assert not banner.present, f"plain guest claims memory encryption: {banner.line!r}"
        return
    assert banner.present, f"{kind} guest kernel log has no 'Memory Encryption Features active' line"
    assert banner.features == EXPECTED_FEATURES[kind], (
        f"{kind} guest announces {sorted(banner.features)}, expected {sorted(EXPECTED_FEATURES[kind])}: "
        f"{banner.line!r}")


def test_sev_status_msr(guest: GuestVM, probe: GuestProbe, artifacts: ArtifactDir) -> None:
    """SEV_STATUS (MSR 0xC0010131) bits 0-2 (SEV, SEV-ES, SEV-SNP) match the guest type.
    Spec: sev-facts.md §2.3 (bit layout), §11.3 (expected values per type)."""
    kind = guest.spec.kind
    if probe.sev_status is None:
        # An SEV guest kernel reads this MSR itself during boot: unreadable means broken.
        assert kind == "plain", f"{kind} guest cannot read SEV_STATUS: {probe.msr_error}"
        # A plain guest's vCPU may not implement the MSR at all (rdmsr faults): then there is
        # no measurement, so no verdict; CPUID is judged by test_cpuid_8000001f, not here.
        reason = (f"plain guest: SEV_STATUS (MSR 0xC0010131) unreadable ({probe.msr_error}); no measurement. "
                  f"CPUID Fn8000_001F EAX SEV bits = {probe.cpuid_eax_sev_bits} (judged by test_cpuid_8000001f)")
        artifacts.write_text("verdict.txt", reason + "\n")
        pytest.skip(reason)
    artifacts.write_text("verdict.txt", f"SEV_STATUS = {probe.sev_status:#x}\n")
    want = EXPECTED_STATUS_LOW3[kind]
    assert probe.status_low3 == want, (
        f"{kind} guest SEV_STATUS = {probe.sev_status:#x}: bits 0-2 are {probe.status_low3:#05b}, expected {want:#05b}")


def test_cpuid_8000001f(guest: GuestVM, probe: GuestProbe, artifacts: ArtifactDir) -> None:
    """Guest CPUID Fn8000_001F EAX shows SEV (bit 1), SEV-ES (bit 3) and SEV-SNP (bit 4) exactly
    as its type; EBX[5:0] is the C-bit position QEMU was given.
    Spec: AMD APM vol. 3 CPUID Fn8000_001F; sev-facts.md §1, §11.3."""
    kind = guest.spec.kind
    if probe.cpuid_eax_sev_bits is None:
        pytest.fail(f"guest could not read CPUID through /dev/cpu/0/cpuid: {probe.cpuid_error}")
    leaf = probe.cpuid_8000001f
    artifacts.write_text("cpuid.txt", f"Fn8000_001F absent (max extended leaf {probe.cpuid_max_ext or 0:#x})\n"
                         if leaf is None else "Fn8000_001F EAX EBX ECX EDX: "
                         + " ".join(f"{r:#010x}" for r in leaf) + "\n")
    assert probe.cpuid_eax_sev_bits == EXPECTED_CPUID_EAX[kind], (
        f"{kind} guest CPUID Fn8000_001F EAX SEV bits = {probe.cpuid_eax_sev_bits:#x}, "
        f"expected {EXPECTED_CPUID_EAX[kind]:#x}")
    if kind != "plain":
        assert probe.cbitpos == guest.spec.cbitpos, (
            f"guest C-bit position {probe.cbitpos} differs from QEMU's cbitpos={guest.spec.cbitpos}")


def test_sev_guest_device(guest: GuestVM, probe: GuestProbe) -> None:
    """``/dev/sev-guest`` (the SNP attestation device) exists in SEV-SNP guests and only there.
    Spec: sev-facts.md §4.2 (the platform device is registered only when SEV_STATUS shows SNP)."""
    kind = guest.spec.kind
    if kind == "sev-snp":
        assert probe.sev_guest_dev, "SEV-SNP guest has no /dev/sev-guest (sev-guest driver missing?)"
    else:
        assert not probe.sev_guest_dev, f"{kind} guest has /dev/sev-guest, which only SNP guests have"


def test_configfs_tsm(guest: GuestVM, probe: GuestProbe, artifacts: ArtifactDir) -> None:
    """An SEV-SNP guest on Linux >= 6.7 offers configfs-tsm reports with provider ``sev_guest``;
    other guests offer no ``sev_guest`` provider. Spec: sev-facts.md §4.3 (Documentation/ABI configfs-tsm)."""
    kind = guest.spec.kind
    artifacts.write_json("tsm.json", {k: probe.raw.get(k) for k in ("tsm_report_dir", "tsm_provider", "tsm_error",
                                                                   "kernel")})
    if kind != "sev-snp":
        assert probe.tsm_provider != "sev_guest", f"{kind} guest offers an SNP (sev_guest) TSM report provider"
        return
    if version_tuple(probe.kernel) < TSM_MIN_KERNEL:
        pytest.skip(f"guest kernel {probe.kernel} predates configfs-tsm (Linux 6.7)")
    assert probe.tsm_report_dir, "SNP guest kernel >= 6.7 has no /sys/kernel/config/tsm/report"
    assert probe.tsm_provider == "sev_guest", (
        f"configfs-tsm provider is {probe.tsm_provider!r} ({probe.raw.get('tsm_error')}), expected sev_guest")


def test_same_answer_over_both_transports(guest: GuestVM, artifacts: ArtifactDir) -> None:
    """The serial console and SSH give the same result for the same command (output and exit
    status), so every in-guest verdict is independent of the transport.

    Requirement: sevkit issue 3, "The same command gives the same result over both"; the serial
    path follows the labgrid ShellDriver split-marker protocol (style.md lesson 7)."""
    cmd = "uname -r; cat /proc/sys/kernel/osrelease; ls / >/dev/null; exit 7"
    serial = guest.run(cmd, via="serial")
    ssh = guest.run(cmd, via="ssh")
    artifacts.write_text("both.json", json.dumps({"serial": serial.stdout, "ssh": ssh.stdout,
                                                  "serial_rc": serial.exit_status, "ssh_rc": ssh.exit_status}))
    assert (serial.stdout, serial.exit_status) == (ssh.stdout, ssh.exit_status)
    assert serial.exit_status == 7
