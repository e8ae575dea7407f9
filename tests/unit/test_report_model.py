"""result.json rules on SYNTHETIC test records (built here, over the real catalog): outcomes, status apart from
verdict, levels, waivers; every document built is validated against the schema; diff and the report CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from sevkit.cli import main
from sevkit.report import diff as diff_mod
from sevkit.report import model, schema
from sevkit.report.catalog import Catalog, load
from sevkit.report.render import render_html, summary
from sevkit.report.waivers import WaiverError, find
from sevkit.report.waivers import load as load_waivers

CAT = load()


def _run(profile: str = "none", interrupted: bool = False, exit_code: int = 0) -> model.RunInfo:
    return model.RunInfo(id="20261206-000000-abcdef", start="2026-12-06T00:00:00+00:00",
                         end="2026-12-06T00:01:00+00:00", version="0.1.0", revision="abc", command=["pytest"],
                         profile=profile, interrupted=interrupted, exit_code=exit_code, pytest_exit="OK")


# A SYNTHETIC host probe document (the shape of host.json), with SecureTsc absent.
HOST: dict[str, Any] = {
    "features": {"SME": True, "SEV": True, "SEV-ES": True, "SEV-SNP": True}, "why_not": {},
    "identity": {"hostname": "lab-epyc-07", "bios_version": "1.9.2", "microcode": "0xa101144", "kernel": "6.12.1"},
    "qemu": {"path": "/usr/bin/qemu-system-x86_64", "version": "9.2.0"},
    "checks": [{"id": "kvm.secure_tsc", "status": "skip", "message": "CPUID Fn8000_001F EAX bit 8 (SecureTsc) is 0",
                "evidence": [{"source": "CPUID Fn8000_001F EAX bit 8", "value": 0}]},
               {"id": "cpuid.sme", "status": "pass", "message": "SME", "evidence": []}],
    "ovmf_images": [{"path": "/usr/share/ovmf/OVMF.fd", "sha256": "ab" * 32, "role": "combined"}],
}


def _all(cat: Catalog, outcome: str = "passed") -> dict[str, model.TestRecord]:
    """One record per test key of the catalog (first variant), all with ``outcome``."""
    return {r.tests[0]: model.TestRecord(f"suites/x.py::{r.tests[0]}", r.tests[0], outcome, duration=0.5)
            for r in cat.requirements}


def _build(records: dict[str, model.TestRecord], tmp_path: Path, profile: str = "sev-snp",
           interrupted: bool = False, host: dict[str, Any] | None = HOST) -> dict[str, Any]:
    collected = {t for r in CAT.requirements for t in r.tests[:1]}
    doc = model.build(CAT, list(records.values()), collected, _run(profile, interrupted), host, tmp_path)
    assert schema.problems(doc) == []
    return doc


def _req(doc: dict[str, Any], rid: str) -> dict[str, Any]:
    return next(q for q in doc["requirements"] if q["id"] == rid)


def test_all_pass_is_conformant_to_the_top_level(tmp_path: Path) -> None:
    doc = _build(_all(CAT), tmp_path)
    assert (doc["status"], doc["verdict"], doc["level"]["n"]) == ("complete", "CONFORMANT", 6)
    assert doc["counts"]["PASS"] == len(CAT.requirements)
    assert "CONFORMANT to level 6 (Attestation)" in render_html(doc)


def test_error_outranks_fail_and_is_never_conformant(tmp_path: Path) -> None:
    recs = _all(CAT)
    recs["test_cpu_vendor"].outcome, recs["test_cpu_vendor"].message = "failed", "vendor is GenuineIntel"
    recs["test_kvm_dev"].outcome, recs["test_kvm_dev"].category = "error", "infrastructure"
    doc = _build(recs, tmp_path)
    assert doc["verdict"] == "NOT ESTABLISHED" and doc["status"] == "incomplete"
    assert _req(doc, "SEV-HOST-001")["outcome"] == "FAIL"
    err = next(q for q in doc["requirements"] if q["outcome"] == "ERROR")
    assert err["category"] == "infrastructure"


def test_failure_is_non_conformant_with_its_hint(tmp_path: Path) -> None:
    recs = _all(CAT)
    recs["test_cpu_vendor"].outcome, recs["test_cpu_vendor"].message = "failed", "vendor is GenuineIntel"
    doc = _build(recs, tmp_path)
    assert doc["verdict"] == "NON-CONFORMANT" and doc["level_reached"] == 1
    text = summary(doc)
    assert "SEV-HOST-001" in text and "fix: Run on an AMD EPYC" in text


def test_waived_failure_keeps_conformance_and_shows_the_waiver(tmp_path: Path) -> None:
    recs = _all(CAT)
    w = {"requirement": "SEV-HOST-001", "host": {"hostname": "lab-*"}, "reason": "vendor ticket 4711",
         "owner": "jane", "expires": "2099-01-01"}
    recs["test_cpu_vendor"].outcome, recs["test_cpu_vendor"].waiver = "failed", w
    recs["test_cpu_vendor"].message = "vendor is GenuineIntel"
    doc = _build(recs, tmp_path)
    assert _req(doc, "SEV-HOST-001")["outcome"] == "WAIVED" and doc["verdict"] == "CONFORMANT"
    assert "vendor ticket 4711" in render_html(doc)


def test_not_applicable_only_with_the_capability_as_evidence(tmp_path: Path) -> None:
    recs = _all(CAT)
    recs["test_kvm_secure_tsc"].outcome = "skipped"
    recs["test_kvm_secure_tsc"].message = "CPUID Fn8000_001F EAX bit 8 (SecureTsc) is 0 (optional feature)"
    recs["test_cpuid_sme"].outcome = "skipped"      # SME capability present: a skip stays a SKIPPED
    doc = _build(recs, tmp_path)
    tsc = next(q for q in doc["requirements"] if q["check"] == "kvm.secure_tsc")
    assert tsc["outcome"] == "NOT-APPLICABLE"
    assert tsc["capability"]["present"] is False and "SecureTsc) is 0" in tsc["capability"]["evidence"]
    assert next(q for q in doc["requirements"] if q["check"] == "cpuid.sme")["outcome"] == "SKIPPED"
    assert doc["verdict"] == "NOT ESTABLISHED"   # a skipped MUST-level requirement: level 1 not shown


def test_profile_sets_the_level_that_must_be_shown(tmp_path: Path) -> None:
    recs = _all(CAT)
    for r in CAT.requirements:
        if CAT.level(r.level).n >= 2:
            recs[r.tests[0]].outcome, recs[r.tests[0]].message = "skipped", "SEV not expected"
    assert _build(recs, tmp_path, profile="none")["level"]["n"] == 1
    doc = _build(recs, tmp_path, profile="sev")
    assert doc["verdict"] == "NOT ESTABLISHED" and "level 2" in doc["reason"]


def test_interrupted_run_is_incomplete_and_never_conformant(tmp_path: Path) -> None:
    recs = dict(list(_all(CAT).items())[:5])
    doc = _build(recs, tmp_path, interrupted=True)
    assert doc["status"] == "incomplete" and doc["verdict"] == "NOT ESTABLISHED"
    assert any(q["reason"] == "the run was interrupted before it ran" for q in doc["requirements"])
    assert "NOT ESTABLISHED" in render_html(doc)


def test_no_test_or_all_errored_is_aborted(tmp_path: Path) -> None:
    assert _build({}, tmp_path, host=None)["status"] == "aborted"
    doc = _build(_all(CAT, "error"), tmp_path)
    assert doc["status"] == "aborted" and doc["verdict"] == "NOT ESTABLISHED"


def test_schema_rejects_a_conformant_incomplete_run(tmp_path: Path) -> None:
    doc = _build(_all(CAT), tmp_path)
    doc["status"] = "incomplete"
    assert schema.problems(doc)
    doc["status"], doc["requirements"][0]["outcome"] = "complete", "MAYBE"
    assert any("MAYBE" in p for p in schema.problems(doc))


def test_evidence_files_are_relative_with_sha256(tmp_path: Path) -> None:
    folder = tmp_path / "guest-sev-gw0"
    folder.mkdir()
    (folder / "console.log").write_text("SYNTHETIC console\n")
    recs = _all(CAT)
    recs["test_cpu_vendor"].evidence_dirs = [str(folder), str(tmp_path / "missing")]
    ev = _req(_build(recs, tmp_path), "SEV-HOST-001")["evidence"]
    assert ev == [{"path": "guest-sev-gw0/console.log", "size": 18,
                   "sha256": model.sha256_file(folder / "console.log")}]


# -- waivers ------------------------------------------------------------------------------------
def test_waivers_file_match_and_expiry(tmp_path: Path) -> None:
    p = tmp_path / "waivers.toml"
    p.write_text('[[waiver]]\nrequirement = "SEV-HOST-001"\nhost = "lab-*"\nreason = "r"\nowner = "o"\n'
                 'expires = 2026-01-01\n'
                 '[[waiver]]\nrequirement = "SEV-HOST-001"\nhost = { bios_version = "1.9.*" }\nreason = "r2"\n'
                 'owner = "o2"\nexpires = 2099-01-01\n')
    ws = load_waivers(p, {"SEV-HOST-001"})
    valid, expired = find(ws, "SEV-HOST-001", {"hostname": "lab-1", "bios_version": "1.9.2"}, dt.date(2026, 12, 6))
    assert valid is not None and valid.owner == "o2" and [w.owner for w in expired] == ["o"]
    valid, expired = find(ws, "SEV-HOST-001", {"hostname": "lab-1", "bios_version": "2.0"}, dt.date(2026, 12, 6))
    assert valid is None and len(expired) == 1


@pytest.mark.parametrize(("text", "message"), [
    ('[[waiver]]\nrequirement = "NOPE-001"\nreason = "r"\nowner = "o"\nexpires = 2099-01-01\n', "unknown requirement"),
    ('[[waiver]]\nrequirement = "SEV-HOST-001"\nreason = "r"\nowner = "o"\nexpires = "soon"\n', "is not a date"),
    ('[[waiver]]\nrequirement = "SEV-HOST-001"\nreason = "r"\nexpires = 2099-01-01\n', "owner"),
])
def test_bad_waivers_file_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "w.toml"
    p.write_text(text)
    with pytest.raises(WaiverError, match=message):
        load_waivers(p, {"SEV-HOST-001"})


# -- diff and the CLI ----------------------------------------------------------------------------
def _save(doc: dict[str, Any], folder: Path) -> Path:
    folder.mkdir()
    (folder / "result.json").write_text(json.dumps(doc))
    return folder


def test_diff_regressions_first_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _build(_all(CAT), tmp_path)
    recs = _all(CAT)
    recs["test_cpu_vendor"].outcome, recs["test_cpu_vendor"].message = "failed", "vendor changed"
    recs["test_kvm_secure_tsc"].outcome = "skipped"
    host_b = json.loads(json.dumps(HOST))
    host_b["identity"]["bios_version"] = "2.0.0"
    b = _build(recs, tmp_path, host=host_b)
    d = diff_mod.diff(a, b)
    assert d["transitions"][0]["kind"] == "regression" and d["transitions"][0]["id"] == "SEV-HOST-001"
    assert {"field": "dmi.bios_version", "a": "1.9.2", "b": "2.0.0"} in d["identity"]
    ra, rb = _save(a, tmp_path / "a"), _save(b, tmp_path / "b")
    assert main(["report", "diff", str(ra), str(rb)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION SEV-HOST-001: PASS -> FAIL" in out and "IDENTITY   dmi.bios_version: 1.9.2 -> 2.0.0" in out
    assert main(["report", "diff", str(rb), str(ra)]) == 0
    assert "FIXED" in capsys.readouterr().out
    assert main(["report", "diff", "--json", str(ra), str(ra)]) == 0
    assert json.loads(capsys.readouterr().out)["transitions"] == []


def test_report_cli_unusable_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "result.json").write_text('{"schema_version": 1}')
    assert main(["report", "diff", str(tmp_path / "bad"), str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match the result schema" in err
    assert main(["report", "show", str(tmp_path / "nope")]) == 2
    assert "no such result file" in capsys.readouterr().err


def test_report_show_and_render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _save(_build(_all(CAT), tmp_path), tmp_path / "run")
    assert main(["report", "render", str(run)]) == 0
    assert (run / "report.html").is_file()
    capsys.readouterr()
    assert main(["report", "show", str(run / "result.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sevkit CONFORMANT to level 6 (Attestation) (exit 0)") and "report.html" in out


@pytest.mark.parametrize(("reason", "kind"), [
    ("LaunchError: QEMU did not start", "LaunchError"),
    ("setup: sevkit.errors.HostProbeError: /dev/msr not readable", "HostProbeError (setup)"),
    ("teardown: something odd", "other"),
])
def test_errors_are_grouped_by_kind(reason: str, kind: str) -> None:
    from sevkit.report.render import error_kind
    assert error_kind(reason) == kind


def test_capability_rule_decided_by_the_test_gives_not_applicable_with_its_evidence(tmp_path: Path) -> None:
    recs = _all(CAT)
    key = "test_snp_policy_bit_accepted[CXL_ALLOW]"
    recs[key].outcome, recs[key].message = "skipped", "NOT-APPLICABLE: KVM does not advertise CXL_ALLOW"
    recs[key].applicability = {"rule": "policy_bit", "applicable": False, "reason": "KVM does not advertise it",
                               "evidence": [{"id": "kvm.snp_policy_bits", "value": 0x30000,
                                             "source": "KVM_X86_SNP_POLICY_BITS"}]}
    doc = _build(recs, tmp_path)
    q = next(q for q in doc["requirements"] if key in q["tests"][0]["key"])
    assert q["outcome"] == "NOT-APPLICABLE" and "kvm.snp_policy_bits=196608" in q["capability"]["evidence"]
    assert doc["verdict"] == "CONFORMANT"      # N/A never blocks a level
