"""SerialConsole against a fake guest (bash on a PTY behind a Unix socket, like QEMU's chardev)."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.serial_guest import FakeSerialGuest

from sevkit.attestation.guestfetch import script_text
from sevkit.console import SerialConsole
from sevkit.deadline import Deadline
from sevkit.errors import GuestDied, GuestError, GuestPanic, GuestTimeout
from sevkit.guestpy import python_command, run_python


@pytest.fixture
def short_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="sk-con-"))   # Unix socket paths must stay short
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _console(fake: FakeSerialGuest, folder: Path) -> SerialConsole:
    # the fake guest's shell runs on this host: keep its scratch files out of the host's /tmp
    con = SerialConsole(fake.path, folder / "console.log", name="fake", tmpdir=str(folder))
    con.connect(Deadline(5))
    return con


@pytest.fixture
def shell(short_dir: Path) -> Iterator[tuple[SerialConsole, FakeSerialGuest]]:
    fake = FakeSerialGuest(short_dir, transcript=b"[    0.000000] Linux version 6.12 (fake)\r\nWelcome\r\n")
    con = _console(fake, short_dir)
    con.login("root", "pw", Deadline(20))
    yield con, fake
    con.close()
    fake.close()


def test_run_output_stderr_and_status(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    con, _ = shell
    r = con.run("echo hello; echo oops >&2; exit 3", timeout=10)
    assert (r.stdout, r.stderr, r.exit_status, r.transport) == ("hello\n", "oops\n", 3, "serial")
    assert con.run("printf 'no newline'", timeout=10).stdout == "no newline"
    assert con.run("true", timeout=10).ok


def test_marker_never_confused_by_echo(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    """With echo back on, the typed line is echoed, but the joined marker only appears in output."""
    con, _ = shell
    con.run("stty echo", timeout=10)
    r = con.run("echo 'a''b' && printf 'line1\\nline2\\n'", timeout=10)
    assert r.stdout == "ab\nline1\nline2\n" and r.exit_status == 0
    assert con.run("exit 5", timeout=10).exit_status == 5   # a subshell: the login shell survives


def test_interleaved_kernel_messages(short_dir: Path) -> None:
    """Kernel-like lines arriving between output chunks never break the protocol."""
    fake = FakeSerialGuest(short_dir, noise=True)
    con = _console(fake, short_dir)
    try:
        con.login("root", "pw", Deadline(20))
        for i in range(3):
            r = con.run(f"sleep 0.1; echo value-{i}; exit {i}", timeout=10)
            assert r.exit_status == i
            assert f"value-{i}" in r.stdout.splitlines()
    finally:
        con.close()
        fake.close()


def test_bad_password_is_an_error(short_dir: Path) -> None:
    fake = FakeSerialGuest(short_dir)
    con = _console(fake, short_dir)
    try:
        with pytest.raises(GuestError, match="refused"):
            con.login("root", "wrong", Deadline(20))
    finally:
        con.close()
        fake.close()


def test_kernel_panic_fails_fast_with_tail(short_dir: Path) -> None:
    transcript = (b"[    2.0] VFS: Cannot open root device \"nope\"\r\n"
                  b"[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n"
                  b"[    2.2] CPU: 0 PID: 1 Comm: swapper/0\r\n")
    fake = FakeSerialGuest(short_dir, transcript=transcript, login=False)
    con = _console(fake, short_dir)
    start = time.monotonic()
    try:
        with pytest.raises(GuestPanic) as info:
            con.login("root", "pw", Deadline(60))
    finally:
        con.close()
        fake.close()
    assert time.monotonic() - start < 5
    assert "Unable to mount root fs" in str(info.value)
    assert "VFS: Cannot open root device" in info.value.evidence["console_tail"]


def test_console_drained_while_nobody_expects(short_dir: Path) -> None:
    """P1: output is read continuously into console.log even when no expect() is running."""
    fake = FakeSerialGuest(short_dir, flood=2_000_000, login=False)
    con = _console(fake, short_dir)
    try:
        assert fake.flood_done.wait(20), "the guest's writes blocked: the console is not drained"
        deadline = Deadline(10)
        while con.drain.bytes_read < 2_000_000 and not deadline.expired:
            time.sleep(0.05)
        assert (short_dir / "console.log").stat().st_size >= 2_000_000
    finally:
        con.close()
        fake.close()


def test_timeout_carries_tail_and_shell_recovers(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    con, _ = shell
    con.run("echo before-the-hang", timeout=10)
    with pytest.raises(GuestTimeout) as info:
        con.run("sleep 30", timeout=1)
    assert "console_tail" in info.value.evidence
    assert con.run("echo alive", timeout=10).stdout == "alive\n"


def test_hang_up_is_guest_died(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    con, fake = shell
    fake.hang_up()
    with pytest.raises(GuestDied):
        con.run("sleep 5", timeout=10)


def test_run_before_login_is_refused(short_dir: Path) -> None:
    fake = FakeSerialGuest(short_dir, login=False)
    con = _console(fake, short_dir)
    try:
        with pytest.raises(GuestError, match="before login"):
            con.run("echo x", timeout=2)
    finally:
        con.close()
        fake.close()


def test_long_and_multiline_commands(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    """Commands beyond the tty's 4095-byte line buffer, or spanning lines, are staged via a file."""
    con, _ = shell
    payload = "x" * 6000
    r = con.run(f"v='{payload}'; echo ${{#v}}; echo it\\'s", timeout=20)
    assert (r.stdout, r.exit_status) == ("6000\nit's\n", 0)
    r = con.run("for i in 1 2 3\ndo echo line$i\ndone\nexit 4", timeout=20)
    assert (r.stdout, r.exit_status) == ("line1\nline2\nline3\n", 4)
    assert con.run(f"ls {con.tmpdir}/.sevkit-cmd.* 2>/dev/null | wc -l", timeout=10).stdout.strip() == "0"


def test_python_script_through_the_serial_console(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    """sevkit.guestpy over a serial console: the attestation fetcher's script (about 10 KB once
    base64-encoded, so the console stages it) arrives intact and runs with its arguments."""
    con, _ = shell
    script = script_text()
    assert len(python_command(script)) > 4095
    r = run_python(con, script, ["--help"], timeout=30, python=sys.executable)
    assert r.exit_status == 0 and "--nonce" in r.stdout and "--tsm-root" in r.stdout


def test_alive_check_ends_a_waiting_command(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    """``alive`` (GuestVM passes check_alive) is polled while a command waits: a QEMU that exited
    without closing the stream ends the command in about a second, not at its timeout."""
    con, _ = shell
    dead_at = time.monotonic() + 1.0

    def alive() -> None:
        if time.monotonic() >= dead_at:
            raise GuestDied("QEMU exited (test)")

    start = time.monotonic()
    with pytest.raises(GuestDied, match="QEMU exited"):
        con.run("sleep 30", timeout=25, alive=alive)
    assert time.monotonic() - start < 3


def test_panic_line_time_is_recorded_after_login(shell: tuple[SerialConsole, FakeSerialGuest]) -> None:
    """After login failures are no longer raised from console text, but the panic line's arrival
    is still timed (evidence for how fast a panic became an error)."""
    con, _ = shell
    assert con.drain.panic_seen_at is None
    before = time.monotonic()
    assert con.run("echo 'Kernel panic - not'' syncing: test'", timeout=10).ok
    seen = con.drain.panic_seen_at
    assert seen is not None and before <= seen <= time.monotonic()
    assert con.drain.failure is None
