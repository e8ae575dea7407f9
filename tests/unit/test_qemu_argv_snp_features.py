"""Golden argv and refusals for the newer SEV-SNP launch shapes (issue 13): host-data, ID block + auth,
author key, secure-tsc, policy bits, IGVM. Property names are held to QEMU's qapi/qom.json
(SevSnpGuestProperties) and docs/system/igvm.rst; QEMU's own refusal is taken from the QEMU installed here.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sevkit import snpbits
from sevkit.errors import LaunchRefused
from sevkit.host.capabilities import SNP_GUEST_PROPERTIES
from sevkit.igvm.build import BuildInputs, build_ovmf_igvm
from sevkit.igvm.files import write_igvm
from sevkit.qemu import Firmware, GuestSpec, Wiring, build_argv

W = Wiring(qmp_socket=Path("/r/qmp.sock"), serial_socket=Path("/r/serial.sock"), pidfile=Path("/r/qemu.pid"),
           overlay=Path("/r/overlay.qcow2"), ssh_port=2222)
BIOS = Firmware("bios", image=Path("/fw/OVMF.fd"))
SNP: dict[str, Any] = dict(kind="sev-snp", name="snp-0", firmware=BIOS, qemu_version=(10, 2, 0), accel="kvm",
                           cpu="EPYC-v4", memory_mib=2048, cbitpos=51, reduced_phys_bits=1,
                           kernel=Path("/img/vmlinuz"), disk=Path("/img/disk.qcow2"))
HOST_DATA = bytes(range(32))
ID_BLOCK = bytes([0xAB]) * 96
ID_AUTH = bytes([0xCD]) * 4096
B64 = {"hd": base64.b64encode(HOST_DATA).decode(), "ib": base64.b64encode(ID_BLOCK).decode(),
       "ia": base64.b64encode(ID_AUTH).decode()}
# qapi/qom.json SevSnpGuestProperties member names (Since 9.1; secure-tsc since 10.2), transcribed.
QOM_SNP_MEMBERS = {"policy", "guest-visible-workarounds", "id-block", "id-auth", "author-key-enabled", "host-data",
                   "vcek-disabled", "secure-tsc", "sev-device", "cbitpos", "reduced-phys-bits", "kernel-hashes",
                   "debug-swap"}   # debug-swap: SevCommonProperties (N. Rao's series, 2025), inherited by sev-snp-guest
MEM = "memory-backend-memfd,id=ram1,size=2048M,share=true,prealloc=false"
MACHINE = "q35,confidential-guest-support=sev0,vmport=off,memory-backend=ram1"
OBJ = "sev-snp-guest,id=sev0,policy={policy},cbitpos=51,reduced-phys-bits=1"

GOLDEN: dict[str, tuple[dict[str, Any], str, str, list[str]]] = {
    # name: (spec overrides, -machine, sev-snp-guest object, extra argv after the objects)
    "host-data": ({"host_data": HOST_DATA}, MACHINE, OBJ.format(policy="0x30000") + f",host-data={B64['hd']}", []),
    "id-block": ({"id_block": ID_BLOCK, "id_auth": ID_AUTH, "author_key": True}, MACHINE,
                 OBJ.format(policy="0x30000") + f",id-block={B64['ib']},id-auth={B64['ia']},author-key-enabled=on", []),
    "secure-tsc": ({"secure_tsc": True}, MACHINE, OBJ.format(policy="0x30000") + ",secure-tsc=on", []),
    "debug-swap": ({"debug_swap": True}, MACHINE, OBJ.format(policy="0x30000") + ",debug-swap=on", []),
    "policy-rapl-dis": ({"policy": 0x30000 | 1 << 23}, MACHINE, OBJ.format(policy="0x830000"), []),
    "policy-ciphertext-hiding": ({"policy": 0x30000 | 1 << 24}, MACHINE, OBJ.format(policy="0x1030000"), []),
    "igvm": ({"igvm": Path("/img/guest.igvm"), "firmware": Firmware()}, MACHINE + ",igvm-cfg=igvm0",
             OBJ.format(policy="0x30000"), ["-object", "igvm-cfg,id=igvm0,file=/img/guest.igvm"]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_argv_new_snp_shapes(name: str) -> None:
    over, machine, obj, extra = GOLDEN[name]
    spec = GuestSpec(**{**SNP, **over})
    argv = build_argv(spec, W)
    fw = [] if over.get("firmware") is not None else ["-bios", "/fw/OVMF.fd"]
    want_head = ["qemu-system-x86_64", "-name", "snp-0", "-nodefaults", "-no-user-config", "-display", "none",
                 "-no-reboot", "-S", "-accel", "kvm", "-machine", machine, "-cpu", "EPYC-v4", "-smp", "2",
                 "-m", "2048M", "-object", MEM, "-object", obj, *extra, *fw]
    assert argv[:len(want_head)] == want_head
    assert argv[-2:] == ["-kernel", "/img/vmlinuz"]


def test_property_names_are_qemus() -> None:
    """Every sev-snp-guest property sevkit writes is a SevSnpGuestProperties member, and the capability
    probe asks QEMU for the same names."""
    written: set[str] = set()
    for _over, _, obj, _ in GOLDEN.values():
        written |= {kv.split("=", 1)[0] for kv in obj.split(",")[1:]} - {"id"}
    assert written <= QOM_SNP_MEMBERS
    assert set(SNP_GUEST_PROPERTIES) <= QOM_SNP_MEMBERS
    igvm = GOLDEN["igvm"][3][1]
    assert re.fullmatch(r"igvm-cfg,id=igvm0,file=\S+", igvm)   # docs/system/igvm.rst: -object igvm-cfg,id=,file=


REFUSALS: list[tuple[str, dict[str, Any]]] = [
    ("only exist(s) on sev-snp-guest", {"kind": "sev", "firmware": Firmware("pflash", Path("/c"), Path("/v")),
                                        "qemu_version": (9, 2, 0), "host_data": HOST_DATA}),
    ("host-data must be 32 bytes", {"host_data": b"short"}),
    ("id-block must be 96 bytes", {"id_block": b"x" * 95, "id_auth": ID_AUTH}),
    ("id-auth must be 1..4096 bytes", {"id_block": ID_BLOCK, "id_auth": b"x" * 4097}),
    ("go together", {"id_block": ID_BLOCK}),
    ("author-key-enabled needs an id-auth", {"author_key": True}),
    ("secure-tsc needs QEMU >= 10.2", {"secure_tsc": True, "qemu_version": (10, 1, 0)}),
    ("debug-swap on SEV-SNP guests only", {"kind": "sev-es", "firmware": Firmware("pflash", Path("/c"), Path("/v")),
                                                   "qemu_version": (10, 2, 0), "debug_swap": True}),
    ("reserved bits 63:26", {"policy": 0x30000 | 1 << 26}),
    ("KVM does not accept", {"policy": 0x30000 | 1 << 25, "snp_policy_allowed": 0x1F0000}),
    ("takes the firmware from the IGVM file", {"igvm": Path("/img/g.igvm")}),
]


@pytest.mark.parametrize("why,over", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_before_qemu_starts(why: str, over: dict[str, Any]) -> None:
    with pytest.raises(LaunchRefused, match=re.escape(why)) as exc:
        GuestSpec(**{**SNP, **over})
    assert exc.value.evidence["kind"] in ("sev", "sev-es", "sev-snp")


def test_advertised_policy_bits_pass_the_pre_check() -> None:
    spec = GuestSpec(**{**SNP, "policy": 0x30000 | 1 << 23, "snp_policy_allowed": 0x1F0000 | 1 << 23})
    assert "policy=0x830000" in ",".join(build_argv(spec, W))


def _qemu_72() -> str:
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("no qemu-system-x86_64 installed")
    out = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"version (\d+)\.(\d+)", out)
    assert m
    if (int(m.group(1)), int(m.group(2))) >= (9, 1):
        pytest.skip(f"QEMU here is {m.group(0)}: it has sev-snp-guest, so its own refusal differs")
    return qemu


@pytest.mark.parametrize("name", ["host-data", "id-block", "secure-tsc", "debug-swap", "igvm"])
def test_qemu_refuses_the_new_snp_shapes_itself_here(name: str) -> None:
    """The same argv, not pre-checked (check=False), given to this machine's QEMU (< 9.1): QEMU refuses while
    parsing -object, before anything starts, and says why."""
    qemu = _qemu_72()
    spec = GuestSpec(**{**SNP, **GOLDEN[name][0], "qemu_binary": qemu, "qemu_version": (7, 2, 0), "check": False})
    proc = subprocess.run(build_argv(spec, W), capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode != 0
    assert "Parameter 'qom-type' does not accept value 'sev-snp-guest'" in proc.stderr, proc.stderr


def _built_igvm(tmp_path: Path) -> Path:
    """An SEV-SNP IGVM file built from Debian's OVMF_CODE.fd (sevkit.igvm.build), in a folder whose name has a
    comma, which QEMU's option syntax needs doubled."""
    folder = tmp_path / "igvm,dir"
    folder.mkdir()
    img = write_igvm(folder / "snp.igvm", build_ovmf_igvm(BuildInputs(Path("/usr/share/OVMF/OVMF_CODE.fd"), vcpus=2)))
    return img.path


def test_golden_argv_igvm_launch_with_a_built_file(tmp_path: Path) -> None:
    path = _built_igvm(tmp_path)
    argv = build_argv(GuestSpec(**{**SNP, "igvm": path, "firmware": Firmware()}), W)
    assert argv[argv.index("-machine") + 1] == MACHINE + ",igvm-cfg=igvm0"
    quoted = str(path).replace(",", ",,")
    assert argv[argv.index("igvm-cfg,id=igvm0,file=" + quoted) - 1] == "-object"
    assert "-bios" not in argv and "pflash" not in ",".join(argv)


def test_qemu_refuses_igvm_cfg_itself_here(tmp_path: Path) -> None:
    """A plain guest from a real built IGVM file: QEMU 7.2 has no igvm-cfg object and says so."""
    qemu = _qemu_72()
    path = _built_igvm(tmp_path)
    spec = GuestSpec(kind="plain", name="igvm-plain", qemu_binary=qemu, igvm=path, kernel=Path("/img/vmlinuz"))
    argv = build_argv(spec, W)
    assert argv[argv.index("-machine") + 1] == "q35,igvm-cfg=igvm0"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode != 0
    assert "Parameter 'qom-type' does not accept value 'igvm-cfg'" in proc.stderr, proc.stderr


@pytest.mark.parametrize(("over", "features", "status", "names"), [
    ({}, 0, 0x7, ["SEV", "SEV-ES", "SEV-SNP"]),
    ({"secure_tsc": True}, 1 << 9, 0x807, ["SEV", "SEV-ES", "SEV-SNP", "SecureTSC"]),
    ({"debug_swap": True}, 1 << 5, 0x87, ["SEV", "SEV-ES", "SEV-SNP", "DebugSwap"]),
    ({"secure_tsc": True, "debug_swap": True}, 1 << 9 | 1 << 5, 0x887, ["SEV", "SEV-ES", "SEV-SNP", "DebugSwap",
                                                                        "SecureTSC"]),
], ids=["default", "secure-tsc", "debug-swap", "both"])
def test_launched_vmsa_features_fix_the_guest_sev_status(over: dict[str, Any], features: int, status: int,
                                                         names: list[str]) -> None:
    """What the suite holds a guest to (suites/snp_features _launched_exactly): QEMU's sev-snp-guest asks KVM for
    exactly the properties' VMSA bits (SNPActive is KVM's own), and SEV_STATUS bit n+2 mirrors VMSA bit n."""
    spec = GuestSpec(**{**SNP, **over})
    assert spec.vmsa_features == features
    assert snpbits.sev_status_for_vmsa(features) == status
    assert snpbits.names(status, snpbits.SEV_STATUS_NAMES) == names
