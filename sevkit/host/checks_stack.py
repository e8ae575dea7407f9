"""Software-stack checks: kernel, memlock, cpuinfo flags, microcode, QEMU and OVMF.

References: sev-facts.md §1.4 (cpuinfo flags), §8.1 (QEMU landmarks), §8.5 (OVMF builds), §11.1.
"""

from __future__ import annotations

import re
from functools import partial

from ..memencrypt import FEATURE_BITS, MemEncryptInfo
from ..versions import version_tuple
from ..vocab import FEATURES, Feature
from .checkdef import Checks, Context, Meta, Outcome, ev
from .identity import ovmf_images, qemu_info
from .ovmf import SNP_SECTIONS, OvmfImage, ParserUnavailable, inspect_all
from .rawinputs import Unreadable
from .report import Evidence

HINT_AMDSEV = ("install an OVMF built from OvmfPkg/AmdSev/AmdSevX64.dsc (single OVMF.fd) for SEV-SNP measured "
               "direct boot; Debian's ovmf package has no AMD SEV build")
HINT_SNP = ("install an OVMF.fd with SEV-SNP metadata (edk2-stable202205 or later: OvmfPkg/OvmfPkgX64.dsc, or "
            "OvmfPkg/AmdSev/AmdSevX64.dsc for measured direct boot) and boot SNP guests with -bios")
# /proc/cpuinfo flag of each feature (sev-facts §1.4).
FLAG_OF = {f: f.flag for f in FEATURES}


CHECKS = Checks()


def microcode(ctx: Context) -> Outcome:
    raw = ctx.raw
    sec = raw.section("cpuinfo")
    if "text" not in sec:
        return Outcome("error", f"/proc/cpuinfo not readable: {sec.get('error')}", [ev("/proc/cpuinfo", sec)],
                       "check /proc is mounted")
    m = re.search(r"^microcode\s*:\s*(\S+)", sec["text"], re.M)
    val = m.group(1) if m else "(not reported)"
    return Outcome("pass", f"microcode {val}", [ev("/proc/cpuinfo microcode", val)])


CHECKS.add(Meta("cpu.microcode", "CPU microcode revision", None, (), (), "/proc/cpuinfo"), microcode)


def flags(ctx: Context) -> Outcome:
    raw = ctx.raw
    sec = raw.section("cpuinfo")
    m = re.search(r"^flags\s*:\s*(.*)$", sec.get("text", ""), re.M)
    have = set(m.group(1).split()) if m else set()
    me: MemEncryptInfo = ctx.facts["mem_encrypt"]
    shown = {f: FLAG_OF[f] in have for f in FEATURE_BITS}
    e = [ev("/proc/cpuinfo flags (memory encryption)", sorted(FLAG_OF[f] for f, v in shown.items() if v)),
         ev("CPUID Fn8000_001F EAX bits", {f: int(me.has(f)) for f in FEATURE_BITS})]
    # The kernel clears sme when it did not turn SME on itself, so only the SEV flags count.
    cleared = [FLAG_OF[f] for f in FEATURE_BITS if me.has(f) and not shown[f] and f != Feature.SME]
    if cleared:
        return Outcome("warn", f"CPUID has {', '.join(cleared)} but the kernel cleared the cpuinfo flag(s)", e,
                       "the kernel disabled them: SYSCFG bit 23 (SMEE) or HWCR.SMMLOCK clear, no RMP "
                       "reserved, or sev_snp on a kernel < 6.9 (sev-facts §1.4)")
    return Outcome("pass", "cpuinfo flags agree with CPUID", e)


CHECKS.add(Meta("cpu.cpuinfo_flags", "/proc/cpuinfo memory-encryption flags agree with CPUID", Feature.SEV, (),
                ("cpuid.sev",), "sev-facts §1.4"), flags)


def kernel(ctx: Context) -> Outcome:
    raw = ctx.raw
    rel = raw.kernel_release
    return Outcome("pass", f"Linux {rel}", [ev("uname -r", rel), ev("parsed", list(version_tuple(rel)))])


CHECKS.add(Meta("host.kernel", "Kernel version", None, (), (), "sev-facts §11.1"), kernel)


def snp_kernel(ctx: Context) -> Outcome:
    raw = ctx.raw
    rel = raw.kernel_release
    v = version_tuple(rel)
    e = [ev("uname -r", rel)]
    if v >= (6, 11):
        return Outcome("pass", f"kernel {rel} >= 6.11 (SNP host in KVM)", e)
    if v >= (6, 10) or "snp" in rel:
        return Outcome("warn", f"kernel {rel}: SNP host support depends on the build", e,
                       "use an upstream kernel >= 6.11 (snphost: 'Need kernel 6.11+')")
    return Outcome("fail", f"kernel {rel} < 6.10 has no upstream SNP host support", e,
                   "upgrade to a kernel >= 6.11 built with CONFIG_KVM_AMD_SEV=y")


CHECKS.add(Meta("snp.kernel", "Kernel supports SNP hosts", Feature.SEV_SNP, (), ("cpuid.sev_snp",),
                "sev-facts §11.1"), snp_kernel)


def memlock(ctx: Context) -> Outcome:
    raw = ctx.raw
    lim = raw.section("rlimit_memlock")
    soft, hard = lim.get("soft"), lim.get("hard")

    def fmt(v: object) -> str:
        return "unlimited" if v == -1 else str(v)
    return Outcome("pass", f"Soft: {fmt(soft)} | Hard: {fmt(hard)} (informational)",
                   [ev("getrlimit(RLIMIT_MEMLOCK)", {"soft": soft, "hard": hard})])


CHECKS.add(Meta("host.memlock", "memlock limit", None, (), (), "snphost 'memlock limit'; sev-facts §11.2"), memlock)


def qemu_present(ctx: Context) -> Outcome:
    raw = ctx.raw
    q = raw.section("qemu")
    if "error" in q:
        return Outcome("fail", q["error"], [ev("qemu search", q["error"])],
                       "install QEMU (Debian: apt-get install qemu-system-x86)")
    info = qemu_info(raw)
    e = [ev("qemu binary", q.get("path")), ev(f"{q.get('path')} --version",
                                             q.get("version", {}).get("stdout", "").strip().splitlines()[:1])]
    if info is None:
        return Outcome("fail", f"{q.get('path')} --version gave no version", e, "reinstall QEMU")
    return Outcome("pass", f"QEMU {'.'.join(map(str, info.version))} at {info.path}", e)


CHECKS.add(Meta("qemu.present", "QEMU present", None, (), (), "sev-facts §8.1"), qemu_present)


def qemu_object(obj: str, since: str, ctx: Context) -> Outcome:
    raw = ctx.raw
    info = qemu_info(raw)
    if info is None:  # needs=qemu.present makes this unreachable; say so rather than crash
        return Outcome("error", "QEMU version unknown", [], "see qemu.present")
    e = [ev(f"{info.path} -object help", obj in info.objects),
         ev("QEMU version", ".".join(map(str, info.version)))]
    if obj in info.objects:
        return Outcome("pass", f"QEMU {'.'.join(map(str, info.version))} knows -object {obj}", e)
    return Outcome("fail", f"QEMU {'.'.join(map(str, info.version))} has no '{obj}' object", e,
                   f"install QEMU >= {since} built for x86 with SEV support")


CHECKS.add(Meta("qemu.sev_guest", "QEMU knows the sev-guest object", Feature.SEV, (), ("qemu.present",),
                "sev-facts §8.1, §8.2"), partial(qemu_object, "sev-guest", "2.12"))
CHECKS.add(Meta("qemu.sev_snp_guest", "QEMU knows the sev-snp-guest object", Feature.SEV_SNP, (), ("qemu.present",),
                "sev-facts §8.1, §8.3"), partial(qemu_object, "sev-snp-guest", "9.1"))


def ovmf(ctx: Context) -> Outcome:
    raw = ctx.raw
    imgs = ovmf_images(raw)
    e = [ev("OVMF images", imgs), ev("searched", raw.section("ovmf").get("searched"))]
    if imgs:
        return Outcome("pass", f"{len(imgs)} OVMF image(s), e.g. {imgs[0]}", e)
    return Outcome("fail", "no OVMF image found", e, "install OVMF (Debian: apt-get install ovmf)")


CHECKS.add(Meta("ovmf.present", "OVMF images present", None, (), (), "sev-facts §8.5"), ovmf)


def images(ctx: Context) -> list[OvmfImage]:
    raw = ctx.raw
    if "ovmf_images" not in ctx.facts:
        try:
            ctx.facts["ovmf_images"] = inspect_all(raw.section("ovmf"))
        except ParserUnavailable as exc:
            raise Unreadable(str(exc), "sevsnpmeasure.ovmf", None, "pip install sev-snp-measure") from exc
    found: list[OvmfImage] = ctx.facts["ovmf_images"]
    return found


def img_ev(imgs: list[OvmfImage]) -> list[Evidence]:
    return [ev(f"{i.path} (sha256 {i.sha256[:16]}, {i.size} bytes, {i.role})",
               {"guids": list(i.guids), "sev_metadata_sections": list(i.sections), "error": i.error})
            for i in imgs]


def capability(attr: str, what: str, fail_status: str, hint: str, ctx: Context) -> Outcome:
    fw = [i for i in images(ctx) if i.firmware]
    have = [i for i in fw if getattr(i, attr)]
    if have:
        best = next((i for i in have if i.combined), have[0])
        msg = f"{len(have)} OVMF image(s) with {what}, e.g. {best.path} ({best.role})"
        if attr == "kernel_hashes":   # SNP measured direct boot needs its own metadata section too
            snp_ok = [i.path for i in have if i.snp_kernel_hashes]
            msg += "; SNP_KERNEL_HASHES section in " + (", ".join(snp_ok[:2]) if snp_ok else "none of them")
        return Outcome("pass", msg, img_ev(have))
    others = [i for i in images(ctx) if i not in fw and i.error]
    return Outcome(fail_status, f"no OVMF image has {what} (inspected {len(fw)} firmware image(s): "
                   + "; ".join(i.summary() for i in fw[:4]) + ")", img_ev(fw + others), hint)


CHECKS.add(Meta("ovmf.sev_es", "OVMF with the SEV-ES reset block (GUID table)", Feature.SEV_ES, (), ("ovmf.present",),
                "sev-facts §8.5 GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e"),
           partial(capability, "sev_es", "the SEV-ES reset block", "fail",
                   "install an OVMF from edk2-stable202011 or later (Debian 12: apt-get install ovmf)"))
CHECKS.add(Meta("ovmf.snp", "OVMF with SEV-SNP metadata (usable with -bios)", Feature.SEV_SNP, (), ("ovmf.present",),
                "sev-facts §8.5 GUID dc886566-984a-4798-a75e-5585a7bf67cc"),
           partial(capability, "snp", "SEV metadata with the SNP sections (" + ", ".join(SNP_SECTIONS) + ")",
                   "fail", HINT_SNP))
CHECKS.add(Meta("ovmf.kernel_hashes", "OVMF with a SEV hash table (measured direct boot, kernel-hashes=on)",
                Feature.SEV, (), ("ovmf.present",), "sev-facts §8.5 GUID 7255371f-3a3b-4b04-927b-1da6efa8d454"),
           partial(capability, "kernel_hashes", "a SEV hash table (kernel-hashes=on)", "warn", HINT_AMDSEV))
