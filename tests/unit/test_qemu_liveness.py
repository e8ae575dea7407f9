"""How a dying guest is noticed: panic=-1 on the kernel command line, and SSH commands that end
when QEMU exits (alive polling; a channel closed without an exit status is an error, never -1)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks._sshd import Sshd
from sevkit.deadline import Deadline
from sevkit.errors import GuestDied, GuestError
from sevkit.qemu.spec import panic_exits
from sevkit.ssh import SshSession


@pytest.mark.parametrize(("given", "want"), [
    ("root=LABEL=sevroot ro console=ttyS0,115200", "root=LABEL=sevroot ro console=ttyS0,115200 panic=-1"),
    ("console=ttyS0 panic=0", "console=ttyS0 panic=0"),        # the lab's own choice is kept
    ("panic=30 quiet", "panic=30 quiet"),
    ("oops=panic console=ttyS0", "oops=panic console=ttyS0 panic=-1"),
    ("", "panic=-1"),
])
def test_panic_exits(given: str, want: str) -> None:
    assert panic_exits(given) == want


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="sshd root login by key needs root (euid != 0)")


def _session(server: Sshd, tmp_path: Path) -> SshSession:
    keytype, blob = server.known_hosts.read_text().split()[1:3]
    s = SshSession("127.0.0.1", server.port, user="root", key_file=server.key, host_keys=[(keytype, blob)],
                   log_path=tmp_path / "ssh.log")
    s.connect(Deadline(20))
    return s


@pytest.mark.sshd
@needs_root
def test_ssh_alive_check_ends_a_waiting_command(sshd: Sshd, tmp_path: Path) -> None:
    s = _session(sshd, tmp_path)
    try:
        dead_at = time.monotonic() + 1.0

        def alive() -> None:
            if time.monotonic() >= dead_at:
                raise GuestDied("QEMU exited (test)")

        start = time.monotonic()
        with pytest.raises(GuestDied):
            s.run("sleep 30", timeout=25, alive=alive)
        assert time.monotonic() - start < 3
        assert s.run("echo still", timeout=10).stdout == "still\n"    # the session itself is fine
    finally:
        s.close()


@pytest.mark.sshd
@needs_root
def test_ssh_channel_closed_without_status_is_an_error(sshd: Sshd, tmp_path: Path) -> None:
    """A command killed by a signal (or a lost connection) has no exit status: GuestError, not -1."""
    s = _session(sshd, tmp_path)
    try:
        with pytest.raises(GuestError, match="without an exit status"):
            s.run("kill -9 $$", timeout=10)
        assert s.run("exit 7", timeout=10).exit_status == 7
    finally:
        s.close()
