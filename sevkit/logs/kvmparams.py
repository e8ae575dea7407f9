"""`kvm_amd` module parameters as captured: `cat /sys/module/kvm_amd/parameters/{sev,sev_es,sev_snp}`.

After load the value shows the actual state (sev-facts §4.1), so Y means enabled in KVM and
N means disabled or unsupported. Bare values without names (the output of the brace form
above, one value per line) are read in that documented order: sev, sev_es, sev_snp.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..vocab import FEATURE_CHAIN, FEATURES, KVM_PARAM_FEATURE
from . import patterns as P
from .dmesg import Features

ORDER: tuple[str, ...] = FEATURE_CHAIN   # the documented order of the bare values: sev, sev_es, sev_snp
_KEY = KVM_PARAM_FEATURE
# atomic/possessive so a line repeating the path cannot make it quadratic (issue 10 item 7)
PROMPT = re.compile(r"^\s*+(?:\S*[#$❯>]\s*)?cat\s++(?>\S*kvm_amd/parameters/)\S*+\s*+$")


@dataclass(frozen=True)
class KvmParams:
    features: Features
    params: dict[str, bool]
    notes: list[str] = field(default_factory=list)
    evidence_lines: list[str] = field(default_factory=list)


def looks_like_params(text: str) -> bool:
    """Only parameter values (and the commands that printed them), nothing else."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or len(lines) > 12:
        return False
    values = 0
    for ln in lines:
        if P.PARAM_VALUE.match(ln) or P.KVM_PARAM_GREP.search(ln):
            values += 1
        elif not PROMPT.match(ln):
            return False
    return values > 0


def parse_kvm_params(text: str) -> KvmParams:
    params: dict[str, bool] = {}
    evidence: list[str] = []
    notes: list[str] = []
    pending: str | None = None
    bare: list[bool] = []
    for ln in (x.rstrip() for x in text.splitlines()):
        if not ln.strip():
            continue
        if m := P.KVM_PARAM_GREP.search(ln):
            params[_KEY[m["name"].replace("-", "_")]] = m["val"] in "Y1"
        elif m := P.KVM_PARAM_CAT.search(ln):
            pending = _KEY[m["name"].replace("-", "_")]
            continue
        elif m := P.PARAM_VALUE.match(ln):
            if pending:
                params[pending] = m["val"] in "Y1"
            else:
                bare.append(m["val"] in "Y1")
        else:
            pending = None
            continue
        pending = None
        evidence.append(ln)
    if bare:
        if len(bare) > len(ORDER):
            notes.append(f"{len(bare)} bare values: only the first {len(ORDER)} are read")
        notes.append("unnamed values read in the order sev, sev_es, sev_snp")
        for key, val in zip(ORDER, bare, strict=False):
            params.setdefault(key, val)
    features: Features = dict.fromkeys(FEATURES)
    for key, val in params.items():
        features[key] = val
    return KvmParams(features=features, params=params, notes=notes, evidence_lines=evidence)
