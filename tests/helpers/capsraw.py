"""Builders of the collector's ``capabilities`` section for capability/applicability self-tests.

SYNTHETIC: everything here is assembled from explicit values in the exact formats of the sources:
* KVM_CAP_VM_TYPES: a bitmask of 1 << KVM_X86_*_VM (include/uapi/linux/kvm.h, arch/x86/kvm/x86.c);
* /sys/firmware/sev/vulnerabilities/*_mitigations: ``sysfs_emit(buf, "0x%llx\\n", ...)`` (drivers/crypto/ccp/sev-dev.c);
* kvm_amd parameters: one file per parameter, bool ``Y``/``N``, uint in decimal (arch/x86/kvm/svm/sev.c);
* QMP replies shaped as QEMU sends them ({"return": ...} / {"error": {"class", "desc"}}).
No real SEV-SNP host capture of these interfaces exists in tests/data/realdata (they are newer than
every capture there); tests that use real captures say so.
"""

from __future__ import annotations

import copy
import errno
import struct
from typing import Any

from helpers.hostraw import make_raw
from sevkit.host import RawInputs
from sevkit.host.collector import KVM_AMD_PARAMS, QMP_SCRIPT

VM_DEFAULT, VM_SEV, VM_SEV_ES, VM_SNP = 1 << 0, 1 << 2, 1 << 3, 1 << 4
SNP_PROPS = ("type", "sev-device", "cbitpos", "reduced-phys-bits", "kernel-hashes", "policy",
             "guest-visible-workarounds", "id-block", "id-auth", "author-key-enabled", "host-data", "vcek-disabled")


def err(code: int) -> dict[str, Any]:
    return {"error": f"OSError: [Errno {code}] {errno.errorcode[code]}", "errno": code,
            "errname": errno.errorcode[code]}


def snp_status_hex(*, api: tuple[int, int] = (1, 55), build: int = 38, flags: int = 0, rmp: int = 1,
                   tcb: int = 0) -> str:
    """struct sev_user_data_snp_status (include/uapi/linux/psp-sev.h), packed, 32 bytes."""
    return struct.pack("<BBBBIIIQQ", api[0], api[1], 1, rmp, build, flags, 0, tcb, tcb).hex()


def qmp(*, sev_caps: dict[str, Any] | None = None, snp_props: tuple[str, ...] | None = SNP_PROPS,
        igvm: bool = True, kvm: bool = True) -> dict[str, Any]:
    answers: list[dict[str, Any]] = []
    for cmd in QMP_SCRIPT:
        ex, tn = cmd["execute"], cmd.get("arguments", {}).get("typename")
        reply: dict[str, Any] = {"return": {}}
        if ex == "query-kvm":
            reply = {"return": {"enabled": kvm, "present": kvm}}
        elif ex == "query-sev-capabilities":
            reply = {"return": sev_caps} if sev_caps is not None else \
                {"error": {"class": "GenericError", "desc": "SEV is not enabled in KVM"}}
        elif tn == "sev-snp-guest":
            reply = {"return": [{"name": p, "type": "str"} for p in snp_props]} if snp_props is not None else \
                {"error": {"class": "DeviceNotFound", "desc": "Class 'sev-snp-guest' not found"}}
        elif tn == "igvm-cfg":
            reply = {"return": [{"name": "file", "type": "string"}]} if igvm else \
                {"error": {"class": "DeviceNotFound", "desc": "Class 'igvm-cfg' not found"}}
        elif tn == "machine":
            reply = {"return": [{"name": "confidential-guest-support"}] + ([{"name": "igvm-cfg"}] if igvm else [])}
        elif tn == "sev-guest":
            reply = {"return": [{"name": "policy"}, {"name": "kernel-hashes"}]}
        answers.append({"command": cmd, "reply": reply})
    return {"argv": ["qemu-system-x86_64"], "rc": 0, "stderr": "", "answers": answers}


ALL_VM_TYPES = VM_DEFAULT | VM_SEV | VM_SEV_ES | VM_SNP


def with_caps(raw: RawInputs | None = None, *, vm_types: int | dict[str, Any] = ALL_VM_TYPES,
              policy_bits: int | dict[str, Any] = 0x3F0000,
              params: dict[str, str] | None = None, mitigations: tuple[str, str] | dict[str, Any] | None = None,
              qemu: dict[str, Any] | None = None, snp_flags: int | None = None,
              vmsa: int | dict[str, Any] | None = None) -> RawInputs:
    """``raw`` (default: hostraw.make_raw() with no VMSA features offered, a SYNTHETIC healthy Genoa-like SNP
    host) plus a capabilities section; ``vmsa`` overrides KVM_X86_SEV_VMSA_FEATURES. KVM never lists bit 0
    (SNPActive) there: it sets that bit itself (arch/x86/kvm/svm/sev.c sev_hardware_setup)."""
    base = raw if raw is not None else make_raw(vmsa_features=0x0)
    data = copy.deepcopy(base.data)
    if vmsa is not None and data["devices"]["/dev/kvm"].get("exists"):
        data["devices"]["/dev/kvm"]["sev_vmsa_features"] = vmsa
    p = params if params is not None else {"sev": "Y", "sev_es": "Y", "sev_snp": "Y", "debug_swap": "N",
                                           "ciphertext_hiding_asids": "0"}
    tree = {"files": {f"{KVM_AMD_PARAMS}/{k}": {"text": v + "\n"} for k, v in p.items()}} if p else \
        {"error": f"{KVM_AMD_PARAMS} does not exist", "errno": errno.ENOENT}
    if mitigations is None:
        sysfs: dict[str, Any] = {"error": "/sys/firmware/sev does not exist", "errno": errno.ENOENT}
    elif isinstance(mitigations, dict):
        sysfs = {"files": {"/sys/firmware/sev/vulnerabilities/supported_mitigations": mitigations,
                           "/sys/firmware/sev/vulnerabilities/verified_mitigations": mitigations}}
    else:
        sysfs = {"files": {"/sys/firmware/sev/vulnerabilities/supported_mitigations": {"text": mitigations[0]},
                           "/sys/firmware/sev/vulnerabilities/verified_mitigations": {"text": mitigations[1]}}}
    data["capabilities"] = {"kvm": {"vm_types": vm_types, "snp_policy_bits": policy_bits},
                            "kvm_amd_params": tree, "sysfs_sev": sysfs,
                            "qemu_qmp": qemu if qemu is not None else qmp()}
    if snp_flags is not None:
        data["ioctl"]["SNP_PLATFORM_STATUS"] = {"hex": snp_status_hex(flags=snp_flags), "fw_error": 0}
    return RawInputs(data, origin="synthetic")
