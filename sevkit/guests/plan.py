"""Plan a guest: (kind, host facts, image, settings) -> a launchable GuestSpec, or the blockers.

This is the one place that decides whether a kind can run here. GuestSpec only checks that a spec
is self-consistent (policy bits, firmware kind, accelerator), GuestVM keeps ``missing_devices`` as a
last guard for callers that bypass the planner; the host facts (features, QEMU's offers, KVM,
firmware content, the C-bit position) are weighed here, once per kind.

Seams for self-tests: ``sev_caps`` (query-sev-capabilities starts a QEMU), ``qemu_offers`` (asks a
binary what it offers), ``devices_exist``, and the ``image``/``credentials`` loaders.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..attestation.measure import MeasuredBootSupport, inspect_firmware, snp_measured_boot_support
from ..errors import LaunchRefused
from ..host.report import HostReport
from ..image import GuestImage, ensure_image, load_image_spec
from ..image.credentials import GuestCredentials, make_credentials
from ..qemu.caps import SevCapabilities, cross_check_cbitpos, query_sev_capabilities
from ..qemu.machine import GuestAccess, missing_devices
from ..qemu.offers import SEV_GUEST, SEV_SNP_GUEST, QemuOffers, probe_qemu
from ..qemu.spec import Firmware, GuestSpec, panic_exits
from ..timeouts import DEFAULT, Timeouts
from ..vocab import FEATURE_CHAIN, GuestKind
from .firmware import FirmwareChoice, choose_firmware
from .settings import GuestSettings

log = logging.getLogger("sevkit.guest")

DEFAULT_DISK_APPEND = "root=LABEL=sevroot ro console=ttyS0,115200"


@dataclass(frozen=True, slots=True)
class Blocker:
    """One reason a kind cannot run here, with what was observed."""

    reason: str
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Plan:
    """A kind's plan: ``spec`` when launchable, else ``blockers`` (never both)."""

    kind: GuestKind
    spec: GuestSpec | None = None
    blockers: tuple[Blocker, ...] = ()
    access: GuestAccess = field(default_factory=GuestAccess)
    firmware: str = ""                                  # which firmware and why (content analysis)
    measured_boot: MeasuredBootSupport | None = None    # SNP: why kernel-hashes is on or off

    @property
    def launchable(self) -> bool:
        return self.spec is not None and not self.blockers

    @property
    def reason(self) -> str:
        """'<kind> guest cannot run on this host: <blocker>; <blocker>' ('' when launchable)."""
        if not self.blockers:
            return ""
        return f"{self.kind} guest cannot run on this host: " + "; ".join(b.reason for b in self.blockers)


class GuestBlocked(LaunchRefused):
    """A guest was asked for although its plan has blockers (the evidence lists them)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan.reason, evidence={"kind": str(plan.kind),
                                                "blockers": [{"reason": b.reason, **b.evidence}
                                                             for b in plan.blockers]})
        self.plan = plan


class LazyCredentials:
    """This run's guest credentials, made on first use in ``folder`` and removed by ``discard``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._creds: GuestCredentials | None = None

    def __call__(self) -> GuestCredentials:
        if self._creds is None:
            self._creds = make_credentials(self.folder)
        return self._creds

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._creds = None


def load_image(settings: GuestSettings) -> GuestImage:
    """The lab's image (``settings.image``: a JSON spec or a disk) or sevkit's cached build (built on a miss)."""
    given = settings.image
    if given.endswith(".json"):
        return load_image_spec(given)
    if given:
        return GuestImage.from_files(disk=given, kernel=settings.kernel, initrd=settings.initrd,
                                     append=settings.append or DEFAULT_DISK_APPEND, firmware=settings.ovmf or None)
    return ensure_image()


class GuestPlanner:
    """Plans each guest kind for one host and one set of lab settings."""

    def __init__(self, host: HostReport, settings: GuestSettings, *,
                 image: Callable[[], GuestImage] | None = None,
                 credentials: Callable[[], GuestCredentials] | None = None,
                 timeouts: Timeouts = DEFAULT,
                 sev_caps: Callable[[str, float], SevCapabilities] | None = None,
                 qemu_offers: Callable[[str], QemuOffers] | None = None,
                 devices_exist: Callable[[str], bool] = os.path.exists) -> None:
        self.host = host
        self.settings = settings
        self.timeouts = timeouts
        self._load_image = image or (lambda: load_image(settings))
        self._credentials = credentials
        self._sev_caps = sev_caps or (lambda binary, t: query_sev_capabilities(binary, accel="kvm", timeout=t))
        self._probe_qemu = qemu_offers or (lambda binary: probe_qemu(binary, timeout=timeouts.qemu_start))
        self._devices_exist = devices_exist
        self._image: GuestImage | None = None
        self._image_error: BaseException | None = None
        self._qemu: QemuOffers | None = None

    # -- inputs ----------------------------------------------------------------------------
    def image(self) -> GuestImage:
        """Loaded once; a failure is remembered and raised again (an infrastructure error)."""
        if self._image_error is not None:
            raise self._image_error
        if self._image is None:
            try:
                self._image = self._load_image()
            except BaseException as exc:
                self._image_error = exc
                raise
        return self._image

    def accel(self) -> str:
        if self.settings.accel == "auto":
            # any usable confidential feature means KVM: a host whose ASIDs all go to SEV-ES/SNP has
            # SEV (plain) unusable but still runs SEV-ES and SEV-SNP guests under KVM
            return "kvm" if any(self.host.features.get(str(f)) for f in FEATURE_CHAIN) else "tcg"
        return self.settings.accel

    def qemu(self) -> QemuOffers:
        """What the QEMU to launch offers: the probe's answer for the probed binary; a lab-named other
        binary (``settings.qemu``) is asked itself."""
        if self._qemu is None:
            q = self.host.qemu
            if self.settings.qemu and (q is None or os.path.realpath(self.settings.qemu) != os.path.realpath(q.path)):
                self._qemu = self._probe_qemu(self.settings.qemu)
            elif q is not None:
                self._qemu = QemuOffers(q.path, q.version, frozenset(q.objects), (), q.version_text)
            else:
                self._qemu = QemuOffers("qemu-system-x86_64", (0, 0, 0), frozenset())
        return self._qemu

    def _image_firmware(self) -> Path | None:
        """An image spec may name its firmware; only a lab spec is loaded for that (no build)."""
        if self._image is not None:
            return self._image.firmware
        if self.settings.image.endswith(".json"):
            return self.image().firmware
        return None

    def firmware(self, kind: GuestKind) -> FirmwareChoice:
        s = self.settings
        return choose_firmware(kind, ovmf=s.ovmf, ovmf_code=s.ovmf_code, ovmf_vars=s.ovmf_vars,
                               images=self.host.ovmf_images,
                               image_firmware=self._image_firmware() if kind is GuestKind.SEV_SNP else None,
                               inspect=inspect_firmware)

    # -- the decision ----------------------------------------------------------------------
    def blockers(self, kind: GuestKind, fw: FirmwareChoice | None = None) -> list[Blocker]:
        """Why ``kind`` cannot run here ([] when it can), each reason with its evidence."""
        if kind is GuestKind.PLAIN:
            return []
        feature = kind.feature
        assert feature is not None
        out: list[Blocker] = []
        why = self.host.why_not(feature)
        if why:
            out.append(Blocker(why, {"feature": str(feature),
                                     "checks": [c.id for c in self.host.blockers(feature)]}))
        offers = self.qemu()
        obj = SEV_SNP_GUEST if kind is GuestKind.SEV_SNP else SEV_GUEST
        missing = offers.missing_object(obj)
        if missing:   # what the binary offers decides, not its version (a backport counts)
            out.append(Blocker(missing, {"qemu": offers.path, "version": offers.version_label,
                                         "objects": sorted(offers.objects)}))
        if self.accel() != "kvm":
            out.append(Blocker("no usable KVM with SEV (accel=tcg): TCG cannot run confidential guests",
                               {"accel": self.settings.accel}))
        fw = fw or self.firmware(kind)
        if fw.firmware is None:
            out.append(Blocker(fw.why, {"ovmf_images": [i.path for i in self.host.ovmf_images]}))
        if not out:
            devices = missing_devices(True, self._devices_exist)
            if devices:
                out.append(Blocker(f"{' and '.join(devices)} absent on this machine; QEMU cannot start a "
                                   "confidential guest without them", {"missing": devices}))
        return out

    def plan(self, kind: GuestKind | str) -> Plan:
        """The plan for ``kind``: blockers first (nothing is built or started for a blocked kind),
        then the image, firmware, measured-boot choice and QEMU's SEV capabilities."""
        kind = GuestKind(kind)
        fw = self.firmware(kind)
        blockers = self.blockers(kind, fw)
        if blockers:
            return Plan(kind, blockers=tuple(blockers), firmware=fw.why)
        image = self.image()
        accel = self.accel()
        offers = self.qemu()
        creds = self._credentials() if image.credentials == "fw_cfg" and self._credentials else None
        values: dict[str, Any] = dict(
            kind=str(kind), name=f"{kind}-{self.settings.worker}", qemu_binary=offers.path,
            qemu_version=offers.version, accel=accel,
            cpu=self.settings.cpu or ("max" if accel == "tcg" else "EPYC-v4"),
            vcpus=self.settings.vcpus, memory_mib=self.settings.memory_mib,
            # panic=-1 (with QEMU's -no-reboot): a guest that panics mid-test exits at once -> GuestDied
            firmware=fw.firmware or Firmware(), kernel=image.kernel, initrd=image.initrd,
            append=panic_exits(image.append) if image.kernel is not None else image.append,
            disk=image.disk, disk_format=image.disk_format,
            fw_cfg=tuple(creds.fw_cfg) if creds is not None else ())
        measured: MeasuredBootSupport | None = None
        if kind is GuestKind.SEV_SNP:
            # Measured direct boot whenever the firmware's content allows it, so the launch digest
            # covers kernel, initrd and command line; the finding goes to the guest's evidence.
            image_fw = fw.firmware.image if fw.firmware else None
            measured = snp_measured_boot_support(image_fw, image.kernel, self.host.ovmf_images)
            values["kernel_hashes"] = measured.supported
            if not measured.supported:
                log.warning("sev-snp: launching without kernel-hashes: %s", measured.why)
        if kind.confidential:
            caps = self._sev_caps(offers.path, self.timeouts.qemu_start)
            cross_check_cbitpos(caps, self.host.cbitpos)
            values.update(cbitpos=caps.cbitpos, reduced_phys_bits=caps.reduced_phys_bits)
        access = GuestAccess.from_credentials(creds) if creds is not None else GuestAccess()
        return Plan(kind, spec=GuestSpec(**values), access=access, firmware=fw.why, measured_boot=measured)
