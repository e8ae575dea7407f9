"""Grade RawInputs into a HostReport: a pure function, so local, SSH and bundle probes agree.

Runs the registry (sevkit.host.registry) in order. Checks form a tree like ``snphost ok``: a
check runs only when every check it ``needs`` passed (or warned); otherwise it is a ``skip``
whose message carries the root cause's evidence.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..vocab import FEATURES, chain
from .checkdef import CheckDef, Context, Outcome, ev
from .identity import identity, qemu_info
from .rawinputs import RawInputs, Unreadable
from .registry import CHECKS
from .report import Check, HostReport


def run_check(ctx: Context, d: CheckDef) -> Check:
    """One check's result: a skip when a check it needs did not pass, else what its function says."""
    meta = d.meta
    if meta.id in ctx.results:
        raise ValueError(f"duplicate check id {meta.id}")
    blocked = next((ctx.results[n] for n in meta.needs if not ctx.results[n].ok), None)
    if blocked is not None:
        root = ctx.results[blocked.cause] if blocked.status == "skip" and blocked.cause else blocked
        check = Check(meta.id, meta.title, "skip",
                      f"{root.message} [{root.id} {root.status}]",
                      evidence=root.evidence,
                      hint=f"not applicable until {root.id} passes" + (f": {root.hint}" if root.hint else ""),
                      feature=meta.feature, gates=meta.gates, parent=meta.parent, ref=meta.ref, cause=root.id,
                      chained=meta.chained)
    else:
        try:
            o = d.fn(ctx)
        except Unreadable as exc:
            o = Outcome("error", exc.message, [ev(exc.source, exc.detail)], exc.hint)
        check = Check(meta.id, meta.title, o.status, o.message, tuple(o.evidence),
                      o.hint if o.status != "pass" else None, meta.feature, meta.gates, meta.parent, meta.ref,
                      chained=meta.chained)
    ctx.results[meta.id] = check
    return check


def features_of(checks: Sequence[Check]) -> dict[str, bool | None]:
    """A feature is usable when every check gating it passed or warned; None if one errored."""
    out: dict[str, bool | None] = {}
    for f in FEATURES:
        gating = [c for c in checks if f in c.gates or (c.chained and any(g in c.gates for g in chain(f)))]
        if any(c.status in ("fail", "skip") and not _skip_from_error(c, checks) for c in gating):
            out[f] = False
        elif any(c.status == "error" or _skip_from_error(c, checks) for c in gating):
            out[f] = None
        else:
            out[f] = bool(gating)
    return out


def _skip_from_error(c: Check, checks: Sequence[Check]) -> bool:
    """A skip caused by a check that could not read its input: the feature is unknown, not off."""
    if c.status != "skip" or not c.cause:
        return False
    return any(x.id == c.cause and x.status == "error" for x in checks)


def grade(raw: RawInputs) -> HostReport:
    """RawInputs -> HostReport. Pure: the same inputs always give the same report."""
    ctx = Context(raw)
    for d in CHECKS:
        run_check(ctx, d)
    checks = tuple(ctx.results.values())
    me = ctx.facts.get("mem_encrypt")
    return HostReport(
        checks=checks,
        features=features_of(checks),
        identity=identity(raw, ctx.facts),
        qemu=qemu_info(raw),
        cbitpos=me.cbitpos if me is not None and ctx.ok("cpuid.sev") else None,
        reduced_phys_bits=me.phys_addr_reduction if me is not None and ctx.ok("cpuid.sev") else None,
        ovmf_images=tuple(ctx.facts.get("ovmf_images", ())),
        meta={"origin": raw.origin, "collected_at": raw.data.get("collected_at"),
              "hostname": raw.data.get("collector", {}).get("hostname"),
              "euid": raw.euid, "collect_seconds": raw.data.get("collector", {}).get("seconds")},
    )
