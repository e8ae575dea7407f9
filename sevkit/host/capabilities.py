"""What the platform, the kernel and QEMU offer: one capability list read from RawInputs (no guest).

Every capability carries its value and the source it was read from, or says why it is absent
(``absent``). ``unreadable`` marks an access error (EACCES/EPERM, or an input the collector did not
gather): an applicability rule must not turn that into "not offered". Pure: RawInputs -> Capabilities.

Sources (each decoder cites its own):
* KVM: include/uapi/linux/kvm.h (KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES = 235),
  arch/x86/include/uapi/asm/kvm.h (KVM_X86_GRP_SEV, KVM_X86_SEV_VMSA_FEATURES = 0,
  KVM_X86_SNP_POLICY_BITS = 1, KVM_X86_SEV_VM 2 / SEV_ES_VM 3 / SNP_VM 4), arch/x86/kvm/svm/sev.c
  (module parameters incl. ``ciphertext_hiding_asids``, a string parameter: ``<uint> | "max"``, empty or
  0 = off).
* Firmware: include/uapi/linux/psp-sev.h struct sev_user_data_status / sev_user_data_snp_status;
  drivers/crypto/ccp/sev-dev.c (SNP_FEATURE_INFO is cached inside the kernel and not exported;
  /sys/firmware/sev/vulnerabilities/{supported,verified}_mitigations print "0x%llx", root only).
* CPUID Fn8000_001F EAX: AMD APM vol. 3; Linux arch/x86/include/asm/cpufeatures.h word 19.
* QEMU: qapi/misc-target.json query-sev-capabilities; qapi/qom.json SevSnpGuestProperties
  (id-block, id-auth, author-key-enabled, host-data since 9.1; secure-tsc since 10.2; debug-swap, a
  sev-common property from N. Rao's 2025 series); docs/system/igvm.rst
  (``-object igvm-cfg,id=...,file=...`` and ``-machine ...,igvm-cfg=<id>``).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import snpbits
from ..memencrypt import EAX_BITS, LEAF, EaxBit, MemEncryptInfo
from .rawinputs import ACCESS_ERRNOS, RawInputs, Unreadable

OLD_BUNDLE = "collected by a sevkit without the capability probe (no 'capabilities' section): re-collect"
SNP_GUEST_PROPERTIES = ("id-block", "id-auth", "author-key-enabled", "host-data", "secure-tsc", "debug-swap",
                        "kernel-hashes", "policy", "vcek-disabled")
# CPUID Fn8000_001F EAX bits reported as capabilities (APM vol. 3; cpufeatures.h word 19).
CPUID_BITS: dict[str, tuple[int, str]] = {
    "cpuid.secure_tsc": (EaxBit.SECURE_TSC, "SecureTsc"),
    "cpuid.debug_swap": (EaxBit.DEBUG_SWAP, "DebugSwap"),
    "cpuid.segmented_rmp": (EaxBit.SEGMENTED_RMP, "SegmentedRmp"),
    "cpuid.secure_avic": (EaxBit.SECURE_AVIC, "SecureAvic"),
}
SRC_SNP_STATUS = "ioctl(/dev/sev, SEV_ISSUE_CMD, SNP_PLATFORM_STATUS)"
SRC_SEV_STATUS = "ioctl(/dev/sev, SEV_ISSUE_CMD, SEV_PLATFORM_STATUS)"
SRC_VM_TYPES = "ioctl(/dev/kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES)"
SRC_POLICY = "ioctl(/dev/kvm, KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV/KVM_X86_SNP_POLICY_BITS)"
SRC_VMSA = "ioctl(/dev/kvm, KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV/KVM_X86_SEV_VMSA_FEATURES)"
KVM_AMD_PARAMS = "/sys/module/kvm_amd/parameters"
MITIGATIONS = "/sys/firmware/sev/vulnerabilities"


@dataclass(frozen=True)
class Capability:
    """One offered (or not offered) capability: its value and where it was read, or why it is absent."""

    id: str
    title: str
    value: Any = None
    source: str = ""
    absent: str | None = None      # why there is no value (None when present)
    unreadable: bool = False       # absent because the input could not be read (an access error)
    ref: str = ""

    @property
    def present(self) -> bool:
        return self.absent is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title, "present": self.present,
                               "value": self.value, "source": self.source, "ref": self.ref}
        if self.absent is not None:
            out["absent"] = self.absent
            out["unreadable"] = self.unreadable
        return out


@dataclass(frozen=True)
class Capabilities:
    items: tuple[Capability, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Capability]:
        return iter(self.items)

    def get(self, cap_id: str) -> Capability:
        for c in self.items:
            if c.id == cap_id:
                return c
        raise KeyError(f"no capability {cap_id!r}; known: {', '.join(c.id for c in self.items)}")

    def ids(self) -> list[str]:
        return [c.id for c in self.items]

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.items]


def _errtext(err: dict[str, Any]) -> str:
    return str(err.get("errname") or err.get("error") or err)


def _is_access(err: Any) -> bool:
    return isinstance(err, dict) and err.get("errno") in ACCESS_ERRNOS


def _absent(cid: str, title: str, source: str, why: str, *, unreadable: bool = False, ref: str = "",
            value: Any = None) -> Capability:
    return Capability(cid, title, value, source, why, unreadable, ref)


# -- firmware -------------------------------------------------------------------------------------
def decode_snp_status(data: bytes) -> dict[str, Any]:
    """struct sev_user_data_snp_status (include/uapi/linux/psp-sev.h), 32 bytes packed."""
    major, minor, state, rmp, build, flags, guests, cur, rep = struct.unpack("<BBBBIIIQQ", data[:32])
    return {"api": f"{major}.{minor}", "api_major": major, "api_minor": minor, "build": build, "state": state,
            "is_rmp_initialized": rmp & 1, "flags": {n: flags >> b & 1 for b, n in snpbits.SNP_STATUS_FLAGS.items()},
            "flags_word": flags, "guest_count": guests, "current_tcb": f"0x{cur:016x}",
            "reported_tcb": f"0x{rep:016x}"}


def decode_sev_status(data: bytes) -> dict[str, Any]:
    """struct sev_user_data_status (include/uapi/linux/psp-sev.h): api_major, api_minor, state, flags, build."""
    major, minor, state, flags, build, guests = struct.unpack("<BBBIBI", data[:12])
    return {"api": f"{major}.{minor}", "build": build, "state": state, "flags": flags, "guest_count": guests}


def _ioctl_cap(raw: RawInputs, name: str, cid: str, title: str, src: str, size: int,
               decode: Any) -> Capability:
    if not raw.device("/dev/sev").get("exists"):
        return _absent(cid, title, src, "/dev/sev does not exist (no SEV firmware interface: ccp not loaded, "
                       "SEV off in BIOS, or not an AMD host)")
    res = raw.ioctl(name)
    if res is None:
        return _absent(cid, title, src, f"{name} was not collected", unreadable=True)
    if "hex" not in res:
        fw = res.get("fw_error")
        return _absent(cid, title, src, f"{name} failed: {_errtext(res)} (firmware status {fw})",
                       unreadable=_is_access(res))
    data = bytes.fromhex(res["hex"])
    if len(data) < size:
        return _absent(cid, title, src, f"{name} returned {len(data)} bytes, expected {size}", unreadable=True)
    return Capability(cid, title, decode(data), src, ref="include/uapi/linux/psp-sev.h")


def _firmware(raw: RawInputs) -> list[Capability]:
    out = [_ioctl_cap(raw, "SEV_PLATFORM_STATUS", "firmware.sev_status", "SEV firmware API version and state",
                      SRC_SEV_STATUS, 12, decode_sev_status),
           _ioctl_cap(raw, "SNP_PLATFORM_STATUS", "firmware.snp_status",
                      "SNP platform status (API, build, TCB, feature flags)", SRC_SNP_STATUS, 32, decode_snp_status)]
    snp = out[1]
    fi_title = "SNP_FEATURE_INFO (firmware-supported features)"
    if snp.present:
        flag = snp.value["flags"]["feature_info"]
        out.append(_absent("firmware.feature_info", fi_title, SRC_SNP_STATUS + " flags bit 3 (feature_info)",
                           "the kernel reads SNP_FEATURE_INFO for itself (drivers/crypto/ccp/sev-dev.c) and exports no "
                           "user interface for it; what it enables shows up as KVM's policy bits and kvm_amd "
                           f"parameters. SNP_PLATFORM_STATUS says the firmware {'has' if flag else 'lacks'} it",
                           value={"feature_info_supported": flag}, ref="include/linux/psp-sev.h"))
        cth = {"capable": snp.value["flags"]["ciphertext_hiding_cap"],
               "enabled": snp.value["flags"]["ciphertext_hiding_en"]}
        out.append(Capability("firmware.ciphertext_hiding", "Ciphertext hiding (firmware: capable / enabled)", cth,
                              SRC_SNP_STATUS + " flags bits 5-6", ref="include/uapi/linux/psp-sev.h"))
        out.append(Capability("firmware.rapl_dis", "RAPL disabled at SNP_INIT", snp.value["flags"]["rapl_dis"],
                              SRC_SNP_STATUS + " flags bit 4", ref="include/uapi/linux/psp-sev.h"))
    else:
        for cid, title in (("firmware.feature_info", fi_title),
                           ("firmware.ciphertext_hiding", "Ciphertext hiding (firmware: capable / enabled)"),
                           ("firmware.rapl_dis", "RAPL disabled at SNP_INIT")):
            out.append(_absent(cid, title, SRC_SNP_STATUS, f"no SNP platform status: {snp.absent}",
                               unreadable=snp.unreadable))
    out.append(_mitigations(raw))
    return out


def _mitigations(raw: RawInputs) -> Capability:
    cid, title = "firmware.mitigations", "SNP_VERIFY_MITIGATION vectors (supported / verified)"
    ref = "drivers/crypto/ccp/sev-dev.c supported_mitigations_show (ccp, 2026; AMD SEV-SNP ABI 1.58)"
    sec = raw.section("capabilities")
    if not sec:
        return _absent(cid, title, MITIGATIONS, OLD_BUNDLE, unreadable=True, ref=ref)
    tree = sec.get("sysfs_sev", {})
    if "files" not in tree:
        return _absent(cid, title, MITIGATIONS, "/sys/firmware/sev does not exist (kernel without "
                       "SNP_VERIFY_MITIGATION support, or the firmware lacks the feature-info bit)",
                       unreadable=_is_access(tree) and tree.get("errno") != errno.ENOENT, ref=ref)
    vals: dict[str, int] = {}
    for name in ("supported_mitigations", "verified_mitigations"):
        res = tree["files"].get(f"{MITIGATIONS}/{name}")
        if res is None:
            return _absent(cid, title, MITIGATIONS, f"/sys/firmware/sev present but {MITIGATIONS}/{name} is not",
                           ref=ref, value={"files": sorted(tree["files"])})
        if "text" not in res:
            return _absent(cid, title, f"{MITIGATIONS}/{name}", f"not readable: {_errtext(res)} (root only, mode "
                           "0400/0600)", unreadable=True, ref=ref)
        try:
            vals[name.split("_")[0]] = int(res["text"].strip(), 0)
        except ValueError:
            return _absent(cid, title, f"{MITIGATIONS}/{name}", f"not a number: {res['text']!r}", ref=ref)
    return Capability(cid, title, {k: f"0x{v:x}" for k, v in vals.items()}, MITIGATIONS + "/*_mitigations", ref=ref)


# -- KVM ------------------------------------------------------------------------------------------
def _kvm(raw: RawInputs) -> list[Capability]:
    out: list[Capability] = []
    sec = raw.section("capabilities")
    kvm = sec.get("kvm") if sec else None
    ref_types = "include/uapi/linux/kvm.h KVM_CAP_VM_TYPES; arch/x86/include/uapi/asm/kvm.h KVM_X86_*_VM"
    ref_pol = "arch/x86/include/uapi/asm/kvm.h KVM_X86_SNP_POLICY_BITS (6.19 cycle)"
    if not sec:
        out.append(_absent("kvm.vm_types", "VM types KVM offers", SRC_VM_TYPES, OLD_BUNDLE, unreadable=True))
        out.append(_absent("kvm.snp_policy_bits", "SNP policy bits KVM accepts", SRC_POLICY, OLD_BUNDLE,
                           unreadable=True))
    elif not isinstance(kvm, dict) or "error" in kvm:
        why = _errtext(kvm) if isinstance(kvm, dict) else "not collected"
        acc = _is_access(kvm)
        out.append(_absent("kvm.vm_types", "VM types KVM offers", SRC_VM_TYPES, f"/dev/kvm: {why}",
                           unreadable=acc, ref=ref_types))
        out.append(_absent("kvm.snp_policy_bits", "SNP policy bits KVM accepts", SRC_POLICY, f"/dev/kvm: {why}",
                           unreadable=acc, ref=ref_pol))
    else:
        vt = kvm.get("vm_types")
        if isinstance(vt, int):
            out.append(Capability("kvm.vm_types", "VM types KVM offers",
                                  {"mask": vt, "types": snpbits.names(vt, snpbits.KVM_VM_TYPES)}, SRC_VM_TYPES,
                                  ref=ref_types)
                       if vt else
                       _absent("kvm.vm_types", "VM types KVM offers", SRC_VM_TYPES,
                               "KVM_CAP_VM_TYPES returned 0 (kernel before 6.8 has no VM types)", ref=ref_types))
        else:
            out.append(_absent("kvm.vm_types", "VM types KVM offers", SRC_VM_TYPES, f"failed: {_errtext(vt or {})}",
                               unreadable=_is_access(vt), ref=ref_types))
        pb = kvm.get("snp_policy_bits")
        if isinstance(pb, int):
            out.append(Capability("kvm.snp_policy_bits", "SNP policy bits KVM accepts",
                                  {"mask": f"0x{pb:x}", "bits": snpbits.policy_names(pb)}, SRC_POLICY, ref=ref_pol))
        else:
            out.append(_absent("kvm.snp_policy_bits", "SNP policy bits KVM accepts", SRC_POLICY,
                               _attr_why(pb, "KVM_X86_SNP_POLICY_BITS"), unreadable=_is_access(pb), ref=ref_pol))
    vmsa = raw.device("/dev/kvm").get("sev_vmsa_features")
    ref_v = "arch/x86/include/uapi/asm/kvm.h KVM_X86_SEV_VMSA_FEATURES; arch/x86/include/asm/svm.h SVM_SEV_FEAT_*"
    if isinstance(vmsa, int):
        out.append(Capability("kvm.vmsa_features", "VMSA SEV features KVM offers",
                              {"mask": f"0x{vmsa:x}", "features": snpbits.names(vmsa, snpbits.VMSA_FEATURES)},
                              SRC_VMSA, ref=ref_v))
    elif not raw.device("/dev/kvm").get("exists"):
        out.append(_absent("kvm.vmsa_features", "VMSA SEV features KVM offers", SRC_VMSA, "/dev/kvm does not exist"))
    else:
        out.append(_absent("kvm.vmsa_features", "VMSA SEV features KVM offers", SRC_VMSA,
                           _attr_why(vmsa, "KVM_X86_SEV_VMSA_FEATURES"), unreadable=_is_access(vmsa), ref=ref_v))
    out += _kvm_amd(raw)
    return out


def _attr_why(res: Any, attr: str) -> str:
    if not isinstance(res, dict):
        return f"{attr} was not collected"
    if res.get("errno") == errno.ENXIO:
        return (f"KVM_GET_DEVICE_ATTR({attr}) gave ENXIO: this KVM has no SEV support loaded "
                "(not kvm_amd, or SEV off) or predates the attribute")
    return f"KVM_GET_DEVICE_ATTR({attr}) failed: {_errtext(res)}"


def _kvm_amd(raw: RawInputs) -> list[Capability]:
    sec = raw.section("capabilities")
    ref = "arch/x86/kvm/svm/sev.c module_param_named(...)"
    title = "kvm_amd module parameters"
    if not sec:
        return [_absent("kvm_amd.params", title, KVM_AMD_PARAMS, OLD_BUNDLE, unreadable=True),
                _absent("kvm_amd.ciphertext_hiding_asids", "ASIDs reserved for ciphertext hiding",
                        KVM_AMD_PARAMS + "/ciphertext_hiding_asids", OLD_BUNDLE, unreadable=True)]
    tree = sec.get("kvm_amd_params", {})
    if "files" not in tree:
        why = "kvm_amd is not loaded (not an AMD host, or the module is missing)"
        return [_absent("kvm_amd.params", title, KVM_AMD_PARAMS, why, ref=ref),
                _absent("kvm_amd.ciphertext_hiding_asids", "ASIDs reserved for ciphertext hiding",
                        KVM_AMD_PARAMS + "/ciphertext_hiding_asids", why, ref=ref)]
    params = {p.rsplit("/", 1)[1]: (v["text"].strip() if "text" in v else {"error": _errtext(v)})
              for p, v in tree["files"].items()}
    out = [Capability("kvm_amd.params", title, params, KVM_AMD_PARAMS + "/*", ref=ref)]
    cth = params.get("ciphertext_hiding_asids")
    src = KVM_AMD_PARAMS + "/ciphertext_hiding_asids"
    if cth is None:
        out.append(_absent("kvm_amd.ciphertext_hiding_asids", "ASIDs reserved for ciphertext hiding", src,
                           "no such parameter (kernel before 6.18's ciphertext hiding support)", ref=ref))
    elif isinstance(cth, str) and (cth.isdigit() or cth in ("", "max")):
        # module_param_string, Format: { <unsigned int> | "max" } (kernel-parameters.txt); unset reads
        # as an empty line (sev.c: "if (!ciphertext_hiding_asids[0]) return false"), 0 also means off.
        out.append(Capability("kvm_amd.ciphertext_hiding_asids", "ASIDs reserved for ciphertext hiding",
                              "max" if cth == "max" else int(cth or 0), src,
                              ref=ref + " (<uint> | 'max'; unset or 0 = off; 'max' takes every SEV-ES ASID)"))
    else:
        out.append(_absent("kvm_amd.ciphertext_hiding_asids", "ASIDs reserved for ciphertext hiding", src,
                           f"unexpected value {cth!r}", ref=ref))
    return out


# -- CPUID ----------------------------------------------------------------------------------------
def _cpuid(raw: RawInputs) -> list[Capability]:
    out: list[Capability] = []
    try:
        top = raw.cpuid(0x80000000)[0]
        me = MemEncryptInfo(*raw.cpuid(LEAF)) if top >= LEAF else None
        err: Unreadable | None = None
    except Unreadable as exc:
        me, err = None, exc
    for cid, (bit, name) in CPUID_BITS.items():
        src = f"{raw.cpuid_source} leaf 0x8000001f EAX bit {bit:d} ({name})"
        ref = "AMD APM vol. 3 CPUID Fn8000_001F_EAX; Linux cpufeatures.h word 19"
        if EAX_BITS.get(int(bit), "").endswith("[U]"):      # memencrypt marks bits no upstream source confirmed
            ref += f" (sevkit.memencrypt marks bit {int(bit)} as not verified against an upstream source)"
        if err is not None:
            out.append(_absent(cid, name, src, err.message, unreadable=True, ref=ref))
        elif me is None:
            out.append(_absent(cid, name, src, "CPUID leaf 0x8000001f not implemented (no AMD memory encryption)",
                               ref=ref))
        else:
            out.append(Capability(cid, name, int(me.bit(bit)), src, ref=ref))
    src = f"{raw.cpuid_source} leaf 0x8000001f ECX (guests), EDX (min SEV ASID)"
    ref = "AMD APM vol. 3 CPUID Fn8000_001F ECX/EDX; ASIDs 1..EDX-1 are SEV-ES/SNP (arch/x86/kvm/svm/sev.c)"
    if err is not None:
        out.append(_absent("cpuid.asids", "Encrypted-guest ASIDs", src, err.message, unreadable=True, ref=ref))
    elif me is None:
        out.append(_absent("cpuid.asids", "Encrypted-guest ASIDs", src, "CPUID leaf 0x8000001f not implemented",
                           ref=ref))
    else:
        out.append(Capability("cpuid.asids", "Encrypted-guest ASIDs",
                              {"max_guests": me.max_guests, "min_sev_asid": me.min_sev_asid,
                               "sev_es_snp_asids": me.es_asids}, src, ref=ref))
    out.append(_absent("cpuid.sev_tio", "SEV-TIO (TDISP)", "SNP_FEATURE_INFO EBX bit 1 (SNP_SEV_TIO_SUPPORTED)",
                       "no CPUID bit for SEV-TIO was verified upstream; the kernel reads it from SNP_FEATURE_INFO, "
                       "which it does not export (PLATFORM_INFO bit 7 in a guest's report shows it)",
                       ref="include/linux/psp-sev.h SNP_SEV_TIO_SUPPORTED"))
    out.append(_absent("report.platform_info", "PLATFORM_INFO of an attestation report",
                       "ATTESTATION_REPORT offset 0x40", "read from a guest's attestation report, not from the host "
                       "(the attestation suite decodes it: SMT_EN, TSME_EN, ECC_EN, RAPL_DIS, CIPHERTEXT_HIDING_EN, "
                       "ALIAS_CHECK_COMPLETE, SEV-TIO_EN)", ref="AMD SEV-SNP ABI 56860 ATTESTATION_REPORT"))
    return out


# -- QEMU -----------------------------------------------------------------------------------------
def _qmp_reply(answers: list[dict[str, Any]], execute: str, typename: str | None = None) -> dict[str, Any] | None:
    for a in answers:
        cmd = a.get("command", {})
        if cmd.get("execute") == execute and (typename is None or cmd.get("arguments", {}).get("typename") == typename):
            reply = a.get("reply")
            return reply if isinstance(reply, dict) else None
    return None


def _qemu(raw: RawInputs) -> list[Capability]:
    sec = raw.section("capabilities")
    qmp = sec.get("qemu_qmp", {}) if sec else {}
    src_caps = "QMP query-sev-capabilities (qemu -machine none)"
    ref_caps = "qapi/misc-target.json query-sev-capabilities"
    ref_snp = "qapi/qom.json SevSnpGuestProperties"
    if not sec or "answers" not in qmp:
        why = OLD_BUNDLE if not sec else f"QEMU did not answer QMP: {qmp.get('error', 'not run')}"
        return [_absent("qemu.sev_capabilities", "QEMU query-sev-capabilities", src_caps, why, unreadable=not sec),
                _absent("qemu.sev_snp_guest", "QEMU sev-snp-guest object", "QMP qom-list-properties", why,
                        unreadable=not sec),
                *(_absent(f"qemu.sev_snp_guest.{p}", f"sev-snp-guest property {p}", "QMP qom-list-properties", why,
                          unreadable=not sec) for p in SNP_GUEST_PROPERTIES),
                _absent("qemu.igvm", "QEMU IGVM support (igvm-cfg object)", "QMP qom-list-properties", why,
                        unreadable=not sec)]
    answers = list(qmp["answers"])
    out: list[Capability] = []
    rep = _qmp_reply(answers, "query-sev-capabilities")
    if rep and "return" in rep:
        # SevCapability: pdh, cert-chain, cpu0-id (blobs: only their presence is kept), cbitpos, reduced-phys-bits.
        caps = {k: (v if k in ("cbitpos", "reduced-phys-bits") else "present") for k, v in rep["return"].items()}
        out.append(Capability("qemu.sev_capabilities", "QEMU query-sev-capabilities", caps, src_caps, ref=ref_caps))
    else:
        desc = (rep or {}).get("error", {}).get("desc", "no reply")
        out.append(_absent("qemu.sev_capabilities", "QEMU query-sev-capabilities", src_caps,
                           f"QEMU says: {desc}", ref=ref_caps))
    rep = _qmp_reply(answers, "qom-list-properties", "sev-snp-guest")
    src = "QMP qom-list-properties typename=sev-snp-guest"
    if rep and "return" in rep:
        props = sorted(str(p.get("name")) for p in rep["return"])
        out.append(Capability("qemu.sev_snp_guest", "QEMU sev-snp-guest object", props, src, ref=ref_snp))
        for p in SNP_GUEST_PROPERTIES:
            cid = f"qemu.sev_snp_guest.{p}"
            out.append(Capability(cid, f"sev-snp-guest property {p}", True, src, ref=ref_snp) if p in props else
                       _absent(cid, f"sev-snp-guest property {p}", src, f"this QEMU's sev-snp-guest has no {p!r}",
                               ref=ref_snp))
    else:
        desc = (rep or {}).get("error", {}).get("desc", "no reply")
        why = f"QEMU says: {desc} (sev-snp-guest needs QEMU >= 9.1 built with SEV)"
        out.append(_absent("qemu.sev_snp_guest", "QEMU sev-snp-guest object", src, why, ref=ref_snp))
        out += [_absent(f"qemu.sev_snp_guest.{p}", f"sev-snp-guest property {p}", src, why, ref=ref_snp)
                for p in SNP_GUEST_PROPERTIES]
    out.append(_igvm(answers))
    return out


def _igvm(answers: list[dict[str, Any]]) -> Capability:
    cid, title = "qemu.igvm", "QEMU IGVM support (igvm-cfg object, -machine igvm-cfg=)"
    ref = "QEMU docs/system/igvm.rst"
    rep = _qmp_reply(answers, "qom-list-properties", "igvm-cfg")
    src = "QMP qom-list-properties typename=igvm-cfg / typename=machine"
    if not rep or "return" not in rep:
        desc = (rep or {}).get("error", {}).get("desc", "no reply")
        return _absent(cid, title, src, f"QEMU says: {desc} (QEMU built without IGVM)", ref=ref)
    obj_props = sorted(str(p.get("name")) for p in rep["return"])
    mrep = _qmp_reply(answers, "qom-list-properties", "machine") or {}
    machine_props = {str(p.get("name")) for p in mrep.get("return", [])}
    return Capability(cid, title, {"igvm-cfg properties": obj_props,
                                   "machine igvm-cfg property": "igvm-cfg" in machine_props}, src, ref=ref)


def read(raw: RawInputs) -> Capabilities:
    """Every capability of the host in ``raw``. Pure; never raises for a missing input."""
    items = [*_firmware(raw), *_kvm(raw), *_cpuid(raw), *_qemu(raw)]
    return Capabilities(tuple(items), {"origin": raw.origin, "collected_at": raw.data.get("collected_at")})
