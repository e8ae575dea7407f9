"""The guest's serial console: always drained, always logged, driven with pexpect.

QEMU's 16550 writes one byte per ``write()``; on an AF_UNIX stream a few hundred unread
bytes fill the socket and the guest hangs (qemu-tcg-notes.md P1). So a ``ConsoleDrain``
thread reads the socket continuously into ``console.log`` and a bounded buffer, and
pexpect reads from that buffer through a small spawn class. The drain also watches the
boot for failure patterns (kernel panic, firmware errors) so any wait can fail fast.

Commands run with labgrid's split-marker technique (style.md lesson 7): the marker is typed
as ``'AB''CD'`` so the echoed command line never contains it; stdout, stderr and the exit
status come back between markers, whatever the kernel prints in between.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import secrets
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pexpect
from pexpect.spawnbase import SpawnBase

from .deadline import Deadline
from .errors import GuestDied, GuestError, GuestPanic, GuestTimeout
from .results import CommandResult

log = logging.getLogger(__name__)

# Fail-fast patterns while the guest boots (bytes regexes). Firmware lines are from OVMF:
# DEBUG builds assert, any build prints the exception banner; AmdSev builds halt on hash mismatch.
BOOT_FAILURES: tuple[tuple[str, str], ...] = (
    ("kernel panic", r"Kernel panic - not syncing[^\r\n]*"),
    ("kernel BUG", r"kernel BUG at [^\r\n]*"),
    ("firmware exception", r"!!!! X64 Exception Type[^\r\n]*"),
    ("firmware assertion", r"ASSERT_EFI_ERROR[^\r\n]*|ASSERT \[[^\r\n]*"),
    ("measured boot hash mismatch", r"Hash comparison failed[^\r\n]*"),
    ("initramfs gave up on the root device", r"ALERT! [^\r\n]* does not exist\.[^\r\n]*"),
    ("no bootable device", r"No bootable device[^\r\n]*"),
)

_PANIC_LINE = re.compile(BOOT_FAILURES[0][1].encode())

# labgrid's pool: no R, I or D, so a marker never spells ERROR or DEBUG.
_MARKER_POOL = "ABCEFGHJKLMNOPQSTUVWXYZ"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_BUFFER_CAP = 4 << 20
_MAX_TYPED = 1024          # longer commands are staged through a file (tty line limit 4095)


class ConsoleDrain:
    """Reads a connected socket until EOF: every byte goes to ``console.log`` and a buffer.

    ``read(size, timeout)`` hands buffered bytes to pexpect; ``failure`` holds the first boot
    failure seen (name, matched text) while ``armed``; ``panic_seen_at`` when a kernel panic line
    first arrived (always watched: it only times, it never fails anything).
    """

    def __init__(self, sock: socket.socket, log_path: Path, *, name: str = "console",
                 failures: Sequence[tuple[str, str]] = BOOT_FAILURES) -> None:
        self._sock = sock
        self._log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
        self._buf = bytearray()
        self._cv = threading.Condition()
        self._eof = False
        self._history = bytearray()           # the last 64 KiB, for tails in errors
        self._watch = [(n, re.compile(p.encode())) for n, p in failures]
        self._scan_from = 0
        self.armed = True
        self.failure: tuple[str, str] | None = None
        self.panic_seen_at: float | None = None   # monotonic time the first panic line arrived
        self.bytes_read = 0
        self.log_error: OSError | None = None     # console.log could not be written (the evidence is cut)
        self._thread = threading.Thread(target=self._run, name=f"{name}-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                try:
                    chunk = self._sock.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                if self.log_error is None:
                    try:
                        self._log.write(chunk)
                    except OSError as exc:     # disk full, folder gone: keep draining, say so at the next wait
                        self.log_error = exc
                with self._cv:
                    self.bytes_read += len(chunk)
                    self._buf += chunk
                    if len(self._buf) > _BUFFER_CAP:  # nobody reading: keep the newest (the log has all)
                        del self._buf[: len(self._buf) - _BUFFER_CAP]
                    self._history += chunk
                    if len(self._history) > 65536:
                        cut = len(self._history) - 65536
                        del self._history[:cut]
                        self._scan_from = max(0, self._scan_from - cut)
                    self._check_failures()
                    self._cv.notify_all()
        finally:
            with self._cv:
                self._eof = True
                self._cv.notify_all()

    def _check_failures(self) -> None:
        window = bytes(self._history[max(0, self._scan_from - 512):])
        self._scan_from = len(self._history)
        if self.panic_seen_at is None and _PANIC_LINE.search(window):
            self.panic_seen_at = time.monotonic()   # when it arrived, armed or not (latency evidence)
        if not self.armed or self.failure is not None:
            return
        for name, rx in self._watch:
            m = rx.search(window)
            if m:
                self.failure = (name, m.group(0).decode(errors="replace"))
                return

    def read(self, size: int, timeout: float | None) -> bytes:
        """Up to ``size`` buffered bytes; b"" after ``timeout``; raises pexpect.EOF at end of stream."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while not self._buf:
                if self._eof:
                    raise pexpect.EOF("serial console closed (QEMU exited?)")
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return b""
                self._cv.wait(left)
            data = bytes(self._buf[:size])
            del self._buf[:size]
            return data

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    @property
    def eof(self) -> bool:
        return self._eof

    def tail(self, lines: int = 40) -> str:
        with self._cv:
            text = bytes(self._history).decode(errors="replace")
        return "\n".join(_ANSI.sub("", text).replace("\r", "").splitlines()[-lines:])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5.0)
        self._log.close()


class _DrainSpawn(SpawnBase):  # type: ignore[misc]
    """pexpect on top of a ConsoleDrain (the drain owns the socket)."""

    def __init__(self, drain: ConsoleDrain, timeout: float) -> None:
        super().__init__(timeout=timeout, maxread=65536, searchwindowsize=None,
                         encoding="utf-8", codec_errors="replace")
        self._drain = drain
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.delayafterread = None

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> str:
        if timeout == -1:
            timeout = self.timeout
        data = self._drain.read(size, timeout)
        if not data:
            raise pexpect.TIMEOUT("no console output")
        text: str = self._decoder.decode(data, final=False)
        self._log(text, "read")
        return text

    def send(self, s: str | bytes) -> int:
        data = s.encode() if isinstance(s, str) else s
        self._drain.send(data)
        return len(data)

    def sendline(self, s: str = "") -> int:
        return self.send(s + "\r")

    def isalive(self) -> bool:
        return not self._drain.eof


class SerialConsole:
    """The guest's serial console. ``connect()``, then ``wait_for``/``login``/``run``.

    Errors: GuestPanic (boot failure pattern, with console tail), GuestTimeout (deadline, with
    tail), GuestDied (the stream closed: QEMU exited), GuestError (bad credentials).
    """

    PROMPT = "SEVKIT-SHELL# "

    def __init__(self, socket_path: Path, log_path: Path, *, name: str = "console", tmpdir: str = "/tmp") -> None:
        self.socket_path = socket_path
        self.tmpdir = tmpdir          # in the guest: where stderr and long commands are staged
        self.log_path = log_path
        self.name = name
        self._drain: ConsoleDrain | None = None
        self._spawn: _DrainSpawn | None = None
        self.logged_in = False

    # -- connection ----------------------------------------------------------------------
    def connect(self, deadline: Deadline) -> None:
        """Connect to QEMU's chardev socket (retrying until it exists) and start draining."""
        last: OSError | None = None
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self.socket_path))
                break
            except OSError as exc:
                sock.close()
                last = exc
            if deadline.expired:
                raise GuestTimeout(f"{self.name}: serial socket {self.socket_path} not answering: {last}",
                                   evidence={"socket": str(self.socket_path)})
            time.sleep(0.05)
        self.attach(sock)

    def attach(self, sock: socket.socket) -> None:
        """Use an already-connected socket (fakes, socketpairs)."""
        self._drain = ConsoleDrain(sock, self.log_path, name=self.name)
        self._spawn = _DrainSpawn(self._drain, timeout=30)

    @property
    def drain(self) -> ConsoleDrain:
        if self._drain is None:
            raise GuestError(f"{self.name}: console is not connected")
        return self._drain

    def tail(self, lines: int = 40) -> str:
        return self._drain.tail(lines) if self._drain else ""

    def _evidence(self, **extra: Any) -> dict[str, Any]:
        return {"console_tail": self.tail(), "console_log": str(self.log_path), **extra}

    def check_failure(self) -> None:
        """Raise GuestPanic if the drain has seen a boot failure, GuestError if console.log cannot be
        written (a run whose console evidence is cut is an infrastructure error, not a verdict)."""
        if self._drain is not None and self._drain.log_error is not None:
            err = self._drain.log_error
            raise GuestError(f"{self.name}: cannot write the console log {str(self.log_path)!r}: "
                             f"{err.strerror or err}", evidence=self._evidence(log_error=str(err)))
        if self._drain is not None and self._drain.failure is not None:
            kind, text = self._drain.failure
            raise GuestPanic(f"{self.name}: {kind} on the console: {text.strip()}\n--- console tail ---\n"
                             f"{self.tail(25)}", evidence=self._evidence(failure=kind, line=text))

    # -- expect --------------------------------------------------------------------------
    def expect(self, patterns: Sequence[str], deadline: Deadline, what: str,
               alive: Callable[[], None] | None = None) -> tuple[int, str]:
        """Wait until one of ``patterns`` (regexes) appears; return (index, text before + match).

        Fails fast on a boot failure seen by the drain; raises GuestDied at end of stream.
        ``alive`` is called every 0.5 s while waiting and may raise (QEMU exited).
        """
        spawn = self._spawn
        if spawn is None:
            raise GuestError(f"{self.name}: console is not connected")
        while True:
            self.check_failure()
            if alive is not None:
                alive()
            try:
                idx = spawn.expect(list(patterns), timeout=deadline.cap(0.5))
                return int(idx), str(spawn.before) + str(spawn.after)
            except pexpect.TIMEOUT:
                if deadline.expired:
                    self.check_failure()
                    raise GuestTimeout(f"{self.name}: {what}: nothing matched within {deadline.seconds:.0f}s"
                                       f"\n--- console tail ---\n{self.tail(25)}",
                                       evidence=self._evidence(patterns=list(patterns))) from None
            except pexpect.EOF:
                self.check_failure()
                raise GuestDied(f"{self.name}: console closed while waiting for {what} (QEMU exited?)"
                                f"\n--- console tail ---\n{self.tail(25)}", evidence=self._evidence()) from None

    def wait_for(self, pattern: str, deadline: Deadline) -> str:
        """Wait for ``pattern``; return the console text up to and including it."""
        return self.expect([pattern], deadline, f"waiting for {pattern!r}")[1]

    def send(self, text: str) -> None:
        """Type ``text``. Raises GuestDied if the other end (QEMU) is gone."""
        if self._spawn is None:
            raise GuestError(f"{self.name}: console is not connected")
        try:
            self._spawn.send(text)
        except OSError as exc:   # EPIPE/ECONNRESET: QEMU closed the chardev (exited)
            raise GuestDied(f"{self.name}: cannot write to the console ({exc.strerror}); QEMU exited?"
                            f"\n--- console tail ---\n{self.tail(25)}", evidence=self._evidence()) from exc

    # -- login ---------------------------------------------------------------------------
    def login(self, user: str, password: str, deadline: Deadline) -> None:
        """Wait for ``login:``, log in, and make the shell quiet and machine-friendly:
        no echo, a fixed prompt, printk silenced (``dmesg -n 1``).

        Raises GuestError on refused credentials, GuestTimeout/GuestPanic/GuestDied otherwise.
        """
        assert self._spawn is not None
        shell = r"\S+@\S+[#$] "
        idx, _ = self._expect_nudging([r"login: ", shell], deadline, "login prompt")
        if idx == 0:          # else: already a shell (autologin)
            self.send(user + "\r")
            idx, _ = self.expect([r"[Pp]assword: ", shell], deadline, "password prompt")
            if idx == 0:
                self.send(password + "\r")
                idx, _ = self.expect([shell, r"Login incorrect", r"login: "], deadline, "shell prompt")
                if idx != 0:
                    raise GuestError(f"{self.name}: serial login as {user!r} was refused",
                                     evidence=self._evidence())
        # Fixed prompt, no echo, quiet kernel, no bracketed-paste escapes.
        self.send(f"stty -echo; export PS1='{self.PROMPT}' PS2='' TERM=dumb; unset PROMPT_COMMAND; "
                  "dmesg -n 1 2>/dev/null; bind 'set enable-bracketed-paste off' 2>/dev/null; true\r")
        self.expect([re.escape(self.PROMPT)], deadline, "shell set-up")
        self.drain.armed = False  # the shell is up: typed text may now contain failure words
        self.logged_in = True
        self.run("true", timeout=max(deadline.remaining, 5.0))

    def _expect_nudging(self, patterns: Sequence[str], deadline: Deadline, what: str) -> tuple[int, str]:
        """Like expect, but press Enter after 15 s of silence (a getty that printed before we looked)."""
        while True:
            step = Deadline(deadline.cap(15.0))
            try:
                return self.expect(patterns, step, what)
            except GuestTimeout:
                if deadline.expired:
                    raise
                self.send("\r")

    # -- commands ------------------------------------------------------------------------
    def run(self, cmd: str, timeout: float | None = None, *, alive: Callable[[], None] | None = None) -> CommandResult:
        """Run ``cmd`` in the logged-in shell (a subshell, stdin from /dev/null).

        Returns CommandResult(transport="serial") with stdout, stderr and the exit status.
        Raises GuestTimeout (console tail attached; Ctrl-C is sent so the shell recovers),
        GuestPanic if the kernel panicked meanwhile, GuestDied if QEMU exited (``alive``, called
        every 0.5 s while waiting, may raise it before the console stream ends).
        """
        if not self.logged_in and cmd != "true":
            raise GuestError(f"{self.name}: run() before login()")
        m = "".join(secrets.choice(_MARKER_POOL) for _ in range(10))
        typed = f"'{m[:4]}''{m[4:]}'"
        err = f"{self.tmpdir}/.sevkit-err.{m}"
        deadline = Deadline(timeout if timeout is not None else 60.0)
        body, cleanup = cmd, err
        if len(cmd) > _MAX_TYPED or "\n" in cmd or "\r" in cmd:
            script = self._stage(cmd, m, deadline)
            body, cleanup = f". {script}", f"{err} {script}"
        line = (f"printf '%s\\n' {typed}; ( {body} ) </dev/null 2>{err}; __sk=$?; printf '%s\\n' {typed}; "
                f"cat {err}; rm -f {cleanup}; printf '%s %s\\n' {typed} $__sk\r")
        rx = (rf"{m}\r?\n(?P<out>.*?){m}\r?\n(?P<err>.*?){m} (?P<rc>\d+)\r?\n")
        start = time.monotonic()
        if alive is not None:
            alive()
        self.send(line)
        spawn = self._spawn
        assert spawn is not None
        try:
            self.expect([rx], deadline, f"command {cmd!r}", alive)
        except GuestTimeout as exc:
            self.send("\x03")
            text = exc.evidence.get("console_tail", "")
            for name, pat in BOOT_FAILURES[:2]:
                if re.search(pat, text):
                    raise GuestPanic(f"{self.name}: {name} while running {cmd!r}\n{self.tail(25)}",
                                     evidence=self._evidence(cmd=cmd)) from None
            raise
        match = spawn.match
        assert match is not None
        return CommandResult(cmd=cmd, stdout=_clean(match.group("out")), stderr=_clean(match.group("err")),
                             exit_status=int(match.group("rc")), duration=time.monotonic() - start,
                             transport="serial")

    def run_check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.run(cmd, timeout).check()

    def _stage(self, cmd: str, m: str, deadline: Deadline) -> str:
        """Write a long or multi-line command to a guest file in short, acknowledged pieces (the tty
        line buffer holds 4095 bytes); return the file's path."""
        script = f"{self.tmpdir}/.sevkit-cmd.{m}"
        for i in range(0, len(cmd), _MAX_TYPED):
            chunk = shlex.quote(cmd[i:i + _MAX_TYPED])
            self.send(f"printf '%s' {chunk} >> {script}; printf '%s\\n' '{m[:4]}''{m[4:]}-{i}'\r")
            self.expect([rf"{m}-{i}\r?\n"], deadline, f"staging a long command ({len(cmd)} bytes)")
        return script

    def close(self) -> None:
        if self._drain is not None:
            self._drain.close()
        self._spawn = None


def _clean(text: str) -> str:
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")
