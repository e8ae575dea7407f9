"""SshSession against a private OpenSSH server (benchmarks/_sshd.py) and against dead ends."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from benchmarks._sshd import Sshd, keygen
from sevkit.deadline import Deadline
from sevkit.errors import GuestError, GuestTimeout
from sevkit.ssh import SshSession, route_paramiko_log

pytestmark = [pytest.mark.sshd,
              pytest.mark.skipif(os.geteuid() != 0, reason="sshd root login by key needs root (euid != 0)")]




def _host_key(server: Sshd) -> tuple[str, str]:
    keytype, blob = (server.known_hosts.read_text().split()[1:3])
    return keytype, blob


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_returns_output_and_status(sshd: Sshd, tmp_path: Path) -> None:
    s = SshSession("127.0.0.1", sshd.port, user="root", key_file=sshd.key, host_keys=[_host_key(sshd)],
                   log_path=tmp_path / "ssh.log")
    s.connect(Deadline(20))
    try:
        r = s.run("echo hello; echo oops >&2; exit 3", timeout=10)
        assert (r.stdout, r.stderr, r.exit_status, r.transport) == ("hello\n", "oops\n", 3, "ssh")
        assert s.run("printf 'no newline'").stdout == "no newline"
        with pytest.raises(GuestTimeout):
            s.run("sleep 10", timeout=1)
    finally:
        s.close()
    assert "exit 3" in (tmp_path / "ssh.log").read_text()


def test_wrong_key_fails_at_once(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "other")
    s = SshSession("127.0.0.1", sshd.port, user="root", key_file=tmp_path / "other", host_keys=[_host_key(sshd)])
    start = time.monotonic()
    with pytest.raises(GuestError, match="authentication"):
        s.connect(Deadline(60))
    assert time.monotonic() - start < 15, "an authentication failure must not be retried"
    assert s.attempts == 1


def test_unpinned_host_key_rejected_at_once(sshd: Sshd, tmp_path: Path) -> None:
    keygen(tmp_path / "impostor")
    keytype, blob = (tmp_path / "impostor.pub").read_text().split()[:2]
    s = SshSession("127.0.0.1", sshd.port, user="root", key_file=sshd.key, host_keys=[(keytype, blob)])
    with pytest.raises(GuestError, match="host key"):
        s.connect(Deadline(60))
    assert s.attempts == 1


def test_no_pinned_key_refused() -> None:
    with pytest.raises(GuestError, match="pinned"):
        SshSession("127.0.0.1", 22, user="root", key_file=Path("/nonexistent"), host_keys=[])


def test_refused_port_retries_until_deadline(sshd: Sshd) -> None:
    s = SshSession("127.0.0.1", _free_port(), user="root", key_file=sshd.key, host_keys=[_host_key(sshd)])
    start = time.monotonic()
    with pytest.raises(GuestTimeout, match="not ready"):
        s.connect(Deadline(2.5))
    assert 2.0 < time.monotonic() - start < 8
    assert s.attempts > 1


def test_silent_port_is_not_ready(sshd: Sshd) -> None:
    """P2: a forwarded port accepts TCP before sshd exists; no banner means 'not up yet'."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        s = SshSession("127.0.0.1", port, user="root", key_file=sshd.key, host_keys=[_host_key(sshd)])
        start = time.monotonic()
        with pytest.raises(GuestTimeout):
            s.connect(Deadline(3), banner_timeout=1.0)
        assert time.monotonic() - start < 10
        assert s.attempts >= 2
    finally:
        stop.set()
        t.join(2)
        for c in held:
            c.close()
        srv.close()


def test_alive_check_aborts_polling(sshd: Sshd) -> None:
    """Polling stops at once when the guest is known dead (GuestVM passes its liveness check)."""
    def dead() -> None:
        raise GuestError("QEMU exited")

    s = SshSession("127.0.0.1", _free_port(), user="root", key_file=sshd.key, host_keys=[_host_key(sshd)])
    with pytest.raises(GuestError, match="QEMU exited"):
        s.connect(Deadline(30), alive=dead)


def test_paramiko_log_goes_to_file(tmp_path: Path) -> None:
    plog = logging.getLogger("paramiko")
    before = (plog.level, plog.propagate, list(plog.handlers))
    first = route_paramiko_log(tmp_path / "ssh.log")
    second = route_paramiko_log(tmp_path / "other.log")
    try:
        logging.getLogger("paramiko.transport").info("hello from paramiko")
        first.handler.flush()
        assert "hello from paramiko" in (tmp_path / "ssh.log").read_text()
        assert plog.propagate is False
    finally:
        first.close()
        assert plog.propagate is False   # the second route is still open
        second.close()
    assert (plog.level, plog.propagate, list(plog.handlers)) == before
