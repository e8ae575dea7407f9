"""`sevkit analyze [--json] FILE...`: what captured logs say about SME/SEV/SEV-ES/SEV-SNP.

Every file is analyzed, in order. A bad file (missing, directory, unreadable, empty, binary,
truncated, unknown kind) gets one line on stderr naming it; the good files are still printed
(with --json: the list holds the good files only). Exit 0 when every file was analyzed, 2 when
at least one was not. The exit code never grades the host: `sevkit probe` does that.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..errors import InputError
from ..logs.analyze import analyze_file
from ..vocab import FEATURES
from . import EXIT_ERROR, EXIT_OK, error

FEATURE_ORDER = FEATURES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "analyze", help="analyze captured dmesg, cpuinfo, cpuid or kvm_amd/sevctl output",
        description="Detect the kind of each captured file (host-dmesg, guest-dmesg, cpuinfo, cpuid, "
                    "kvm-amd-params, snphost-ok, tcb) and report what it says about SME, SEV, "
                    "SEV-ES and SEV-SNP. Exit 0 when all files were read, 2 when any was unusable.")
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per good file")
    p.add_argument("files", nargs="+", metavar="FILE", help='a captured file; "-" reads standard input')
    p.set_defaults(func=handler)


def _word(v: bool | None) -> str:
    return {True: "yes", False: "no", None: "unknown"}[v]


def human(obj: dict[str, Any]) -> str:
    out = [f"{obj['file']}: {obj['kind']}"]
    feats = obj["features"]
    out.append("  features: " + ", ".join(f"{k} {_word(feats.get(k))}" for k in FEATURE_ORDER))
    if obj.get("firmware"):
        fw = obj["firmware"]
        parts = [f"SEV API {fw['sev_api']}" + (f" build {fw['sev_build']}" if "sev_build" in fw else "")
                 ] if "sev_api" in fw else []
        if "snp_api" in fw:
            parts.append(f"SEV-SNP API {fw['snp_api']} build {fw['snp_build']}")
        out.append("  firmware: " + ", ".join(parts))
    if obj.get("asid_counts"):
        out.append("  ASIDs: " + ", ".join(f"{k} {v}" for k, v in obj["asid_counts"].items()))
    for key in ("vmpl", "cpu", "vendor", "psp_device", "rmp_range", "iommu_snp"):
        if obj.get(key) is not None:
            val = obj[key]
            out.append(f"  {key}: {' - '.join(val) if isinstance(val, list) else val}")
    for key in ("kvm_params", "kvm"):
        if obj.get(key):
            out.append("  kvm_amd: " + ", ".join(f"{k} {_word(v)}" for k, v in obj[key].items()))
    for block in obj.get("tcb") or []:
        vals = ", ".join(f"{k} {v}" for k, v in block.items() if k != "owner")
        out.append(f"  {block['owner']} TCB: {vals}")
    known = {k: v for k, v in (obj.get("cpuid") or {}).items() if v is not None}
    if known:
        out.append("  cpuid: " + ", ".join(f"{k} {v}" for k, v in known.items()))
    for e in obj.get("errors", []):
        out.append(f"  error: {e}")
    for n in obj.get("notes", []):
        out.append(f"  note: {n}")
    return "\n".join(out)


def handler(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failed = 0
    for path in args.files:
        try:
            obj = analyze_file(path)
        except InputError as exc:
            error(str(exc))
            failed += 1
            continue
        if not args.json:
            print(("\n" if results else "") + human(obj), flush=True)
        results.append(obj)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return EXIT_ERROR if failed else EXIT_OK
