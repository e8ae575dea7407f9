"""The graded host: checks with evidence, usable features, identity, QEMU facts.

A ``Check`` status is one of pass, fail, warn, skip, or error (the input could not be read:
an access error, never a "false"). ``feature`` names the area a check belongs to (None for
generic host checks). ``gates`` lists the features a check must pass (or warn) for: a gating
check that does not pass makes those features unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..vocab import FEATURES, PROFILES, Feature, Profile, chain
from .ovmf import OvmfImage

STATUSES = ("pass", "fail", "warn", "skip", "error")
__all__ = ["FEATURES", "PROFILES", "STATUSES", "Check", "CheckJudgement", "Evidence", "HostReport",
           "ProfileVerdict", "QemuInfo", "counts_for", "expected_features"]


def expected_features(profile: str) -> tuple[Feature, ...]:
    """Features a profile demands: sev-snp implies sev-es implies sev."""
    return Profile(profile).features


def counts_for(feature: str | None, profile: str) -> bool:
    """Does a check of ``feature`` count under ``profile``? Generic checks (None) always count; a
    feature's checks count when the profile needs that feature (SEV-SNP needs SEV-ES and SEV)."""
    if feature is None:
        return True
    return feature in FEATURES and any(feature in chain(w) for w in expected_features(profile))


@dataclass(frozen=True)
class Evidence:
    """One observed value and where it was read."""

    source: str
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "value": self.value}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: str
    message: str
    evidence: tuple[Evidence, ...] = ()
    hint: str | None = None
    feature: str | None = None
    gates: tuple[str, ...] = ()
    parent: str | None = None
    ref: str = ""
    cause: str | None = None     # for a skip: the id of the root-cause check
    # False: gates only the guests of its own features, not the features built on them (no plain-SEV
    # ASIDs leaves SEV guests unusable while SEV-ES and SEV-SNP guests still run).
    chained: bool = True

    @property
    def essential(self) -> bool:
        return bool(self.gates)

    @property
    def ok(self) -> bool:
        """Pass or warn: children run, the feature is not blocked."""
        return self.status in ("pass", "warn")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "status": self.status, "message": self.message,
            "evidence": [e.to_json() for e in self.evidence], "feature": self.feature,
            "gates": list(self.gates), "parent": self.parent, "ref": self.ref,
        }
        if not self.chained:
            out["chained"] = False
        if self.cause:
            out["cause"] = self.cause
        if self.status != "pass":
            out["hint"] = self.hint
        return out


@dataclass(frozen=True)
class QemuInfo:
    path: str
    version: tuple[int, int, int]
    objects: frozenset[str]
    version_text: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "version": ".".join(map(str, self.version)),
                "objects": sorted(self.objects), "version_text": self.version_text}


@dataclass(frozen=True)
class ProfileVerdict:
    profile: str
    holds: bool
    errors: tuple[Check, ...]     # checks that could not read their input (access errors)
    failures: tuple[Check, ...]   # failing checks that count for the profile
    missing: tuple[str, ...]      # expected features that are not usable


@dataclass(frozen=True)
class CheckJudgement:
    """One check as a test's outcome under a profile: ``pass``, ``warn`` (passes with a caveat),
    ``error`` (could not measure), ``skip`` (a check it needs did not pass), ``not-expected``
    (failed, but the profile does not demand its feature) or ``fail``."""

    outcome: str
    check: Check
    profile: str


@dataclass(frozen=True)
class HostReport:
    checks: tuple[Check, ...]
    features: dict[str, bool | None]   # None: could not be determined (an access error)
    identity: dict[str, str]
    qemu: QemuInfo | None
    cbitpos: int | None
    reduced_phys_bits: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    # Installed OVMF images and what their content supports (empty if none, or not parseable here).
    ovmf_images: tuple[OvmfImage, ...] = ()

    def ovmf_for(self, *, snp: bool = False, sev_es: bool = False, kernel_hashes: bool = False,
                 combined: bool | None = None) -> list[OvmfImage]:
        """Firmware images with every asked-for capability, combined (single-file) images first."""
        out = [i for i in self.ovmf_images if i.firmware and (i.snp or not snp) and (i.sev_es or not sev_es)
               and (i.kernel_hashes or not kernel_hashes) and (combined is None or i.combined == combined)]
        return sorted(out, key=lambda i: not i.combined)

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(f"no host check {check_id!r}; known: {', '.join(c.id for c in self.checks)}")

    def ids(self) -> list[str]:
        return [c.id for c in self.checks]

    def _root_cause(self, c: Check) -> Check:
        return self.check(c.cause) if c.status == "skip" and c.cause else c

    def blockers(self, feature: str) -> list[Check]:
        """Root-cause checks that keep ``feature`` from being usable (empty when usable)."""
        if feature not in FEATURES:
            raise KeyError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")
        out: list[Check] = []
        for f in chain(Feature(feature)):
            for c in self.checks:
                if f in c.gates and (c.chained or f == feature) and not c.ok:
                    root = self._root_cause(c)
                    if root not in out:
                        out.append(root)
        return out

    def why_not(self, feature: str) -> str:
        """The evidence-backed reason ``feature`` is not usable ('' when it is)."""
        if self.features.get(feature):
            return ""
        blockers = self.blockers(feature)
        if not blockers:
            return f"{feature} not usable (no check explains why)"
        return "; ".join(f"{b.message} [{b.id}]" for b in blockers[:3])

    def root_cause(self, check_id: str) -> Check:
        """The check whose result made ``check_id`` skip (itself when not skipped by a parent)."""
        return self._root_cause(self.check(check_id))

    def hint_for(self, feature: str) -> str:
        hints = [b.hint for b in self.blockers(feature) if b.hint]
        return " | ".join(dict.fromkeys(hints))

    def verdict(self, profile: str) -> ProfileVerdict:
        """Does the host deliver ``profile``? Generic checks always count."""
        if profile not in PROFILES:
            raise KeyError(profile)
        wanted = expected_features(profile)
        counted = [c for c in self.checks if counts_for(c.feature, profile)]
        # Any unreadable input is an access error (exit 2), whatever the profile: never a silent pass.
        errors = tuple(c for c in self.checks if c.status == "error")
        failures = tuple(c for c in counted if c.status == "fail")
        missing = tuple(f for f in wanted if not self.features.get(f))
        return ProfileVerdict(profile, not (errors or failures or missing), errors, failures, missing)

    def judge(self, check_id: str, profile: str) -> CheckJudgement:
        """The verdict on one check under ``profile``: the one place a host check becomes a test's
        outcome (suites/host turn it into pass, skip, fail or error, nothing else)."""
        c = self.check(check_id)
        if c.status in ("pass", "warn", "error", "skip"):
            outcome = c.status
        else:   # fail
            outcome = "fail" if counts_for(c.feature, profile) else "not-expected"
        return CheckJudgement(outcome, c, profile)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": dict(self.features),
            "why_not": {f: self.why_not(f) for f in FEATURES if not self.features.get(f)},
            "identity": dict(self.identity),
            "qemu": self.qemu.to_json() if self.qemu else None,
            "cbitpos": self.cbitpos,
            "reduced_phys_bits": self.reduced_phys_bits,
            "checks": [c.to_json() for c in self.checks],
            "ovmf_images": [i.to_json() for i in self.ovmf_images],
            "meta": dict(self.meta),
        }
