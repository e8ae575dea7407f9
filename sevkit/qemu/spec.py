"""What a guest is (GuestSpec) and where a launch plugs in (Wiring). Pure values, no I/O.

Validation happens in ``__post_init__`` so a self-contradictory spec never reaches QEMU: the
refusal names the reason (LaunchRefused). Whether this host and this QEMU can run a kind is the
planner's decision (sevkit.guests.plan), not the spec's. ``check=False`` exists only to prove, in
self-tests, that QEMU's own refusal is surfaced too.

QEMU facts: qemu/qemu qapi/qom.json (SevGuestProperties, SevSnpGuestProperties and their "Since:"
versions), target/i386/sev.c; QEMU 7.2 aborts on sev-guest under TCG (measured on Debian's 7.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import snpbits
from ..errors import LaunchRefused
from ..vocab import GUEST_KINDS as GUEST_KINDS  # re-exported: fixtures and tests import it from here
from ..vocab import GuestKind

SEV_KINDS = frozenset(k for k in GuestKind if k.confidential)

# QEMU's defaults for each object (§8.2/§8.3): SEV = NODBG, SEV-ES = NODBG|ES, SNP = SMT|reserved-1.
DEFAULT_POLICY: dict[str, int] = {GuestKind.SEV: 0x1, GuestKind.SEV_ES: 0x5, GuestKind.SEV_SNP: 0x30000}
SEV_POLICY_ES = 0x4
SNP_POLICY_RESERVED_ONE = 1 << 17

QEMU_CGS = (6, 0)        # -machine confidential-guest-support= (older: memory-encryption=)
QEMU_KERNEL_HASHES = (6, 2)
QEMU_SNP = (9, 1)        # -object sev-snp-guest upstream; whether a binary has it is asked of the
                         # binary (sevkit.qemu.offers), a distribution may backport it
QEMU_SECURE_TSC = (10, 2)  # sev-snp-guest,secure-tsc= (qapi/qom.json "since 10.2")
# linux include/uapi/linux/kvm.h (KVM_SEV_SNP_ID_BLOCK_SIZE 96, KVM_SEV_SNP_ID_AUTH_SIZE 4096,
# KVM_SEV_SNP_FINISH_DATA_SIZE 32); QEMU target/i386/sev.c checks the same sizes on the base64 values.
SNP_ID_BLOCK_SIZE, SNP_ID_AUTH_SIZE, SNP_HOST_DATA_SIZE = 96, 4096, 32
SNP_POLICY_MBZ = ~((1 << 26) - 1) & (2**64 - 1)   # SNP ABI "Guest Policy": bits 63:26 reserved, MBZ


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

    kind: str = GuestKind.PLAIN
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
    # Newer SEV-SNP launch inputs (sev-snp-guest properties, qapi/qom.json SevSnpGuestProperties).
    host_data: bytes | None = None          # 32 bytes -> report HOST_DATA
    id_block: bytes | None = None           # 96-byte ID block for SNP_LAUNCH_FINISH
    id_auth: bytes | None = None            # ID authentication information structure (<= 4096 bytes)
    author_key: bool = False                # id_auth carries an author key (AUTHOR_KEY_EN)
    secure_tsc: bool = False
    debug_swap: bool = False                # sev-common debug-swap (QEMU 2025, N. Rao): VMSA DebugSwap
    snp_policy_allowed: int | None = None   # KVM_X86_SNP_POLICY_BITS: refuse other bits before QEMU starts
    igvm: Path | None = None                # -object igvm-cfg,file= ; -machine igvm-cfg=
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
    def vmsa_features(self) -> int:
        """The VMSA SEV_FEATURES this launch asks for beyond SNPActive: QEMU's sev-snp-guest starts from
        SNPActive alone and each property adds its bit (target/i386/sev.c sev_set_feature; KVM_SEV_INIT2
        gets sev_features & ~SNP_ACTIVE), so these are exactly the features the guest runs with."""
        return (1 << snpbits.VMSA_SECURE_TSC if self.secure_tsc else 0) | \
            (1 << snpbits.VMSA_DEBUG_SWAP if self.debug_swap else 0)

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
        snp_only = [n for n, v in (("host-data", self.host_data), ("id-block", self.id_block),
                                   ("id-auth", self.id_auth), ("author-key-enabled", self.author_key),
                                   ("secure-tsc", self.secure_tsc)) if v]
        if snp_only and self.kind != GuestKind.SEV_SNP:
            self._refuse(f"{', '.join(snp_only)} only exist(s) on sev-snp-guest (SEV-SNP guests)")
        if self.debug_swap and self.kind != GuestKind.SEV_SNP:
            # QEMU has it on sev-guest too, but an SEV-ES guest may go through KVM's legacy init, whose
            # default VMSA features changed across kernels; SNP always uses KVM_SEV_INIT2, which takes
            # exactly the features asked for, so that is where sevkit can check them.
            self._refuse("sevkit launches debug-swap on SEV-SNP guests only")
        if self.igvm is not None and self.firmware.kind != "seabios":
            self._refuse("sevkit's IGVM launch takes the firmware from the IGVM file: leave the firmware at its "
                         f"default instead of {self.firmware.label}")
        if not self.confidential:
            if self.policy is not None or self.kernel_hashes:
                self._refuse("policy and kernel-hashes only apply to SEV guest kinds")
            return
        if self.accel != "kvm":
            self._refuse("SEV requires KVM with SEV support; TCG cannot run confidential guests "
                         "(QEMU aborts with an assertion on sev-guest under TCG)")
        if self.kind == GuestKind.SEV_SNP and self.firmware.kind != "bios" and self.igvm is None:
            self._refuse("SEV-SNP firmware must be one OVMF image passed with -bios, not "
                         f"{self.firmware.label}")
        if self.kind != GuestKind.SEV_SNP and self.firmware.kind == "seabios":
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
        if self.kind == GuestKind.SEV and policy & SEV_POLICY_ES:
            self._refuse(f"policy {policy:#x} sets the SEV-ES bit (0x4) on a plain SEV guest")
        if self.kind == GuestKind.SEV_ES and not policy & SEV_POLICY_ES:
            self._refuse(f"SEV-ES policy {policy:#x} lacks the ES bit (0x4)")
        if self.kind in (GuestKind.SEV, GuestKind.SEV_ES) and policy >> 32:
            self._refuse(f"SEV policy {policy:#x} does not fit 32 bits")
        if self.kind == GuestKind.SEV_SNP and not policy & SNP_POLICY_RESERVED_ONE:
            self._refuse(f"SNP policy {policy:#x} lacks bit 17, which must be 1")
        if self.kind == GuestKind.SEV_SNP:
            self._validate_snp(policy)

    def _validate_snp(self, policy: int) -> None:
        if policy & SNP_POLICY_MBZ:
            self._refuse(f"SNP policy {policy:#x} sets reserved bits 63:26 (must be zero)")
        if self.snp_policy_allowed is not None:
            extra = policy & ~0xFFFF & ~self.snp_policy_allowed
            if extra:
                self._refuse(f"SNP policy {policy:#x} sets bits {extra:#x} that KVM does not accept "
                             f"(KVM_X86_SNP_POLICY_BITS = {self.snp_policy_allowed:#x})")
        if self.host_data is not None and len(self.host_data) != SNP_HOST_DATA_SIZE:
            self._refuse(f"host-data must be {SNP_HOST_DATA_SIZE} bytes, not {len(self.host_data)}")
        if self.id_block is not None and len(self.id_block) != SNP_ID_BLOCK_SIZE:
            self._refuse(f"id-block must be {SNP_ID_BLOCK_SIZE} bytes, not {len(self.id_block)}")
        if self.id_auth is not None and not 0 < len(self.id_auth) <= SNP_ID_AUTH_SIZE:
            self._refuse(f"id-auth must be 1..{SNP_ID_AUTH_SIZE} bytes, not {len(self.id_auth)}")
        if (self.id_block is None) != (self.id_auth is None):
            self._refuse("an ID block and its ID authentication structure go together (KVM's SNP_LAUNCH_FINISH "
                         "reads id-auth whenever id-block is given)")
        if self.author_key and self.id_auth is None:
            self._refuse("author-key-enabled needs an id-auth that carries the author key")
        if self.secure_tsc and self.qemu_version < QEMU_SECURE_TSC:
            self._refuse(f"secure-tsc needs QEMU >= 10.2; this QEMU is {'.'.join(map(str, self.qemu_version))}")


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
