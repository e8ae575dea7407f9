"""One SSH connection to a fleet host (paramiko, host keys pinned, key authentication).

Long remote commands run under a small wrapper (``WRAPPER``): the command gets its own process
group, the wrapper prints that group's id and a heartbeat line every few seconds, and it
forwards HUP/TERM/INT to the group. The controller therefore
* sees a dead link as silence (no heartbeat within ``link_timeout``), not after TCP's 15 minutes;
* stops a remote suite with one ``kill -TERM -<pgid>`` (the suite's own SIGTERM handling then
  stops its QEMU processes, fixtures/evidence.py);
* relies on sshd for the rest: a pty session whose client vanished gets SIGHUP when sshd gives
  up on it (ClientAliveInterval), and the wrapper turns that into the same TERM.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..deadline import Deadline
from .errors import HostUnreachable, LinkLost, RemoteFailed

HEARTBEAT = "#sevkit-alive"
PGID_LINE = re.compile(r"#sevkit-pgid (\d+)")

# POSIX sh; "$@" is the command. `wait` returns early (>128) when a trapped signal arrives, so it
# is repeated until the group leader is really gone; its status is then the command's.
WRAPPER = r"""
hb=${SEVKIT_HEARTBEAT:-5}
setsid "$@" </dev/null &
child=$!
echo "#sevkit-pgid $child"
( while kill -0 "$child" 2>/dev/null; do echo "#sevkit-alive"; sleep "$hb"; done ) &
beat=$!
trap 'kill -TERM -"$child" 2>/dev/null' HUP TERM INT
while :; do
  wait "$child"; rc=$?
  kill -0 "$child" 2>/dev/null || break
done
kill "$beat" 2>/dev/null
exit $rc
"""


@dataclass
class Streamed:
    """The result of a streamed command: exit status (None if it never finished) and output."""

    status: int | None
    output: str
    pgid: int | None


def _why(exc: BaseException) -> str:
    """A socket timeout's str() is empty: say what it was."""
    return str(exc) or type(exc).__name__


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    if path.exists():
        keys.load(str(path))
    return keys


class RemoteHost:
    """``connect()``, then ``run`` (short commands), ``stream`` (long ones), ``put``/``get``."""

    def __init__(self, address: str, port: int, user: str, *, identity: Path | None,
                 known_hosts: Path, connect_timeout: float = 20.0, name: str = "") -> None:
        self.address, self.port, self.user = address, port, user
        self.identity, self.known_hosts = identity, known_hosts
        self.connect_timeout = connect_timeout
        self.name = name or address
        self._client: paramiko.SSHClient | None = None
        self.sessions = 0          # SSH channels opened (commands + sftp): the cost per host
        self.io_timeout = 30.0     # an SFTP read/write stalled this long is a lost link

    @property
    def where(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    def connect(self) -> None:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())   # unknown host keys are refused
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        t = self.connect_timeout
        try:
            client.connect(self.address, port=self.port, username=self.user,
                           key_filename=str(self.identity) if self.identity else None,
                           allow_agent=self.identity is None, look_for_keys=self.identity is None,
                           timeout=t, banner_timeout=t, auth_timeout=t)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostUnreachable(f"{self.name}: host key of {self.where} does not match {self.known_hosts}",
                                  evidence={"known_hosts": str(self.known_hosts)}) from exc
        except paramiko.SSHException as exc:
            client.close()
            raise HostUnreachable(f"{self.name}: ssh {self.where}: {exc}",
                                  evidence={"known_hosts": str(self.known_hosts)}) from exc
        except OSError as exc:
            client.close()
            raise HostUnreachable(f"{self.name}: ssh {self.where}: cannot connect: {exc}") from exc
        transport = client.get_transport()
        if transport is not None:
            transport.set_keepalive(5)
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _transport(self) -> paramiko.Transport:
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise LinkLost(f"{self.name}: SSH connection to {self.where} is closed")
        return transport

    def run(self, command: str, *, timeout: float | None = None, stdin: bytes | None = None) -> tuple[int, str, str]:
        """A short command: (exit status, stdout, stderr). LinkLost when the link fails or it gives
        no result within ``timeout`` (default ``io_timeout``: a quick command that stalls that
        long means the link is gone)."""
        timeout = self.io_timeout if timeout is None else timeout
        deadline = Deadline(timeout)
        try:
            chan = self._transport().open_session(timeout=deadline.cap(20))
            self.sessions += 1
            chan.settimeout(1.0)
            chan.exec_command(command)
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if deadline.expired:
                    chan.close()
                    raise LinkLost(f"{self.name}: SSH link to {self.where} silent: {command.split()[0]!r} "
                                   f"gave no result within {timeout:.0f}s",
                                   evidence={"command": command, "stdout_tail": out[-500:].decode(errors="replace")})
                time.sleep(0.05)
            status = chan.recv_exit_status()
            chan.close()
            return status, out.decode(errors="replace"), err.decode(errors="replace")
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.name}: SSH to {self.where} failed during {command.split()[0]!r}: {exc}") from exc

    def check(self, command: str, what: str, *, timeout: float | None = None) -> str:
        status, out, err = self.run(command, timeout=timeout)
        if status != 0:
            tail = " | ".join((err or out).strip().splitlines()[-3:]) or "(no output)"
            raise RemoteFailed(f"{self.name}: {what} failed (exit {status}): {tail}",
                               evidence={"command": command, "exit_status": status, "stderr": err[-2000:]})
        return out

    def stream(self, argv: list[str], *, cwd: str, env: dict[str, str] | None = None, on_line: Callable[[str], None],
               stop: Callable[[], bool], link_timeout: float, heartbeat: float = 5.0,
               timeout: float = 6 * 3600.0) -> Streamed:
        """Run ``argv`` under the wrapper with a pty, feeding each output line to ``on_line``.

        Returns when the command exits, or when ``stop()`` turns true (then the remote group gets
        SIGTERM and the command gets ``stop_grace`` seconds to finish its clean-up). Raises LinkLost
        when nothing (not even a heartbeat) arrived for ``link_timeout`` seconds.
        """
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in {**(env or {}), "SEVKIT_HEARTBEAT": str(heartbeat)}.items())
        command = (f"cd {shlex.quote(cwd)} && {envs} exec sh -c {shlex.quote(WRAPPER)} sevkit-wrapper "
                   + " ".join(shlex.quote(a) for a in argv))
        deadline = Deadline(timeout)
        lines: list[str] = []
        pgid: int | None = None
        buf = ""
        stopping_since: float | None = None
        try:
            chan = self._transport().open_session(timeout=20)
            self.sessions += 1
            chan.get_pty(term="dumb", width=200)
            chan.settimeout(0.5)
            chan.exec_command(command)
            last = time.monotonic()
            while True:
                try:
                    data = chan.recv(65536)
                except TimeoutError:
                    data = None
                if data:
                    last = time.monotonic()
                    buf += data.decode(errors="replace").replace("\r", "")
                    *complete, buf = buf.split("\n")
                    for line in complete:
                        m = PGID_LINE.fullmatch(line.strip())
                        if m and pgid is None:
                            pgid = int(m.group(1))
                        elif line.strip() != HEARTBEAT:
                            lines.append(line)
                            on_line(line)
                elif data == b"" or chan.exit_status_ready():
                    # EOF can come before the exit-status message: give it a moment to arrive
                    end = time.monotonic() + 10
                    while not chan.exit_status_ready() and time.monotonic() < end:
                        time.sleep(0.02)
                    break
                if time.monotonic() - last > link_timeout:
                    chan.close()
                    raise LinkLost(f"{self.name}: SSH link to {self.where} silent for {link_timeout:.0f}s "
                                   f"(no heartbeat) while running {argv[0]}",
                                   evidence={"output_tail": "\n".join(lines[-20:])})
                if stopping_since is None and (stop() or deadline.expired):
                    stopping_since = time.monotonic()
                    if pgid is not None:
                        self.run(f"kill -TERM -{pgid} 2>/dev/null; true", timeout=20)
                    else:
                        chan.close()
                        break
                if stopping_since is not None and time.monotonic() - stopping_since > 60:
                    chan.close()   # the pty's SIGHUP is the last word
                    break
            status = chan.recv_exit_status() if chan.exit_status_ready() else None
            chan.close()
            if buf.strip() and buf.strip() != HEARTBEAT:
                lines.append(buf)
                on_line(buf)
            return Streamed(status, "\n".join(lines), pgid)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.name}: SSH to {self.where} dropped while running {argv[0]}: {exc}",
                           evidence={"output_tail": "\n".join(lines[-20:])}) from exc

    def _sftp(self) -> paramiko.SFTPClient:
        sftp = self._transport().open_sftp_client()
        if sftp is None:
            raise LinkLost(f"{self.name}: {self.where} refused an SFTP session")
        chan = sftp.get_channel()
        if chan is not None:
            chan.settimeout(self.io_timeout)   # never wait on a dead link for TCP's minutes
        self.sessions += 1
        return sftp

    def put(self, local: Path, remote: str) -> None:
        try:
            sftp = self._sftp()
            try:
                sftp.put(str(local), remote)
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.name}: copying {local.name} to {self.where} failed: {_why(exc)}") from exc

    def put_many(self, files: dict[str, Path], remote_dir: str) -> None:
        """Upload several files over one SFTP session."""
        try:
            sftp = self._sftp()
            try:
                for name, local in files.items():
                    sftp.put(str(local), f"{remote_dir}/{name}")
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.name}: copying to {self.where} failed: {_why(exc)}") from exc

    def get(self, remote: str, local: Path) -> None:
        try:
            sftp = self._sftp()
            try:
                tmp = local.with_name(local.name + f".{os.getpid()}.part")
                sftp.get(remote, str(tmp))
                os.replace(tmp, local)
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise LinkLost(f"{self.name}: copying {remote} from {self.where} failed: {_why(exc)}") from exc
