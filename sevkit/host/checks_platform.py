"""Platform checks: KVM, /dev/sev, PSP firmware status (SEV and SNP), IOMMU, dmesg facts, ASIDs.

References: sev-facts.md §3 (dmesg), §4 (kvm_amd, device nodes), §5.1 (ioctls), §9.1 (snphost ok).
"""

from __future__ import annotations

import re
import struct
from functools import partial
from typing import Any

from ..logs.dmesg import HostDmesg, parse_host_dmesg
from ..logs.lines import cap_lines
from ..memencrypt import EaxBit, MemEncryptInfo
from ..tcb import TcbLayout, TcbVersion, layout_for_family
from ..vocab import FEATURE_CHAIN, Feature, dependents
from . import cpu
from .checkdef import Checks, Context, Meta, Outcome, ev
from .rawinputs import ACCESS_ERRNOS, Unreadable

SEVS = FEATURE_CHAIN
PARAMS = "/sys/module/kvm_amd/parameters/"
SEV_STATES = {0: "UNINIT", 1: "INIT", 2: "WORKING"}
SNP_MIN_API = (1, 51)
SEV_RET = {
    0x1: "INVALID_PLATFORM_STATE", 0x3: "INVALID_CONFIG", 0x8: "INACTIVE", 0x11: "INVALID_COMMAND",
    0x13: "HWSEV_RET_PLATFORM", 0x14: "HWSEV_RET_UNSAFE", 0x15: "UNSUPPORTED", 0x20: "RMP_INIT_REQUIRED",
    0x26: "RMP_INITIALIZATION_FAILED",
}
HINT_CCP = ("load the PSP driver (modprobe ccp; CONFIG_CRYPTO_DEV_SP_PSP, CONFIG_CRYPTO_DEV_CCP_DD) and enable "
            "SEV/SMEE in the BIOS; /dev/sev exists only on bare metal")


def firmware_hint(ctx: Context) -> str:
    sig = ctx.facts.get("signature")
    fw = cpu.sev_firmware_file(sig) if isinstance(sig, cpu.Signature) else "amd/amd_sev_fam19h_model*.sbin"
    return (f"update the PSP firmware: install /lib/firmware/{fw} (linux-firmware; loaded by ccp at init) "
            "or a BIOS/AGESA update with SEV firmware >= 1.51")


def _param_on(text: str | None) -> bool:
    return text is not None and text.strip() in ("1", "Y", "y")


CHECKS = Checks()


def parsed_dmesg(ctx: Context) -> HostDmesg | None:
    """The host kernel log parsed once (None when it could not be read); firmware checks consult it."""
    if "dmesg" not in ctx.facts:
        log = ctx.raw.section("dmesg")
        # bounded lines (logs/lines.py)
        ctx.facts["dmesg"] = parse_host_dmesg(cap_lines(str(log["text"]))[0]) if "text" in log else None
    found: HostDmesg | None = ctx.facts["dmesg"]
    return found


# -- KVM --------------------------------------------------------------------------------


def kvm_dev(ctx: Context) -> Outcome:
    raw = ctx.raw
    d = raw.device("/dev/kvm")
    e = [ev("/dev/kvm", {k: d.get(k) for k in ("exists", "mode", "readable", "writable")})]
    if not d.get("exists"):
        return Outcome("fail", "/dev/kvm does not exist", e,
                       "enable virtualization (SVM) in the BIOS and load kvm_amd (modprobe kvm_amd)")
    api = d.get("api_version")
    e.append(ev("ioctl KVM_GET_API_VERSION", api))
    if isinstance(api, dict):
        if api.get("errno") in ACCESS_ERRNOS:
            raise Unreadable(f"/dev/kvm not openable: {api.get('error')}", "/dev/kvm", api,
                             "run the probe as root or add the user to group kvm")
        return Outcome("fail", f"/dev/kvm KVM_GET_API_VERSION failed: {api.get('error')}", e,
                       "check the kvm module and dmesg")
    if api != 12:
        return Outcome("fail", f"KVM API version {api}, expected 12", e, "upgrade the host kernel")
    return Outcome("pass", "API version: 12", e)


# Not a generic check: sevkit's own non-SEV guests also run under TCG; confidential guests need KVM.
CHECKS.add(Meta("kvm.dev", "KVM support (/dev/kvm)", Feature.SEV, SEVS, (), "sev-facts §4.2; snphost 'KVM Support'"),
           kvm_dev)


def kvm_module(ctx: Context) -> Outcome:
    raw = ctx.raw
    entries = raw.listdir("/sys/module/kvm_amd")
    e = [ev("/sys/module/kvm_amd", "present" if entries is not None else "absent")]
    if entries is None:
        return Outcome("fail", "kvm_amd is not loaded (/sys/module/kvm_amd absent)", e,
                       "modprobe kvm_amd (CONFIG_KVM_AMD, CONFIG_KVM_AMD_SEV); enable SVM in the BIOS")
    return Outcome("pass", "kvm_amd loaded", e)


CHECKS.add(Meta("kvm.module", "kvm_amd module loaded", Feature.SEV, SEVS, ("kvm.dev", "cpuid.sev"), "sev-facts §4.1"),
           kvm_module)


def kvm_param(name: str, ctx: Context) -> Outcome:
    text = ctx.raw.file(PARAMS + name)
    e = [ev(PARAMS + name, text.strip() if text is not None else "(absent)")]
    if _param_on(text):
        return Outcome("pass", f"kvm_amd parameter {name} is {text.strip() if text else ''}", e)
    if text is None:
        msg = f"kvm_amd parameter {name} does not exist (kernel too old or CONFIG_KVM_AMD_SEV off)"
    else:
        msg = f"kvm_amd parameter {name} is {text.strip()}"
    return Outcome("fail", msg, e,
                   f"load kvm_amd with {name}=1 (kernel parameter kvm_amd.{name}=1 or "
                   f"'options kvm_amd {name}=1' in /etc/modprobe.d); it reads N after load when "
                   "the platform cannot support it: check the firmware and BIOS checks"
                   + ("; SNP also needs kernel >= 6.11" if name == "sev_snp" else ""))


for feat, need in zip(FEATURE_CHAIN, ("cpuid.sev", "cpuid.sev_es", "cpuid.sev_snp"), strict=True):
    param = feat.flag   # the kvm_amd parameter: sev, sev_es, sev_snp
    CHECKS.add(Meta(f"kvm.param.{param}", f"{feat} enabled in KVM", feat, (feat,) if feat != Feature.SEV else SEVS,
                    ("kvm.module", need), f"sev-facts §4.1; snphost '{feat} enabled in KVM'"),
               partial(kvm_param, param))


def secure_tsc(ctx: Context) -> Outcome:
    raw = ctx.raw
    me: MemEncryptInfo = ctx.facts["mem_encrypt"]
    tsc = me.bit(EaxBit.SECURE_TSC)
    kvm = raw.device("/dev/kvm").get("sev_vmsa_features")
    e = [ev("CPUID Fn8000_001F EAX bit 8 (SecureTsc)", int(tsc)),
         ev("ioctl(/dev/kvm, KVM_GET_DEVICE_ATTR, KVM_X86_GRP_SEV/KVM_X86_SEV_VMSA_FEATURES)", kvm)]
    if not tsc:
        return Outcome("skip", "CPUID Fn8000_001F EAX bit 8 (SecureTsc) is 0 (optional feature)", e,
                       "Secure TSC needs an EPYC 9004 (Genoa) or newer CPU")
    if isinstance(kvm, int) and kvm >> 9 & 1:
        return Outcome("pass", "Secure TSC: CPU and KVM support it (VMSA feature bit 9)", e)
    return Outcome("warn", "CPU supports Secure TSC but KVM does not offer it (VMSA feature bit 9 clear "
                           "or attribute unavailable)", e, "kernel 6.18+ with kvm_amd sev_snp=1")


CHECKS.add(Meta("kvm.secure_tsc", "(Optional Feature) Secure TSC", Feature.SEV_SNP, (), ("kvm.dev", "cpuid.sev_snp"),
                "sev-facts §5.1, §9.1 '(Optional Feature) Secure TSC'"), secure_tsc)


# -- /dev/sev ---------------------------------------------------------------------------


def sev_dev(ctx: Context) -> Outcome:
    raw = ctx.raw
    d = raw.device("/dev/sev")
    e = [ev("/dev/sev", {k: d.get(k) for k in ("exists", "mode", "uid", "gid")})]
    if d.get("exists"):
        return Outcome("pass", f"/dev/sev present (mode {d.get('mode')})", e)
    ccp = raw.listdir("/sys/module/ccp")
    e.append(ev("/sys/module/ccp", "present" if ccp is not None else "absent"))
    return Outcome("fail", "/dev/sev does not exist" + ("" if ccp is not None else " (ccp not loaded)"),
                   e, HINT_CCP)


CHECKS.add(Meta("sev.dev", "/dev/sev present", Feature.SEV, SEVS, ("cpuid.sev", "cpu.epyc"), "sev-facts §4.2"), sev_dev)


def dev_access(mode: str, ctx: Context) -> Outcome:
    d = ctx.raw.device("/dev/sev")
    e = [ev(f"open(/dev/sev, {'O_RDONLY' if mode == 'readable' else 'O_WRONLY'})",
            d.get(mode) if d.get(mode) else d.get(mode + "_error"))]
    if d.get(mode):
        return Outcome("pass", f"/dev/sev {mode}", e)
    err = d.get(mode + "_error") or {}
    if err.get("errno") in ACCESS_ERRNOS:
        raise Unreadable(f"/dev/sev not {mode}: {err.get('error')}", "/dev/sev", err,
                         "run the probe as root (QEMU also needs /dev/sev read-write)")
    return Outcome("fail", f"/dev/sev not {mode}: {err.get('error')}", e, HINT_CCP)


for mode in ("readable", "writable"):
    CHECKS.add(Meta(f"sev.dev_{mode}", f"/dev/sev {mode}", Feature.SEV, SEVS, ("sev.dev",),
                    f"snphost '/dev/sev {mode}'"), partial(dev_access, mode))


# -- firmware status --------------------------------------------------------------------


def sev_status(ctx: Context) -> Outcome:
    raw = ctx.raw
    res = raw.ioctl("SEV_PLATFORM_STATUS") or {"error": "not collected"}
    src = "ioctl(/dev/sev, SEV_ISSUE_CMD, SEV_PLATFORM_STATUS)"
    if "hex" not in res:
        if res.get("errno") in ACCESS_ERRNOS:
            raise Unreadable(f"SEV_PLATFORM_STATUS refused: {res.get('error')}", src, res, "run as root")
        return Outcome("fail", f"SEV_PLATFORM_STATUS failed: {res.get('error')} "
                               f"(fw error 0x{int(res.get('fw_error') or 0):x})", [ev(src, res)], HINT_CCP)
    data = bytes.fromhex(res["hex"])
    major, minor, state, flags, build, guests = struct.unpack("<BBBIBI", data[:12])
    st = {"api_major": major, "api_minor": minor, "state": state, "flags": flags, "build": build,
          "guest_count": guests}
    ctx.facts["sev_status"] = st
    e = [ev(src, st), ev(src + " raw", res["hex"])]
    msg = f"SEV API {major}.{minor} build {build}, state {SEV_STATES.get(state, state)}, {guests} guests"
    if major == 0 and minor == 0:
        return Outcome("fail", f"SEV firmware version is 0.0 ({msg})", e, firmware_hint(ctx))
    return Outcome("pass", msg, e)


CHECKS.add(Meta("sev.platform_status", "SEV firmware version (SEV_PLATFORM_STATUS)", Feature.SEV, SEVS,
                ("sev.dev_readable",), "sev-facts §5.1; snphost 'SEV Firmware Version'"), sev_status)


def dmesg_init_failed(ctx: Context) -> bool:
    f = parsed_dmesg(ctx)
    return f is not None and any("INIT" in e.upper() for e in f.errors)


def sev_init(ctx: Context) -> Outcome:
    st = ctx.facts["sev_status"]
    e = [ev("SEV_PLATFORM_STATUS.state", f"{st['state']} ({SEV_STATES.get(st['state'], '?')})")]
    if st["state"] == 2:
        return Outcome("pass", "Initialized, currently running a guest", e)
    if st["state"] == 1:
        return Outcome("pass", "Initialized, no guests running", e)
    if dmesg_init_failed(ctx):
        return Outcome("fail", "SEV platform UNINIT and the kernel log shows an INIT failure", e,
                       "see dmesg.psp_errors; 0x13 means SMEE is off in the BIOS")
    return Outcome("warn", "SEV platform state UNINIT (newer kernels may initialise SEV on first guest)", e,
                   "check that SEV INIT succeeds when a guest starts; sev-facts §12 item 4")


CHECKS.add(Meta("sev.initialized", "SEV initialized", Feature.SEV, SEVS, ("sev.platform_status",),
                "sev-facts §5.1 state; snphost 'SEV initialized'"), sev_init)


def es_init(ctx: Context) -> Outcome:
    st = ctx.facts["sev_status"]
    bit = bool(st["flags"] & 0x100)
    e = [ev("SEV_PLATFORM_STATUS.flags", f"0x{st['flags']:x}"), ev("flags bit 8 (CONFIG_ES)", int(bit))]
    if bit:
        return Outcome("pass", "SEV-ES initialized (flags bit 8 set)", e)
    if st["state"] == 0 and not dmesg_init_failed(ctx):
        return Outcome("warn", "SEV-ES flag clear while the platform is UNINIT", e,
                       "check again after the first SEV guest starts")
    return Outcome("fail", "SEV_PLATFORM_STATUS flags bit 8 (SEV-ES initialized) is 0", e,
                   "kvm_amd sev_es=1 and BIOS 'SEV-ES ASID Space Limit' > 1; update the PSP firmware")


CHECKS.add(Meta("sev_es.initialized", "SEV-ES initialized", Feature.SEV_ES, dependents(Feature.SEV_ES),
                ("sev.platform_status", "cpuid.sev_es"), "sev-facts §5.1 flags; snphost 'SEV-ES initialized'"),
           es_init)


def snp_fw_min(ctx: Context) -> Outcome:
    raw = ctx.raw
    snp = _snp_status(raw)
    st = ctx.facts["sev_status"]
    if isinstance(snp, dict):
        ver, src = (snp["api_major"], snp["api_minor"]), "SNP_PLATFORM_STATUS"
    else:
        ver, src = (st["api_major"], st["api_minor"]), "SEV_PLATFORM_STATUS"
    e = [ev(src + " api", f"{ver[0]}.{ver[1]}")]
    if ver >= SNP_MIN_API:
        return Outcome("pass", f"firmware API {ver[0]}.{ver[1]} >= 1.51", e)
    return Outcome("fail", f"firmware API {ver[0]}.{ver[1]} < 1.51 (SEV-SNP needs >= 1.51)", e, firmware_hint(ctx))


CHECKS.add(Meta("snp.firmware_min", "SNP minimum firmware 1.51", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("sev.platform_status", "cpuid.sev_snp"), "sev-facts §3.3 SNP_MIN_API 1.51"), snp_fw_min)


def snp_init(ctx: Context) -> Outcome:
    raw = ctx.raw
    snp = _snp_status(raw)
    src = "ioctl(/dev/sev, SEV_ISSUE_CMD, SNP_PLATFORM_STATUS)"
    if not isinstance(snp, dict):
        res = raw.ioctl("SNP_PLATFORM_STATUS") or {"error": "not collected"}
        if res.get("errno") in ACCESS_ERRNOS:
            raise Unreadable(f"SNP_PLATFORM_STATUS refused: {res.get('error')}", src, res, "run as root")
        return Outcome("fail", f"SNP_PLATFORM_STATUS failed: {res.get('error')} "
                               f"(fw error 0x{int(res.get('fw_error') or 0):x}): SNP not initialized",
                       [ev(src, res)], "SNP needs kernel >= 6.11, firmware >= 1.51, BIOS 'SEV-SNP Support' "
                                       "and an RMP table; see the SYSCFG/RMP/IOMMU checks")
    ctx.facts["snp_status"] = snp
    e = [ev(src, {k: v for k, v in snp.items() if k != "hex"}), ev(src + " raw", snp["hex"])]
    msg = f"SNP API {snp['api_major']}.{snp['api_minor']} build {snp['build']}, state {snp['state']}"
    if snp["state"] == 1:
        return Outcome("pass", msg + " (INIT)", e)
    return Outcome("fail", msg + " (UNINIT): SNP firmware not initialized", e,
                   "kvm_amd sev_snp=1 on kernel >= 6.11 initialises SNP; check dmesg for SNP INIT errors")


CHECKS.add(Meta("snp.initialized", "SNP initialized (SNP_PLATFORM_STATUS)", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("sev.dev_readable", "cpuid.sev_snp"), "sev-facts §5.1; snphost 'SNP initialized'"), snp_init)


def rmp_init(ctx: Context) -> Outcome:
    s = ctx.facts["snp_status"]
    e = [ev("SNP_PLATFORM_STATUS byte 3 bit 0 (is_rmp_initialized)", s["rmp_initialized"])]
    if s["rmp_initialized"]:
        return Outcome("pass", "RMP table initialized", e)
    return Outcome("fail", "SNP_PLATFORM_STATUS is_rmp_initialized is 0", e,
                   "RMP not initialized: check BIOS 'SNP Memory Coverage' and dmesg SEV-SNP lines")


CHECKS.add(Meta("snp.rmp_initialized", "RMP table initialized", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("snp.initialized",), "sev-facts §5.1; snphost 'RMP table initialized'"), rmp_init)


def alias(ctx: Context) -> Outcome:
    s = ctx.facts["snp_status"]
    e = [ev("SNP_PLATFORM_STATUS byte 3 bit 1 (ALIAS_CHECK_COMPLETE)", s["alias_check"])]
    if s["alias_check"]:
        return Outcome("pass", "Completed since last system update, no aliasing addresses", e)
    return Outcome("warn", "alias check not reported complete (older firmware, or check pending)", e,
                   "update the SEV firmware/BIOS for AMD-SB-3015 (CVE-2024-21944) and reboot")


CHECKS.add(Meta("snp.alias_check", "Alias check (AMD-SB-3015)", Feature.SEV_SNP, (), ("snp.initialized",),
                "sev-facts §5.1 byte 3 bit 1; snphost 'Alias check'"), alias)


def tcb(ctx: Context) -> Outcome:
    s = ctx.facts["snp_status"]
    sig = ctx.facts.get("signature")
    layout: TcbLayout = layout_for_family(sig.family) if isinstance(sig, cpu.Signature) else "legacy"
    cur = TcbVersion.from_int(s["current_tcb"], layout).text(" ")
    rep = TcbVersion.from_int(s["reported_tcb"], layout).text(" ")
    e = [ev("SNP_PLATFORM_STATUS current_tcb_version", f"0x{s['current_tcb']:016x} {cur}"),
         ev("SNP_PLATFORM_STATUS reported_tcb_version", f"0x{s['reported_tcb']:016x} {rep}")]
    if s["current_tcb"] == s["reported_tcb"]:
        return Outcome("pass", f"TCB versions match ({cur})", e)
    return Outcome("fail", f"platform TCB {cur} != reported TCB {rep}", e,
                   "commit the installed TCB (snphost commit) or set the reported TCB (snphost config set)")


CHECKS.add(Meta("snp.tcb", "Compare TCB values (platform vs reported)", Feature.SEV_SNP, (), ("snp.initialized",),
                "sev-facts §6.3, §9.1 'Compare TCB values'"), tcb)


# -- IOMMU ------------------------------------------------------------------------------


def cmdline(ctx: Context) -> str:
    return ctx.raw.file("/proc/cmdline") or ""


def iommu_on(ctx: Context) -> Outcome:
    raw = ctx.raw
    units = raw.listdir("/sys/class/iommu") or []
    cl = cmdline(ctx)
    off = re.search(r"(?:^|\s)(amd_iommu=off|iommu=off)(?:\s|$)", cl)
    e = [ev("/sys/class/iommu", units), ev("/proc/cmdline iommu options", re.findall(r"\S*iommu\S*", cl))]
    if off:
        return Outcome("fail", f"IOMMU disabled on the kernel command line ({off.group(1)})", e,
                       f"remove {off.group(1)} from the kernel command line; SNP needs the AMD IOMMU")
    if not units:
        return Outcome("fail", "no IOMMU registered (/sys/class/iommu is empty)", e,
                       "BIOS: enable IOMMU (AMD CBS > NBIO > IOMMU); SNP needs the AMD IOMMU")
    return Outcome("pass", f"{len(units)} IOMMU unit(s): {', '.join(units[:4])}", e)


CHECKS.add(Meta("iommu.enabled", "IOMMU enabled", Feature.SEV_SNP, (Feature.SEV_SNP,), ("cpuid.sev_snp",),
                "sev-facts §3.5"), iommu_on)


def iommu_pt(ctx: Context) -> Outcome:
    raw = ctx.raw
    cl = cmdline(ctx)
    types = raw.section("iommu_groups").get("types", {})
    e = [ev("/proc/cmdline iommu options", re.findall(r"\S*iommu\S*", cl)),
         ev("/sys/kernel/iommu_groups/*/type", types)]
    if re.search(r"(?:^|\s)iommu=pt(?:\s|$)", cl) or re.search(r"iommu\.passthrough=(1|on|y)", cl):
        return Outcome("fail", "IOMMU in passthrough mode (iommu=pt on the kernel command line)", e,
                       "remove iommu=pt / iommu.passthrough=1: SNP cannot be supported in passthrough mode")
    if types and set(types) == {"identity"}:
        return Outcome("fail", "every IOMMU group uses identity (passthrough) domains", e,
                       "set the default domain to translated (iommu.passthrough=0)")
    return Outcome("pass", "IOMMU not in passthrough mode", e)


CHECKS.add(Meta("iommu.not_passthrough", "IOMMU not in passthrough mode", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("iommu.enabled",), "sev-facts §3.5; AMDSEV#88"), iommu_pt)


# -- dmesg ------------------------------------------------------------------------------


def dmesg_read(ctx: Context) -> Outcome:
    raw = ctx.raw
    d = raw.section("dmesg")
    if "text" not in d:
        restrict = raw.data.get("files", {}).get("/proc/sys/kernel/dmesg_restrict", {}).get("text", "?").strip()
        return Outcome("warn", f"kernel log not readable: {d.get('error')}",
                       [ev("dmesg attempts", d.get("attempts")), ev("kernel.dmesg_restrict", restrict)],
                       "run as root or set kernel.dmesg_restrict=0; journalctl -k -b also works")
    e = [ev("kernel log source", d.get("source"))]
    return Outcome("pass", f"kernel log read via {d.get('source')}", e)


CHECKS.add(Meta("dmesg.readable", "Kernel log readable and parsed", None, (), (), "sev-facts §3"), dmesg_read)


def host_dmesg(ctx: Context) -> HostDmesg:
    """The parsed log, for checks that need dmesg.readable (so it was readable)."""
    f = parsed_dmesg(ctx)
    assert f is not None, "dmesg checks need dmesg.readable"
    return f


def lines(ctx: Context, *words: str) -> list[str]:
    return [ln for ln in host_dmesg(ctx).evidence_lines if any(w in ln for w in words)][:12]


def psp_errors(ctx: Context) -> Outcome:
    errs = host_dmesg(ctx).errors
    e = [ev("dmesg errors (sevkit.logs)", errs)]
    if not errs:
        return Outcome("pass", "no PSP/SEV initialization failures in the kernel log", e)
    codes = {int(m, 16) for m in re.findall(r"(?:error|rc)\s*(?:0x)?([0-9a-fA-F]+)", " ".join(errs))
             if _is_hex(m)}
    named = [f"0x{c:x}={SEV_RET[c]}" for c in sorted(codes) if c in SEV_RET]
    hint = "see the error codes: " + (", ".join(named) or "psp-sev.h sev_ret_code")
    if 0x13 in codes:
        hint += "; 0x13 means SMEE is disabled in the BIOS"
    if any("firmware version" in x for x in errs):
        hint += "; " + firmware_hint(ctx)
    return Outcome("fail", "; ".join(errs[:4]), e, hint)


CHECKS.add(Meta("dmesg.psp_errors", "No SEV/SNP INIT failures in the kernel log", Feature.SEV, (),
                ("dmesg.readable", "cpuid.sev"), "sev-facts §3.3"), psp_errors)


def fw_lines(ctx: Context) -> Outcome:
    fw = host_dmesg(ctx).firmware
    e = [ev("dmesg ccp API lines", lines(ctx, "API:")), ev("parsed", fw)]
    if not fw:
        return Outcome("warn", "no 'SEV API' line in the kernel log (ring buffer wrapped, or ccp not loaded)",
                       e, "use journalctl -k -b or capture the log soon after boot")
    st = ctx.facts.get("sev_status")
    if st and fw.get("sev_api") and fw["sev_api"] != f"{st['api_major']}.{st['api_minor']}":
        return Outcome("warn", f"kernel log says SEV API {fw['sev_api']}, the firmware now reports "
                               f"{st['api_major']}.{st['api_minor']}", e, "firmware updated since boot?")
    return Outcome("pass", ", ".join(f"{k}={v}" for k, v in fw.items()), e)


CHECKS.add(Meta("dmesg.firmware_api", "PSP firmware API lines (ccp)", Feature.SEV, (), ("dmesg.readable", "cpuid.sev"),
                "sev-facts §3.3"), fw_lines)


def kvm_asids(ctx: Context) -> Outcome:
    f = host_dmesg(ctx)
    budget = ctx.facts.get("asid_budget")
    me = ctx.facts.get("mem_encrypt")
    e = [ev("dmesg kvm_amd lines", lines(ctx, "ASID", "SEV supported", "SEV-ES supported")),
         ev("parsed counts", f.asid_counts), ev("parsed ranges", {k: list(v) for k, v in f.asid_ranges.items()})]
    if not f.asid_counts and not f.asid_ranges:
        return Outcome("warn", "no kvm_amd ASID lines in the kernel log", e,
                       "kvm_amd not loaded with sev=1, or the ring buffer wrapped")
    if me is None:
        return Outcome("pass", f"kvm_amd ASIDs {f.asid_counts}", e)
    e.append(ev("CPUID Fn8000_001F ECX/EDX", f"max {me.max_guests}, min SEV ASID {me.min_sev_asid}"))
    bad = []
    sev = f.asid_ranges.get(Feature.SEV)
    if sev and sev[1] and (sev[1] > me.max_guests or sev[0] < me.min_sev_asid):
        bad.append(f"SEV range {sev[0]}-{sev[1]} outside CPUID {me.min_sev_asid}-{me.max_guests}")
    for k in dependents(Feature.SEV_ES):
        r = f.asid_ranges.get(k)
        if r and r[1] and r[1] >= max(me.min_sev_asid, 1):
            bad.append(f"{k} range {r[0]}-{r[1]} reaches the SEV-only ASIDs (min SEV ASID {me.min_sev_asid})")
    if budget:
        for k in (Feature.SEV, Feature.SEV_ES):
            n = f.asid_counts.get(k)
            if n is not None and n > budget[k]:
                bad.append(f"{k} count {n} exceeds the CPUID budget {budget[k]}")
    if bad:
        return Outcome("fail", "; ".join(bad), e, "kvm_amd and CPUID disagree: check BIOS ASID settings "
                                                  "and the kvm_amd version")
    return Outcome("pass", f"kvm_amd ASIDs {f.asid_counts} consistent with CPUID", e)


CHECKS.add(Meta("dmesg.kvm_asids", "kvm_amd ASID ranges consistent with CPUID", Feature.SEV, (),
                ("dmesg.readable", "cpuid.sev"), "sev-facts §1.2, §3.2"), kvm_asids)


def plain_sev_asids(ctx: Context) -> Outcome:
    # arch/x86/kvm/svm/sev.c sev_hardware_setup(): plain SEV guests get ASIDs min_sev_asid (CPUID
    # Fn8000_001F EDX) .. max_sev_asid (ECX); when min_sev_asid > max_sev_asid the kernel prints
    # "SEV unusable (ASIDs %u - %u)" (5.11-6.4: "SEV supported: %u ASIDs" with a count of 0) and
    # sev_asid_new() finds no ASID, so a plain SEV launch fails while SEV-ES/SNP guests still run.
    me = ctx.facts["mem_encrypt"]
    sev_only = max(0, me.max_guests - me.min_sev_asid + 1) if me.min_sev_asid else me.max_guests
    e = [ev("CPUID Fn8000_001F EDX (min SEV ASID) / ECX (max ASID)", f"{me.min_sev_asid} / {me.max_guests}"),
         ev("plain-SEV ASIDs (ECX - EDX + 1)", sev_only)]
    kvm_zero = False
    f = parsed_dmesg(ctx)
    if f is not None:
        e.append(ev("dmesg kvm_amd SEV line", [ln for ln in f.evidence_lines if re.search(
            r"\bSEV (?:enabled|disabled|unusable) \(ASIDs|\bSEV supported", ln)][:2]))
        r = f.asid_ranges.get("SEV")
        kvm_zero = (r is not None and r[0] > r[1]) or (r is None and f.asid_counts.get("SEV") == 0)
    if sev_only == 0 or kvm_zero:
        src = "CPUID" if sev_only == 0 else "kvm_amd's log line"
        return Outcome("fail", f"no ASIDs left for plain SEV guests ({src}: min SEV ASID {me.min_sev_asid}, "
                               f"max ASID {me.max_guests}): every ASID is given to SEV-ES/SEV-SNP", e,
                       "BIOS: lower 'SEV-ES ASID Space Limit' (the minimum SEV non-ES ASID, CPUID Fn8000_001F "
                       "EDX) to at most the number of ASIDs so plain SEV guests keep some; SEV-ES and "
                       "SEV-SNP guests are not affected")
    return Outcome("pass", f"{sev_only} ASIDs for plain SEV guests ({me.min_sev_asid} - {me.max_guests})", e)


CHECKS.add(Meta("asid.sev_plain", "ASIDs left for plain SEV guests", Feature.SEV, (Feature.SEV,), ("cpuid.sev",),
                "sev-facts §1.2 EDX; arch/x86/kvm/svm/sev.c sev_hardware_setup() 'SEV unusable'", chained=False),
           plain_sev_asids)


def rmp_line(ctx: Context) -> Outcome:
    f = host_dmesg(ctx)
    e = [ev("dmesg SEV-SNP lines", lines(ctx, "SEV-SNP", "RMP"))]
    fatal = [x for x in f.errors if "RMP" in x and "RMPUPDATE" not in x]
    if f.rmp_range and not fatal:
        e.append(ev("RMP range", f"0x{f.rmp_range[0]:x} - 0x{f.rmp_range[1]:x}"))
        if f.rmp_segmented:   # arch/x86/virt/svm/sev.c probe_segmented_rmptable_info() (Linux >= 6.14)
            e.append(ev("RMP segments (index: covered range)",
                        {str(i): f"0x{lo:x} - 0x{hi:x}" for i, (lo, hi) in sorted(f.rmp_segments.items())}))
            return Outcome("pass", f"Segmented RMP base table 0x{f.rmp_range[0]:x} - 0x{f.rmp_range[1]:x}, "
                                   f"{f.rmp_segment_gb}GB segments, {len(f.rmp_segments)} segment(s)", e)
        return Outcome("pass", f"RMP table physical range 0x{f.rmp_range[0]:x} - 0x{f.rmp_range[1]:x}", e)
    if fatal or any("not been reserved" in ln or "does not cover" in ln for ln in e[0].value):
        why = fatal[0] if fatal else "RMP table not reserved or not covering RAM"
        return Outcome("fail", f"kernel log: {why}", e,
                       "BIOS: enable 'SEV-SNP Support' and 'SNP Memory Coverage'")
    return Outcome("warn", "no RMP range line in the kernel log (kernel < 6.9 or log wrapped)", e,
                   "SNP host support needs kernel >= 6.9/6.11")


CHECKS.add(Meta("dmesg.rmp", "RMP table range in the kernel log", Feature.SEV_SNP, (),
                ("dmesg.readable", "cpuid.sev_snp"), "sev-facts §3.4"), rmp_line)


def iommu_line(ctx: Context) -> Outcome:
    f = host_dmesg(ctx)
    e = [ev("dmesg AMD-Vi lines", lines(ctx, "AMD-Vi", "IOMMU")), ev("parsed iommu_snp", f.iommu_snp)]
    if f.iommu_snp is True:
        return Outcome("pass", "AMD-Vi: IOMMU SNP support enabled", e)
    if f.iommu_snp is False:
        return Outcome("fail", "kernel log: the IOMMU cannot support SNP", e,
                       "BIOS: enable IOMMU and SNP; remove iommu=pt / amd_iommu=off; IOMMU v1 page tables")
    return Outcome("warn", "no 'IOMMU SNP support' line in the kernel log", e,
                   "kernel < 6.9 or log wrapped; check iommu.* checks")


CHECKS.add(Meta("dmesg.iommu_snp", "IOMMU SNP support in the kernel log", Feature.SEV_SNP, (),
                ("dmesg.readable", "cpuid.sev_snp"), "sev-facts §3.5"), iommu_line)


# -- misc cgroup ------------------------------------------------------------------------


def misc_cgroup(ctx: Context) -> Outcome:
    raw = ctx.raw
    text = raw.file("/sys/fs/cgroup/misc.capacity")
    budget = ctx.facts.get("asid_budget")
    if text is None:
        return Outcome("skip", "/sys/fs/cgroup/misc.capacity absent (cgroup v2 misc controller not mounted)",
                       [ev("/sys/fs/cgroup/misc.capacity", "(absent)")],
                       "mount cgroup v2 with the misc controller (CONFIG_CGROUP_MISC) to account SEV ASIDs")
    cap = {k: int(v) for k, v in (ln.split() for ln in text.splitlines() if len(ln.split()) == 2)}
    e = [ev("/sys/fs/cgroup/misc.capacity", cap), ev("CPUID ASID budget", budget)]
    if "sev" not in cap:
        return Outcome("warn", "misc.capacity has no 'sev' entry (kvm_amd without SEV?)", e,
                       "load kvm_amd with sev=1")
    if budget is None:
        return Outcome("pass", f"misc.capacity {cap}", e)
    bad = []
    if cap.get("sev") != budget[Feature.SEV]:
        bad.append(f"sev {cap.get('sev')} != CPUID SEV-only ASIDs {budget[Feature.SEV]}")
    if "sev_es" in cap and cap["sev_es"] != budget[Feature.SEV_ES]:
        bad.append(f"sev_es {cap['sev_es']} != CPUID SEV-ES ASIDs {budget[Feature.SEV_ES]}")
    if bad:
        return Outcome("warn", "; ".join(bad), e, "kvm_amd may reserve ASIDs (ciphertext hiding) or the "
                                                  "BIOS split changed; compare with dmesg.kvm_asids")
    return Outcome("pass", f"misc.capacity {cap} matches CPUID", e)


CHECKS.add(Meta("asid.misc_cgroup", "ASID budget in the misc cgroup matches CPUID", Feature.SEV, (),
                ("cpuid.sev", "cpuid.min_sev_asid"), "sev-facts §1.2; kernel misc cgroup sev/sev_es"),
           misc_cgroup)


def _is_hex(s: str) -> bool:
    try:
        int(s, 16)
    except ValueError:
        return False
    return True


def _snp_status(raw: Any) -> dict[str, Any] | None:
    res = raw.ioctl("SNP_PLATFORM_STATUS")
    if not res or "hex" not in res:
        return None
    data = bytes.fromhex(res["hex"])
    major, minor, state, flags, build, feat, guests, cur, rep = struct.unpack("<BBBBIIIQQ", data[:32])
    return {"api_major": major, "api_minor": minor, "state": state, "rmp_initialized": flags & 1,
            "alias_check": flags >> 1 & 1, "build": build, "feature_word": feat, "guest_count": guests,
            "current_tcb": cur, "reported_tcb": rep, "hex": res["hex"]}
