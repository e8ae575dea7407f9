"""SSH into a guest with paramiko: per-run key, pinned host key, bounded retry while booting.

A forwarded port accepts TCP long before the guest's sshd exists (slirp listens on the host),
so readiness means a full handshake plus a command (qemu-tcg-notes.md P2), polled with a short
banner timeout. Only "not up yet" failures are retried (refused, reset, banner, timeout);
authentication and host-key errors are raised at once: retrying cannot fix them.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import paramiko

from .deadline import Deadline
from .errors import GuestError, GuestTimeout
from .results import CommandResult

# A pinned host key: (key type as in known_hosts, e.g. "ssh-ed25519", base64 blob).
HostKey = tuple[str, str]

_RETRYABLE = (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError, socket.timeout,
              TimeoutError, EOFError, paramiko.ssh_exception.NoValidConnectionsError)


class ParamikoLog:
    """Routes paramiko's own logging to ``ssh.log`` files instead of the terminal, and undoes it.

    The first active route saves the ``paramiko`` logger's level and propagation; the last one
    to close restores them, so no route left behind sends paramiko's banner tracebacks (P2)
    to Python's last-resort stderr handler.
    """

    _lock = threading.Lock()
    _active = 0
    _saved: tuple[int, bool] = (logging.NOTSET, True)

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        plog = logging.getLogger("paramiko")
        with ParamikoLog._lock:
            if ParamikoLog._active == 0:
                ParamikoLog._saved = (plog.level, plog.propagate)
            ParamikoLog._active += 1
            plog.addHandler(self.handler)
            plog.setLevel(logging.INFO)
            plog.propagate = False
        self._open = True

    def close(self) -> None:
        if not self._open:
            return
        self._open = False
        plog = logging.getLogger("paramiko")
        with ParamikoLog._lock:
            plog.removeHandler(self.handler)
            ParamikoLog._active -= 1
            if ParamikoLog._active == 0:
                plog.setLevel(ParamikoLog._saved[0])
                plog.propagate = ParamikoLog._saved[1]
        self.handler.close()


def route_paramiko_log(path: Path) -> ParamikoLog:
    """Send paramiko's own logging to ``path`` (ssh.log) until ``.close()``."""
    return ParamikoLog(path)


def pinned_key(keytype: str, blob: str) -> paramiko.PKey:
    """A host key from its OpenSSH type and base64 blob (as a known_hosts line has them), to pin."""
    return paramiko.PKey.from_type_string(keytype, base64.b64decode(blob))


class SshSession:
    """An SSH connection to a guest. ``connect(deadline)``, then ``run``/``run_check``/``put``/``get``.

    ``host_keys`` are the guest's pinned public host keys; anything else is rejected.
    """

    def __init__(self, host: str, port: int, *, user: str, key_file: Path, host_keys: Sequence[HostKey],
                 log_path: Path | None = None, name: str = "ssh") -> None:
        if not host_keys:
            raise GuestError(f"{name}: no pinned host key: refusing to trust whatever answers")
        self.host, self.port, self.user, self.key_file = host, port, user, key_file
        self.host_keys = list(host_keys)
        self.log_path = log_path
        self.name = name
        self._client: paramiko.SSHClient | None = None
        self.attempts = 0
        self.connected_after: float | None = None

    def _note(self, text: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} {self.name}: {text}\n")

    def _new_client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        hk = client.get_host_keys()
        name = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        for keytype, blob in self.host_keys:
            hk.add(name, keytype, pinned_key(keytype, blob))
        return client

    def connect(self, deadline: Deadline, *, banner_timeout: float = 3.0,
                alive: Callable[[], None] | None = None, probe: str = "true") -> None:
        """Connect with key auth and run ``probe`` once; retry "not up yet" errors until ``deadline``.

        ``alive`` is called between tries and may raise (QEMU died, kernel panicked).
        Raises GuestError at once on authentication or host-key failure, GuestTimeout when the
        deadline expires (the last transient error is chained).
        """
        last: BaseException | None = None
        start = time.monotonic()
        while True:
            if alive is not None:
                alive()
            self.attempts += 1
            client = self._new_client()
            per_try = max(deadline.cap(banner_timeout + 2.0), 0.5)
            try:
                client.connect(self.host, self.port, username=self.user, key_filename=str(self.key_file),
                               look_for_keys=False, allow_agent=False, timeout=per_try,
                               banner_timeout=banner_timeout, auth_timeout=per_try + 5.0)
                self._client = client
                self.run(probe, timeout=max(deadline.remaining, 10.0)).check()
                self.connected_after = time.monotonic() - start
                self._note(f"connected to {self.host}:{self.port} after {self.attempts} attempt(s), "
                           f"{self.connected_after:.1f}s")
                return
            except paramiko.AuthenticationException as exc:
                client.close()
                self._client = None
                self._note(f"authentication failed: {exc}")
                raise GuestError(f"{self.name}: SSH key authentication as {self.user!r} refused by "
                                 f"{self.host}:{self.port}: {exc}",
                                 evidence={"key_file": str(self.key_file)}) from exc
            except paramiko.BadHostKeyException as exc:
                client.close()
                self._client = None
                self._note(f"host key mismatch: {exc}")
                raise GuestError(f"{self.name}: guest host key does not match the pinned key: {exc}") from exc
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):   # RejectPolicy: an unpinned key type
                    client.close()
                    self._client = None
                    raise GuestError(f"{self.name}: guest offered a host key that is not pinned: {exc}") from exc
                last = exc
            except GuestError as exc:   # the probe's channel failed (run() types it): not up yet, retry
                if not isinstance(exc.__cause__, (paramiko.SSHException, EOFError)):
                    client.close()
                    self._client = None
                    raise
                last = exc
            except _RETRYABLE as exc:
                last = exc
            except OSError as exc:
                last = exc
            client.close()
            self._client = None
            if deadline.expired:
                self._note(f"gave up after {self.attempts} attempts: {last!r}")
                raise GuestTimeout(f"{self.name}: SSH to {self.host}:{self.port} not ready within "
                                   f"{deadline.seconds:.0f}s ({self.attempts} attempts; last: {last!r})",
                                   evidence={"attempts": self.attempts, "last_error": repr(last)}) from last
            time.sleep(min(0.5, deadline.remaining))

    @property
    def client(self) -> paramiko.SSHClient:
        if self._client is None:
            raise GuestError(f"{self.name}: not connected")
        return self._client

    def run(self, cmd: str, timeout: float | None = None, *, alive: Callable[[], None] | None = None) -> CommandResult:
        """Run ``cmd``; return CommandResult(transport="ssh") with stdout, stderr, exit status.

        Raises GuestTimeout when the command does not finish within ``timeout`` (default 60 s),
        GuestError when the connection closes before an exit status arrives (never a made-up
        status). ``alive`` is called about every 0.25 s while waiting and may raise (QEMU exited).
        """
        limit = 60.0 if timeout is None else timeout
        start = time.monotonic()
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise GuestError(f"{self.name}: SSH transport is closed")
        try:
            chan = transport.open_session(timeout=limit)
        except paramiko.SSHException as exc:   # typed: a guest that stopped answering is a timeout
            self._note(f"$ {cmd} -> no channel: {exc}")
            kind = GuestTimeout if "Timeout" in str(exc) else GuestError
            raise kind(f"{self.name}: could not open an SSH channel for {cmd!r} within {limit:.0f}s: {exc}",
                       evidence={"cmd": cmd}) from exc
        try:
            chan.settimeout(limit)
            chan.exec_command(cmd)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            deadline = Deadline(limit)
            next_check = time.monotonic() + 0.25
            while True:
                if alive is not None and time.monotonic() >= next_check:
                    alive()
                    next_check = time.monotonic() + 0.25
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                elif deadline.expired:
                    self._note(f"$ {cmd} -> timeout after {limit:.0f}s")
                    raise GuestTimeout(f"{self.name}: command {cmd!r} did not finish within {limit:.0f}s",
                                       evidence={"cmd": cmd, "stdout": out.decode(errors='replace')[-2000:]})
                else:
                    time.sleep(0.01)
            if chan.exit_status == -1:   # closed without "exit-status" (paramiko's -1 is no real status)
                self._note(f"$ {cmd} -> channel closed without an exit status")
                raise GuestError(f"{self.name}: channel closed while running {cmd!r} without an exit status "
                                 "(connection lost, or the command was killed by a signal)",
                                 evidence={"cmd": cmd, "stdout": out.decode(errors='replace')[-2000:]})
            rc = chan.recv_exit_status()
        except TimeoutError as exc:
            raise GuestTimeout(f"{self.name}: command {cmd!r}: channel timed out", evidence={"cmd": cmd}) from exc
        except (paramiko.SSHException, EOFError) as exc:
            raise GuestError(f"{self.name}: SSH channel failed while running {cmd!r}: {exc}",
                             evidence={"cmd": cmd}) from exc
        finally:
            chan.close()
        result = CommandResult(cmd=cmd, stdout=out.decode(errors="replace"), stderr=err.decode(errors="replace"),
                               exit_status=rc, duration=time.monotonic() - start, transport="ssh")
        self._note(f"$ {cmd} -> exit {rc} ({result.duration:.2f}s)")
        return result

    def run_check(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.run(cmd, timeout).check()

    def put(self, local: Path, remote: str) -> None:
        with self.client.open_sftp() as sftp:
            sftp.put(str(local), remote)

    def get(self, remote: str, local: Path) -> None:
        with self.client.open_sftp() as sftp:
            sftp.get(remote, str(local))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
