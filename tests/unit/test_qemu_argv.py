"""Golden self-tests for the pure argv builder and the GuestSpec validation.

The golden argv are written out in full below, so any change to a launched command line shows
up as a diff here. The reference options are those of sev-facts.md §8.4 (AMD's launch-qemu.sh,
amd/sev-utils snp.sh and the suggested canonical forms).
"""

from __future__ import annotations

import itertools
import os
import stat
import subprocess
from pathlib import Path

import pytest

from sevkit.errors import LaunchRefused
from sevkit.qemu import Firmware, GuestSpec, Wiring, build_argv, run_script

W = Wiring(qmp_socket=Path("/r/qmp.sock"), serial_socket=Path("/r/serial.sock"), pidfile=Path("/r/qemu.pid"),
           overlay=Path("/r/overlay.qcow2"), vars_copy=Path("/r/OVMF_VARS.fd"), ssh_port=2222)
PFLASH = Firmware("pflash", Path("/fw/OVMF_CODE.fd"), Path("/fw/OVMF_VARS.fd"))
BIOS = Firmware("bios", image=Path("/fw/OVMF.fd"))
BOOT = dict(kernel=Path("/img/vmlinuz"), initrd=Path("/img/initrd.img"), append="root=LABEL=sevroot ro console=ttyS0",
            disk=Path("/img/disk.qcow2"))
KVM = dict(qemu_version=(9, 2, 0), accel="kvm", cpu="EPYC-v4", memory_mib=2048, cbitpos=51, reduced_phys_bits=1)

HEAD = ["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-S"]
WIRING = ["-qmp", "unix:/r/qmp.sock,server=on,wait=off",
          "-chardev", "socket,id=ser0,path=/r/serial.sock,server=on,wait=off",
          "-serial", "chardev:ser0", "-pidfile", "/r/qemu.pid"]
KERNEL = ["-kernel", "/img/vmlinuz", "-initrd", "/img/initrd.img", "-append", "root=LABEL=sevroot ro console=ttyS0"]
SEV_DEVICES = ["-drive", "if=none,id=disk0,format=qcow2,file=/r/overlay.qcow2",
               "-device", "virtio-blk-pci,drive=disk0,disable-legacy=on,iommu_platform=true",
               "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22",
               "-device", "virtio-net-pci,netdev=n0,disable-legacy=on,iommu_platform=true,romfile=",
               "-device", "virtio-rng-pci,disable-legacy=on,iommu_platform=true"]

GOLDEN: dict[str, tuple[GuestSpec, list[str]]] = {
    "plain-tcg": (
        GuestSpec(kind="plain", name="plain-0", firmware=PFLASH, **BOOT),  # type: ignore[arg-type]
        ["qemu-system-x86_64", "-name", "plain-0", *HEAD, "-accel", "tcg", "-machine", "q35", "-cpu", "max",
         "-smp", "2", "-m", "1024M",
         "-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on",
         "-drive", "if=pflash,format=raw,unit=1,file=/r/OVMF_VARS.fd", *WIRING,
         "-drive", "if=none,id=disk0,format=qcow2,file=/r/overlay.qcow2", "-device", "virtio-blk-pci,drive=disk0",
         "-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22", "-device", "virtio-net-pci,netdev=n0",
         "-device", "virtio-rng-pci", *KERNEL]),
    "sev": (
        GuestSpec(kind="sev", name="sev-0", firmware=PFLASH, **BOOT, **KVM),  # type: ignore[arg-type]
        ["qemu-system-x86_64", "-name", "sev-0", *HEAD, "-accel", "kvm",
         "-machine", "q35,confidential-guest-support=sev0,vmport=off", "-cpu", "EPYC-v4", "-smp", "2", "-m", "2048M",
         "-object", "sev-guest,id=sev0,policy=0x1,cbitpos=51,reduced-phys-bits=1",
         "-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on",
         "-drive", "if=pflash,format=raw,unit=1,file=/r/OVMF_VARS.fd", *WIRING, *SEV_DEVICES, *KERNEL]),
    "sev-es": (
        GuestSpec(kind="sev-es", name="es-0", firmware=PFLASH, **BOOT, **KVM),  # type: ignore[arg-type]
        ["qemu-system-x86_64", "-name", "es-0", *HEAD, "-accel", "kvm",
         "-machine", "q35,confidential-guest-support=sev0,vmport=off", "-cpu", "EPYC-v4", "-smp", "2", "-m", "2048M",
         "-object", "sev-guest,id=sev0,policy=0x5,cbitpos=51,reduced-phys-bits=1",
         "-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on",
         "-drive", "if=pflash,format=raw,unit=1,file=/r/OVMF_VARS.fd", *WIRING, *SEV_DEVICES, *KERNEL]),
    "sev-snp-kernel-hashes": (
        GuestSpec(kind="sev-snp", name="snp-0", firmware=BIOS, kernel_hashes=True, **BOOT, **KVM),  # type: ignore[arg-type]
        ["qemu-system-x86_64", "-name", "snp-0", *HEAD, "-accel", "kvm",
         "-machine", "q35,confidential-guest-support=sev0,vmport=off,memory-backend=ram1", "-cpu", "EPYC-v4",
         "-smp", "2", "-m", "2048M",
         "-object", "memory-backend-memfd,id=ram1,size=2048M,share=true,prealloc=false",
         "-object", "sev-snp-guest,id=sev0,policy=0x30000,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on",
         "-bios", "/fw/OVMF.fd", *WIRING, *SEV_DEVICES, *KERNEL]),
    "sev-qemu-5.2": (
        GuestSpec(kind="sev", name="old", firmware=PFLASH, **{**BOOT, **KVM, "qemu_version": (5, 2, 0)}),  # type: ignore[arg-type]
        ["qemu-system-x86_64", "-name", "old", *HEAD, "-accel", "kvm",
         "-machine", "q35,memory-encryption=sev0,vmport=off", "-cpu", "EPYC-v4", "-smp", "2", "-m", "2048M",
         "-object", "sev-guest,id=sev0,policy=0x1,cbitpos=51,reduced-phys-bits=1",
         "-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on",
         "-drive", "if=pflash,format=raw,unit=1,file=/r/OVMF_VARS.fd", *WIRING, *SEV_DEVICES, *KERNEL]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_argv(name: str) -> None:
    spec, want = GOLDEN[name]
    assert build_argv(spec, W) == want


# sev-facts.md §8.4, option by option: (option, value) as the reference lines write them.
# "-machine" values are compared as sets of their comma-separated properties (QEMU merges them).
REFERENCE = {
    "sev": [("-machine", "q35,confidential-guest-support=sev0,vmport=off"),
            ("-object", "sev-guest,id=sev0,policy=0x1,cbitpos=51,reduced-phys-bits=1"),
            ("-drive", "if=pflash,format=raw,unit=0,file=/fw/OVMF_CODE.fd,readonly=on"),
            ("-device", "virtio-net-pci,netdev=n0,disable-legacy=on,iommu_platform=true,romfile=")],
    "sev-es": [("-object", "sev-guest,id=sev0,policy=0x5,cbitpos=51,reduced-phys-bits=1")],
    "sev-snp-kernel-hashes": [
        ("-object", "memory-backend-memfd,id=ram1,size=2048M,share=true,prealloc=false"),
        ("-machine", "q35,confidential-guest-support=sev0,vmport=off,memory-backend=ram1"),
        ("-bios", "/fw/OVMF.fd")],
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_lines(name: str) -> None:
    argv = build_argv(GOLDEN[name][0], W)
    pairs = list(itertools.pairwise(argv))
    for opt, value in REFERENCE[name]:
        if opt == "-machine":
            merged = set().union(*(set(v.split(",")) for o, v in pairs if o == "-machine"))
            assert set(value.split(",")) <= merged
        else:
            assert (opt, value) in pairs, f"{opt} {value} missing"


def test_snp_object_carries_reference_properties() -> None:
    """amd/sev-utils snp.sh: sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1,kernel-hashes=on."""
    argv = build_argv(GOLDEN["sev-snp-kernel-hashes"][0], W)
    obj = next(v for o, v in itertools.pairwise(argv) if o == "-object" and v.startswith("sev-snp-guest"))
    assert {"id=sev0", "cbitpos=51", "reduced-phys-bits=1", "kernel-hashes=on", "policy=0x30000"} <= set(
        obj.split(",")[1:])
    assert not any("pflash" in a for a in argv)


def test_fw_cfg_and_commas_escaped() -> None:
    spec = GuestSpec(kind="plain", fw_cfg=(("opt/org.sevkit/authorized_keys", Path("/c/a,b")),),
                     **BOOT)  # type: ignore[arg-type]
    argv = build_argv(spec, W)
    assert argv[-2:] == ["-fw_cfg", "name=opt/org.sevkit/authorized_keys,file=/c/a,,b"]


REFUSED = [
    ("SEV requires KVM", dict(kind="sev", accel="tcg", cbitpos=51, reduced_phys_bits=1, firmware=PFLASH)),
    ("-bios", dict(kind="sev-snp", **KVM, firmware=PFLASH)),
    ("SeaBIOS", dict(kind="sev", **KVM)),
    ("query-sev-capabilities", dict(kind="sev", **{**KVM, "cbitpos": None}, firmware=PFLASH)),
    ("ES bit", dict(kind="sev", **KVM, firmware=PFLASH, policy=0x5)),
    ("lacks the ES bit", dict(kind="sev-es", **KVM, firmware=PFLASH, policy=0x1)),
    ("bit 17", dict(kind="sev-snp", **KVM, firmware=BIOS, policy=0x10000)),
    ("requires KVM", dict(kind="plain", cpu="host")),
    ("only apply to SEV", dict(kind="plain", policy=1)),
    ("opt/", dict(kind="plain", fw_cfg=(("bad", Path("/x")),))),
    ("unknown guest kind", dict(kind="tdx")),
]


@pytest.mark.parametrize(("why", "kw"), REFUSED, ids=[r[0] for r in REFUSED])
def test_impossible_combinations_refused(why: str, kw: dict[str, object]) -> None:
    args = {**BOOT, **kw}
    with pytest.raises(LaunchRefused, match=why):
        GuestSpec(**args)  # type: ignore[arg-type]


def test_snp_spec_does_not_judge_the_qemu_version() -> None:
    """A distribution may backport sev-snp-guest into 8.2: what the binary offers decides, in the planner
    (sevkit.guests.plan, tests/unit/test_guest_plan.py), so the spec accepts any version."""
    spec = GuestSpec(kind="sev-snp", firmware=BIOS, **{**BOOT, **KVM, "qemu_version": (8, 2, 2)})  # type: ignore[arg-type]
    assert any(a.startswith("sev-snp-guest,") for a in build_argv(spec, W))


def test_check_false_lets_qemu_decide() -> None:
    """Only for proving QEMU's own refusal is surfaced: the builder still produces the argv."""
    spec = GuestSpec(kind="sev-snp", accel="tcg", firmware=BIOS, check=False, **BOOT)  # type: ignore[arg-type]
    assert any(a.startswith("sev-snp-guest,") for a in build_argv(spec, W))


def test_run_script_is_executable_and_parses(tmp_path: Path) -> None:
    _spec, argv = GOLDEN["sev"]
    text = run_script(argv, [["cp", "/fw/OVMF_VARS.fd", "/r/OVMF_VARS.fd"]])
    script = tmp_path / "run.sh"
    script.write_text(text)
    os.chmod(script, 0o755)
    assert script.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    # the shell's own word splitting gives back exactly the argv
    echo = text.replace("exec /usr/bin/env", "").replace("exec qemu-system-x86_64", "printf '%s\\n' qemu-system-x86_64")
    echo = echo.replace("set -e\n", "").replace("cp /fw", "true /fw")
    out = subprocess.run(["sh", "-c", echo], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == argv
