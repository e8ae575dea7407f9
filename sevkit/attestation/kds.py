"""Getting the VCEK for a report: from the extended report's certificate table, a local cache
folder, or AMD's Key Distribution Service (sev-facts §7.2), in that order.

The KDS client retries 429 and 5xx with exponential backoff, honours Retry-After, and stops at
one total deadline that also bounds connecting, TLS and reading the body (a watchdog shuts the
socket down when it expires, so a server trickling bytes cannot stretch it). It speaks https
only; plain http is allowed solely to a loopback address and only with ``allow_http`` (a local
test server). Redirects are refused (the KDS does not redirect), a response over
``MAX_RESPONSE`` bytes is refused, and every transport fault is a KdsError. Every fetched
certificate is written to the cache so a lab can run offline afterwards; a cached file is used
only if it is a certificate for that chip and reported TCB.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ipaddress
import os
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..deadline import Deadline
from ..errors import InputError, KdsError
from ..userfiles import CERTIFICATE, read_file, shown
from .certs import amd_info, load_certificates, split_leaf
from .certtable import parse_cert_table
from .report import AttestationReport, Product, product_from_name

KDS_URL = "https://kdsintf.amd.com"
USER_AGENT = "sevkit-attest"
MAX_RESPONSE = 256 * 1024       # a VCEK is ~1.4 KiB DER, the ASK+ARK chain ~4 KiB PEM
_DELTA_SECONDS = re.compile(r"\d{1,9}")   # RFC 9110 §10.2.3: Retry-After = HTTP-date / delta-seconds


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
    """File name in the cache folder: one per chip (the whole hwid KDS uses) and reported TCB."""
    hwid = (report.chip_id[:8] if product == "Turin" else report.chip_id).hex()
    return f"vcek-{product}-{hwid}-{report.reported_tcb.raw.hex()}.der"


def vcek_mismatch(der: bytes, product: Product, report: AttestationReport, source: str) -> str | None:
    """Why ``der`` is not the VCEK of this chip at this reported TCB (None when it is)."""
    try:
        leaf = split_leaf(load_certificates(der, source), source)[0]
        info = amd_info(leaf)
    except (InputError, ValueError) as exc:
        return str(exc)
    want_hwid = report.chip_id[:8] if product == "Turin" else report.chip_id
    if info.hwid != want_hwid:
        return "its hwID is not this report's CHIP_ID"
    want = report.reported_tcb.components()
    if any(info.spl.get(k) != v for k, v in want.items()):
        return f"its SPLs {info.spl} are not the report's REPORTED_TCB {want}"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class KdsClient:
    """HTTPS client for the KDS. ``sleep`` is injectable so tests do not wait for real."""

    base_url: str = KDS_URL
    total_timeout: float = 60.0
    attempt_timeout: float = 15.0
    max_attempts: int = 6
    backoff: float = 1.0                  # first wait; doubles per retry
    max_wait: float = 30.0                # cap on one wait (also on Retry-After)
    allow_http: bool = False              # plain http to a loopback test server only
    max_bytes: int = MAX_RESPONSE
    sleep: Callable[[float], None] = time.sleep
    log: list[str] = field(default_factory=list)
    _scheme: str = field(init=False, repr=False, default="https")
    _host: str = field(init=False, repr=False, default="")
    _port: int | None = field(init=False, repr=False, default=None)
    _prefix: str = field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        bad = f"KDS URL {shown(self.base_url)}"
        try:
            url = urlsplit(self.base_url)
            port = url.port
        except ValueError as exc:
            raise KdsError(f"{bad}: not a valid URL ({exc})") from None
        if url.scheme not in ("https", "http") or not url.hostname:
            raise KdsError(f"{bad}: expected https://host[:port][/path]")
        if url.scheme == "http" and not (self.allow_http and _loopback(url.hostname)):
            raise KdsError(f"{bad}: plain http is refused (the VCEK must come over https); "
                           "http is allowed only to a loopback test server with the explicit opt-in")
        if url.username is not None or url.query or url.fragment or any(c.isspace() for c in self.base_url):
            raise KdsError(f"{bad}: no credentials, query, fragment or blanks allowed in the base URL")
        if not (_positive_finite(self.total_timeout) and _positive_finite(self.attempt_timeout)):
            raise KdsError(f"KDS timeouts must be positive seconds, got {self.total_timeout}/{self.attempt_timeout}")
        self._scheme, self._host, self._port = url.scheme, url.hostname, port
        self._prefix = url.path.rstrip("/")

    def get(self, path: str) -> bytes:
        url = self.base_url.rstrip("/") + path
        deadline = Deadline(self.total_timeout)
        wait = self.backoff
        last = ""
        attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            wait_now: float | None = None
            try:
                status, reason, headers, body = self._once(self._prefix + path, deadline)
            except KdsError:
                raise
            except (OSError, http.client.HTTPException, ssl.SSLError, ValueError) as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                if deadline.expired:
                    detail = f"deadline of {self.total_timeout:g}s expired ({detail})"
                self.log.append(f"GET {url} -> {detail}")
                last = detail
            else:
                if status == 200:
                    self.log.append(f"GET {url} -> {status} ({len(body)} bytes)")
                    return body
                self.log.append(f"GET {url} -> {status}")
                last = f"HTTP {status}"
                if 300 <= status < 400:
                    raise KdsError(f"KDS {url}: HTTP {status} redirect to {shown(headers.get('Location', '?'))} "
                                   "refused (the KDS does not redirect)",
                                   evidence={"url": url, "status": status, "log": self.log})
                if status != 429 and status < 500:
                    raise KdsError(f"KDS {url}: HTTP {status} {reason}",
                                   evidence={"url": url, "status": status, "log": self.log})
                wait_now = retry_after_seconds(headers.get("Retry-After"))
            pause = min(self.max_wait, wait if wait_now is None else wait_now)
            if attempt == self.max_attempts or pause >= deadline.remaining:
                break
            self.sleep(pause)
            wait *= 2
        raise KdsError(f"KDS {url}: gave up after {attempt} attempt(s) in {deadline.elapsed:.1f}s, last: {last}",
                       evidence={"url": url, "log": self.log})

    def _once(self, target: str, deadline: Deadline) -> tuple[int, str, dict[str, str], bytes]:
        """One GET, all of it (connect, TLS, headers, body) inside ``deadline``."""
        remaining = deadline.remaining
        if remaining <= 0:
            raise TimeoutError("no time left")
        timeout = max(0.05, min(self.attempt_timeout, remaining))
        conn: http.client.HTTPConnection
        if self._scheme == "https":
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        expired = threading.Event()
        held: list[socket.socket] = []     # the connection drops its own reference when the answer says close

        def watchdog() -> None:       # wakes a recv blocked on a trickling server
            expired.set()
            for sock in held:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

        timer = threading.Timer(timeout, watchdog)
        timer.daemon = True
        timer.start()
        try:
            conn.connect()
            if conn.sock is not None:
                held.append(conn.sock)
            if expired.is_set():
                raise TimeoutError(f"attempt exceeded {timeout:.1f}s")
            conn.request("GET", target or "/", headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
            resp = conn.getresponse()
            headers = {k: v for k, v in resp.getheaders()}
            length = resp.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
                raise KdsError(f"KDS {self.base_url.rstrip('/')}{target}: response of {int(length)} bytes is over "
                               f"the {self.max_bytes}-byte cap", evidence={"log": self.log})
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = resp.read(16384)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise KdsError(f"KDS {self.base_url.rstrip('/')}{target}: response over the "
                                   f"{self.max_bytes}-byte cap", evidence={"log": self.log})
                chunks.append(chunk)
            if expired.is_set():
                raise TimeoutError(f"attempt exceeded {timeout:.1f}s")
            if resp.length:           # http.client returns short data at EOF instead of raising
                raise http.client.IncompleteRead(b"".join(chunks), resp.length)
            return resp.status, resp.reason, headers, b"".join(chunks)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set():
                raise TimeoutError(f"attempt exceeded {timeout:.1f}s") from exc
            raise
        finally:
            timer.cancel()
            conn.close()


def _positive_finite(value: float) -> bool:
    return isinstance(value, (int, float)) and 0 < value < float("inf")


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
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
    if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
        raise KdsError(f"VCEK cache {shown(cache_dir)}: is not a folder", evidence={"cache": str(cache_dir)})
    if cached is not None:
        if os.path.lexists(cached):
            try:
                der = read_file(cached, CERTIFICATE, "cached VCEK")
            except InputError as exc:
                why: str | None = exc.message
            else:
                why = vcek_mismatch(der, prod, report, f"cached VCEK {shown(cached)}")
                if why is None:
                    return VcekSource(der, f"cache:{cached}")
            tried.append(f"cache {shown(cached)} (unusable: {why})")
        else:
            tried.append(f"cache {shown(cached)}")
    if kds is None:
        raise KdsError("VCEK not found in: " + "; ".join(tried) + " (KDS disabled)", evidence={"tried": tried})
    path = vcek_path(prod, report)
    der = kds.get(path)
    why = vcek_mismatch(der, prod, report, f"KDS {path}")
    if why is not None:
        raise KdsError(f"KDS {path}: the answer is not this chip's VCEK: {why}", evidence={"tried": tried})
    if cached is not None:
        _store(cached, der)
    return VcekSource(der, f"kds:{kds.base_url.rstrip('/')}{path}")


def _store(cached: Path, der: bytes) -> None:
    """Write a cache entry atomically under a unique temporary name (parallel workers never share
    one, never read half a file); a failure names the cache file."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                os.fchmod(fh.fileno(), 0o644)     # a VCEK is public; the cache may be shared by a lab
                fh.write(der)
            os.replace(tmp, cached)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise KdsError(f"VCEK cache {shown(cached)}: cannot write: {exc.strerror or exc}",
                       evidence={"cache": str(cached)}) from None
