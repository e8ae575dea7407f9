"""What a guest is (GuestSpec) and where a launch plugs in (Wiring). Pure values, no I/O.

Validation happens in ``__post_init__`` so an impossible combination never reaches QEMU:
the refusal names the reason (LaunchRefused). ``check=False`` exists only to prove, in
self-tests, that QEMU's own refusal is surfaced too.

QEMU facts: qemu/qemu qapi/qom.json (SevGuestProperties, SevSnpGuestProperties and their "Since:"
versions), target/i386/sev.c; QEMU 7.2 aborts on sev-guest under TCG (measured on Debian's 7.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LaunchRefused

GUEST_KINDS = ("plain", "sev", "sev-es", "sev-snp")
SEV_KINDS = frozenset({"sev", "sev-es", "sev-snp"})

# QEMU's defaults for each object (§8.2/§8.3): SEV = NODBG, SEV-ES = NODBG|ES, SNP = SMT|reserved-1.
DEFAULT_POLICY = {"sev": 0x1, "sev-es": 0x5, "sev-snp": 0x30000}
SEV_POLICY_ES = 0x4
SNP_POLICY_RESERVED_ONE = 1 << 17

QEMU_CGS = (6, 0)        # -machine confidential-guest-support= (older: memory-encryption=)
QEMU_KERNEL_HASHES = (6, 2)
QEMU_SNP = (9, 1)        # -object sev-snp-guest


def panic_exits(append: str) -> str:
    """``append`` with ``panic=-1`` added unless it already sets ``panic=``.

    A panicked kernel then reboots at once, and QEMU, started with ``-no-reboot``, exits: the
    next command fails with GuestDied within seconds instead of hanging until its timeout.
    """
    if re.search(r"(?:^|\s)panic=", append):
        return append
    return f"{append} panic=-1".strip()

_FW_CFG_NAME = re.compile(r"^opt/[\w.,/-]+$")


@dataclass(frozen=True, slots=True)
class Firmware:
    """Guest firmware. ``kind``: ``seabios`` (QEMU's default BIOS), ``pflash`` (OVMF CODE +
    a per-guest copy of VARS) or ``bios`` (one combined OVMF image via ``-bios``, required by SNP)."""

    kind: str = "seabios"
    code: Path | None = None
    vars_template: Path | None = None
    image: Path | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("seabios", "pflash", "bios"):
            raise LaunchRefused(f"unknown firmware kind {self.kind!r} (seabios, pflash, bios)")
        if self.kind == "pflash" and (self.code is None or self.vars_template is None):
            raise LaunchRefused("pflash firmware needs both OVMF CODE and a VARS template")
        if self.kind == "bios" and self.image is None:
            raise LaunchRefused("-bios firmware needs an OVMF image path")

    @property
    def label(self) -> str:
        if self.kind == "pflash":
            return f"pflash {self.code}"
        if self.kind == "bios":
            return f"-bios {self.image}"
        return "SeaBIOS"


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """A guest to launch. Paths are the shared, read-only inputs; per-guest copies are made
    by GuestVM. ``policy=None`` means the kind's default. ``cbitpos``/``reduced_phys_bits``
    must come from ``query-sev-capabilities`` for confidential kinds.

    Raises LaunchRefused on an impossible combination (unless ``check=False``).
    """

    kind: str = "plain"
    name: str = "guest"
    qemu_binary: str = "qemu-system-x86_64"
    qemu_version: tuple[int, int, int] = (7, 2, 0)
    accel: str = "tcg"
    cpu: str = "max"
    machine: str = "q35"
    vcpus: int = 2
    memory_mib: int = 1024
    firmware: Firmware = field(default_factory=Firmware)
    kernel: Path | None = None
    initrd: Path | None = None
    append: str = ""
    disk: Path | None = None
    disk_format: str = "qcow2"
    policy: int | None = None
    cbitpos: int | None = None
    reduced_phys_bits: int | None = None
    kernel_hashes: bool = False
    rng: bool = True
    fw_cfg: tuple[tuple[str, Path], ...] = ()
    check: bool = True

    def __post_init__(self) -> None:
        if self.kind not in GUEST_KINDS:
            raise LaunchRefused(f"unknown guest kind {self.kind!r}; known: {', '.join(GUEST_KINDS)}")
        if self.check:
            self._validate()

    @property
    def confidential(self) -> bool:
        return self.kind in SEV_KINDS

    @property
    def effective_policy(self) -> int | None:
        if not self.confidential:
            return None
        return DEFAULT_POLICY[self.kind] if self.policy is None else self.policy

    def _refuse(self, why: str) -> None:
        raise LaunchRefused(f"{self.name} ({self.kind}): {why}",
                            evidence={"kind": self.kind, "accel": self.accel,
                                      "qemu_version": ".".join(map(str, self.qemu_version)),
                                      "firmware": self.firmware.label})

    def _validate(self) -> None:
        if self.vcpus < 1 or self.memory_mib < 64:
            self._refuse(f"vcpus={self.vcpus}, memory={self.memory_mib} MiB is not a usable guest")
        if self.accel not in ("tcg", "kvm"):
            self._refuse(f"accelerator {self.accel!r} is not tcg or kvm")
        if self.accel == "tcg" and self.cpu == "host":
            self._refuse("CPU model 'host' requires KVM (QEMU says so too)")
        if self.initrd is not None and self.kernel is None:
            self._refuse("an initrd needs a kernel (direct kernel boot)")
        if self.append and self.kernel is None:
            self._refuse("a kernel command line needs a kernel (direct kernel boot)")
        if self.kernel is None and self.disk is None:
            self._refuse("nothing to boot: neither a kernel nor a disk")
        for name, _ in self.fw_cfg:
            if not _FW_CFG_NAME.match(name):
                self._refuse(f"fw_cfg name {name!r} must look like opt/<vendor>/<name>")
        if not self.confidential:
            if self.policy is not None or self.kernel_hashes:
                self._refuse("policy and kernel-hashes only apply to SEV guest kinds")
            return
        if self.accel != "kvm":
            self._refuse("SEV requires KVM with SEV support; TCG cannot run confidential guests "
                         "(QEMU aborts with an assertion on sev-guest under TCG)")
        if self.kind == "sev-snp" and self.qemu_version < QEMU_SNP:
            self._refuse(f"SEV-SNP needs QEMU >= 9.1 (sev-snp-guest); this QEMU is "
                         f"{'.'.join(map(str, self.qemu_version))}")
        if self.kind == "sev-snp" and self.firmware.kind != "bios":
            self._refuse("SEV-SNP firmware must be one OVMF image passed with -bios, not "
                         f"{self.firmware.label}")
        if self.kind != "sev-snp" and self.firmware.kind == "seabios":
            self._refuse("SEV guests boot through OVMF; SeaBIOS cannot start an encrypted guest")
        if self.cbitpos is None or self.reduced_phys_bits is None:
            self._refuse("cbitpos and reduced-phys-bits are unknown (take them from "
                         "query-sev-capabilities)")
        if self.kernel_hashes and self.kernel is None:
            self._refuse("kernel-hashes=on measures a direct-boot kernel; no kernel given")
        if self.kernel_hashes and self.qemu_version < QEMU_KERNEL_HASHES:
            self._refuse("kernel-hashes needs QEMU >= 6.2")
        policy = self.effective_policy
        assert policy is not None
        if self.kind == "sev" and policy & SEV_POLICY_ES:
            self._refuse(f"policy {policy:#x} sets the SEV-ES bit (0x4) on a plain SEV guest")
        if self.kind == "sev-es" and not policy & SEV_POLICY_ES:
            self._refuse(f"SEV-ES policy {policy:#x} lacks the ES bit (0x4)")
        if self.kind in ("sev", "sev-es") and policy >> 32:
            self._refuse(f"SEV policy {policy:#x} does not fit 32 bits")
        if self.kind == "sev-snp" and not policy & SNP_POLICY_RESERVED_ONE:
            self._refuse(f"SNP policy {policy:#x} lacks bit 17, which must be 1")


@dataclass(frozen=True, slots=True)
class Wiring:
    """Where one launch plugs in: sockets, pidfile, per-guest disk overlay and VARS copy, SSH port.
    Unix socket paths must stay under 108 bytes, so they live in a short run folder."""

    qmp_socket: Path
    serial_socket: Path
    pidfile: Path
    overlay: Path | None = None
    vars_copy: Path | None = None
    ssh_port: int | None = None
