"""Host and guest kernel logs: what they say about SME, SEV, SEV-ES and SEV-SNP.

Host semantics: a feature is *usable per the log* when the log shows it enabled in KVM AND
the PSP firmware initialized for it. It is False when the log shows it disabled, failed, or
not enabled by the BIOS, and None when the log says nothing either way. A PSP-level failure
(status command failing, command timeout that disables the PSP) makes every firmware-backed
feature False even when kvm_amd still prints ASID ranges (the AMDSEV#184 trap).

Guest semantics: a feature is True when the log shows it active in that guest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..vocab import FEATURE_CHAIN, FEATURES, KVM_PARAM_FEATURE, Feature, GuestKind, dependents
from . import patterns as P

SNP_MIN_API = (1, 51)   # SNP_MIN_API_MAJOR/MINOR in drivers/crypto/ccp/sev-dev.c

Features = dict[str, bool | None]


def _empty_features() -> Features:
    return dict.fromkeys(FEATURES)


def _lines(text: str) -> Iterable[str]:
    for raw in text.splitlines():
        line = raw.rstrip()
        if line:
            yield line


def _message(line: str, match: re.Match[str]) -> str:
    """The matched message text, without timestamp or device prefix, trailing space dropped."""
    return line[match.start():].strip()


@dataclass(frozen=True)
class HostDmesg:
    """What a host kernel log says. ``evidence_lines`` are the raw lines that were used."""

    features: Features
    firmware: dict[str, str | int] = field(default_factory=dict)
    asid_counts: dict[str, int] = field(default_factory=dict)
    asid_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    rmp_range: tuple[int, int] | None = None
    rmp_segmented: bool = False     # "Segmented RMP ..." lines (Turin, Linux >= 6.14)
    rmp_segment_gb: int | None = None
    rmp_segments: dict[int, tuple[int, int]] = field(default_factory=dict)   # index -> covered [lo, hi]
    iommu_snp: bool | None = None
    kvm_params: dict[str, bool] = field(default_factory=dict)
    psp_device: str | None = None
    cpu: str | None = None          # from "smpboot: CPU0: ..." when the capture has it
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GuestDmesg:
    """What a guest kernel log says about the confidential features active in it."""

    features: Features
    vmpl: int | None = None
    sev_guest_driver: bool | None = None   # None: the capture has no driver line either way
    vmpck_id: int | None = None
    snp_cpuid_entries: int | None = None
    status_tokens: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


def _init_failure(m: re.Match[str]) -> str:
    """One normalized string per INIT failure, error code and rc kept exactly as printed."""
    which = m["which"]
    cmd = m["cmd"] or "INIT"
    err = m["e1"] or m["e3"] or m["e4"]
    rc = m["rc1"] or m["rc2"] or m["rc3"] or m["rc4"]
    return f"{which} {cmd} failed: error {err}" + (f", rc {rc}" if rc is not None else "")


def _param(val: str) -> bool:
    return val in ("Y", "1")


_PARAM_KEY = KVM_PARAM_FEATURE


def parse_host_dmesg(text: str) -> HostDmesg:
    """Parse a host dmesg (or a grep of it, or journalctl -k) into SEV facts."""
    evidence: list[str] = []
    errors: list[str] = []
    notes: list[str] = []
    firmware: dict[str, str | int] = {}
    ranges: dict[str, tuple[int, int]] = {}
    counts: dict[str, int] = {}
    kvm_state: dict[str, bool] = {}     # from kvm_amd lines: enabled (True) / disabled (False)
    kvm_params: dict[str, bool] = {}
    kvm_seen = False                     # a kvm_amd SEV line is present (any format)
    rmp: tuple[int, int] | None = None
    seg_gb: int | None = None
    segmented = False
    segments: dict[int, tuple[int, int]] = {}
    iommu: bool | None = None
    psp_device: str | None = None
    sme: bool | None = None
    cpu: str | None = None
    psp_dead = bios_off = sev_init_failed = snp_init_failed = snp_platform_bad = False
    es_failed = kvm_dead = False
    snp_fw_too_old = False
    pending_param: str | None = None

    for line in _lines(text):
        used = True
        if pending_param is not None:
            pv = P.PARAM_VALUE.match(line)
            if pv:
                kvm_params[pending_param] = _param(pv["val"])
                evidence.append(line)
                pending_param = None
                continue
            pending_param = None
        if not P.HOST_WORDS.search(line):
            continue
        if m := P.KVM_PARAM_CAT.search(line):
            pending_param = _PARAM_KEY[m["name"].replace("-", "_")]
        elif m := P.KVM_PARAM_GREP.search(line):
            kvm_params[_PARAM_KEY[m["name"].replace("-", "_")]] = _param(m["val"])
        elif m := P.KVM_RANGE.search(line):
            kind = "SEV" + (m["kind"] or "")
            lo, hi = int(m["lo"]), int(m["hi"])
            enabled = m["state"] == "enabled" and hi >= lo and hi > 0
            ranges[kind] = (lo, hi)
            counts[kind] = hi - lo + 1 if enabled else 0
            kvm_state[kind] = enabled
            kvm_seen = True
        elif m := P.KVM_SUPPORTED.search(line):
            kinds = {"-ES and SEV-SNP": ("SEV-ES", "SEV-SNP"), "-ES": ("SEV-ES",),
                     "-SNP": ("SEV-SNP",)}.get(m["kind"] or "", ("SEV",))
            for kind in kinds:
                if m["n"] is not None:
                    counts[kind] = int(m["n"])
                kvm_state[kind] = m["n"] is None or int(m["n"]) > 0
            kvm_seen = True
        elif m := P.CCP_API.search(line):
            key = "snp" if m["snp"] else "sev"
            firmware[f"{key}_api"] = f"{int(m['maj'])}.{int(m['min'])}"
            firmware[f"{key}_build"] = int(m["build"])
        elif m := P.INIT_FAIL.search(line):
            errors.append(_init_failure(m))
            if m["which"] == "SEV-SNP":
                snp_init_failed = True
            else:
                sev_init_failed = True
        elif (m := P.PSP_STATUS_FAIL.search(line)) or (m := P.PSP_CMD_TIMEOUT.search(line)) \
                or (m := P.PSP_INIT_FAIL.search(line)):
            errors.append(_message(line, m))
            psp_dead = True
        elif m := P.SNP_FW_TOO_OLD.search(line):
            errors.append(_message(line, m))
            snp_fw_too_old = True
        elif m := P.BIOS_NO_MEM_ENCRYPT.search(line):
            errors.append("SEV: memory encryption not enabled by BIOS")
            bios_off = True
        elif m := P.RMP_RANGE.search(line):
            rmp = (int(m["lo"], 16), int(m["hi"], 16))
        elif m := P.RMP_SEG_BASE.search(line):
            rmp, segmented = (int(m["lo"], 16), int(m["hi"], 16)), True
        elif m := P.RMP_SEG_SIZE.search(line):
            seg_gb, segmented = int(m["gb"]), True
        elif m := P.RMP_SEGMENT.search(line):
            segments[int(m["idx"])] = (int(m["lo"], 16), int(m["hi"], 16))
            segmented = True
        elif m := P.RMP_FATAL.search(line):
            errors.append(_message(line, m))
            snp_platform_bad = True
        elif (m := P.RMP_RUNTIME_FAIL.search(line)) or (m := P.FW_UPDATE_FAIL.search(line)):
            errors.append(_message(line, m))     # recorded; does not by itself decide a feature
        elif P.CCP_INIT_FAIL.search(line):
            # the CCP crypto queues (not the PSP) failed; EPYC hosts print this harmlessly on 5.4
            notes.append("'ccp initialization failed': CCP crypto queues unavailable; the PSP is separate")
        elif P.IOMMU_SNP_ON.search(line):
            iommu = True
        elif m := P.IOMMU_SNP_OFF.search(line):
            errors.append(_message(line, m))
            iommu = False
            snp_platform_bad = True
        elif (m := P.MEM_ENCRYPT_NEW.search(line)) or (m := P.MEM_ENCRYPT_OLD.search(line)):
            if "SME" in m["tok"].split():
                sme = True
            else:
                used = False
        elif (m := P.MEM_ENCRYPT_OLDEST.search(line)) and m["sme"]:
            sme = True
        elif P.CCP_SEV_ENABLED.search(line):
            pass
        elif m := P.CPU0.search(line):
            cpu = m["cpu"].strip()
        elif found := _table_message(line):
            # the rest of the kernel's table (patterns.HOST_MESSAGES): a failure is an error line and
            # takes down its scope; a success or info line is evidence
            msg, m = found
            if msg.outcome == "fail":
                errors.append(_message(line, m))
                psp_dead |= msg.scope == "psp"
                sev_init_failed |= msg.scope == "sev"
                es_failed |= msg.scope == "sev-es"
                snp_platform_bad |= msg.scope == "sev-snp"
                kvm_dead |= msg.scope == "kvm"
        else:
            used = False
        if used:
            evidence.append(line)
            if psp_device is None and (d := P.CCP_DEVICE.search(line)):
                psp_device = d["dev"]

    # kvm_amd prints the SEV-ES (and SNP) line right after the SEV line whenever the kernel
    # supports it, so a missing line next to a present SEV line means "none" (AMDSEV#84, #258).
    if kvm_seen and "SEV" in kvm_state:
        for kind in dependents(Feature.SEV_ES):
            if kind not in kvm_state:
                kvm_state[kind] = False
                if "SEV" in counts:
                    counts[kind] = 0
    for kind, on in kvm_params.items():
        kvm_state[kind] = kvm_state.get(kind, True) and on

    snp_api = _api_tuple(firmware.get("snp_api"))
    if snp_api is not None and snp_api < SNP_MIN_API:
        snp_fw_too_old = True
        notes.append(f"SEV-SNP firmware API {firmware['snp_api']} is below the {SNP_MIN_API[0]}."
                     f"{SNP_MIN_API[1]} minimum")
    # "SEV API" is legacy SEV init; the single-line "SEV-SNP API" form (SEV%s API) covers both.
    fw_sev = "sev_api" in firmware or "snp_api" in firmware
    fw_snp = snp_api is not None

    features = _empty_features()
    features["SME"] = False if bios_off else sme
    sev_dead = bios_off or psp_dead or sev_init_failed or kvm_dead
    for kind in (Feature.SEV, Feature.SEV_ES):
        if sev_dead or kvm_state.get(kind) is False or (kind is Feature.SEV_ES and es_failed):
            features[kind] = False
        elif kvm_state.get(kind) and fw_sev:
            features[kind] = True
    if bios_off or psp_dead or snp_init_failed or snp_fw_too_old or snp_platform_bad or es_failed \
            or kvm_dead or kvm_state.get("SEV-SNP") is False:
        features["SEV-SNP"] = False
    elif kvm_state.get("SEV-SNP") and fw_snp:
        features["SEV-SNP"] = True

    if cpu is not None and "Hygon" in cpu:
        # Hygon's SEV-compatible CSV is not AMD SEV: never report AMD SEV usable on it
        for kind in FEATURE_CHAIN:
            features[kind] = False
        notes.append(f"{cpu} is a Hygon CPU, not AMD: its SEV lines describe Hygon CSV, not AMD SEV")
    elif cpu is not None and "EPYC" not in cpu:
        notes.append(f"{cpu} is not an AMD EPYC")
    if psp_dead and kvm_seen:
        notes.append("kvm_amd still lists ASIDs, but the PSP failed: nothing firmware-backed is usable")
    if kvm_state.get("SEV") and not fw_sev and not sev_dead:
        notes.append("kvm_amd reports SEV but the log has no PSP firmware (SEV API) line: "
                     "usability unproven (is /dev/sev present? is this an AMD CPU?)")
    if fw_sev and not kvm_seen and not kvm_params:
        notes.append("PSP firmware initialized, but the log has no kvm_amd line: KVM state unknown")
    if any("RMPUPDATE failed" in e for e in errors):
        notes.append("SEV-SNP was active (RMPUPDATE ran) but an RMP update failed at runtime")

    return HostDmesg(features=features, firmware=firmware, asid_counts=counts, asid_ranges=ranges,
                     errors=errors, rmp_range=rmp, rmp_segmented=segmented, rmp_segment_gb=seg_gb,
                     rmp_segments=segments, iommu_snp=iommu, kvm_params=kvm_params,
                     psp_device=psp_device, cpu=cpu, notes=notes, evidence_lines=evidence)


def _table_message(line: str) -> tuple[P.KernelMessage, re.Match[str]] | None:
    for msg in P.HOST_MESSAGES:
        if m := msg.pattern.search(line):
            return msg, m
    return None


def _api_tuple(api: str | int | None) -> tuple[int, int] | None:
    if not isinstance(api, str):
        return None
    maj, _, minor = api.partition(".")
    return int(maj), int(minor)


def _tokens(tok: str) -> set[str]:
    return set(tok.split())


def parse_guest_dmesg(text: str) -> GuestDmesg:
    """Parse a guest dmesg: which of SME/SEV/SEV-ES/SEV-SNP are active, VMPL, #VC failures."""
    features = _empty_features()
    evidence: list[str] = []
    errors: list[str] = []
    notes: list[str] = []
    status: list[str] = []
    vmpl: int | None = None
    driver: bool | None = None
    vmpck: int | None = None
    entries: int | None = None
    banner: set[str] | None = None   # the full list of active features, when the log prints it
    snp_seen = es_seen = False

    for line in _lines(text):
        if not P.GUEST_WORDS.search(line):
            continue
        used = True
        if (m := P.MEM_ENCRYPT_NEW.search(line)) or (m := P.MEM_ENCRYPT_OLD.search(line)):
            banner = (banner or set()) | _tokens(m["tok"])
        elif m := P.MEM_ENCRYPT_OLDEST.search(line):
            features["SEV" if m["sev"] else "SME"] = True
        elif m := P.GUEST_STATUS.search(line):
            status = m["tok"].split()
            banner = (banner or set()) | {t for t in status if t in FEATURES}
        elif m := P.GUEST_DRIVER.search(line):
            driver, vmpck, snp_seen = True, int(m["id"]), True
        elif m := P.GUEST_VMPL.search(line):
            vmpl, snp_seen = int(m["vmpl"]), True
        elif m := P.GUEST_CPUID_TABLE.search(line):
            entries, snp_seen = int(m["n"]), True
        elif P.GUEST_PLATFORM_DEV.search(line):
            snp_seen = True
        elif m := P.GUEST_SYSTEMD_CVM.search(line):
            snp_seen = snp_seen or m["kind"] == GuestKind.SEV_SNP
            es_seen = es_seen or m["kind"] == GuestKind.SEV_ES
            features["SEV"] = True
        elif (m := P.GUEST_VC_FAIL.search(line)) or (m := P.GUEST_VMPCK_DISABLED.search(line)):
            errors.append(_message(line, m))
            if "#VC" in line:
                es_seen = True   # #VC exceptions exist only in SEV-ES and SEV-SNP guests
        elif P.GUEST_GHCB.search(line):
            es_seen = True       # the GHCB protocol is SEV-ES/SNP only
        else:
            used = False
        if used:
            evidence.append(line)

    if banner is not None:
        for f in FEATURES:
            features[f] = f in banner
    if snp_seen:
        features["SEV-SNP"] = True
    if features["SEV-SNP"]:
        es_seen = True
    if es_seen:
        features["SEV-ES"] = True
    if features["SEV-ES"]:
        features["SEV"] = True
    if features["SEV-SNP"] and driver is None:
        notes.append("no sev-guest driver line: /dev/sev-guest may be missing (no attestation)")
    return GuestDmesg(features=features, vmpl=vmpl, sev_guest_driver=driver, vmpck_id=vmpck,
                      snp_cpuid_entries=entries, status_tokens=status, errors=errors, notes=notes,
                      evidence_lines=evidence)
