"""Fault-matrix cells for attestation fetch: a real HTTP key server on 127.0.0.1 that fails (HTTP 500),
stalls (accepts, never answers), or serves the VCEK into a cache folder on a full tmpfs.

The report and VCEK are real captures (tests/data/realdata/attestation/virtee-sev, Milan). No internet.
"""

from __future__ import annotations

import dataclasses
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sevkit.attestation import load_report
from sevkit.attestation.kds import KdsClient, obtain_vcek
from sevkit.errors import KdsError, SevkitError

from .matrix import Row, record
from .probes import session_members

ATT = Path(__file__).resolve().parents[1] / "data" / "realdata" / "attestation" / "virtee-sev"
LIB = "n/a (library cell)"


class _Handler(http.server.BaseHTTPRequestHandler):
    mode = "fail"
    body = b""

    def do_GET(self) -> None:
        if self.mode == "stall":
            self.server.stalled.wait(30)      # type: ignore[attr-defined]  # released at teardown
            return
        if self.mode == "fail":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"KDS down")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def kds_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, http.server.ThreadingHTTPServer]]:
    handler = type("H", (_Handler,), {"mode": request.param, "body": (ATT / "vcek_milan.der").read_bytes()})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.stalled = threading.Event()      # type: ignore[attr-defined]
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", srv
    finally:
        srv.stalled.set()                # type: ignore[attr-defined]
        srv.shutdown()
        srv.server_close()
        t.join(10)


def _client(url: str, total: float) -> KdsClient:
    """A client for the local server; ``allow_http`` where the client demands the opt-in for loopback http."""
    extra = {"allow_http": True} if "allow_http" in {f.name for f in dataclasses.fields(KdsClient)} else {}
    return KdsClient(base_url=url, total_timeout=total, attempt_timeout=2.0, backoff=0.2, **extra)  # type: ignore[arg-type]


def _helpers_left(srv: http.server.ThreadingHTTPServer) -> int:
    """Client-side connections still open to the server (a leaked socket is a leaked helper)."""
    port = srv.server_address[1]
    n = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        remote_port, state = int(parts[2].split(":")[1], 16), parts[3]
        if remote_port == port and state == "01":       # ESTABLISHED from our side
            n += 1
    return n


@pytest.mark.parametrize(("kds_server", "fault"), [("fail", "key server failing"),
                                                   ("stall", "key server stalling")],
                         indirect=["kds_server"])
def test_attestation_fetch_key_server(kds_server: tuple[str, http.server.ThreadingHTTPServer], fault: str,
                                      tmp_path: Path) -> None:
    """A KDS that answers 500 every time, or accepts and never answers: KdsError within the total deadline
    (4 s here), naming the URL and the last failure, with the request log as evidence; nothing cached."""
    url, srv = kds_server
    report = load_report((ATT / "report_milan.bin").read_bytes())
    start = time.monotonic()
    with pytest.raises(KdsError) as info:
        obtain_vcek(report, product="Milan", cache_dir=tmp_path / "cache", kds=_client(url, 4.0))
    took = time.monotonic() - start
    exc = info.value
    log = exc.evidence.get("log") or []
    time.sleep(0.2)
    left = _helpers_left(srv)
    cached = list((tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else []
    record(Row("attestation fetch", fault, f"KdsError: {str(exc).splitlines()[0]}",
               f"request log: {len(log)} line(s)", LIB, left, len(cached), round(took, 1),
               test="faults/test_kds_faults.py::test_attestation_fetch_key_server"))
    assert url in str(exc) and log, (str(exc), exc.evidence)
    assert took < 4.0 + 3.0, f"{took:.1f}s against a 4 s deadline"
    assert not cached and not left


@pytest.mark.parametrize("kds_server", ["serve"], indirect=True)
def test_attestation_fetch_cache_disk_full(kds_server: tuple[str, http.server.ThreadingHTTPServer],
                                           small_tmpfs: Path) -> None:
    """The VCEK arrives but the cache folder is on a full tmpfs: a typed error naming the space (or the
    VCEK returned uncached), never a half-written cache file."""
    url, srv = kds_server
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as fh, pytest.raises(OSError):
        while True:
            fh.write(b"\0" * (1 << 20))
            fh.flush()
    report = load_report((ATT / "report_milan.bin").read_bytes())
    cache = small_tmpfs / "cache"
    start = time.monotonic()
    outcome, error = "", None
    try:
        got = obtain_vcek(report, product="Milan", cache_dir=cache, kds=_client(url, 4.0))
        outcome = f"VCEK returned ({len(got.der)} bytes, source {got.source.split(':')[0]}), not cached"
    except SevkitError as exc:
        outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    except OSError as exc:
        error = exc
        outcome = f"UNTYPED {type(exc).__name__}: {exc}"
    partial = [p.name for p in cache.glob("*")] if cache.exists() else []
    record(Row("attestation fetch", "disk full", outcome, "n/a", LIB, _helpers_left(srv), 0,
               round(time.monotonic() - start, 1),
               test="faults/test_kds_faults.py::test_attestation_fetch_cache_disk_full",
               note=f"cache folder holds {partial} (a memory dump is never involved here)"))
    assert error is None, outcome
    assert not partial, partial


# A process that fetches the VCEK as the suite does (SIGTERM handled as Ctrl-C), so the signal lands in the
# KDS client's wait, not in the self-test.
_FETCHER = """
import dataclasses, sys
from pathlib import Path
from sevkit.attestation import load_report
from sevkit.attestation.kds import KdsClient, obtain_vcek
from sevkit.signals import install_sigterm_as_interrupt
install_sigterm_as_interrupt()
url, report, cache = sys.argv[1:]
extra = {"allow_http": True} if "allow_http" in {f.name for f in dataclasses.fields(KdsClient)} else {}
client = KdsClient(base_url=url, total_timeout=60.0, attempt_timeout=30.0, **extra)
print("fetching", flush=True)
obtain_vcek(load_report(Path(report).read_bytes()), product="Milan", cache_dir=Path(cache), kds=client)
print("finished before the signal", flush=True)
"""


@pytest.mark.parametrize("kds_server", ["stall"], indirect=True)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_attestation_fetch_interrupted(kds_server: tuple[str, http.server.ThreadingHTTPServer],
                                       sig: signal.Signals, tmp_path: Path) -> None:
    """SIGTERM or Ctrl-C while the fetch waits on a stalled key server: KeyboardInterrupt naming the signal
    within a second, nothing cached, no process and no connection left."""
    url, srv = kds_server
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _FETCHER, url, str(ATT / "report_milan.bin"), str(cache)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"fetching"
        time.sleep(1.0)
        start = time.monotonic()
        proc.send_signal(sig)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    took = time.monotonic() - start
    last = [ln for ln in out.splitlines() if ln.strip()][-1:] or [""]
    time.sleep(0.2)
    left = len(session_members(proc.pid)) + _helpers_left(srv)
    cached = list(cache.glob("*")) if cache.exists() else []
    record(Row("attestation fetch", sig.name, f"exit {proc.returncode}: {last[0]}", "n/a (nothing fetched yet)",
               LIB, left, 0, round(took, 1), test=f"faults/test_kds_faults.py::test_attestation_fetch_interrupted"
               f"[{sig.name}]", note=f"cache folder holds {[p.name for p in cached]}"))
    assert "KeyboardInterrupt" in last[0], out[-1500:]
    assert sig is signal.SIGINT or f"signal {int(sig)}" in last[0], out[-1500:]
    assert took < 5 and not cached and not left, (took, cached, left)
