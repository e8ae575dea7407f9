"""Host identity (CPU, generation, microcode, firmware, kernel, QEMU, OVMF) and QEMU facts."""

from __future__ import annotations

import re
from typing import Any

from . import cpu
from .rawinputs import RawInputs, Unreadable
from .report import QemuInfo


def qemu_info(raw: RawInputs) -> QemuInfo | None:
    q = raw.section("qemu")
    if "path" not in q:
        return None
    text = str(q.get("version", {}).get("stdout", ""))
    m = re.search(r"version (\d+)\.(\d+)(?:\.(\d+))?", text)
    if not m:
        return None
    objs = q.get("object_help", {}).get("stdout", "")
    names = frozenset(ln.strip() for ln in str(objs).splitlines()[1:] if ln.startswith("  ") and ln.strip())
    return QemuInfo(str(q["path"]), (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)), names,
                    text.strip().splitlines()[0] if text.strip() else "")


def ovmf_images(raw: RawInputs) -> list[str]:
    return [str(i["path"]) for i in raw.section("ovmf").get("images", []) if int(i.get("size", 0)) > 0]


def identity(raw: RawInputs, facts: dict[str, Any]) -> dict[str, str]:
    """Strings for the report header and junit properties; '' never, 'unknown (...)' instead."""
    out: dict[str, str] = {}
    try:
        out["cpu"] = cpu.brand(raw.cpuid(0x80000002), raw.cpuid(0x80000003), raw.cpuid(0x80000004)) or "unknown"
        out["cpu_vendor"] = cpu.vendor(raw.cpuid(0))
        eax1 = raw.cpuid(1)[0]
        sig = cpu.signature(eax1)
        out["cpu_signature"] = str(sig)
        out["cpuid_1_eax"] = f"0x{eax1:08x}"     # for the attestation product and -cpu host's vcpu_sig
        out["generation"] = cpu.generation(sig) or "unknown"
    except Unreadable as exc:
        out.setdefault("cpu", f"unknown ({exc.message})")
        out.setdefault("generation", "unknown")
    m = re.search(r"^microcode\s*:\s*(\S+)", str(raw.section("cpuinfo").get("text", "")), re.M)
    out["microcode"] = m.group(1) if m else "unknown"
    st = facts.get("sev_status")
    if st:
        out["firmware"] = f"SEV API {st['api_major']}.{st['api_minor']} build {st['build']}"
    else:
        out["firmware"] = "n/a (no SEV firmware status)"
    out["kernel"] = raw.kernel_release or "unknown"
    q = qemu_info(raw)
    out["qemu"] = f"{'.'.join(map(str, q.version))} ({q.path})" if q else "not found"
    imgs = ovmf_images(raw)
    out["ovmf"] = ", ".join(imgs[:3]) + (f" (+{len(imgs) - 3})" if len(imgs) > 3 else "") if imgs else "not found"
    out["hostname"] = str(raw.data.get("collector", {}).get("hostname", "unknown"))
    out.update(_dmi(raw))
    out["cmdline"] = _text(raw, "/proc/cmdline")
    snp = facts.get("snp_status")
    if snp:
        out["snp_firmware"] = f"SNP API {snp['api_major']}.{snp['api_minor']} build {snp['build']}"
        out["snp_tcb_current"] = f"0x{snp['current_tcb']:016x}"
        out["snp_tcb_reported"] = f"0x{snp['reported_tcb']:016x}"
    try:
        units = raw.listdir("/sys/class/iommu")
    except Unreadable:
        units = None
    iommu = re.findall(r"\S*iommu\S*", out["cmdline"])
    out["iommu"] = (f"{len(units)} unit(s)" if units else "none registered") + (f"; {' '.join(iommu)}" if iommu else "")
    return out


_DMI = {"dmi_vendor": "sys_vendor", "dmi_product": "product_name", "bios_vendor": "bios_vendor",
        "bios_version": "bios_version", "bios_date": "bios_date"}


def _text(raw: RawInputs, path: str) -> str:
    """A collected file's text, or 'unknown (why)' (bundles from older sevkit versions lack some)."""
    try:
        text = raw.file(path)
    except Unreadable as exc:
        return f"unknown ({exc.message})"
    return "unknown (absent)" if text is None else text.strip()


def _dmi(raw: RawInputs) -> dict[str, str]:
    return {key: _text(raw, f"/sys/class/dmi/id/{name}") for key, name in _DMI.items()}
