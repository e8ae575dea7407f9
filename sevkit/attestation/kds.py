"""Getting the VCEK for a report: from the extended report's certificate table, a local cache
folder, or AMD's Key Distribution Service (sev-facts §7.2), in that order.

The KDS client retries 429 and 5xx with exponential backoff, honours Retry-After, and stops at
a total deadline. Every fetched certificate is written to the cache so a lab can run offline
afterwards. The base URL is configurable so self-tests point it at 127.0.0.1.
"""

from __future__ import annotations

import email.utils
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..deadline import Deadline
from ..errors import KdsError
from .certs import load_certificates
from .certtable import parse_cert_table
from .report import AttestationReport, Product, product_from_name

KDS_URL = "https://kdsintf.amd.com"
USER_AGENT = "sevkit-attest"


def vcek_path(product: Product, report: AttestationReport) -> str:
    """``/vcek/v1/{product}/{hwid}?...SPL=`` from CHIP_ID and REPORTED_TCB (Turin: 8-byte hwid, fmcSPL)."""
    tcb = report.reported_tcb
    hwid = (report.chip_id[:8] if product == "Turin" else report.chip_id).hex()
    query = f"blSPL={tcb.bootloader:02d}&teeSPL={tcb.tee:02d}&snpSPL={tcb.snp:02d}&ucodeSPL={tcb.microcode:02d}"
    if product == "Turin":
        query = f"fmcSPL={(tcb.fmc or 0):02d}&" + query
    return f"/vcek/v1/{product}/{hwid}?{query}"


def chain_path(product: Product, key: str = "VCEK") -> str:
    return f"/{key.lower()}/v1/{product}/cert_chain"


def cache_name(product: Product, report: AttestationReport) -> str:
    """File name in the cache folder: one per chip and reported TCB."""
    hwid = (report.chip_id[:8] if product == "Turin" else report.chip_id).hex()
    return f"vcek-{product}-{hwid[:32]}-{report.reported_tcb.raw.hex()}.der"


@dataclass
class KdsClient:
    """HTTP(S) client for the KDS. ``sleep`` is injectable so tests do not wait for real."""

    base_url: str = KDS_URL
    total_timeout: float = 60.0
    attempt_timeout: float = 15.0
    max_attempts: int = 6
    backoff: float = 1.0                  # first wait; doubles per retry
    max_wait: float = 30.0                # cap on one wait (also on Retry-After)
    sleep: Callable[[float], None] = time.sleep
    log: list[str] = field(default_factory=list)

    def get(self, path: str) -> bytes:
        url = self.base_url.rstrip("/") + path
        deadline = Deadline(self.total_timeout)
        wait = self.backoff
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
            try:
                with urllib.request.urlopen(req, timeout=max(0.1, deadline.cap(self.attempt_timeout))) as resp:
                    body: bytes = resp.read()
                    self.log.append(f"GET {url} -> {resp.status} ({len(body)} bytes)")
                    return body
            except urllib.error.HTTPError as exc:
                self.log.append(f"GET {url} -> {exc.code}")
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    raise KdsError(f"KDS {url}: HTTP {exc.code} {exc.reason}",
                                   evidence={"url": url, "status": exc.code, "log": self.log}) from None
                wait_now = _retry_after(exc.headers.get("Retry-After")) if exc.headers else None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                self.log.append(f"GET {url} -> {reason}")
                last = str(reason)
                wait_now = None
            pause = min(self.max_wait, wait if wait_now is None else wait_now)
            if attempt == self.max_attempts or pause >= deadline.remaining:
                break
            self.sleep(pause)
            wait *= 2
        raise KdsError(f"KDS {url}: gave up after {attempt} attempt(s) in {deadline.elapsed:.1f}s, last: {last}",
                       evidence={"url": url, "log": self.log})


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = email.utils.parsedate_to_datetime(value) if value else None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class VcekSource:
    der: bytes
    source: str                 # cert-table, cache:<path>, kds:<url>


def obtain_vcek(report: AttestationReport, *, product: str | None = None, cert_table: bytes | None = None,
                cache_dir: Path | None = None, kds: KdsClient | None = None) -> VcekSource:
    """The signing certificate for ``report``, from the first source that has it.

    The product comes from the report (v3+ CPUID) or ``product``; a v2 Milan/Genoa report needs
    ``product``. Raises KdsError naming every source tried.
    """
    tried: list[str] = []
    if cert_table:
        table = parse_cert_table(cert_table)
        want = "VLEK" if report.signing_key == "VLEK" else "VCEK"
        if want in table:
            load_certificates(table[want], f"certificate table {want}")   # reject junk early
            return VcekSource(table[want], "cert-table")
        tried.append(f"certificate table (entries: {', '.join(table) or 'none'})")
    if report.signing_key == "VLEK":
        raise KdsError("report is VLEK-signed; AMD KDS does not serve VLEKs, supply the VLEK certificate",
                       evidence={"tried": tried})
    prod = report.product or (product_from_name(product) if product else None)
    if prod is None:
        raise KdsError("cannot tell Milan from Genoa for a v2 report: give the product (Milan, Genoa, Turin)",
                       evidence={"tried": tried})
    if not any(report.chip_id):
        raise KdsError("CHIP_ID is zero (MASK_CHIP_ID): the VCEK cannot be looked up by chip",
                       evidence={"tried": tried})
    cached = cache_dir / cache_name(prod, report) if cache_dir is not None else None
    if cached is not None:
        if cached.is_file():
            return VcekSource(cached.read_bytes(), f"cache:{cached}")
        tried.append(f"cache {cached}")
    if kds is None:
        raise KdsError("VCEK not found in: " + "; ".join(tried) + " (KDS disabled)", evidence={"tried": tried})
    path = vcek_path(prod, report)
    der = kds.get(path)
    load_certificates(der, f"KDS {path}")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        tmp.write_bytes(der)
        tmp.replace(cached)            # atomic: parallel workers never read half a file
    return VcekSource(der, f"kds:{kds.base_url.rstrip('/')}{path}")
