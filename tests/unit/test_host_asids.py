"""ASID splits that leave one guest kind without ASIDs (issue 9 §7).

Upstream facts, arch/x86/kvm/svm/sev.c sev_hardware_setup():
- plain SEV guests use ASIDs min_sev_asid (CPUID Fn8000_001F EDX) .. max_sev_asid (ECX); SEV-ES and
  SEV-SNP guests use 1 .. min_sev_asid - 1;
- "Has the system been allocated ASIDs for SEV-ES?  if (min_sev_asid == 1) goto out" -> SEV-ES/SNP disabled;
- min_sev_asid > max_sev_asid -> pr_info("SEV %s (ASIDs %u - %u)") prints "unusable" (6.5+; 5.11-6.4 print
  "SEV supported: %u ASIDs" with max - min + 1 = 0), and no plain SEV guest can get an ASID.

amdsev-84 is a REAL capture (min SEV ASID 1: 509 SEV ASIDs, none for SEV-ES). The registers next to it
and the "unusable" host are SYNTHETIC, built from the kernel's format strings.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.hostraw import make_raw, realdata

from sevkit.host import grade
from sevkit.vocab import GuestKind

EAX = 0x0101FD3F                     # SYNTHETIC Genoa-like Fn8000_001F EAX (SEV, SEV-ES, SNP)
EBX = 51 | 6 << 6 | 4 << 12


def _all_to_es(dmesg: str = "") -> Any:
    """SYNTHETIC: 1006 ASIDs, min SEV ASID 1007: every ASID belongs to SEV-ES/SNP."""
    return grade(make_raw(leaf_1f=(EAX, EBX, 1006, 1007), dmesg=dmesg))


def test_no_plain_sev_asids_makes_sev_unusable_but_not_es_or_snp() -> None:
    r = _all_to_es()
    c = r.check("asid.sev_plain")
    assert c.status == "fail" and "no ASIDs left for plain SEV guests" in c.message
    assert "SEV-ES ASID Space Limit" in (c.hint or "")
    assert r.features["SEV"] is False
    assert r.features["SEV-ES"] is True and r.features["SEV-SNP"] is True
    assert "asid.sev_plain" in r.why_not("SEV")
    assert "SEV-ES ASID Space Limit" in r.hint_for("SEV")
    assert all(b.id != "asid.sev_plain" for b in r.blockers("SEV-SNP"))
    assert r.check("cpuid.min_sev_asid").status == "pass"
    assert r.to_json()["checks"][[x["id"] for x in r.to_json()["checks"]].index("asid.sev_plain")]["chained"] is False


def test_kernel_unusable_line_is_evidence_too() -> None:
    # The 6.5+ line for min_sev_asid 1007 > max 1006, as sev_hardware_setup() formats it.
    log = ("[    5.1] kvm_amd: SEV unusable (ASIDs 1007 - 1006)\n"
           "[    5.1] kvm_amd: SEV-ES enabled (ASIDs 1 - 1006)\n"
           "[    5.1] kvm_amd: SEV-SNP enabled (ASIDs 1 - 1006)\n")
    c = _all_to_es(log).check("asid.sev_plain")
    assert c.status == "fail"
    assert any("SEV unusable (ASIDs 1007 - 1006)" in str(e.value) for e in c.evidence)
    # kvm_amd's line alone (CPUID would leave ASIDs) also decides: 5.11-6.4 format, count 0
    r = grade(make_raw(dmesg="[    5.1] SEV supported: 0 ASIDs\n[    5.1] SEV-ES supported: 99 ASIDs\n"))
    assert r.check("asid.sev_plain").status == "fail" and "kvm_amd's log line" in r.check("asid.sev_plain").message
    assert r.features["SEV"] is False


def test_real_capture_min_asid_one_keeps_sev_and_blocks_es() -> None:
    # amdsev-84 (REAL): "SEV supported: 509 ASIDs", no SEV-ES line; registers SYNTHETIC to match (509, min 1).
    r = grade(make_raw(leaf_1f=(EAX, EBX, 509, 1),
                       dmesg=realdata("dmesg-host/amdsev-84_dell-r7515_5.14.0-rc2-snp-host_snp-api-1.51_sev-509"
                                      "_params-Y-N-N.txt")))
    assert r.check("asid.sev_plain").status == "pass" and "509 ASIDs for plain SEV" in r.check("asid.sev_plain").message
    assert r.check("cpuid.min_sev_asid").status == "fail"
    assert r.features["SEV-ES"] is False and r.features["SEV-SNP"] is False


def _pool(host: Any, profile: str) -> Any:
    """The suite's view of a pool on the graded host (QEMU with both objects, KVM, pflash and -bios
    firmware by content, devices present): only the host's own blockers can stop a kind. No guest
    is booted: planning stops at the blockers, and the image is never needed for them."""
    import dataclasses

    from helpers.hostraw import ovmf_image

    from fixtures.guest import SuiteGuests
    from sevkit.guests import GuestPlanner, GuestPool, GuestSettings
    from sevkit.host.ovmf import inspect
    from sevkit.vocab import Profile

    pflash = (inspect(dict(ovmf_image("/usr/share/OVMF/OVMF_CODE_4M.fd", combined=False), size=3653632)),
              inspect(dict(ovmf_image("/usr/share/OVMF/OVMF_VARS_4M.fd", table=False), size=540672)))
    host = dataclasses.replace(host, ovmf_images=(*host.ovmf_images, *pflash))
    planner = GuestPlanner(host, GuestSettings(accel="auto"), devices_exist=lambda _p: True)
    pool = GuestPool(planner, run_root=Path("/nonexistent"), evidence=lambda n: None)  # type: ignore[arg-type,return-value]
    expect = Profile(profile)
    settings = SimpleNamespace(expect=expect, demands=lambda f: f is not None and f in expect.features)
    guests = SuiteGuests(pool, settings)  # type: ignore[arg-type]
    guests.accel = planner.accel  # type: ignore[attr-defined]
    guests.blockers = lambda kind: [b.reason for b in planner.blockers(GuestKind(kind))]  # type: ignore[attr-defined]
    return guests


def test_sev_guest_kind_is_skipped_or_failed_by_profile() -> None:
    from fixtures.host import FeatureMissing
    host = _all_to_es()
    pool = _pool(host, "none")
    assert pool.accel() == "kvm"                      # SEV-ES/SNP still run under KVM
    with pytest.raises(pytest.skip.Exception, match="sev guest cannot run on this host: no ASIDs left for plain SEV"):
        pool.require("sev")
    assert pool.blockers("sev-snp") == [] and pool.blockers("sev-es") == []
    with pytest.raises(FeatureMissing, match=r"--sev-expect sev requires SEV: .*no ASIDs left for plain SEV"):
        _pool(host, "sev").require("sev")
