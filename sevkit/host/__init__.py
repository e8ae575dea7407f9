"""The host probe: collect raw inputs (local, SSH, bundle), grade them into a HostReport.

    raw = collect(parse_target("local"))      # or read_bundle(path), collect_ssh(...)
    report = grade(raw)                        # pure: RawInputs -> HostReport
    report.features["SEV-SNP"], report.why_not("SEV-SNP"), report.check("cpuid.sev")
"""

from __future__ import annotations

from .grader import grade
from .ovmf import OvmfImage
from .rawinputs import RawInputs
from .report import FEATURES, PROFILES, Check, Evidence, HostReport, ProfileVerdict, QemuInfo, expected_features
from .transport import SshStats, Target, collect, collect_local, collect_ssh, parse_target, read_bundle, write_bundle


def probe(target: str = "local", identity: str | None = None, bundle: str | None = None) -> HostReport:
    """Grade a host: from a bundle if given, else the target (local or ssh://user@host[:port])."""
    raw = read_bundle(bundle) if bundle else collect(parse_target(target), identity)
    return grade(raw)


__all__ = [
    "FEATURES", "PROFILES", "Check", "Evidence", "HostReport", "OvmfImage", "ProfileVerdict", "QemuInfo", "RawInputs",
    "SshStats", "Target", "collect", "collect_local", "collect_ssh", "expected_features", "grade",
    "parse_target", "probe", "read_bundle", "write_bundle",
]
