"""A fake guest behind a Unix socket, as QEMU's chardev serves it: a scripted boot transcript,
a getty-like login, then a real bash on a PTY (so echo, Ctrl-C and stty behave as on a tty).

Options: ``transcript`` (bytes written first), ``noise`` (kernel-like lines injected between
output chunks), ``flood`` (bytes written at once after the transcript, to prove draining).
``dmesg`` inside is a stub, so ``dmesg -n 1`` never touches the host.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from pathlib import Path

import pexpect

NOISE = b"\r\n[   12.345678] random: fake kernel noise line\r\n"


class FakeSerialGuest:
    def __init__(self, folder: Path, *, password: str = "pw", transcript: bytes = b"", noise: bool = False,
                 flood: int = 0, login: bool = True) -> None:
        self.folder = folder
        self.path = folder / "serial.sock"
        self.password = password
        self.transcript = transcript
        self.noise = noise
        self.flood = flood
        self.login = login
        self.flood_done = threading.Event()
        self.child: pexpect.spawn | None = None
        self._conn: socket.socket | None = None
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(str(self.path))
        self._srv.listen(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _readline(self, conn: socket.socket) -> str:
        buf = b""
        while not buf.endswith(b"\r") and not buf.endswith(b"\n"):
            c = conn.recv(1)
            if not c:
                raise EOFError
            buf += c
        return buf.decode().strip()

    def _serve(self) -> None:
        try:
            conn, _ = self._srv.accept()
        except OSError:
            return
        self._conn = conn
        try:
            conn.sendall(self.transcript)
            if self.flood:
                conn.sendall(b"x" * self.flood)
                self.flood_done.set()
            if not self.login:
                self._stop.wait()
                return
            while True:
                conn.sendall(b"\r\nfake-guest login: ")
                self._readline(conn)
                conn.sendall(b"Password: ")
                if self._readline(conn) == self.password:
                    break
                conn.sendall(b"\r\nLogin incorrect\r\n")
            bindir = self.folder / "bin"
            bindir.mkdir(exist_ok=True)
            (bindir / "dmesg").write_text("#!/bin/sh\necho '[    0.000000] Linux version 6.12 (fake)'\n")
            os.chmod(bindir / "dmesg", 0o755)
            env = {"PATH": f"{bindir}:/usr/bin:/bin", "PS1": "root@fake:~# ", "HOME": str(self.folder),
                   "TERM": "vt220"}
            self.child = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], env=env, cwd=str(self.folder))
            self._proxy(conn, self.child.child_fd)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def _proxy(self, conn: socket.socket, fd: int) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([conn, fd], [], [], 0.1)
            if conn in r:
                data = conn.recv(4096)
                if not data:
                    return
                os.write(fd, data)
            if fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if self.noise:
                    conn.sendall(NOISE)
                conn.sendall(data)
                if self.noise:
                    time.sleep(0.01)

    def hang_up(self) -> None:
        """Close the connection, as QEMU's exit would."""
        self._stop.set()
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.hang_up()
        self._srv.close()
        if self.child is not None:
            self.child.close(force=True)
        self._thread.join(5)
