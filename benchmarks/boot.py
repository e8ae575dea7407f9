"""Boot-to-SSH-ready: sevkit's guest fixture path versus a bare QEMU start, same image, one run.

* fixture: what ``guest_pool.get("plain")`` does: GuestVM (overlay, VARS copy, run.sh, QMP,
  drained console, ``cont``), serial login, SSH with the pinned key. Timed from before the
  GuestVM is created until SSH answers.
* bare: the same QEMU command without ``-S`` (no QMP client, console unread: QEMU discards it),
  then a paramiko loop until a real handshake plus ``true`` succeeds (1 s banner timeout).

The two alternate, ``SEVKIT_BENCH_BOOTS`` (default 3) boots each; medians are compared.
Target: ``ratio`` = fixture / bare <= 1.10.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import paramiko

from sevkit.deadline import Deadline
from sevkit.evidence import ArtifactDir
from sevkit.image import ensure_image
from sevkit.image.credentials import make_credentials
from sevkit.qemu import reaper
from sevkit.qemu.argv import build_argv
from sevkit.qemu.firmware import find_pflash
from sevkit.qemu.machine import GuestAccess, GuestVM, free_port
from sevkit.qemu.spec import Firmware, GuestSpec, Wiring
from sevkit.ssh import _pinned_key


def _fixture_boot(spec: GuestSpec, access: GuestAccess, root: Path, ev: Path) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    vm = GuestVM(spec, evidence=ArtifactDir(ev), run_root=root, access=access)
    try:
        vm.boot()
        took = time.monotonic() - start
        return took, dict(vm.times)
    finally:
        vm.shutdown()


def _bare_boot(spec: GuestSpec, access: GuestAccess, root: Path, timeout: float) -> float:
    run = Path(tempfile.mkdtemp(prefix="bare-", dir=root))
    port = free_port()
    assert spec.firmware.vars_template is not None and spec.disk is not None and access.ssh_key is not None
    start = time.monotonic()
    shutil.copyfile(spec.firmware.vars_template, run / "VARS.fd")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", spec.disk_format, "-b", str(spec.disk),
                    str(run / "overlay.qcow2")], check=True, timeout=60)
    wiring = Wiring(qmp_socket=run / "qmp.sock", serial_socket=run / "serial.sock", pidfile=run / "qemu.pid",
                    overlay=run / "overlay.qcow2", vars_copy=run / "VARS.fd", ssh_port=port)
    argv = [a for a in build_argv(spec, wiring) if a != "-S"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    reaper.register(proc)
    try:
        deadline = Deadline(timeout)
        keytype, blob = access.host_keys[0]
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"bare QEMU exited {proc.returncode}")
            client = paramiko.SSHClient()
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.get_host_keys().add(f"[127.0.0.1]:{port}", keytype, _pinned_key(keytype, blob))
            try:
                client.connect("127.0.0.1", port, username="root", key_filename=str(access.ssh_key),
                               look_for_keys=False, allow_agent=False, timeout=3, banner_timeout=1, auth_timeout=10)
                _, out, _ = client.exec_command("true", timeout=30)
                if out.channel.recv_exit_status() == 0:
                    return time.monotonic() - start
            except (paramiko.SSHException, OSError, EOFError):
                pass
            finally:
                client.close()
            if deadline.expired:
                raise RuntimeError(f"bare QEMU: SSH not ready within {timeout:.0f}s")
            time.sleep(0.2)
    finally:
        reaper.kill_group(proc.pid)
        proc.wait(10)
        reaper.unregister(proc)
        shutil.rmtree(run, ignore_errors=True)


def run(out_dir: Path) -> dict[str, Any]:
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)   # banner-poll tracebacks (P2)
    boots = int(os.environ.get("SEVKIT_BENCH_BOOTS", "3"))
    image = ensure_image()
    fw = find_pflash()
    if fw is None:
        raise RuntimeError("no OVMF pflash installed")
    root = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    try:
        cred = make_credentials(root / "credentials")
        keytype, blob = cred.known_host_key.split()[:2]
        access = GuestAccess(password=cred.root_password, ssh_key=cred.private_key_path, host_keys=((keytype, blob),))
        spec = GuestSpec(kind="plain", name="bench", firmware=Firmware("pflash", fw.code, fw.vars_template),
                         kernel=image.kernel, initrd=image.initrd, append=image.append, disk=image.disk,
                         disk_format=image.disk_format, fw_cfg=tuple(cred.fw_cfg))
        fixture, bare, details = [], [], []
        for i in range(boots):
            ft, times = _fixture_boot(spec, access, root, out_dir / "boot-evidence" / f"fixture-{i}")
            fixture.append(round(ft, 2))
            details.append(times)
            bare.append(round(_bare_boot(spec, access, root, 300.0), 2))
        f_med, b_med = statistics.median(fixture), statistics.median(bare)
        return {"fixture_seconds": f_med, "bare_seconds": b_med, "ratio": round(f_med / b_med, 3),
                "fixture_runs": fixture, "bare_runs": bare, "boots_each": boots,
                "fixture_serial_login_s": [d.get("serial_login_s") for d in details],
                "fixture_ssh_ready_after_cont_s": [d.get("ssh_ready_s") for d in details],
                "guest": "plain, OVMF pflash + direct kernel boot, TCG -cpu max, 2 vCPU, 1024 MiB",
                "load_avg_at_end": os.getloadavg()[0]}
    finally:
        reaper.reap(root)
        shutil.rmtree(root, ignore_errors=True)
