"""Open a local HTML file in Debian's headless Chromium over the DevTools protocol (websocket-client).

``inspect_page(html, widths, shots_dir)`` loads the file at each width, takes a viewport screenshot, and
returns what the page shows (requirement rows with outcomes, the verdict, the layout width) and every
network request the page made. Chromium runs with a private profile and is killed on every path.

Also runnable by hand on a real run's page, from tests/: ``python -m helpers.chromium_page
../reports/latest/report.html OUTDIR`` prints the findings as JSON and writes ``report-<width>*.png`` into OUTDIR.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

from sevkit.deadline import Deadline

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)

_SCRAPE = """JSON.stringify({
  rows: [...document.querySelectorAll('tr[id^="req-"]')].map(tr => ({
    id: tr.id.slice(4), outcome: tr.dataset.outcome, shown: tr.querySelector('.o').textContent.trim(),
    visible: tr.getBoundingClientRect().height > 0})),
  verdict: document.querySelector('#verdict h1').textContent.trim(),
  banner: document.querySelector('#verdict').textContent.replace(/\\s+/g, ' ').trim(),
  scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
  scripts: document.scripts.length})"""


@dataclass
class PageView:
    width: int
    rows: list[dict[str, Any]]
    verdict: str
    banner: str
    scroll_width: int
    inner_width: int
    scripts: int
    screenshot: Path


@dataclass
class Findings:
    views: list[PageView] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


class _Cdp:
    def __init__(self, ws_url: str, deadline: Deadline) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=deadline.cap(30), suppress_origin=True)
        self.deadline = deadline
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            self.deadline.check(f"DevTools {method}")
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                result: dict[str, Any] = msg.get("result", {})
                return result
            self.events.append(msg)

    def wait_event(self, method: str) -> dict[str, Any]:
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            self.deadline.check(f"DevTools event {method}")
            msg = json.loads(self.ws.recv())
            if msg.get("method") == method:
                return msg
            self.events.append(msg)

    def close(self) -> None:
        self.ws.close()


def _devtools_url(profile: Path, deadline: Deadline, proc: subprocess.Popen[bytes]) -> str:
    port_file = profile / "DevToolsActivePort"
    while not port_file.is_file() or not port_file.read_text().strip():
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited {proc.returncode} before DevTools was up")
        deadline.check("chromium DevTools port")
        time.sleep(0.1)
    port = int(port_file.read_text().split()[0])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=deadline.cap(10)) as resp:
        targets = json.load(resp)
    return str(next(t for t in targets if t.get("type") == "page")["webSocketDebuggerUrl"])


def inspect_page(html: Path, widths: tuple[int, ...], shots_dir: Path, timeout: float = 90) -> Findings:
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (scripts/host-deps.sh installs Debian's chromium)")
    deadline = Deadline(timeout)
    profile = Path(tempfile.mkdtemp(prefix="sevkit-chromium-"))
    argv = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
            "about:blank"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    findings = Findings()
    try:
        cdp = _Cdp(_devtools_url(profile, deadline, proc), deadline)
        try:
            cdp.call("Network.enable")
            cdp.call("Page.enable")
            for width in widths:
                height = 844 if width < 500 else 900
                cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                         mobile=width < 500)
                cdp.call("Page.navigate", url=html.resolve().as_uri())
                cdp.wait_event("Page.loadEventFired")
                data = json.loads(cdp.call("Runtime.evaluate", expression=_SCRAPE, returnByValue=True)
                                  ["result"]["value"])
                shot = shots_dir / f"report-{width}.png"
                shot.write_bytes(b64decode(cdp.call("Page.captureScreenshot", format="png")["data"]))
                # and the requirement table's top, beyond the first screen
                top = cdp.call("Runtime.evaluate", returnByValue=True, expression=(
                    "document.querySelector('#requirements').getBoundingClientRect().top + window.scrollY"))
                clip = {"x": 0, "y": float(top["result"]["value"]), "width": width, "height": 1200, "scale": 1}
                (shots_dir / f"report-{width}-requirements.png").write_bytes(b64decode(cdp.call(
                    "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)["data"]))
                findings.views.append(PageView(width, data["rows"], data["verdict"], data["banner"],
                                               data["scrollWidth"], data["innerWidth"], data["scripts"], shot))
            findings.requests = [str(e["params"]["request"]["url"]) for e in cdp.events
                                 if e.get("method") == "Network.requestWillBeSent"]
        finally:
            cdp.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # the whole group: renderer and GPU helpers too
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
    return findings


if __name__ == "__main__":
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    f = inspect_page(Path(sys.argv[1]), (1280, 390), out)
    print(json.dumps({"requests": f.requests, "views": [
        {"width": v.width, "verdict": v.verdict, "banner": v.banner, "rows": len(v.rows), "scrollWidth": v.scroll_width,
         "innerWidth": v.inner_width, "screenshot": str(v.screenshot),
         "outcomes": sorted({r["shown"] for r in v.rows})} for v in f.views]}, indent=2))
