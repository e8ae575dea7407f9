"""``sevkit igvm``: build an SEV-SNP IGVM file from OVMF, and predict an IGVM file's launch digest.

    sevkit igvm build --ovmf OVMF.fd --out FILE.igvm [--vcpus N] [--vcpu-type MODEL] [--policy HEX]
    sevkit igvm measure FILE.igvm [--vcpus N] [--json]

``measure`` prints the SEV-SNP MEASUREMENT QEMU + KVM produce when they boot the file with N vCPUs
(default: one per VP context in the file), as coconut-svsm's igvmmeasure computes it.

Exit: 0 done; 2 unusable input (a malformed file names the offset and what is wrong).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import UsageError
from ..userfiles import shown


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("igvm", help="build SEV-SNP IGVM files and predict their launch digest",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="igvm_command", metavar="ACTION")
    sub.required = True

    b = sub.add_parser("build", help="wrap an SNP-capable OVMF into an IGVM file for QEMU")
    b.add_argument("--ovmf", required=True, help="OVMF image with SNP metadata (e.g. /usr/share/OVMF/OVMF_CODE.fd)")
    b.add_argument("--out", required=True, help="IGVM file to write")
    b.add_argument("--vcpus", type=_count, default=1, help="vCPUs the guest will have (one VMSA each; default 1)")
    b.add_argument("--vcpu-type", default="EPYC-v4", help="QEMU -cpu model, for the VMSA's CPUID signature "
                   "(default EPYC-v4)")
    b.add_argument("--policy", type=_hex, default=0x30000, help="SNP guest policy (default 0x30000)")
    b.set_defaults(func=cmd_build)

    m = sub.add_parser("measure", help="predict the SEV-SNP launch digest of an IGVM file")
    m.add_argument("file")
    m.add_argument("--vcpus", type=_count, help="guest vCPUs (default: the file's VP context count)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=cmd_measure)


def _count(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= n <= 512:
        raise argparse.ArgumentTypeError(f"{n} is not a vCPU count 1..512")
    return n


def _hex(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (e.g. 0x30000)") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} does not fit the 64-bit guest policy")
    return value


def cmd_build(a: argparse.Namespace) -> int:
    from ..igvm.build import BuildInputs, build_ovmf_igvm
    from ..igvm.files import write_igvm
    from ..igvm.measure import launch_digest
    from ..userfiles import check_output

    check_output(a.out, "IGVM output")
    f = build_ovmf_igvm(BuildInputs(ovmf=a.ovmf, vcpus=a.vcpus, vcpu_type=a.vcpu_type, policy=a.policy))
    digest = launch_digest(f, a.vcpus).digest
    img = write_igvm(a.out, f)
    print(f"{shown(a.out)}: IGVM (SEV-SNP, {a.vcpus} vCPU(s), policy {a.policy:#x}) from {shown(a.ovmf)}, "
          f"{img.size} bytes, sha256 {img.sha256}")
    print(f"launch digest: {digest.hex()}")
    return 0


def cmd_measure(a: argparse.Namespace) -> int:
    from ..igvm.files import read_igvm
    from ..igvm.measure import launch_digest

    img = read_igvm(a.file)
    vcpus = a.vcpus or img.file.vp_count
    if vcpus == 0:
        raise UsageError(f"{shown(a.file)}: no VP context in the file; pass --vcpus")
    pred = launch_digest(img.file, vcpus)
    if a.json:
        print(json.dumps({"file": img.to_json(), **pred.to_json()}, indent=2))
    else:
        print(pred.digest.hex())
    return 0
