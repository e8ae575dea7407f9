"""One call from input bytes to a verdict: what ``sevkit attest verify`` and the suite use."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .appraise import Expectations, appraise
from .certs import chain_from_certs, common_name, load_certificates, load_trust_roots, split_leaf
from .checks import Check
from .inputs import load_report
from .verify import Verification, verify_report


@dataclass(frozen=True)
class Verdict:
    verification: Verification
    appraisal: tuple[Check, ...]

    @property
    def verified(self) -> bool:
        """The signature chain and certificate binding hold."""
        return self.verification.verified

    @property
    def ok(self) -> bool:
        """Verified, and every requested expectation holds."""
        return self.verified and all(c.passed for c in self.appraisal)

    @property
    def checks(self) -> tuple[Check, ...]:
        return self.verification.checks + self.appraisal

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        r = self.verification.report
        d = r.to_dict()
        chain = self.verification.chain
        anchor = self.verification.trusted_root
        return {
            "verified": self.verified, "ok": self.ok, "product": self.verification.product,
            "signing_key": self.verification.info.role, "version": r.version, "vmpl": r.vmpl,
            "measurement": r.measurement.hex(), "report_data": r.report_data.hex(),
            "reported_tcb": d["reported_tcb"], "policy": d["policy"],
            "chain": None if chain is None else {
                "source": chain.source, "ark": common_name(chain.ark.subject),
                "intermediate": common_name(chain.intermediate.subject)},
            "trust_root": anchor.to_dict() if anchor else None,
            "trusted_by": self.verification.trust_text(),
            "warnings": list(r.warnings),
            "checks": [c.to_dict() for c in self.checks],
            "report": d,
        }

    def text(self) -> str:
        r = self.verification.report
        head = (f"SNP report v{r.version}, {self.verification.product or 'unknown product'}, "
                f"signed by {self.verification.info.role}, VMPL {r.vmpl}, firmware {r.current_fw}, "
                f"reported TCB {r.reported_tcb}")
        lines = [head, f"measurement {r.measurement.hex()}", f"report_data {r.report_data.hex()}"]
        lines += [f"warning: {w}" for w in r.warnings]
        lines += [c.line() for c in self.checks]
        verdict = "VERIFIED" if self.ok else ("VERIFIED, expectations NOT met" if self.verified else "NOT VERIFIED")
        lines.append(f"trust: {self.verification.trust_text()}")
        lines.append(f"verdict: {verdict}")
        return "\n".join(lines)


def attest(report_data: bytes, cert_data: bytes, *, chain_data: bytes | None = None,
           expectations: Expectations | None = None, at: dt.datetime | None = None,
           report_source: str = "report", cert_source: str = "certificate",
           chain_source: str = "chain", trust_data: bytes | None = None,
           trust_source: str = "--trust-root") -> Verdict:
    """Parse, verify and appraise. Unusable input raises (InputError/ReportParseError/AttestationError);
    a report that does not verify or meet expectations is a Verdict with failed checks.
    ``trust_data``: roots the user trusts besides AMD's shipped ARKs (``--trust-root FILE``)."""
    trust = load_trust_roots(trust_data, trust_source) if trust_data is not None else ()
    leaf, _bundled = split_leaf(load_certificates(cert_data, cert_source), cert_source)
    report = load_report(report_data, report_source)
    chain = None
    if chain_data is not None:
        chain = chain_from_certs(load_certificates(chain_data, chain_source), source=chain_source,
                                 issuer_cn=common_name(leaf.issuer))
    verification = verify_report(report, leaf, chain, at=at, trust=trust)
    appraisal = appraise(verification.report, expectations or Expectations())
    return Verdict(verification=verification, appraisal=appraisal)
