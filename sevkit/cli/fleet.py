"""``sevkit fleet``: run the conformance suite on every labgrid place a selection names.

Exit codes: 0 every host conformant to the profile, 1 any host non-conformant, 2 any host not
measured (unreachable, reservation timeout, SSH dropped, remote suite killed, interrupted) or a
usage error. Per-host outcomes are in reports/fleet-<run-id>/result.json either way.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..signals import sigterm_as_interrupt
from ..vocab import Profile


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fleet", help="run the suite on many hosts reserved through labgrid, one merged report",
        description="Reserve and lock every labgrid place matching --match, install this sevkit on each host "
                    "over SSH (or use the lab's checkout), run the suite there in parallel, fetch every report "
                    "folder (sha256 verified) and merge them into reports/fleet-<run-id>/. Arguments after "
                    "'--' go to pytest on every host. Exit 0 all conformant, 1 any non-conformant, "
                    "2 any host not measured.")
    p.add_argument("--coordinator", default=os.environ.get("LG_COORDINATOR"), metavar="HOST:PORT",
                   help="labgrid coordinator (default $LG_COORDINATOR; port 20408 when omitted)")
    p.add_argument("--match", action="append", default=[], metavar="K=V[,K=V]",
                   help="select places whose tags match (repeatable: any selector; 'name=PLACE' names one)")
    p.add_argument("--parallel", type=int, default=4, metavar="N", help="hosts worked on at once (default 4)")
    p.add_argument("--profile", metavar="PROFILE",
                   help=f"what every host must deliver: {', '.join(p.value for p in Profile)} "
                        "(default: the suite's pytest.ini)")
    p.add_argument("--reserve-timeout", type=float, default=600.0, metavar="S",
                   help="how long to wait for a busy place before it counts as not measured (default 600)")
    p.add_argument("--identity", metavar="KEY", help="SSH private key for the hosts (default: agent/~/.ssh)")
    p.add_argument("--known-hosts", metavar="FILE",
                   help="pinned host keys (default $SEVKIT_KNOWN_HOSTS or ~/.ssh/known_hosts); "
                        "unknown keys are refused")
    p.add_argument("--remote-python", default="python3", metavar="PATH",
                   help="python on the hosts for the per-run virtual environment (>= 3.11; default python3)")
    p.add_argument("--installed-checkout", metavar="DIR",
                   help="use the sevkit checkout already set up on every host at DIR (DIR/.venv) instead of installing")
    p.add_argument("--keep", action="store_true", help="leave the remote work folder (venv, suite, reports) in place")
    p.add_argument("--report-dir", default="reports", metavar="DIR",
                   help="where fleet-<run-id>/ goes (default reports)")
    p.add_argument("--link-timeout", type=float, default=30.0, metavar="S",
                   help="a host whose SSH link is silent this long counts as dropped (default 30)")
    p.add_argument("--connect-timeout", type=float, default=20.0, metavar="S",
                   help="SSH connect/handshake deadline per host (default 20)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS", help="passed to pytest on every host")
    p.set_defaults(func=fleet_cmd)


def _positive(value: float, name: str) -> float:
    if not value > 0:
        raise UsageError(f"{name} must be > 0, got {value:g}")
    return value


def fleet_cmd(args: argparse.Namespace) -> int:
    from ..fleet.hostjob import JobSettings
    from ..fleet.payload import Payload
    from ..fleet.runner import FleetSettings, run_fleet
    from ..fleet.selection import parse_selector

    if not args.coordinator:
        raise UsageError("--coordinator HOST:PORT is required (or set LG_COORDINATOR)")
    if not args.match:
        raise UsageError("at least one --match K=V is required (e.g. --match gen=genoa)")
    selectors = [parse_selector(m) for m in args.match]
    if args.parallel < 1:
        raise UsageError(f"--parallel must be >= 1, got {args.parallel}")
    _positive(args.reserve_timeout, "--reserve-timeout")
    _positive(args.link_timeout, "--link-timeout")
    _positive(args.connect_timeout, "--connect-timeout")
    profile = None
    if args.profile is not None:
        profile = args.profile.strip().lower()
        if profile not in {p.value for p in Profile}:
            raise UsageError(f"--profile {args.profile!r}: expected one of {', '.join(p.value for p in Profile)}")
    identity = Path(args.identity) if args.identity else None
    if identity is not None and not identity.is_file():
        raise UsageError(f"--identity {args.identity}: no such key file")
    known = Path(args.known_hosts or os.environ.get("SEVKIT_KNOWN_HOSTS") or os.path.expanduser("~/.ssh/known_hosts"))
    if not known.is_file():
        raise UsageError(f"known hosts file {known} does not exist: host keys must be pinned before a fleet run")
    checkout = Path(__file__).resolve().parents[2]
    job = JobSettings(run_id="", profile=profile, pytest_args=list(args.pytest_args), identity=identity,
                      known_hosts=known, payload=Payload(Path("."), ""), remote_python=args.remote_python,
                      installed_checkout=args.installed_checkout, keep=args.keep,
                      link_timeout=args.link_timeout, heartbeat=min(5.0, args.link_timeout / 4),
                      connect_timeout=args.connect_timeout)
    settings = FleetSettings(coordinator=args.coordinator, selectors=selectors, job=job, checkout=checkout,
                             parallel=args.parallel, reserve_timeout=args.reserve_timeout,
                             report_root=Path(args.report_dir))
    # labgrid's client logs through the root logger; its failures reach us as LabError (one line)
    logging.getLogger().addHandler(logging.NullHandler())
    with sigterm_as_interrupt():
        run = run_fleet(settings)
    for o in run.outcomes:
        if o.reason:
            print(f"  {o.place}: {o.status}: {o.reason}", file=sys.stderr)
    state = "complete" if run.complete else "INCOMPLETE (interrupted)"
    print(f"sevkit fleet: {len(run.outcomes)} host(s), run {state}, exit {run.exit_code}; "
          f"report: {run.folder / 'report.html'}")
    return run.exit_code
