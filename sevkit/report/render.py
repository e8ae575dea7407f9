"""result.json -> report.html (Jinja2, one self-contained file) and the terminal summary."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2

from ..errors import InputError
from .model import OUTCOMES
from .schema import validate

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("sevkit.report", "templates"),
                          autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


def verdict_line(r: dict[str, Any]) -> str:
    if r["verdict"] == "CONFORMANT":
        return f"CONFORMANT to level {r['level']['n']} ({r['level']['title']})"
    return str(r["verdict"])


def load_result(path: Path) -> dict[str, Any]:
    """A result.json (or a run folder holding one), schema-checked; InputError when unusable."""
    if path.is_dir():
        path = path / "result.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such result file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable result.json: {exc}") from None
    validate(doc, str(path))
    result: dict[str, Any] = doc
    return result


def context(r: dict[str, Any]) -> dict[str, Any]:
    reqs = r["requirements"]
    by_level: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in reqs:
        by_level[q["level"]].append(q)
    rank = {"FAIL": 0, "WAIVED": 1}
    failures = sorted((q for q in reqs if q["outcome"] in rank), key=lambda q: (rank[q["outcome"]], q["level_n"]))
    errors = [q for q in reqs if q["outcome"] == "ERROR"]
    cats: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for q in errors:
        cats[f"{q.get('category', 'infrastructure')}: {error_kind(q['reason'])}"].append(q)
    return {"r": r, "verdict_line": verdict_line(r), "outcomes": OUTCOMES, "by_level": by_level,
            "failures": failures, "errors": errors, "errors_by_category": sorted(cats.items()),
            "level_title": {lv["id"]: f"level {lv['n']} {lv['title']}" for lv in r["levels"]}}


_KIND = re.compile(r"(?:(setup|teardown): )?(?:[a-z_]\w*\.)*"
                   r"([A-Z]\w*(?:Error|Timeout|Died|Panic|Exception|Interrupt))\b")


def error_kind(reason: str) -> str:
    """'LaunchError: ...' -> 'LaunchError'; 'setup: HostProbeError: ...' -> 'HostProbeError (setup)'."""
    m = _KIND.match(reason)
    if m is None:
        return "other"
    return m.group(2) + (f" ({m.group(1)})" if m.group(1) else "")


def render_html(r: dict[str, Any]) -> str:
    return _ENV.get_template("report.html.j2").render(**context(r))


def write_html(r: dict[str, Any], folder: Path) -> Path:
    out = folder / "report.html"
    tmp = folder / f".report.html.{os.getpid()}.part"
    tmp.write_text(render_html(r), encoding="utf-8")
    os.replace(tmp, out)
    return out


def summary(r: dict[str, Any], page: Path | None = None) -> str:
    """The terminal version of the page's top: verdict, counts, failures with hints, errors, waivers."""
    lines = [f"sevkit {verdict_line(r)} (exit {r['exit_code']}); run {r['run']['id']} {r['status']}: "
             f"{r['status_reason']}", f"  {r['reason']}"]
    h = r["host"]
    if h.get("probed"):
        lines.append(f"  host {h['hostname']}: {h['cpu']['model']} ({h['cpu']['generation']}, microcode "
                     f"{h['cpu']['microcode']}); BIOS {h['dmi']['bios_version']}; {h['sev_firmware']}; "
                     f"kernel {h['kernel']}; QEMU {h['qemu']['text']}")
    c = r["counts"]
    lines.append("  " + ", ".join(f"{o} {c[o]}" for o in OUTCOMES) + f" of {c['total']} requirements")
    ctx = context(r)
    for q in ctx["failures"]:
        lines.append(f"  {q['outcome']:<7} {q['id']} {q['title']}: {q['reason'][:300]}")
        lines.append(f"          fix: {q['hint']}" if q["outcome"] == "FAIL"
                     else f"          waived by {q['waiver']['owner']} until {q['waiver']['expires']}")
    for q in ctx["errors"]:
        lines.append(f"  ERROR   {q['id']} [{q.get('category', 'infrastructure')}] {q['title']}: {q['reason'][:300]}")
    for w in r["waivers"]["expired"]:
        lines.append(f"  expired waiver ignored: {w['requirement']} ({w['owner']}, expired {w['expires']})")
    if page is not None:
        lines.append(f"  report: {page}")
    return "\n".join(lines)
