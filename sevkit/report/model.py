"""From the final test reports of a run to ``result.json``: requirement outcomes, levels, status, verdict.

Pure: the pytest wiring (fixtures/results.py) hands over plain ``TestRecord``s; nothing here imports pytest.

Rules (the README's "Reports" section says the same):

* A requirement's outcome over its test variants: ERROR if any errored; else FAIL (WAIVED when a valid
  waiver covers it); else PASS when every variant that was collected passed; else NOT-APPLICABLE when it is
  IF-SUPPORTED and the host lacks the capability (the capability's evidence is recorded); else SKIPPED.
* Status: ``aborted`` when no test ran to an outcome or every test errored; ``incomplete`` when the run was
  interrupted, a test errored, or some catalog requirements were not run (a selection); ``complete`` otherwise.
* Verdict: NOT ESTABLISHED when the run was aborted, interrupted or any requirement ERRORed; NON-CONFORMANT
  when an unwaived MUST / IF-SUPPORTED requirement FAILED; otherwise CONFORMANT to the highest level reached,
  if the run is complete and that level is at least the profile's level; NOT ESTABLISHED otherwise.
  A level is reached when every MUST / IF-SUPPORTED requirement of it and of every level below is PASS,
  WAIVED or NOT-APPLICABLE; SHOULD requirements are reported but never block a level.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..evidence import sha256_file as sha256_file  # re-exported
from .catalog import Catalog, Requirement

SCHEMA_VERSION = 1
OUTCOMES = ("PASS", "FAIL", "NOT-APPLICABLE", "SKIPPED", "ERROR", "WAIVED")
STATUSES = ("complete", "incomplete", "aborted")
VERDICTS = ("CONFORMANT", "NON-CONFORMANT", "NOT ESTABLISHED")
# At most this many evidence files per requirement are hashed and listed (a guest folder has ~10).
MAX_EVIDENCE_FILES = 60


@dataclass
class TestRecord:
    """One test's final outcome, after every plugin had its say (pytest's logreport of the phase that decided)."""

    nodeid: str
    key: str
    outcome: str                  # passed | failed | skipped | error
    message: str = ""
    duration: float = 0.0
    evidence_dirs: list[str] = field(default_factory=list)
    waiver: dict[str, Any] | None = None      # set when a FAIL was waived during the run
    category: str | None = None               # product | infrastructure (for failures and errors)
    # the test's own applicability decision (fixtures/capabilities.py): {"rule", "applicable", "reason", "evidence"}
    applicability: dict[str, Any] | None = None

    @property
    def not_applicable(self) -> bool:
        return self.outcome == "skipped" and self.applicability is not None \
            and self.applicability.get("applicable") is False


@dataclass(frozen=True)
class RunInfo:
    id: str
    start: str
    end: str
    version: str
    revision: str
    command: list[str]
    profile: str
    operator: str | None = None
    interrupted: bool = False
    exit_code: int | None = None
    pytest_exit: str = ""


def evidence_files(run_dir: Path, dirs: Iterable[str]) -> list[dict[str, Any]]:
    """Files under the evidence folders, relative to the run folder, with sha256 (symlinks not followed)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for d in dirs:
        base = Path(d)
        walk = [(str(base.parent), [], [base.name])] if base.is_file() else os.walk(base) if base.is_dir() else []
        for root, subdirs, files in walk:
            subdirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                try:
                    rel = p.relative_to(run_dir).as_posix()
                except ValueError:
                    continue
                if rel in seen or p.is_symlink() or not p.is_file() or len(out) >= MAX_EVIDENCE_FILES:
                    continue
                seen.add(rel)
                try:
                    out.append({"path": rel, "sha256": sha256_file(p), "size": p.stat().st_size})
                except OSError:
                    continue
    return out


def capability(host: dict[str, Any] | None, req: Requirement) -> tuple[bool | None, str]:
    """Does the host have the capability ``req.applies`` names? (True/False/None unknown, evidence text)."""
    cap = req.capability
    if cap is None:
        return True, "always"
    if host is None:
        return None, "no host probe in this run"
    kind, name = cap
    if kind == "capability":
        return None, "decided by the test's applicability rule while it runs"
    if kind == "feature":
        usable = host.get("features", {}).get(name)
        why = host.get("why_not", {}).get(name, "")
        return usable, f"host feature {name} usable: {usable}" + (f" ({why})" if why else "")
    check = next((c for c in host.get("checks", []) if c.get("id") == name), None)
    if check is None:
        return None, f"host check {name} not in the probe"
    ev = "; ".join(f"{e.get('source')}: {e.get('value')}" for e in check.get("evidence", []))
    present = check.get("status") in ("pass", "warn") if check.get("status") != "error" else None
    return present, f"host check {name} {check.get('status')}: {check.get('message')}" + (f" [{ev}]" if ev else "")


def requirement_outcome(req: Requirement, records: Sequence[TestRecord], collected: set[str],
                        host: dict[str, Any] | None, interrupted: bool) -> dict[str, Any]:
    """One requirement's entry: outcome, reason, duration, tests, waiver, category."""
    duration = round(sum(r.duration for r in records), 3)
    ran = {r.key for r in records}
    not_run = [k for k in req.tests if k in collected and k not in ran]
    base: dict[str, Any] = {"duration": duration, "tests": [
        {"key": r.key, "nodeid": r.nodeid, "outcome": r.outcome, "duration": round(r.duration, 3),
         "message": r.message[:2000]} for r in records]}
    errors = [r for r in records if r.outcome == "error"]
    fails = [r for r in records if r.outcome == "failed" or r.waiver is not None]
    if errors:
        cat = errors[0].category or "infrastructure"
        return {**base, "outcome": "ERROR", "reason": errors[0].message, "category": cat}
    if fails:
        waiver = next((r.waiver for r in fails if r.waiver is not None), None)
        if waiver is not None and all(r.waiver is not None for r in fails):
            return {**base, "outcome": "WAIVED", "reason": fails[0].message, "waiver": waiver, "category": "product"}
        return {**base, "outcome": "FAIL", "reason": next(r.message for r in fails if r.waiver is None),
                "category": "product"}
    applied = [r for r in records if not r.not_applicable]
    if applied and all(r.outcome == "passed" for r in applied) and not not_run:
        return {**base, "outcome": "PASS", "reason": applied[0].message or "held"}
    skipped = [r for r in records if r.outcome == "skipped"]
    if req.strength == "IF-SUPPORTED" and records and not applied:
        a = records[0].applicability or {}
        ev = "; ".join(f"{e.get('id')}={e.get('value')!r} [{e.get('source')}]" if isinstance(e, dict) else str(e)
                       for e in a.get("evidence", []))
        return {**base, "outcome": "NOT-APPLICABLE", "reason": records[0].message,
                "capability": {"rule": f"{req.applies} ({a.get('rule')})", "present": False,
                               "evidence": f"{a.get('reason')}" + (f" [{ev}]" if ev else "")}}
    if req.strength == "IF-SUPPORTED":
        present, evidence = capability(host, req)
        if present is False:
            return {**base, "outcome": "NOT-APPLICABLE", "reason": skipped[0].message if skipped else evidence,
                    "capability": {"rule": req.applies, "present": False, "evidence": evidence}}
    if skipped:
        return {**base, "outcome": "SKIPPED", "reason": skipped[0].message}
    if not_run:
        why = "the run was interrupted before it ran" if interrupted else "not run"
        return {**base, "outcome": "SKIPPED", "reason": why}
    return {**base, "outcome": "SKIPPED", "reason": "not selected in this run (no test of it was collected)"}


def level_reached(catalog: Catalog, outcomes: dict[str, str]) -> int:
    reached = 0
    for lv in catalog.levels:
        blocking = [r for r in catalog.requirements if r.level == lv.id and r.strength != "SHOULD"]
        if any(outcomes.get(r.id) not in ("PASS", "WAIVED", "NOT-APPLICABLE") for r in blocking):
            break
        reached = lv.n
    return reached


def verdict(catalog: Catalog, reqs: list[dict[str, Any]], status: str, status_reason: str, profile: str,
            exit_code: int | None) -> dict[str, Any]:
    outcomes = {r["id"]: r["outcome"] for r in reqs}
    reached = level_reached(catalog, outcomes)
    target = catalog.level_for_profile(profile)
    errors = [r["id"] for r in reqs if r["outcome"] == "ERROR"]
    fails = [r["id"] for r in reqs if r["outcome"] == "FAIL" and r["strength"] != "SHOULD"]
    out: dict[str, Any] = {"level_reached": reached, "target_level": target.n, "exit_code": exit_code}
    lv = catalog.levels[reached - 1] if reached else None
    if status == "aborted":
        return {**out, "verdict": "NOT ESTABLISHED", "level": None, "reason": f"run aborted: {status_reason}"}
    if errors:
        return {**out, "verdict": "NOT ESTABLISHED", "level": None,
                "reason": f"{len(errors)} requirement(s) could not be measured (ERROR): {', '.join(errors[:5])}"}
    if status == "incomplete" and status_reason.startswith("interrupted"):
        return {**out, "verdict": "NOT ESTABLISHED", "level": None, "reason": f"run {status_reason}"}
    if fails:
        return {**out, "verdict": "NON-CONFORMANT", "level": None,
                "reason": f"{len(fails)} requirement(s) failed: {', '.join(fails[:5])}"}
    if status != "complete":
        return {**out, "verdict": "NOT ESTABLISHED", "level": None, "reason": f"run incomplete: {status_reason}"}
    if reached < target.n:
        blocked = [r["id"] for r in reqs if catalog.level(r["level"]).n <= target.n and r["strength"] != "SHOULD"
                   and r["outcome"] not in ("PASS", "WAIVED", "NOT-APPLICABLE")]
        return {**out, "verdict": "NOT ESTABLISHED", "level": None,
                "reason": f"{target.label} (--sev-expect {profile}) not shown: {', '.join(blocked[:5])} did not pass"}
    assert lv is not None
    return {**out, "verdict": "CONFORMANT", "level": {"n": lv.n, "id": lv.id, "title": lv.title},
            "reason": f"every requirement up to {lv.label} holds"}


def run_status(records: Sequence[TestRecord], catalog: Catalog, collected: set[str], run: RunInfo) -> tuple[str, str]:
    if not records:
        return "aborted", run.pytest_exit or "no test ran to an outcome"
    errored = sum(1 for r in records if r.outcome == "error")
    if run.interrupted:
        return "incomplete", f"interrupted ({run.pytest_exit or 'signal'}) after {len(records)} test(s)"
    if errored == len(records):
        return "aborted", f"every test errored ({errored}): nothing was measured"
    missing = [r.id for r in catalog.requirements if not any(t in collected for t in r.tests)]
    if errored:
        return "incomplete", f"{errored} test(s) could not measure (ERROR)"
    if missing:
        return "incomplete", f"{len(missing)} of {len(catalog.requirements)} requirements not selected in this run"
    return "complete", "every requirement of the catalog ran"


def build(catalog: Catalog, records: Sequence[TestRecord], collected: set[str], run: RunInfo,
          host: dict[str, Any] | None, run_dir: Path, waivers: dict[str, Any] | None = None,
          unknown_tests: Sequence[str] = ()) -> dict[str, Any]:
    """The whole result document (schema: sevkit/data/result.schema.json)."""
    by_req: dict[str, list[TestRecord]] = {r.id: [] for r in catalog.requirements}
    for rec in records:
        req = catalog.for_test(rec.key)
        if req is not None:
            by_req[req.id].append(rec)
    reqs: list[dict[str, Any]] = []
    for req in catalog.requirements:
        recs = by_req[req.id]
        entry = requirement_outcome(req, recs, collected, host, run.interrupted)
        dirs = [d for r in recs for d in r.evidence_dirs]
        reqs.append({"id": req.id, "title": req.title, "level": req.level, "level_n": catalog.level(req.level).n,
                     "strength": req.strength, "source": req.source, "applies": req.applies, "hint": req.hint,
                     "check": req.check, **entry, "evidence": evidence_files(run_dir, dirs)})
    status, why = run_status(records, catalog, collected, run)
    counts = Counter(r["outcome"] for r in reqs)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {"id": run.id, "start": run.start, "end": run.end, "sevkit_version": run.version,
                "source_revision": run.revision, "command": run.command, "profile": run.profile,
                "operator": run.operator, "exit_code": run.exit_code, "pytest_exit": run.pytest_exit,
                "catalog": catalog.source},
        "status": status,
        "status_reason": why,
        **verdict(catalog, reqs, status, why, run.profile, run.exit_code),
        "levels": [{"n": lv.n, "id": lv.id, "title": lv.title, "profile": lv.profile, "description": lv.description}
                   for lv in catalog.levels],
        "host": host_identity(host),
        "requirements": reqs,
        "unknown_tests": list(unknown_tests),
        "waivers": waivers or {"file": None, "applied": [], "expired": [], "unused": []},
        "counts": {o: counts.get(o, 0) for o in OUTCOMES} | {"total": len(reqs), "tests": len(records)},
    }


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def host_identity(host: dict[str, Any] | None) -> dict[str, Any]:
    """The identity block: every field present, 'unknown (why)' rather than missing."""
    if host is None:
        return {"probed": False, "reason": "the host probe did not run or failed"}
    i = host.get("identity", {})
    unknown = "unknown (not in the probe)"
    ovmf = [{"path": o.get("path"), "sha256": o.get("sha256"), "role": o.get("role")}
            for o in host.get("ovmf_images", []) if o.get("firmware", True)]
    qemu = host.get("qemu") or {}
    return {
        "probed": True,
        "hostname": i.get("hostname", unknown),
        "dmi": {"vendor": i.get("dmi_vendor", unknown), "product": i.get("dmi_product", unknown),
                "bios_vendor": i.get("bios_vendor", unknown), "bios_version": i.get("bios_version", unknown),
                "bios_date": i.get("bios_date", unknown)},
        "cpu": {"model": i.get("cpu", unknown), "vendor": i.get("cpu_vendor", unknown),
                "signature": i.get("cpu_signature", unknown), "generation": i.get("generation", unknown),
                "microcode": i.get("microcode", unknown)},
        "sev_firmware": i.get("firmware", unknown),
        "snp": {"firmware": i.get("snp_firmware", "n/a (no SNP platform status)"),
                "tcb_current": i.get("snp_tcb_current"), "tcb_reported": i.get("snp_tcb_reported"),
                # COMMITTED_TCB and LAUNCH_TCB are fields of an attestation report, not of the platform status
                "tcb_committed": i.get("snp_tcb_committed"), "tcb_launch": i.get("snp_tcb_launch")},
        "kernel": i.get("kernel", unknown),
        "cmdline": i.get("cmdline", unknown),
        "qemu": {"version": qemu.get("version"), "path": qemu.get("path"), "text": i.get("qemu", unknown)},
        "ovmf": ovmf,
        "iommu": i.get("iommu", unknown),
        "features": host.get("features", {}),
    }
