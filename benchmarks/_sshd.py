"""A private OpenSSH server on 127.0.0.1 for the SSH probe self-test and benchmark.

Throw-away host and user keys in a caller-given folder, root login by key only, pinned
through a known_hosts file. The server runs in its own process group and is always stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sevkit.deadline import Deadline

SSHD = "/usr/sbin/sshd"


class SshdUnavailable(RuntimeError):
    """sshd or ssh-keygen is missing, or sshd would not start."""


@dataclass
class Sshd:
    port: int
    key: Path
    known_hosts: Path
    log: Path
    proc: subprocess.Popen[bytes]

    @property
    def target(self) -> str:
        return f"ssh://root@127.0.0.1:{self.port}"

    def sessions(self) -> int:
        """Remote commands sshd started (LogLevel VERBOSE: 'Starting session: command ...')."""
        return self.log.read_text(errors="replace").count("Starting session: command")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"sevkit-test-{path.name}",
                    "-f", str(path)], check=True, timeout=30, capture_output=True)


@contextmanager
def private_sshd(folder: Path) -> Iterator[Sshd]:
    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen")):
        raise SshdUnavailable(f"{SSHD} and ssh-keygen are required (Debian: openssh-server)")
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    keygen(folder / "host_key")
    keygen(folder / "user_key")
    (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "LogLevel VERBOSE", ""]))
    # sshd refuses to start without its privilege-separation folder (absent in minimal containers).
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise SshdUnavailable(f"sshd -t rejected the config: {check.stderr.strip()}")
    host_pub = (folder / "host_key.pub").read_text().split()
    known = folder / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    log = folder / "sshd.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = Deadline(15)
        while True:
            if proc.poll() is not None:
                raise SshdUnavailable(f"sshd exited {proc.returncode}: {log.read_text()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=max(0.1, deadline.cap(1))):
                    break
            except OSError:
                if deadline.expired:
                    raise SshdUnavailable(f"sshd did not listen on 127.0.0.1:{port} within 15 s") from None
                time.sleep(0.05)
        yield Sshd(port, folder / "user_key", known, log, proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop sshd and every session child (its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
