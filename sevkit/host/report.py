"""The graded host: checks with evidence, usable features, identity, QEMU facts.

A ``Check`` status is one of pass, fail, warn, skip, or error (the input could not be read:
an access error, never a "false"). ``feature`` names the area a check belongs to (None for
generic host checks). ``gates`` lists the features a check must pass (or warn) for: a gating
check that does not pass makes those features unusable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .ovmf import OvmfImage

FEATURES = ("SME", "SEV", "SEV-ES", "SEV-SNP")
STATUSES = ("pass", "fail", "warn", "skip", "error")
PROFILES = ("none", "sev", "sev-es", "sev-snp")


def expected_features(profile: str) -> tuple[str, ...]:
    """Features a profile demands: sev-snp implies sev-es implies sev."""
    order = ("SEV", "SEV-ES", "SEV-SNP")
    if profile == "none":
        return ()
    return order[: order.index(profile.upper()) + 1]


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
        for f in _chain(feature):
            for c in self.checks:
                if f in c.gates and not c.ok:
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
        counted = [c for c in self.checks if c.feature is None or c.feature in wanted
                   or (c.feature in FEATURES and _needed_by(c.feature, wanted))]
        # Any unreadable input is an access error (exit 2), whatever the profile: never a silent pass.
        errors = tuple(c for c in self.checks if c.status == "error")
        failures = tuple(c for c in counted if c.status == "fail")
        missing = tuple(f for f in wanted if not self.features.get(f))
        return ProfileVerdict(profile, not (errors or failures or missing), errors, failures, missing)

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


def _chain(feature: str) -> tuple[str, ...]:
    """A feature and the ones it builds on (SEV-SNP needs SEV-ES needs SEV)."""
    return {"SME": ("SME",), "SEV": ("SEV",), "SEV-ES": ("SEV", "SEV-ES"),
            "SEV-SNP": ("SEV", "SEV-ES", "SEV-SNP")}[feature]


def _needed_by(feature: str, wanted: tuple[str, ...]) -> bool:
    return any(feature in _chain(w) for w in wanted)
