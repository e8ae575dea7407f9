"""The capability probe (sevkit/host/capabilities.py): every capability has value + source or says why not.

Inputs are SYNTHETIC (helpers/capsraw.py, exact kernel/QEMU formats) unless a test names its real capture.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.capsraw import VM_DEFAULT, VM_SEV, VM_SNP, err, qmp, snp_status_hex, with_caps
from helpers.hostraw import MILAN, cpuid_from_capture, make_raw, realdata

from sevkit.cli import main
from sevkit.host import RawInputs, write_bundle
from sevkit.host.capabilities import OLD_BUNDLE, decode_snp_status, read
from sevkit.host.collector import KVM_AMD_PARAMS, _qemu_qmp


def test_every_capability_has_value_and_source_or_a_reason() -> None:
    caps = read(with_caps())
    assert len(caps.ids()) == len(set(caps.ids())) >= 25
    for c in caps:
        assert c.source, c.id
        assert c.present or c.absent, c.id
        json.dumps(c.to_json())


def test_healthy_snp_host_decodes_kvm_firmware_and_qemu() -> None:
    raw = with_caps(vm_types=VM_DEFAULT | VM_SEV | VM_SNP, policy_bits=0x1F0000 | 1 << 23, vmsa=0x220,
                    params={"sev": "Y", "sev_es": "Y", "sev_snp": "Y", "ciphertext_hiding_asids": "100"},
                    mitigations=("0x3\n", "0x1\n"), snp_flags=0b1101000,
                    qemu=qmp(sev_caps={"cbitpos": 51, "reduced-phys-bits": 1, "pdh": "AAAA", "cpu0-id": "ey5j"}))
    caps = read(raw)
    assert caps.get("kvm.vm_types").value == {"mask": 0b10101, "types": ["default", "sev", "sev-snp"]}
    pol = caps.get("kvm.snp_policy_bits")
    assert pol.value["bits"] == ["SMT", "RESERVED_MBO", "MIGRATE_MA", "DEBUG", "SINGLE_SOCKET", "RAPL_DIS"]
    assert "KVM_X86_SNP_POLICY_BITS" in pol.source
    assert caps.get("kvm.vmsa_features").value["features"] == ["DebugSwap", "SecureTSC"]
    assert caps.get("kvm_amd.ciphertext_hiding_asids").value == 100
    assert caps.get("firmware.mitigations").value == {"supported": "0x3", "verified": "0x1"}
    fw = caps.get("firmware.ciphertext_hiding")
    assert fw.value == {"capable": 1, "enabled": 1} and "flags bits 5-6" in fw.source
    assert caps.get("firmware.feature_info").value == {"feature_info_supported": 1}
    assert "exports no user interface" in str(caps.get("firmware.feature_info").absent)
    assert caps.get("qemu.sev_capabilities").value == {"cbitpos": 51, "reduced-phys-bits": 1, "pdh": "present",
                                                       "cpu0-id": "present"}
    for prop in ("id-block", "id-auth", "author-key-enabled", "host-data", "kernel-hashes"):
        assert caps.get(f"qemu.sev_snp_guest.{prop}").value is True
    assert "no 'secure-tsc'" in str(caps.get("qemu.sev_snp_guest.secure-tsc").absent)
    assert caps.get("qemu.igvm").value == {"igvm-cfg properties": ["file"], "machine igvm-cfg property": True}


def test_snp_status_struct_layout_from_the_uapi_header() -> None:
    """include/uapi/linux/psp-sev.h: 4 bytes (api_major, api_minor, state, is_rmp_initialized:1), build_id,
    the flags word (mask_chip_id:1 ... ciphertext_hiding_en:1), guest_count, current/reported TCB."""
    d = decode_snp_status(bytes.fromhex(snp_status_hex(api=(1, 58), build=7, flags=1 << 0 | 1 << 2 | 1 << 5)))
    assert d["api"] == "1.58" and d["build"] == 7 and d["is_rmp_initialized"] == 1
    assert d["flags"] == {"mask_chip_id": 1, "mask_chip_key": 0, "vlek_en": 1, "feature_info": 0, "rapl_dis": 0,
                          "ciphertext_hiding_cap": 1, "ciphertext_hiding_en": 0}


def test_intel_host_without_sev_reports_every_absence_honestly() -> None:
    """SYNTHETIC, shaped like this development machine: Intel under Firecracker, /dev/kvm with only the
    default VM type, no /dev/sev, no kvm_amd, QEMU 7.2 (QEMU's own replies as measured here)."""
    raw = with_caps(make_raw(vendor="GenuineIntel", brand="Intel(R) Xeon(R)", max_ext=0x80000008, leaf_1f=None,
                             dev_sev=False, kvm_module=False, qemu_version="7.2.22"),
                    vm_types=VM_DEFAULT, policy_bits=err(errno.ENXIO), params={},
                    qemu=qmp(sev_caps=None, snp_props=None, igvm=False))
    caps = read(raw)
    assert caps.get("kvm.vm_types").value == {"mask": 1, "types": ["default"]}
    assert "ENXIO" in str(caps.get("kvm.snp_policy_bits").absent)
    assert "/dev/sev does not exist" in str(caps.get("firmware.snp_status").absent)
    assert "kvm_amd is not loaded" in str(caps.get("kvm_amd.ciphertext_hiding_asids").absent)
    assert "not implemented" in str(caps.get("cpuid.secure_tsc").absent)
    assert "SEV is not enabled in KVM" in str(caps.get("qemu.sev_capabilities").absent)
    assert "Class 'sev-snp-guest' not found" in str(caps.get("qemu.sev_snp_guest.host-data").absent)
    assert "igvm-cfg' not found" in str(caps.get("qemu.igvm").absent)
    assert not any(c.unreadable for c in caps)


def test_bundle_from_an_older_sevkit_is_unreadable_not_absent() -> None:
    caps = read(make_raw())   # no capabilities section
    c = caps.get("kvm.vm_types")
    assert c.absent == OLD_BUNDLE and c.unreadable


def test_root_only_mitigation_files_are_an_access_error() -> None:
    caps = read(with_caps(mitigations=err(errno.EACCES)))
    c = caps.get("firmware.mitigations")
    assert c.unreadable and "root only" in str(c.absent)


def test_kvm_amd_params_real_capture_genoa_6_9_has_no_ciphertext_hiding() -> None:
    """REAL capture: hb-os Genoa host, kernel 6.9.0-rc7-snp-host, `cat .../{sev,sev_es,sev_snp}` = Y Y Y
    (tests/data/realdata/other). The kernel predates ciphertext_hiding_asids (6.18)."""
    vals = [ln.strip() for ln in realdata("other/hb-os_genoa-dell-r6615_kvm_amd-params_sev-sev_es-sev_snp_output.txt")
            .splitlines() if ln.strip() in ("Y", "N")]
    params = dict(zip(("sev", "sev_es", "sev_snp"), vals, strict=True))
    caps = read(with_caps(params=params))
    assert caps.get("kvm_amd.params").value == {"sev": "Y", "sev_es": "Y", "sev_snp": "Y"}
    assert "no such parameter" in str(caps.get("kvm_amd.ciphertext_hiding_asids").absent)
    assert caps.get("kvm_amd.params").source == KVM_AMD_PARAMS + "/*"


def test_cpuid_bits_real_capture_milan_7313() -> None:
    """REAL capture: `cpuid -1 -r -l 0x8000001f` on an EPYC 7313 (AMDESE/AMDSEV#197): EAX=0x0101fd3f.
    The CPU sets bit 8 (SecureTsc) and bit 14 (DebugSwap) and not bit 23 (SegmentedRmp); whether KVM offers
    Secure TSC is KVM's VMSA-features attribute (snphost's hint says EPYC 9004+), so the probe keeps both."""
    regs = cpuid_from_capture(realdata("cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_cpuid-1-r-l-0x8000001f.txt"),
                              0x8000001F)
    caps = read(with_caps(make_raw(eax1=MILAN, leaf_1f=regs)))
    assert (caps.get("cpuid.secure_tsc").value, caps.get("cpuid.debug_swap").value,
            caps.get("cpuid.segmented_rmp").value) == (1, 1, 0)
    assert caps.get("cpuid.asids").value == {"max_guests": 253, "min_sev_asid": 15, "sev_es_snp_asids": 14}


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no qemu-system-x86_64 installed")
def test_collector_qmp_against_the_installed_qemu() -> None:
    """The stdlib QMP exchange with the real QEMU here: sev-snp-guest exists exactly from QEMU 9.1 on."""
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    ver = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", ver)
    assert m
    res = _qemu_qmp(qemu)
    assert [a["command"]["execute"] for a in res["answers"]][:3] == ["qmp_capabilities", "query-kvm",
                                                                     "query-sev-capabilities"]
    raw = with_caps(qemu=res)
    snp = read(raw).get("qemu.sev_snp_guest")
    assert snp.present == ((int(m.group(1)), int(m.group(2))) >= (9, 1)), snp


def test_probe_json_lists_capabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(with_caps(), tmp_path / "b.tar.gz")
    assert main(["probe", "--bundle", str(bundle), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    ids = {c["id"]: c for c in out["capabilities"]}
    assert ids["kvm.vm_types"]["value"]["types"] == ["default", "sev", "sev-es", "sev-snp"]
    assert all(c["present"] or c["absent"] for c in out["capabilities"])
    assert main(["probe", "--bundle", str(bundle)]) == 0
    assert "capabilities (what the platform, kernel and QEMU offer):" in capsys.readouterr().out


def test_raw_inputs_keep_the_capabilities_through_a_bundle(tmp_path: Path) -> None:
    from sevkit.host import read_bundle
    raw = with_caps()
    again = read_bundle(write_bundle(raw, tmp_path / "x.tar.gz"))
    assert isinstance(again, RawInputs)
    assert read(again).to_json() == read(raw).to_json()


def test_qemu_sev_capabilities_values_from_real_turin_domcapabilities() -> None:
    """REAL values: libvirt domcapabilities of an OpenNebula Turin host (tests/data/realdata/qmp), which libvirt
    takes from QMP query-sev-capabilities (cbitpos, reduced-phys-bits, cpu0-id); the QMP reply wrapping them is
    SYNTHETIC. maxGuests/maxESGuests are libvirt's own CPUID arithmetic, not QMP, so they are not used here."""
    xml = realdata("qmp/opennebula_turin-sm23_virsh-domcapabilities_sev.xml.txt")

    def tag(name: str) -> str:
        m = re.search(rf"<{name}>([^<]+)</{name}>", xml)
        assert m, name
        return m.group(1)
    reply = {"cbitpos": int(tag("cbitpos")), "reduced-phys-bits": int(tag("reducedPhysBits")),
             "cpu0-id": tag("cpu0Id"), "pdh": "...", "cert-chain": "..."}
    c = read(with_caps(qemu=qmp(sev_caps=reply))).get("qemu.sev_capabilities")
    assert c.value == {"cbitpos": 51, "reduced-phys-bits": 1, "cpu0-id": "present", "pdh": "present",
                       "cert-chain": "present"}
    assert c.source == "QMP query-sev-capabilities (qemu -machine none)"
