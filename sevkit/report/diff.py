"""Two runs' result.json side by side: host identity changes and requirement transitions, regressions first.

A regression is a requirement that held in A (PASS, WAIVED, NOT-APPLICABLE) or was not demanded (SKIPPED)
and FAILs or ERRORs in B, or one that PASSed and is now SKIPPED or gone. That is what a release gate for a new
BIOS or kernel acts on (exit 1).
"""

from __future__ import annotations

from typing import Any

_HELD = ("PASS", "WAIVED", "NOT-APPLICABLE")
_BAD = ("FAIL", "ERROR")

# Identity fields a release gate watches (dotted paths into result["host"]).
IDENTITY_FIELDS = ("hostname", "dmi.vendor", "dmi.product", "dmi.bios_version", "dmi.bios_date", "cpu.model",
                   "cpu.signature", "cpu.microcode", "sev_firmware", "snp.firmware", "snp.tcb_current",
                   "snp.tcb_reported", "snp.tcb_committed", "snp.tcb_launch", "kernel", "cmdline", "qemu.text",
                   "iommu")


def _get(d: dict[str, Any], dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def _ovmf(host: dict[str, Any]) -> dict[str, str]:
    return {str(o.get("path")): str(o.get("sha256")) for o in host.get("ovmf", []) or []}


def identity_changes(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    out = [{"field": f, "a": _get(a, f), "b": _get(b, f)} for f in IDENTITY_FIELDS if _get(a, f) != _get(b, f)]
    oa, ob = _ovmf(a), _ovmf(b)
    for path in sorted(set(oa) | set(ob)):
        if oa.get(path) != ob.get(path):
            out.append({"field": f"ovmf {path}", "a": oa.get(path), "b": ob.get(path)})
    return out


def kind(a: str | None, b: str | None) -> str:
    if a is None:
        return "new"
    if b is None:
        return "regression" if a == "PASS" else "gone"
    if b in _BAD and a not in _BAD:
        return "regression"
    if a == "PASS" and b == "SKIPPED":
        return "regression"
    if a in _BAD and b in _HELD:
        return "fixed"
    return "changed"


_ORDER = {"regression": 0, "new": 1, "gone": 2, "changed": 3, "fixed": 4}


def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ra = {q["id"]: q for q in a["requirements"]}
    rb = {q["id"]: q for q in b["requirements"]}
    transitions = []
    for rid in sorted(set(ra) | set(rb)):
        oa = ra[rid]["outcome"] if rid in ra else None
        ob = rb[rid]["outcome"] if rid in rb else None
        if oa == ob:
            continue
        q = rb.get(rid) or ra[rid]
        transitions.append({"id": rid, "title": q["title"], "kind": kind(oa, ob), "a": oa, "b": ob,
                            "reason": rb[rid]["reason"] if rid in rb else "not in run B"})
    transitions.sort(key=lambda t: (_ORDER[t["kind"]], t["id"]))
    return {
        "a": {"run": a["run"]["id"], "verdict": a["verdict"], "level_reached": a["level_reached"],
              "status": a["status"]},
        "b": {"run": b["run"]["id"], "verdict": b["verdict"], "level_reached": b["level_reached"],
              "status": b["status"]},
        "identity": identity_changes(a["host"], b["host"]),
        "transitions": transitions,
        "regressions": sum(1 for t in transitions if t["kind"] == "regression"),
    }


def text(d: dict[str, Any]) -> str:
    a, b = d["a"], d["b"]
    lines = [f"A {a['run']}: {a['verdict']} (level {a['level_reached']}, {a['status']})",
             f"B {b['run']}: {b['verdict']} (level {b['level_reached']}, {b['status']})"]
    lines.append(f"{d['regressions']} regression(s), {len(d['transitions'])} transition(s), "
                 f"{len(d['identity'])} identity change(s)")
    for t in d["transitions"]:
        lines.append(f"  {t['kind'].upper():<10} {t['id']}: {t['a'] or '-'} -> {t['b'] or '-'}  {t['title']}")
        if t["kind"] == "regression":
            lines.append(f"             {t['reason'][:240]}")
    for c in d["identity"]:
        lines.append(f"  IDENTITY   {c['field']}: {c['a']} -> {c['b']}")
    return "\n".join(lines)
