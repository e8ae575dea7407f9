"""One host's work, phase by phase, on a place the runner has already locked.

connect -> check python (>= 3.11, venv) -> install (upload wheels + suite, verify sha256, venv,
pip offline) or use the lab's installed checkout -> run the suite -> fetch the report folder
(sha256 verified) -> clean up (stop what is left, remove the work folder unless ``keep``).
Every failure becomes the host's outcome (NOT_MEASURED with the reason); nothing escapes to
the other hosts.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SevkitError
from .errors import Interrupted, LinkLost, RemoteFailed
from .merge import load_run
from .outcome import HostOutcome, HostState, Phase, Status
from .payload import Payload, sha256_file
from .remote import RemoteHost

MIN_PYTHON = (3, 11)
# `pytest -v` result lines: "path::test PASSED", or with xdist "[gw0] [ 50%] PASSED path::test"
RESULT_LINE = re.compile(r"^(?:\S+::\S+\s+(?P<a>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b"
                         r"|\[gw\d+\]\s+(?:\[\s*\d+%\]\s+)?(?P<b>PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\s+\S+::)")


@dataclass
class JobSettings:
    run_id: str
    profile: str | None
    pytest_args: list[str]
    identity: Path | None
    known_hosts: Path
    payload: Payload
    remote_python: str = "python3"
    installed_checkout: str | None = None   # the lab's own sevkit checkout (with .venv) on the host
    keep: bool = False
    link_timeout: float = 30.0
    heartbeat: float = 5.0
    connect_timeout: float = 20.0
    suite_timeout: float = 6 * 3600.0
    extra_env: dict[str, str] = field(default_factory=dict)


def _python_check(host: RemoteHost, python: str) -> str:
    probe = ("import sys, json, importlib.util as u; "
             "print(json.dumps([sys.version_info[:3], bool(u.find_spec('venv'))]))")
    out = host.check(f"{shlex.quote(python)} -c {shlex.quote(probe)}", "python check")
    (version, has_venv) = json.loads(out.strip().splitlines()[-1])
    text = ".".join(map(str, version))
    if tuple(version[:2]) < MIN_PYTHON:
        raise RemoteFailed(f"{host.name}: {python} is {text}; sevkit needs Python >= 3.11 on the host",
                           evidence={"python": text})
    if not has_venv:
        raise RemoteFailed(f"{host.name}: {python} {text} cannot create virtual environments "
                           "(Debian: apt-get install python3-venv)", evidence={"python": text})
    return text


def _install(host: RemoteHost, s: JobSettings, work: str, stop: Callable[[], bool]) -> list[str]:
    """Upload, verify, install; returns the argv prefix that runs pytest on the host."""
    p = s.payload
    host.check(f"mkdir -p {work}/wheels", "mkdir")
    uploads = {name: path for name, path in p.files.items() if name.endswith(".whl")}
    host.put_many(uploads, f"{work}/wheels")
    host.put_many({"suite.tar.gz": p.files["suite.tar.gz"]}, work)
    manifest = "".join(f"{p.sha256[n]}  {'wheels/' if n.endswith('.whl') else ''}{n}\n" for n in sorted(p.files))
    status, out, err = host.run(f"cd {work} && sha256sum -c --quiet -", stdin=manifest.encode(),
                                timeout=2 * host.io_timeout)
    if status != 0:
        raise RemoteFailed(f"{host.name}: uploaded files do not match their sha256: {(out + err).strip()[-300:]}")
    host.check(f"mkdir -p {work}/suite && tar -xzf {work}/suite.tar.gz -C {work}/suite", "unpack suite")
    if s.installed_checkout:
        return [f"{s.installed_checkout}/.venv/bin/python", "-m", "pytest"]
    if not p.sevkit_wheel:
        raise RemoteFailed(f"{host.name}: no sevkit wheel was built to install")
    # no ensurepip (slow, and absent without python3-venv's wheels): pip runs from its own wheel
    script = (f"{shlex.quote(s.remote_python)} -m venv --without-pip {work}/venv && "
              f"{work}/venv/bin/python {work}/wheels/{p.pip_wheel}/pip install -q --disable-pip-version-check "
              f"--no-index --no-compile --find-links {work}/wheels {work}/wheels/{p.sevkit_wheel}")
    res = host.stream(["sh", "-c", script], cwd=work, on_line=lambda _l: None, stop=stop,
                      link_timeout=s.link_timeout, heartbeat=s.heartbeat, timeout=900)
    if stop():
        raise Interrupted(f"{host.name}: interrupted while installing")
    if res.status != 0:
        raise RemoteFailed(f"{host.name}: offline install into {work}/venv failed (exit {res.status}): "
                           f"{' | '.join(res.output.strip().splitlines()[-3:])}")
    return [f"{work}/venv/bin/python", "-m", "pytest"]


def _fetch(host: RemoteHost, work: str, dest: Path) -> None:
    """tar the run folder, copy it, check the archive's and every file's sha256, unpack."""
    # streamed (heartbeat): a large evidence folder may take a while, a dead link must not
    res = host.stream(["sh", "-c", f"cd {work}/reports/latest && find . -type f -exec sha256sum {{}} + "
                       f"> {work}/report.sha256 && tar -czf {work}/report.tgz . && sha256sum {work}/report.tgz"],
                      cwd=work, on_line=lambda _l: None, stop=lambda: False, link_timeout=host.io_timeout,
                      heartbeat=min(5.0, host.io_timeout / 4), timeout=1800)
    last = res.output.strip().splitlines()[-1:] or [""]
    if res.status != 0 or not re.fullmatch(r"[0-9a-f]{64}\s+\S+", last[0].strip()):
        raise RemoteFailed(f"{host.name}: packing the report folder failed (exit {res.status}): {last[0][:200]}")
    archive_sha = last[0].split()[0]
    dest.mkdir(parents=True, exist_ok=True)
    tgz, sums = dest.parent / f".{dest.name}.tgz", dest.parent / f".{dest.name}.sha256"
    try:
        host.get(f"{work}/report.tgz", tgz)
        host.get(f"{work}/report.sha256", sums)
        if sha256_file(tgz) != archive_sha:
            raise RemoteFailed(f"{host.name}: report archive sha256 differs after the copy",
                               evidence={"remote": archive_sha, "local": sha256_file(tgz)})
        with tarfile.open(tgz, "r:gz") as tar:
            tar.extractall(dest, filter="data")
        bad = []
        for line in sums.read_text().splitlines():
            digest, _, name = line.partition("  ")
            f = dest / name
            if not f.is_file() or sha256_file(f) != digest:
                bad.append(name)
        if bad:
            raise RemoteFailed(f"{host.name}: {len(bad)} report file(s) differ from the host's sha256: {bad[:3]}")
        shutil.move(str(sums), str(dest / "SHA256SUMS.host"))
    finally:
        tgz.unlink(missing_ok=True)
        sums.unlink(missing_ok=True)


def _cleanup(host: RemoteHost, work: str, pgids: list[int], keep: bool, outcome: HostOutcome) -> None:
    kills = "; ".join(f"kill -TERM -{g} 2>/dev/null" for g in pgids)
    # anything still running from the work folder (a QEMU in its own group, a stray pip)
    script = (f"{kills + '; ' if kills else ''}"
              f"left=$(pgrep -f {shlex.quote(work + '/')} | grep -v \"^$$\\$\" || true); "
              f"for p in $left; do cat /proc/$p/cmdline 2>/dev/null | tr '\\0' ' '; echo; done; "
              f"[ -n \"$left\" ] && kill -KILL $left 2>/dev/null; "
              f"{'true' if keep else f'rm -rf {shlex.quote(work)}'}")
    _, out, _ = host.run(script, timeout=max(60, host.io_timeout))
    outcome.leftovers = [line for line in out.splitlines() if line.strip() and "pgrep" not in line]
    outcome.remote_cleaned = not keep


def run_host(place: str, address: str, port: int, user: str, s: JobSettings, state: HostState,
             dest: Path, stop: Callable[[], bool]) -> HostOutcome:
    """The whole job for one locked place; always returns an outcome."""
    outcome = HostOutcome(place, Status.NOT_MEASURED, address=f"{user}@{address}:{port}", tags=dict(state.tags))
    t0 = state.started

    def phase(p: Phase) -> None:
        state.set_phase(p)
        outcome.phases.append((str(p), time.monotonic() - t0))

    def on_line(line: str) -> None:
        m = RESULT_LINE.match(line.strip())
        if m:
            state.count(m.group("a") or m.group("b"))

    host = RemoteHost(address, port, user, identity=s.identity, known_hosts=s.known_hosts,
                      connect_timeout=s.connect_timeout, name=place)
    host.io_timeout = s.link_timeout
    work: str | None = None
    pgids: list[int] = []
    link_lost = False
    try:
        phase(Phase.CONNECTING)
        host.connect()
        phase(Phase.CHECKING)
        if not s.installed_checkout:
            _python_check(host, s.remote_python)
        work = host.check(f"mktemp -d /tmp/sevkit-fleet-{s.run_id}-XXXXXX", "make work folder").strip()
        outcome.remote_workdir = work
        if stop():
            raise Interrupted(f"{place}: interrupted before install")
        phase(Phase.INSTALLING)
        pytest_argv = _install(host, s, work, stop)
        if stop():
            raise Interrupted(f"{place}: interrupted before the suite started")
        phase(Phase.RUNNING)
        argv = [*pytest_argv, "-v", "--color=no", "-p", "no:cacheprovider", "--sev-report-dir", f"{work}/reports"]
        if s.profile:
            argv += ["--sev-expect", s.profile]
        argv += s.pytest_args
        res = host.stream(argv, cwd=f"{work}/suite", env={"PYTHONUNBUFFERED": "1", **s.extra_env},
                          on_line=on_line, stop=stop, link_timeout=s.link_timeout, heartbeat=s.heartbeat,
                          timeout=s.suite_timeout)
        if res.pgid is not None:
            pgids.append(res.pgid)
        outcome.suite_exit = res.status
        phase(Phase.FETCHING)
        try:
            _fetch(host, work, dest)
            outcome.report_dir = str(dest)
        except (RemoteFailed, LinkLost) as exc:
            link_lost = isinstance(exc, LinkLost)
            outcome.reason = f"report folder not fetched: {exc}"
        if outcome.report_dir:
            run = load_run(dest)
            outcome.passed, outcome.failed = run.counts.get("passed", 0), run.counts.get("failed", 0)
            outcome.errors, outcome.skipped = run.counts.get("error", 0), run.counts.get("skipped", 0)
            outcome.identity = run.identity
            if run.exit_code is not None:
                outcome.suite_exit = run.exit_code
        else:
            with state.lock:
                outcome.passed, outcome.failed, outcome.errors = state.passed, state.failed, state.errors
                outcome.skipped = state.skipped
        if stop():
            outcome.reason = "interrupted: the remote suite was stopped (SIGTERM to its process group)"
        elif res.status is None:
            outcome.reason = "the remote suite did not finish (deadline)"
        elif outcome.suite_exit == 0 and outcome.report_dir:
            outcome.status = Status.CONFORMANT
        elif outcome.suite_exit == 1 and outcome.report_dir:
            outcome.status = Status.NON_CONFORMANT
            outcome.reason = f"{outcome.failed} requirement(s) failed"
        elif not outcome.reason:
            outcome.reason = f"remote suite exit {outcome.suite_exit}: it could not measure (see its report)"
    except LinkLost as exc:
        link_lost = True
        outcome.reason = str(exc)
    except SevkitError as exc:
        outcome.reason = str(exc)
    finally:
        outcome.last_phase = str(state.phase)
        if work is not None and link_lost:
            outcome.remote_cleaned = False
            outcome.leftovers.append(f"link lost: {work} left on the host; its sshd ends the orphaned session "
                                     "(ClientAliveInterval) and the wrapper stops the command")
        elif work is not None:
            phase(Phase.CLEANING)
            try:
                _cleanup(host, work, pgids, s.keep, outcome)
            except SevkitError as exc:
                outcome.remote_cleaned = False
                outcome.leftovers.append(f"clean-up not possible: {exc}")
        host.close()
        outcome.ssh_sessions = host.sessions
        phase(Phase.DONE)
        state.ended = time.monotonic()
        outcome.elapsed_s = state.elapsed
        state.status = outcome.status
    return outcome
