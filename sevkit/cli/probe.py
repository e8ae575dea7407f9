"""``sevkit probe`` (grade a host) and ``sevkit collect`` (save its raw inputs as a bundle).

Exit codes: 0 the --expect profile holds, 1 it does not, 2 usage or access error.
"""

from __future__ import annotations

import argparse
import json
import shlex
import struct
import sys
from typing import Any

from ..errors import InputError, UsageError
from ..host import PROFILES, HostReport, collect, grade, parse_target, read_bundle, write_bundle
from ..host.capabilities import Capabilities
from ..host.capabilities import read as read_capabilities
from ..userfiles import check_output, shown
from . import EXIT_ERROR, EXIT_FAIL, EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("probe", help="grade a host for SEV, SEV-ES and SEV-SNP",
                       description="Grade a host (local, over SSH, or from a 'sevkit collect' bundle). "
                                   "Exit 0 when the --expect profile holds, 1 when not, 2 on usage/access errors.")
    _target_opts(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (features, checks, identity)")
    p.add_argument("--expect", default="none", metavar="PROFILE",
                   help="profile the host must deliver: none (default), sev, sev-es, sev-snp")
    p.add_argument("--bundle", metavar="FILE", help="grade a bundle written by 'sevkit collect' instead of a host")
    p.set_defaults(func=probe_cmd)

    c = sub.add_parser("collect", help="save every raw input of the probe into a bundle",
                       description="Collect the probe's raw inputs (CPUID, MSRs, sysfs, ioctls, dmesg, versions) "
                                   "into a .tar.gz that 'sevkit probe --bundle' grades anywhere.")
    _target_opts(c)
    c.add_argument("-o", "--output", required=True, metavar="FILE", help="bundle to write (.tar.gz)")
    c.set_defaults(func=collect_cmd)


def _target_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="local", help="local (default) or ssh://user@host[:port]")
    p.add_argument("--identity", metavar="KEY", help="SSH private key for --target ssh://...")


def _profile(value: str) -> str:
    v = value.strip().lower()
    if v not in PROFILES:
        raise UsageError(f"--expect {value!r}: expected one of {', '.join(PROFILES)}")
    return v


def _check_identity(args: argparse.Namespace) -> None:
    if args.identity is not None and parse_target(args.target).kind == "local":
        raise UsageError("--identity applies to --target ssh://user@host[:port] only")


def probe_cmd(args: argparse.Namespace) -> int:
    profile = _profile(args.expect)
    if args.bundle is not None:
        if args.target != "local" or args.identity is not None:
            raise UsageError("--bundle grades a saved bundle: it cannot be combined with --target/--identity")
        raw = read_bundle(args.bundle)
    else:
        _check_identity(args)
        raw = collect(parse_target(args.target), args.identity)
    try:
        report = grade(raw)
        caps = read_capabilities(raw)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error) as exc:
        # defence in depth behind the schema: what came from a bundle or a remote host is untrusted
        raise InputError(f"{'bundle ' + shown(args.bundle) if args.bundle is not None else str(args.target)}: "
                         f"the raw inputs hold values the grader cannot use ({type(exc).__name__}: "
                         f"{str(exc)[:160]})") from None
    verdict = report.verdict(profile)
    if args.json:
        out = report.to_json()
        out["capabilities"] = caps.to_json()
        out["profile"] = {"expect": profile, "holds": verdict.holds,
                          "missing": list(verdict.missing),
                          "failures": [c.id for c in verdict.failures],
                          "errors": [c.id for c in verdict.errors]}
        json.dump(out, sys.stdout, indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
    else:
        _print_human(report, profile)
        _print_capabilities(caps)
    if verdict.errors:
        first = verdict.errors[0]
        print(f"sevkit: error: {len(verdict.errors)} check(s) could not read their input: {first.id}: {first.message}"
              + (f" (hint: {first.hint})" if first.hint else ""), file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK if verdict.holds else EXIT_FAIL


def _print_human(report: HostReport, profile: str) -> None:
    ident = report.identity
    print(f"host: {ident.get('hostname')} ({report.meta.get('origin')}) | CPU: {ident.get('cpu')} "
          f"[{ident.get('generation')}] | kernel {ident.get('kernel')} | QEMU {ident.get('qemu')}")
    for c in report.checks:
        print(f"[ {c.status.upper():<5}] {c.id}: {c.message}")
        if c.status in ("fail", "error", "warn") and c.hint:
            print(f"           hint: {c.hint}")
    feats = " ".join(f"{f}={'yes' if v else ('unknown' if v is None else 'no')}" for f, v in report.features.items())
    print(f"features: {feats}")
    verdict = report.verdict(profile)
    if verdict.holds:
        print(f"profile {profile}: HOLDS")
        return
    print(f"profile {profile}: NOT MET")
    for f in verdict.missing:
        print(f"  {f} not usable: {report.why_not(f)}")
        hint = report.hint_for(f)
        if hint:
            print(f"    fix: {hint}")
    for c in verdict.failures:
        print(f"  failed: {c.id}: {c.message}" + (f" (fix: {c.hint})" if c.hint else ""))


def _print_capabilities(caps: Capabilities) -> None:
    print("capabilities (what the platform, kernel and QEMU offer):")
    for c in caps:
        shown = json.dumps(c.value, sort_keys=True, default=str) if c.present else f"absent: {c.absent}"
        print(f"  {c.id}: {shown}" + (f"  [{c.source}]" if c.present else ""))


def collect_cmd(args: argparse.Namespace) -> int:
    _check_identity(args)
    check_output(args.output, "bundle")        # before the collection: a bad -o costs nothing
    raw = collect(parse_target(args.target), args.identity)
    path = write_bundle(raw, args.output)
    print(f"wrote {shown(path)} (grade it with: sevkit probe --bundle {shlex.quote(str(path))})")
    return EXIT_OK
