"""GuestPlanner: (kind, host facts, image, settings) -> a launchable spec or the blockers with evidence.

Host facts come from the real grading pipeline over SYNTHETIC collector data (unit/hostraw.py);
the planner's seams replace what would start a QEMU (query-sev-capabilities) or look at this
machine's devices. No pytest fixture beyond tmp_path, no monkeypatching.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers.hostraw import make_raw, ovmf_image

from sevkit.guests import GuestBlocked, GuestPlanner, GuestSettings
from sevkit.guests.firmware import choose_firmware
from sevkit.host import HostReport, grade
from sevkit.image import GuestImage
from sevkit.qemu.caps import SevCapabilities
from sevkit.qemu.offers import probe_qemu
from sevkit.vocab import GuestKind

REAL_QEMU = "/usr/bin/qemu-system-x86_64"   # Debian 12's QEMU 7.2: sev-guest, no sev-snp-guest


def image(tmp: Path, *, kernel: bool = True) -> GuestImage:
    """SYNTHETIC image paths (nothing boots them)."""
    return GuestImage(root=tmp, disk=tmp / "disk.qcow2", kernel=tmp / "vmlinuz" if kernel else None,  # type: ignore[arg-type]
                      initrd=tmp / "initrd.img" if kernel else None, append="console=ttyS0" if kernel else "",  # type: ignore[arg-type]
                      credentials="none")


def planner(host: HostReport, tmp: Path, caps_calls: list[str] | None = None, devices: bool = True,
            **settings: Any) -> GuestPlanner:
    def caps(binary: str, timeout: float) -> SevCapabilities:
        (caps_calls if caps_calls is not None else []).append(binary)
        return SevCapabilities(cbitpos=51, reduced_phys_bits=1, raw={})
    return GuestPlanner(host, GuestSettings(**{"accel": "kvm", **settings}), image=lambda: image(tmp),
                        sev_caps=caps, devices_exist=lambda _path: devices)


def test_healthy_snp_host_plans_every_kind(tmp_path: Path) -> None:
    host = grade(make_raw())
    calls: list[str] = []
    p = planner(host, tmp_path, calls)
    snp = p.plan("sev-snp")
    assert snp.launchable and snp.spec is not None and not snp.blockers
    assert snp.spec.firmware.kind == "bios" and str(snp.spec.firmware.image) == "/usr/share/OVMF/OVMF.amdsev.fd"
    assert snp.spec.kernel_hashes and snp.measured_boot is not None and snp.measured_boot.source == "host probe"
    assert snp.spec.cbitpos == 51 and snp.spec.append == "console=ttyS0 panic=-1"
    assert calls == [REAL_QEMU]                       # query-sev-capabilities once, for the confidential kind
    plain = p.plan(GuestKind.PLAIN)
    assert plain.launchable and plain.spec is not None and plain.spec.kind == "plain" and calls == [REAL_QEMU]


def test_blockers_carry_their_evidence_and_nothing_is_started(tmp_path: Path) -> None:
    host = grade(make_raw(vendor="GenuineIntel", qemu_objects=("sev-guest",), ovmf=()))
    calls: list[str] = []
    loaded: list[int] = []
    p = GuestPlanner(host, GuestSettings(accel="tcg"), image=lambda: loaded.append(1) or image(tmp_path),  # type: ignore[func-returns-value]
                     sev_caps=lambda b, t: calls.append(b) or SevCapabilities(0, 0, {}))  # type: ignore[func-returns-value]
    plan = p.plan("sev-snp")
    assert not plan.launchable and plan.spec is None
    reasons = [b.reason for b in plan.blockers]
    assert any("GenuineIntel" in r for r in reasons)
    assert any("has no sev-snp-guest object" in r for r in reasons)
    assert any("TCG cannot run confidential guests" in r for r in reasons)
    assert any("no OVMF image for -bios" in r for r in reasons)
    assert plan.reason.startswith("sev-snp guest cannot run on this host: ")
    assert calls == [] and loaded == []               # no QEMU asked, no image built for a blocked kind
    qemu_blocker = next(b for b in plan.blockers if "sev-snp-guest" in b.reason)
    assert qemu_blocker.evidence["objects"] == ["sev-guest"]


def test_missing_devices_block_only_when_nothing_else_does(tmp_path: Path) -> None:
    plan = planner(pflash_host(), tmp_path, devices=False).plan("sev")
    assert [b.reason for b in plan.blockers] == [
        "/dev/kvm and /dev/sev absent on this machine; QEMU cannot start a confidential guest without them"]


# -- issue 9 §8: what the binary offers decides, not its version ---------------------------------
def fake_qemu(folder: Path, version: str, objects: tuple[str, ...]) -> Path:
    """SYNTHETIC stand-in for a distribution QEMU: answers --version, -object help, -object X,help."""
    script = folder / "qemu-system-x86_64"
    listing = "".join(f"  {o}\\n" for o in objects)
    script.write_text("#!/bin/sh\n"
                      f'case "$*" in\n'
                      f'  --version) printf "QEMU emulator version {version} (Distro backport)\\n";;\n'
                      f'  "-object help") printf "List of user creatable objects:\\n{listing}";;\n'
                      '  "-object sev-snp-guest,help") printf "sev-snp-guest options:\\n'
                      '  kernel-hashes=<bool>   - add kernel hashes\\n  policy=<uint64>\\n";;\n'
                      '  "-object sev-guest,help") printf "sev-guest options:\\n  cbitpos=<uint32>\\n";;\n'
                      '  *) echo "unexpected: $*" >&2; exit 1;;\nesac\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_backported_sev_snp_guest_on_8_2_is_not_refused(tmp_path: Path) -> None:
    binary = fake_qemu(tmp_path, "8.2.2", ("sev-guest", "sev-snp-guest", "memory-backend-memfd"))
    offers = probe_qemu(str(binary))
    assert offers.version == (8, 2, 2) and offers.has("sev-snp-guest")
    assert "kernel-hashes" in offers.properties_of("sev-snp-guest")
    host = grade(make_raw(qemu_version=None))        # the probe found no QEMU; the lab names one
    plan = planner(host, tmp_path, qemu=str(binary)).plan("sev-snp")
    assert plan.launchable, plan.reason
    assert plan.spec is not None and plan.spec.qemu_version == (8, 2, 2) and plan.spec.qemu_binary == str(binary)
    # the same facts from the host probe (a backport seen by `sevkit probe`)
    host82 = grade(make_raw(qemu_version="8.2.2"))
    assert planner(host82, tmp_path).plan("sev-snp").launchable


def test_real_qemu_7_2_has_no_sev_snp_guest(tmp_path: Path) -> None:
    if not os.access(REAL_QEMU, os.X_OK):
        pytest.fail(f"{REAL_QEMU} missing: install Debian's qemu-system-x86 (scripts/host-deps.sh)")
    offers = probe_qemu(REAL_QEMU)
    assert offers.has("sev-guest") and not offers.has("sev-snp-guest")
    assert "kernel-hashes" in offers.properties_of("sev-guest")
    plan = planner(grade(make_raw(qemu_version=None)), tmp_path, qemu=REAL_QEMU).plan("sev-snp")
    assert [b.reason for b in plan.blockers] == [
        f"QEMU {offers.version_label} ({REAL_QEMU}) has no sev-snp-guest object (-object help)"]
    assert planner(pflash_host(qemu_version=None), tmp_path, qemu=REAL_QEMU).plan("sev").launchable


# -- issue 9 §9: pflash firmware for SEV and SEV-ES by content -----------------------------------
def pflash_host(**raw: Any) -> HostReport:
    """SYNTHETIC images: a CODE without the SEV-ES reset block at a distribution path, one with it
    at an unusual path, and a VARS template for each flash layout (2 MiB and 4 MiB)."""
    return grade(make_raw(ovmf=(
        dict(ovmf_image("/usr/share/OVMF/OVMF_CODE_4M.fd", combined=False, sev_es=False, snp=False), size=3653632),
        dict(ovmf_image("/opt/lab/fw/code-es.bin", combined=False), size=1966080),
        dict(ovmf_image("/usr/share/OVMF/OVMF_VARS_4M.fd", table=False), size=540672),
        dict(ovmf_image("/opt/lab/fw/vars-2m.bin", table=False), size=131072)), **raw))


def test_sev_es_pflash_is_chosen_by_content_not_by_path(tmp_path: Path) -> None:
    host = pflash_host()
    es = planner(host, tmp_path).plan("sev-es")
    assert es.launchable and es.spec is not None, es.reason
    assert (str(es.spec.firmware.code), str(es.spec.firmware.vars_template)) == (
        "/opt/lab/fw/code-es.bin", "/opt/lab/fw/vars-2m.bin")     # the pair that fills one 2 MiB flash
    sev = planner(host, tmp_path).plan("sev")
    assert sev.spec is not None and str(sev.spec.firmware.code) == "/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert str(sev.spec.firmware.vars_template) == "/usr/share/OVMF/OVMF_VARS_4M.fd"


def test_lab_code_without_what_the_kind_needs_is_a_blocker(tmp_path: Path) -> None:
    host = pflash_host()
    plan = planner(host, tmp_path, ovmf_code="/usr/share/OVMF/OVMF_CODE_4M.fd",
                   ovmf_vars="/usr/share/OVMF/OVMF_VARS_4M.fd").plan("sev-es")
    assert [b.reason for b in plan.blockers] == [
        "--sev-ovmf-code /usr/share/OVMF/OVMF_CODE_4M.fd lacks the SEV-ES reset block in its GUID table: "
        "/usr/share/OVMF/OVMF_CODE_4M.fd [code]: kernel-hashes"]
    none = choose_firmware(GuestKind.SEV_ES, images=grade(make_raw(ovmf=())).ovmf_images)
    assert none.firmware is None and "no OVMF pflash CODE with the SEV-ES reset block" in none.why


def test_blocked_spec_raises_with_the_blockers(tmp_path: Path) -> None:
    from sevkit.evidence import ArtifactDir
    from sevkit.guests import GuestPool
    p = planner(grade(make_raw(vendor="GenuineIntel")), tmp_path)
    pool = GuestPool(p, run_root=tmp_path, evidence=lambda n: ArtifactDir(tmp_path / n))
    with pytest.raises(GuestBlocked, match="sev guest cannot run on this host") as info:
        pool.get("sev")
    assert info.value.evidence["kind"] == "sev" and info.value.evidence["blockers"]


def test_fw_cfg_image_gets_its_access_from_the_run_credentials(tmp_path: Path) -> None:
    """One way from credentials to GuestAccess (GuestAccess.from_credentials): serial password, client
    key, the per-run host key pinned; the same run's files go to the guest through fw_cfg."""
    from dataclasses import replace

    from sevkit.guests.plan import LazyCredentials
    creds = LazyCredentials(tmp_path / "cred")
    p = GuestPlanner(grade(make_raw()), GuestSettings(accel="tcg"),
                     image=lambda: replace(image(tmp_path), credentials="fw_cfg"), credentials=creds)
    plan = p.plan("plain")
    c = creds()
    assert plan.spec is not None and plan.spec.fw_cfg == tuple(c.fw_cfg)
    assert plan.access.password == c.root_password and plan.access.ssh_key == c.private_key_path
    assert plan.access.host_keys == (tuple(c.known_host_key.split()[:2]),)
    creds.discard()
    assert not (tmp_path / "cred").exists()
