"""GuestSpec + Wiring -> QEMU argv (pure), and the run.sh text that replays it by hand.

The confidential parts follow the reference lines of sev-facts.md §8.4: ``sev-guest`` with
``policy=0x1``/``0x5`` and pflash OVMF; ``sev-snp-guest`` with ``policy=0x30000``, a memfd
backend and ``-bios``; ``confidential-guest-support=`` (``memory-encryption=`` before 6.0);
virtio devices with ``disable-legacy=on,iommu_platform=true`` because an SEV guest only does
DMA through bounce buffers (the kernel refuses virtio devices without ACCESS_PLATFORM).
"""

from __future__ import annotations

import base64
import shlex

from ..vocab import GuestKind
from .spec import QEMU_CGS, GuestSpec, Wiring

CGS_ID = "sev0"
RAM_ID = "ram1"
IGVM_ID = "igvm0"


def qv(path: object) -> str:
    """A path inside a QEMU option value: QEMU writes a literal comma as two."""
    return str(path).replace(",", ",,")


def _hex(value: int) -> str:
    return f"{value:#x}"


def machine_opts(spec: GuestSpec) -> str:
    opts = [spec.machine]
    if spec.confidential:
        key = "confidential-guest-support" if spec.qemu_version >= QEMU_CGS else "memory-encryption"
        opts += [f"{key}={CGS_ID}", "vmport=off"]
        if spec.kind == GuestKind.SEV_SNP:
            opts.append(f"memory-backend={RAM_ID}")
    if spec.igvm is not None:
        opts.append(f"igvm-cfg={IGVM_ID}")   # QEMU docs/system/igvm.rst
    return ",".join(opts)


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def snp_extra(spec: GuestSpec) -> list[str]:
    """sev-snp-guest properties beyond the common ones, named as in qapi/qom.json SevSnpGuestProperties."""
    out = []
    if spec.id_block is not None:
        out.append(f"id-block={_b64(spec.id_block)}")
    if spec.id_auth is not None:
        out.append(f"id-auth={_b64(spec.id_auth)}")
    if spec.author_key:
        out.append("author-key-enabled=on")
    if spec.host_data is not None:
        out.append(f"host-data={_b64(spec.host_data)}")
    if spec.secure_tsc:
        out.append("secure-tsc=on")
    if spec.debug_swap:
        out.append("debug-swap=on")            # a sev-common property (qapi/qom.json SevCommonProperties)
    return out


def confidential_objects(spec: GuestSpec) -> list[str]:
    """The ``-object`` options of a confidential guest (empty for ``plain``)."""
    if not spec.confidential:
        return []
    policy = spec.effective_policy
    common = [f"id={CGS_ID}"]
    if policy is not None:
        common.append(f"policy={_hex(policy)}")
    if spec.cbitpos is not None:
        common.append(f"cbitpos={spec.cbitpos}")
    if spec.reduced_phys_bits is not None:
        common.append(f"reduced-phys-bits={spec.reduced_phys_bits}")
    if spec.kernel_hashes:
        common.append("kernel-hashes=on")
    if spec.kind == GuestKind.SEV_SNP:
        return ["-object", f"memory-backend-memfd,id={RAM_ID},size={spec.memory_mib}M,share=true,prealloc=false",
                "-object", ",".join(["sev-snp-guest", *common, *snp_extra(spec)])]
    return ["-object", ",".join(["sev-guest", *common])]


def firmware_args(spec: GuestSpec, wiring: Wiring) -> list[str]:
    fw = spec.firmware
    if fw.kind == "pflash":
        vars_file = wiring.vars_copy or fw.vars_template
        return ["-drive", f"if=pflash,format=raw,unit=0,file={qv(fw.code)},readonly=on",
                "-drive", f"if=pflash,format=raw,unit=1,file={qv(vars_file)}"]
    if fw.kind == "bios":
        return ["-bios", str(fw.image)]
    return []


def _virtio(spec: GuestSpec, device: str) -> str:
    """A virtio PCI device; SEV guests need modern-only devices behind the DMA API."""
    if spec.confidential:
        return f"{device},disable-legacy=on,iommu_platform=true"
    return device


def build_argv(spec: GuestSpec, wiring: Wiring) -> list[str]:
    """The full QEMU command line for ``spec`` plugged into ``wiring``. No I/O.

    QEMU starts paused (``-S``): the owner connects QMP and the serial socket, then sends ``cont``.
    """
    argv = [spec.qemu_binary, "-name", spec.name,
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S",
            "-accel", spec.accel,
            "-machine", machine_opts(spec),
            "-cpu", spec.cpu,
            "-smp", str(spec.vcpus),
            "-m", f"{spec.memory_mib}M"]
    argv += confidential_objects(spec)
    if spec.igvm is not None:
        argv += ["-object", f"igvm-cfg,id={IGVM_ID},file={qv(spec.igvm)}"]
    argv += firmware_args(spec, wiring)
    argv += ["-qmp", f"unix:{qv(wiring.qmp_socket)},server=on,wait=off",
             "-chardev", f"socket,id=ser0,path={qv(wiring.serial_socket)},server=on,wait=off",
             "-serial", "chardev:ser0",
             "-pidfile", str(wiring.pidfile)]
    disk = wiring.overlay or spec.disk
    if disk is not None:
        fmt = "qcow2" if wiring.overlay is not None else spec.disk_format
        argv += ["-drive", f"if=none,id=disk0,format={fmt},file={qv(disk)}",
                 "-device", _virtio(spec, "virtio-blk-pci,drive=disk0")]
    net = "user,id=n0"
    if wiring.ssh_port is not None:
        net += f",hostfwd=tcp:127.0.0.1:{wiring.ssh_port}-:22"
    nic = _virtio(spec, "virtio-net-pci,netdev=n0")
    if spec.confidential:
        nic += ",romfile="
    argv += ["-netdev", net, "-device", nic]
    if spec.rng:
        argv += ["-device", _virtio(spec, "virtio-rng-pci")]
    if spec.kernel is not None:
        argv += ["-kernel", str(spec.kernel)]
    if spec.initrd is not None:
        argv += ["-initrd", str(spec.initrd)]
    if spec.append:
        argv += ["-append", spec.append]
    for name, path in spec.fw_cfg:
        argv += ["-fw_cfg", f"name={name},file={qv(path)}"]
    return argv


def run_script(argv: list[str], prepare: list[list[str]] | None = None) -> str:
    """An executable ``run.sh``: the preparation steps (VARS copy, overlay) and the exact command.

    QEMU starts paused (-S): after it is up, send ``cont`` on the QMP socket (``qmp-shell``).
    """
    lines = ["#!/bin/sh", "# Written by sevkit: the exact QEMU command of this guest, to reproduce it by hand.",
             "# It starts paused (-S); resume with: qmp-shell <qmp socket>, then type: cont",
             "set -e"]
    if "-fw_cfg" in argv:
        lines.append("# The -fw_cfg files are this run's credentials; they are deleted when the run ends.")
    for step in prepare or []:
        lines.append(shlex.join(step))
    parts: list[str] = [shlex.quote(argv[0])]
    i = 1
    while i < len(argv):
        if argv[i].startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            parts.append(f"{shlex.quote(argv[i])} {shlex.quote(argv[i + 1])}")
            i += 2
        else:
            parts.append(shlex.quote(argv[i]))
            i += 1
    lines.append("exec " + " \\\n    ".join(parts))
    return "\n".join(lines) + "\n"
