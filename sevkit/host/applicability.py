"""Applicability rules of the newer SEV-SNP requirements (issue 13), decided from the capability probe.

Each rule returns an ``Applicability``: applicable or not, the reason, and the capabilities it read
as evidence. A rule whose deciding capability could not be read (an access error, a bundle from an
older sevkit) raises HostProbeError: "cannot tell" is an ERROR, never NOT-APPLICABLE.

Rules take only ``Capabilities`` (plus explicit options), so a bundle graded elsewhere decides the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import snpbits
from ..errors import HostProbeError
from ..vocab import Profile
from .capabilities import Capabilities, Capability

NOT_APPLICABLE = "NOT-APPLICABLE"
# QEMU's refusal when firmware no longer starts SEV-ES guests, as quoted in AMDESE/AMDSEV#282:
# "sev_launch_start: LAUNCH_START ret=1 fw_error=21 'Feature not supported'". Firmware status 0x15 (21) is
# FEATURE_NOT_SUPPORTED (AMD SEV API spec status codes; QEMU target/i386/sev.c sev_fw_errlist).
FW_FEATURE_NOT_SUPPORTED = 21
_LAUNCH_START_REFUSED = re.compile(r"LAUNCH_START ret=-?\d+ fw_error=(\d+)")
# What a refused SNP launch looks like in QEMU's output (target/i386/sev.c): KVM_SEV_INIT2 or
# SNP_LAUNCH_START failing ("sev_snp_launch_start: SNP_LAUNCH_START ret=%d fw_error=%d '%s'"; KVM's EINVAL for
# a policy bit it does not accept), and SNP_LAUNCH_FINISH ("SNP_LAUNCH_FINISH ret=%d fw_error=%d '%s'") for an
# ID block whose signature or digest does not hold (firmware status BAD_SIGNATURE 10, BAD_MEASUREMENT 11).
POLICY_REFUSED = re.compile(r"LAUNCH_START|[Pp]olicy|Invalid argument|not supported|fw_error")
ID_BLOCK_REFUSED = re.compile(r"LAUNCH_FINISH|fw_error|[Ss]ignature|[Mm]easurement|Invalid argument")


@dataclass(frozen=True)
class Applicability:
    rule: str
    applicable: bool
    reason: str
    evidence: tuple[Capability, ...] = ()
    withheld: bool = False       # it would apply, but the run did not permit it (a plain SKIP, not N/A)

    @property
    def skip_reason(self) -> str:
        """The pytest skip text: starts with NOT-APPLICABLE (or, when withheld, names what would permit it)
        and names each deciding capability's value."""
        ev = "; ".join(f"{c.id}={_shown(c)} [{c.source}]" for c in self.evidence)
        head = "not run" if self.withheld else NOT_APPLICABLE
        return f"{head}: {self.reason}" + (f" (evidence: {ev})" if ev else "")

    def to_json(self) -> dict[str, object]:
        return {"rule": self.rule, "applicable": self.applicable, "reason": self.reason,
                "evidence": [c.to_json() for c in self.evidence]}


def _shown(c: Capability) -> str:
    return repr(c.value) if c.present else f"absent ({c.absent})"


def _need(caps: Capabilities, cap_id: str, rule: str) -> Capability:
    c = caps.get(cap_id)
    if c.unreadable:
        raise HostProbeError(f"{rule}: cannot tell whether it applies: {cap_id} not readable: {c.absent}",
                             evidence={"capability": c.to_json()})
    return c


def _no(rule: str, reason: str, *ev: Capability) -> Applicability:
    return Applicability(rule, False, reason, tuple(ev))


def _yes(rule: str, reason: str, *ev: Capability) -> Applicability:
    return Applicability(rule, True, reason, tuple(ev))


def vm_types(caps: Capabilities, rule: str) -> tuple[Capability, list[str] | None]:
    c = _need(caps, "kvm.vm_types", rule)
    return c, (list(c.value["types"]) if c.present else None)


def snp_launch(caps: Capabilities, rule: str = "snp-launch") -> Applicability:
    """An SNP guest can be launched at all: KVM offers the SNP VM type and QEMU has sev-snp-guest."""
    vt, types = vm_types(caps, rule)
    q = _need(caps, "qemu.sev_snp_guest", rule)
    if types is None or "sev-snp" not in types:
        return _no(rule, "KVM does not offer the SEV-SNP VM type (KVM_X86_SNP_VM)", vt, q)
    if not q.present:
        return _no(rule, "this QEMU cannot launch SEV-SNP guests (no sev-snp-guest object)", vt, q)
    return _yes(rule, "KVM offers KVM_X86_SNP_VM and QEMU has sev-snp-guest", vt, q)


def _on_snp(caps: Capabilities, rule: str, *more: str) -> tuple[Applicability | None, list[Capability]]:
    base = snp_launch(caps, rule)
    if not base.applicable:
        return base, []
    return None, [*base.evidence, *(_need(caps, m, rule) for m in more)]


def policy_bit(caps: Capabilities, bit: int) -> Applicability:
    """Positive launch with SNP policy ``bit`` set: KVM must advertise it (KVM_X86_SNP_POLICY_BITS)."""
    name = snpbits.SNP_POLICY_BITS.get(bit, f"bit{bit}")
    rule = f"snp-policy-{name.lower().replace('_', '-')}"
    stop, ev = _on_snp(caps, rule, "kvm.snp_policy_bits")
    if stop:
        return stop
    pol = ev[-1]
    if not pol.present:
        return _no(rule, f"KVM does not publish the SNP policy bits it accepts, so {name} (bit {bit}) is not "
                         "advertised (KVM_X86_SNP_POLICY_BITS is newer than this kernel)", *ev)
    if not int(pol.value["mask"], 16) >> bit & 1:
        return _no(rule, f"KVM does not advertise SNP policy bit {bit} ({name})", *ev)
    return _yes(rule, f"KVM advertises SNP policy bit {bit} ({name})", *ev)


def policy_bit_refused(caps: Capabilities, bit: int) -> Applicability:
    """Negative launch: a policy bit KVM does not advertise must be refused (by KVM or the firmware)."""
    name = snpbits.SNP_POLICY_BITS.get(bit, f"bit{bit}")
    rule = f"snp-policy-{name.lower().replace('_', '-')}-refused"
    stop, ev = _on_snp(caps, rule, "kvm.snp_policy_bits")
    if stop:
        return stop
    pol = ev[-1]
    if not pol.present:
        return _no(rule, "KVM does not publish the SNP policy bits it accepts: which bits must be refused "
                         "is not known", *ev)
    if int(pol.value["mask"], 16) >> bit & 1:
        return _no(rule, f"KVM advertises policy bit {bit} ({name}): nothing to refuse", *ev)
    return _yes(rule, f"KVM does not advertise policy bit {bit} ({name}): a launch with it must be refused", *ev)


def ciphertext_hiding(caps: Capabilities) -> Applicability:
    rule = "snp-ciphertext-hiding"
    stop, ev = _on_snp(caps, rule, "kvm_amd.ciphertext_hiding_asids", "firmware.ciphertext_hiding")
    if stop:
        return stop
    asids, fw = ev[-2], ev[-1]
    if not asids.present or not asids.value:
        return _no(rule, "ciphertext hiding is not enabled in kvm_amd (ciphertext_hiding_asids absent or 0)", *ev)
    if not fw.present or not fw.value.get("enabled"):
        return _no(rule, "SNP_PLATFORM_STATUS does not report ciphertext hiding enabled", *ev)
    pb = policy_bit(caps, 24)
    if not pb.applicable:
        return _no(rule, pb.reason, *ev, caps.get("kvm.snp_policy_bits"))
    n = "all SEV-ES/SNP ASIDs ('max')" if asids.value == "max" else f"{asids.value} ASIDs"
    return _yes(rule, f"kvm_amd reserves {n} for ciphertext hiding and the firmware enabled it", *ev)


def qemu_props(caps: Capabilities, rule: str, props: tuple[str, ...]) -> Applicability:
    stop, ev = _on_snp(caps, rule, *(f"qemu.sev_snp_guest.{p}" for p in props))
    if stop:
        return stop
    missing = [c.id.rsplit(".", 1)[1] for c in ev if c.id.startswith("qemu.sev_snp_guest.") and not c.present]
    if missing:
        return _no(rule, f"this QEMU's sev-snp-guest lacks {', '.join(missing)}", *ev)
    return _yes(rule, f"QEMU's sev-snp-guest has {', '.join(props)}", *ev)


def host_data(caps: Capabilities) -> Applicability:
    return qemu_props(caps, "snp-host-data", ("host-data",))


def id_block(caps: Capabilities) -> Applicability:
    return qemu_props(caps, "snp-id-block", ("id-block", "id-auth", "author-key-enabled"))


def secure_tsc(caps: Capabilities) -> Applicability:
    rule = "snp-secure-tsc"
    stop, ev = _on_snp(caps, rule, "cpuid.secure_tsc", "kvm.vmsa_features", "qemu.sev_snp_guest.secure-tsc")
    if stop:
        return stop
    cpu, vmsa, prop = ev[-3:]
    if not cpu.present or not cpu.value:
        return _no(rule, "the CPU does not advertise Secure TSC (CPUID Fn8000_001F EAX bit 8)", *ev)
    if not vmsa.present or "SecureTSC" not in vmsa.value["features"]:
        return _no(rule, "KVM does not offer the SecureTSC VMSA feature (bit 9)", *ev)
    if not prop.present:
        return _no(rule, "this QEMU's sev-snp-guest has no secure-tsc property (QEMU >= 10.2)", *ev)
    return _yes(rule, "CPU, KVM (VMSA bit 9) and QEMU (secure-tsc) offer Secure TSC", *ev)


def debug_swap(caps: Capabilities) -> Applicability:
    rule = "snp-debug-swap"
    stop, ev = _on_snp(caps, rule, "kvm.vmsa_features", "qemu.sev_snp_guest.debug-swap")
    if stop:
        return stop
    vmsa, prop = ev[-2:]
    if not vmsa.present or "DebugSwap" not in vmsa.value["features"]:
        return _no(rule, "KVM does not offer the DebugSwap VMSA feature (bit 5; kvm_amd debug_swap)", *ev)
    if not prop.present:
        return _no(rule, "this QEMU's sev-snp-guest has no debug-swap property", *ev)
    return _yes(rule, "KVM (VMSA bit 5) and QEMU (debug-swap) offer DebugSwap", *ev)


def vmsa_features(caps: Capabilities) -> Applicability:
    rule = "snp-vmsa-features"
    stop, ev = _on_snp(caps, rule, "kvm.vmsa_features")
    if stop:
        return stop
    if not ev[-1].present:
        return _no(rule, "KVM does not publish its VMSA features (KVM_X86_SEV_VMSA_FEATURES, kernel >= 6.10)", *ev)
    return _yes(rule, f"KVM offers VMSA features {ev[-1].value['features']}", *ev)


def mitigation_vectors(caps: Capabilities) -> Applicability:
    rule = "snp-mitigation-vectors"
    stop, ev = _on_snp(caps, rule, "firmware.mitigations")
    if stop:
        return stop
    if not ev[-1].present:
        return _no(rule, f"the host publishes no mitigation vectors: {ev[-1].absent}", *ev)
    return _yes(rule, "the host publishes supported and verified mitigation vectors", *ev)


def igvm(caps: Capabilities) -> Applicability:
    rule = "snp-igvm-launch"
    stop, ev = _on_snp(caps, rule, "qemu.igvm")
    if stop:
        return stop
    c = ev[-1]
    if not c.present:
        return _no(rule, f"QEMU cannot load IGVM files: {c.absent}", *ev)
    if not c.value.get("machine igvm-cfg property"):
        return _no(rule, "QEMU has the igvm-cfg object but its machine has no igvm-cfg property", *ev)
    return _yes(rule, "QEMU loads IGVM files (igvm-cfg object, -machine igvm-cfg=)", *ev)


def snp_config(caps: Capabilities, *, allow_destructive: bool) -> Applicability:
    """SNP_CONFIG set/reset (what `snphost config set/reset` does): destructive, so only on request.
    Never SNP_COMMIT: committing firmware is irreversible and this suite has no option for it."""
    rule = "snp-config-set-reset"
    stop, ev = _on_snp(caps, rule, "firmware.snp_status")
    if stop:
        return stop
    st = ev[-1]
    if not st.present:
        return _no(rule, f"no SNP platform status: {st.absent}", *ev)
    if not allow_destructive:
        return Applicability(rule, False, "SNP_CONFIG changes the platform's reported TCB: run with "
                             "--sev-allow-destructive to test it", tuple(ev), withheld=True)
    return _yes(rule, "SNP firmware present and --sev-allow-destructive given", *ev)


def _sev_es_cause(caps: Capabilities) -> tuple[str, list[Capability]] | None:
    """A host setting that takes SEV-ES away, or None when none does (then the firmware is the suspect).
    Checked in this order, since KVM writes its own finding back into ``sev_es`` (sev.c sev_hardware_setup:
    sev_es_enabled = sev_es_supported), so sev_es=N is also what no ASIDs look like:
    no SEV-ES/SNP ASIDs (the BIOS: CPUID Fn8000_001F EDX minimum SEV ASID 1); ciphertext_hiding_asids=max
    (kernel-parameters.txt: assigns all SEV-ES/SNP ASIDs to SNP, "effectively disabling SEV-ES"; depending on
    the kernel KVM then drops the VM type or the launch fails with ENOTTY, sev.c sev_asid_new); sev_es=N."""
    cth, params, asids = (caps.get(i) for i in ("kvm_amd.ciphertext_hiding_asids", "kvm_amd.params", "cpuid.asids"))
    if asids.present and asids.value.get("sev_es_snp_asids") == 0:
        return "the BIOS leaves no ASIDs for SEV-ES/SNP (CPUID Fn8000_001F EDX: minimum SEV ASID is 1)", [asids]
    if cth.present and cth.value == "max":
        return "ciphertext hiding takes every SEV-ES/SNP ASID (kvm_amd ciphertext_hiding_asids=max), which " \
               "disables SEV-ES by design", [cth]
    if params.present and str(params.value.get("sev_es", "")).upper() in ("N", "0"):
        return "kvm_amd reports sev_es=N (disabled, or found unusable when it loaded)", [params]
    return None


def sev_es_offered(caps: Capabilities) -> Applicability:
    """The sev-es guest kind: NOT-APPLICABLE when KVM stopped offering KVM_X86_SEV_ES_VM while it offers SEV
    or SNP, with the cause as evidence: a host setting (_sev_es_cause) or else the firmware, which withdraws
    SEV-ES in newer releases (CVE-2025-48514 / AMD-SB-3023, per the ccp/KVM discussion of 2026-02), with its
    version. Kernels before KVM_CAP_VM_TYPES (6.8) cannot say: the launch decides (see
    launch_refusal_withdraws_sev_es)."""
    rule = "sev-es-offered"
    vt, types = vm_types(caps, rule)
    fw = [caps.get("firmware.sev_status"), caps.get("firmware.snp_status")]
    fw = [c for c in fw if c.present]
    cause = _sev_es_cause(caps)
    if cause is not None and (types is None or "sev-es" in types or "sev" in types or "sev-snp" in types):
        return _no(rule, f"SEV-ES not available: {cause[0]}", vt, *cause[1], *fw)
    if types is None:
        return _yes(rule, "KVM does not list VM types (kernel before 6.8): a launch refusal (firmware status "
                          f"{FW_FEATURE_NOT_SUPPORTED}) would be the evidence", vt, *fw)
    if "sev-es" in types:
        return _yes(rule, "KVM offers KVM_X86_SEV_ES_VM", vt, *fw)
    if "sev" in types or "sev-snp" in types:
        # the SNP_VERIFY_MITIGATION vectors go along as evidence, uninterpreted: the bit for AMD-SB-3023 is not
        # settled upstream (the ccp patch that used BIT(3) was withdrawn as "not the right way to check")
        mit = caps.get("firmware.mitigations")
        fw += [mit] if mit.present else []
        label = {"firmware.sev_status": "SEV", "firmware.snp_status": "SEV-SNP"}
        ver = ", ".join(f"{label[c.id]} API {c.value['api']} build {c.value['build']}" for c in fw if c.id in label) \
            or "firmware version unknown (no /dev/sev status)"
        return _no(rule, f"SEV-ES withdrawn: KVM offers {', '.join(types)} but not SEV-ES, and no host setting "
                         f"explains it, so the firmware does ({ver})", vt, *fw)
    return _no(rule, "KVM offers no SEV VM type at all", vt)


def sev_es_taken(caps: Capabilities) -> Applicability | None:
    """The NOT-APPLICABLE decision for every sev-es guest when SEV-ES was taken away while SEV or SNP stay
    (a host setting or the firmware, sev_es_offered); None when SEV-ES is offered, or when the host has no
    SEV at all (then the guest planner's own reason, e.g. no AMD CPU, is the one to give)."""
    a = sev_es_offered(caps)
    if a.applicable or a.reason == "KVM offers no SEV VM type at all":
        return None
    return a


def launch_refusal_withdraws_sev_es(qemu_stderr: str) -> bool:
    """QEMU's SEV-ES LAUNCH_START refusal with firmware status 21 (Feature not supported)."""
    m = _LAUNCH_START_REFUSED.search(qemu_stderr)
    return m is not None and int(m.group(1)) == FW_FEATURE_NOT_SUPPORTED


def profile_note(caps: Capabilities, profile: str) -> str | None:
    """Why the sev-es profile (which demands SEV-ES guests) cannot be met, or None. The sev-snp profile does
    not demand SEV-ES guests: a firmware that withdrew them (correctly, AMD-SB-3023) still runs SNP guests,
    so there the sev-es kind is NOT-APPLICABLE with the evidence, not a failure."""
    if profile != Profile.SEV_ES:
        return None
    es = sev_es_offered(caps)
    if es.applicable:
        return None
    return f"profile {profile} demands SEV-ES guests, which this host cannot deliver: {es.reason}"
