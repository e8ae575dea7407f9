"""``sevkit report show RUN`` / ``render RUN`` / ``diff RUN_A RUN_B [--json]``.

RUN is a run folder (``reports/<run-id>``, ``reports/latest``) or its ``result.json``. ``show`` prints the
page's summary (exit 0); ``render`` rewrites report.html from result.json; ``diff`` exits 1 when a requirement
regressed from A to B, 0 otherwise, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL = 0, 1


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="show, render or compare conformance runs (result.json)")
    rs = p.add_subparsers(dest="report_command", metavar="ACTION")
    rs.required = True
    show = rs.add_parser("show", help="print a run's verdict, failures with hints, errors and waivers")
    show.add_argument("run", type=Path, help="run folder or result.json")
    show.add_argument("--json", action="store_true", help="print the validated result.json")
    show.set_defaults(func=_show)
    render = rs.add_parser("render", help="(re)write report.html next to result.json")
    render.add_argument("run", type=Path)
    render.set_defaults(func=_render)
    d = rs.add_parser("diff", help="identity changes and requirement transitions from RUN_A to RUN_B")
    d.add_argument("run_a", type=Path)
    d.add_argument("run_b", type=Path)
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=_diff)


def _folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _show(args: argparse.Namespace) -> int:
    from ..report.render import load_result, summary
    r = load_result(args.run)
    page = _folder(args.run) / "report.html"
    print(json.dumps(r, indent=2) if args.json else summary(r, page if page.is_file() else None))
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    from ..report.render import load_result, write_html
    print(write_html(load_result(args.run), _folder(args.run)))
    return EXIT_OK


def _diff(args: argparse.Namespace) -> int:
    from ..report.diff import diff, text
    from ..report.render import load_result
    d = diff(load_result(args.run_a), load_result(args.run_b))
    print(json.dumps(d, indent=2) if args.json else text(d))
    return EXIT_FAIL if d["regressions"] else EXIT_OK
