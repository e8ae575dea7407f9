"""Boot-to-SSH-ready: sevkit's ``guest_pool`` fixture versus a bare QEMU start, same image, one run.

* fixture: a tiny generated pytest session, run in-process with the suite's own plugins
  (fixtures.options/evidence/host/guest), whose one test times ``guest_pool.get("plain")``:
  exactly what the ``guest`` fixture does (spec, per-run credentials, overlay, VARS copy,
  run.sh, QMP, drained console, ``cont``, serial login and SSH with the pinned key).
* bare: the fixture guest's own argv (its ``qemu.argv.json``) and prepare steps (its ``run.sh``),
  with a fresh run folder, fresh credentials and a fresh forwarded port, without ``-S`` (no QMP
  client, console unread), then a paramiko loop (SshSession's per-try limits and pause) until
  a real handshake plus ``true`` succeeds. Timed from credential generation (the fixture's
  ``get`` makes them too) to that command's exit.

Round i runs fixture then bare when i is even, bare then fixture when odd. ``SEVKIT_BENCH_BOOTS``
(default 3) boots per arm; medians are compared. Target: ``ratio`` = fixture / bare <= 1.10.
Every QEMU either arm starts is stopped on every path; leftovers are looked for and reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest

from sevkit.deadline import Deadline
from sevkit.image.credentials import FW_CFG_PREFIX, make_credentials
from sevkit.qemu import reaper
from sevkit.qemu.machine import GuestAccess, free_port
from sevkit.ssh import pinned_key

TARGET_RATIO = 1.10
_RECORDS: list[dict[str, Any]] = []    # filled by the generated test (same process)

_TEST = '''\
import time

import benchmarks.boot as bench


def test_fixture_boot(guest_pool):
    t0 = time.monotonic()
    vm = guest_pool.get("plain")
    took = time.monotonic() - t0
    assert vm.run("true").exit_status == 0
    bench.record(seconds=took, evidence=str(vm.evidence.path), run_root=str(guest_pool.run_root),
                 times=dict(vm.times))
'''
_INI = "[pytest]\naddopts = -p no:cacheprovider\njunit_family = xunit1\nlog_file_level = DEBUG\n"
_PLUGINS = ("fixtures.options", "fixtures.evidence", "fixtures.host", "fixtures.guest")


def record(**fields: Any) -> None:
    """Called by the generated test with the fixture's timing."""
    _RECORDS.append(fields)


def _kill_leftovers(root: Path) -> list[int]:
    """Kill (and reap) any QEMU whose command line points into ``root``: only ours can."""
    pids = reaper.running_from(root)
    for pid in pids:
        reaper.kill_group(pid)
        with contextlib.suppress(ChildProcessError):   # not our child: its parent reaps it
            os.waitpid(pid, 0)
    return pids


def _fixture_boot(work: Path, evidence_base: Path) -> dict[str, Any]:
    """One pytest session that boots the plain guest through ``guest_pool``; its record."""
    work.mkdir(parents=True)
    (work / "pytest.ini").write_text(_INI)
    test = work / f"test_bench_fixture_boot_{work.name.replace('-', '_')}.py"   # unique module name
    test.write_text(_TEST)
    args = [str(test), "-c", str(work / "pytest.ini"), "--rootdir", str(work),
            "-q", "--no-header", "-p", "no:randomly", f"--sev-report-dir={evidence_base}"]
    for plugin in _PLUGINS:
        args += ["-p", plugin]
    before = len(_RECORDS)
    code = pytest.main(args)
    if len(_RECORDS) != before + 1 or code != 0:
        raise RuntimeError(f"fixture boot session failed (exit {int(code)}); see {evidence_base}/latest")
    rec = _RECORDS[-1]
    rec["leftover_qemu"] = _kill_leftovers(Path(rec["run_root"]))
    return rec


def bare_argv(fixture_argv: list[str], new_run: Path, fw_cfg: dict[str, Path], port: int) -> list[str]:
    """The fixture guest's argv with this boot's run folder, credentials and port, and no ``-S``."""
    qmp = next(a for a in fixture_argv if a.startswith("unix:") and "qmp.sock" in a)
    old_run = str(Path(qmp.removeprefix("unix:").split(",")[0]).parent)
    out: list[str] = []
    for arg in fixture_argv:
        if arg == "-S":
            continue
        if arg.startswith("name=" + FW_CFG_PREFIX):
            name = arg.removeprefix("name=").split(",")[0]
            arg = f"name={name},file={str(fw_cfg[name]).replace(',', ',,')}"
        arg = re.sub(r"hostfwd=tcp:127\.0\.0\.1:\d+-:22", f"hostfwd=tcp:127.0.0.1:{port}-:22", arg)
        out.append(arg.replace(old_run, str(new_run)))
    return out


def _prepare_steps(run_sh: Path, old_run: str, new_run: Path) -> list[list[str]]:
    """run.sh's prepare commands (VARS copy, qcow2 overlay) pointed at the new run folder."""
    steps = []
    for line in run_sh.read_text().splitlines():
        if line.startswith(("cp ", "qemu-img ")):
            steps.append([a.replace(old_run, str(new_run)) for a in shlex.split(line)])
    return steps


def _ssh_ready(port: int, key: Path, keytype: str, blob: str) -> bool:
    """One try with SshSession.connect's per-try limits (3 s banner, 5 s connect), so both arms
    poll alike (each abandoned handshake costs the emulated guest CPU)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.get_host_keys().add(f"[127.0.0.1]:{port}", keytype, pinned_key(keytype, blob))
    try:
        client.connect("127.0.0.1", port, username="root", key_filename=str(key), look_for_keys=False,
                       allow_agent=False, timeout=5, banner_timeout=3, auth_timeout=10)
        _, out, _ = client.exec_command("true", timeout=30)
        return out.channel.recv_exit_status() == 0
    except (paramiko.SSHException, OSError, EOFError):
        return False
    finally:
        client.close()


def _bare_boot(fixture_ev: Path, root: Path, ev: Path, timeout: float) -> float:
    """One bare boot with the fixture guest's argv; seconds until SSH ran ``true``."""
    fixture_argv: list[str] = json.loads((fixture_ev / "qemu.argv.json").read_text())
    qmp = next(a for a in fixture_argv if a.startswith("unix:") and "qmp.sock" in a)
    old_run = str(Path(qmp.removeprefix("unix:").split(",")[0]).parent)
    run = Path(tempfile.mkdtemp(prefix="bare-", dir=root))
    ev.mkdir(parents=True, exist_ok=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        start = time.monotonic()
        cred = make_credentials(run / "credentials")
        ((keytype, blob),) = GuestAccess.from_credentials(cred).host_keys
        port = free_port()
        for step in _prepare_steps(fixture_ev / "run.sh", old_run, run):
            subprocess.run(step, check=True, timeout=60, capture_output=True)
        argv = bare_argv(fixture_argv, run, dict(cred.fw_cfg), port)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, cwd=run)
        reaper.register(proc)
        deadline = Deadline(timeout)
        while not _ssh_ready(port, cred.private_key_path, keytype, blob):
            if proc.poll() is not None:
                raise RuntimeError(f"bare QEMU exited {proc.returncode}; argv in {ev / 'argv.json'}")
            if deadline.expired:
                raise RuntimeError(f"bare QEMU: SSH not ready within {timeout:.0f}s")
            time.sleep(0.5)                      # SshSession.connect's pause between tries
        took = time.monotonic() - start
        (ev / "argv.json").write_text(json.dumps(argv, indent=1) + "\n")
        return took
    finally:
        if proc is not None:
            reaper.kill_group(proc.pid)
            try:
                proc.wait(10)
            finally:
                reaper.unregister(proc)
        shutil.rmtree(run, ignore_errors=True)


def _same_argv(fixture_argv: list[str], bare: list[str]) -> bool:
    """True if the two argvs differ only in -S, run folder, credential files and forwarded port."""
    def norm(argv: list[str]) -> list[str]:
        out = []
        for a in argv:
            if a == "-S":
                continue
            a = re.sub(r"/[^,=:]*/(qmp\.sock|serial\.sock|qemu\.pid|overlay\.qcow2|OVMF_VARS\.fd)", r"RUN/\1", a)
            a = re.sub(r"file=/[^,=]*/fw_cfg\.", "file=CRED/fw_cfg.", a)
            out.append(re.sub(r"127\.0\.0\.1:\d+-", "127.0.0.1:PORT-", a))
        return out
    return norm(fixture_argv) == norm(bare)


def run(out_dir: Path) -> dict[str, Any]:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)   # banner-poll tracebacks (P2)
    boots = int(os.environ.get("SEVKIT_BENCH_BOOTS", "3"))
    evidence = out_dir / "boot-evidence"
    shutil.rmtree(evidence, ignore_errors=True)
    root = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    load_start = os.getloadavg()
    fixture: list[float] = []
    bare: list[float] = []
    details: list[dict[str, Any]] = []
    order: list[str] = []
    leftovers: list[int] = []
    same_argv: list[bool] = []
    try:
        for i in range(boots):
            arms = ("fixture", "bare") if i % 2 == 0 else ("bare", "fixture")
            order.append("-".join(arms))
            for arm in arms:
                if arm == "fixture":
                    rec = _fixture_boot(root / f"session-{i}", evidence / "fixture")
                    fixture.append(round(rec["seconds"], 2))
                    leftovers += rec["leftover_qemu"]
                    details.append({"evidence": rec["evidence"], **rec["times"]})
                else:
                    src = Path(details[-1]["evidence"])   # round 0 runs the fixture first
                    bare.append(round(_bare_boot(src, root, evidence / f"bare-{i}", 300.0), 2))
                    same_argv.append(_same_argv(json.loads((src / "qemu.argv.json").read_text()),
                                                json.loads((evidence / f"bare-{i}" / "argv.json").read_text())))
    finally:
        reaper.kill_registered()
        reaper.reap(root)
        leftovers += _kill_leftovers(root)
        shutil.rmtree(root, ignore_errors=True)
    f_med, b_med = statistics.median(fixture), statistics.median(bare)
    ratio = round(f_med / b_med, 3)
    paired = [round(f / b, 3) for f, b in zip(fixture, bare, strict=True)]
    return {"fixture_seconds": f_med, "bare_seconds": b_med, "ratio": ratio,
            "target_ratio": TARGET_RATIO, "target_met": ratio <= TARGET_RATIO,
            "fixture_runs": fixture, "bare_runs": bare, "boots_each": boots, "round_order": order,
            "paired_ratios": paired,      # per round; a spread here means the host was busy
            "fixture_spread": round(max(fixture) / min(fixture), 3), "bare_spread": round(max(bare) / min(bare), 3),
            "bare_argv_same_as_fixture": same_argv,
            "fixture_serial_login_s": [d.get("serial_login_s") for d in details],
            "fixture_ssh_ready_after_cont_s": [d.get("ssh_ready_s") for d in details],
            "guest": "plain, the suite's guest_pool spec (OVMF pflash + direct kernel boot, TCG)",
            "timed": "fixture: guest_pool.get('plain'); bare: credentials + VARS copy + overlay + QEMU"
                     " (no -S) + SSH handshake and `true`",
            "load_avg_start": [round(x, 2) for x in load_start],
            "load_avg_end": [round(x, 2) for x in os.getloadavg()],
            "leftover_qemu_killed": leftovers}
