"""Per-run guest credentials, handed to the guest through QEMU ``-fw_cfg``.

Nothing secret is baked into the image. Each run makes:

* an ed25519 client key pair: the public half becomes root's ``authorized_keys``;
* an ed25519 SSH *host* key: the guest's sshd uses only this key, so the host pins exactly this
  run's key (paramiko RejectPolicy). A baked host key would be shared by every guest ever booted
  from the image and sit in the cache for anyone to copy; a per-run one costs nothing (no RSA
  keygen under TCG) and proves the SSH peer is the guest this run started;
* a random serial-console root password: only its SHA-512 crypt hash goes to the guest; the
  plaintext stays in memory (``root_password``, excluded from repr) and is never written to disk.

The guest's ``sevkit-credentials.service`` (sevkit/image/guest/) reads
``/sys/firmware/qemu_fw_cfg/by_name/opt/org.sevkit/<name>/raw`` before sshd and the serial getty start.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ImageError

FW_CFG_PREFIX = "opt/org.sevkit/"
FW_CFG_NAMES = ("authorized_keys", "root_password_hash", "ssh_host_ed25519_key")


@dataclass(frozen=True)
class GuestCredentials:
    private_key_path: Path            # the client key (OpenSSH format, 0600); paramiko loads it
    public_key_line: str              # "ssh-ed25519 AAAA... sevkit-run"
    known_host_key: str               # the guest's host key, "ssh-ed25519 AAAA..." to pin
    fw_cfg: list[tuple[str, Path]]    # (name, file) pairs -> -fw_cfg name=N,file=F
    root_password: str = field(repr=False)

    def fw_cfg_args(self) -> list[str]:
        """The QEMU arguments, ready for an argv."""
        args: list[str] = []
        for name, path in self.fw_cfg:
            # QEMU's option syntax: a comma inside a value is written twice
            args += ["-fw_cfg", f"name={name},file={str(path).replace(',', ',,')}"]
        return args

    def known_hosts_line(self, host: str, port: int = 22) -> str:
        """A known_hosts line for ``host:port`` (OpenSSH's ``[host]:port`` form when port != 22)."""
        who = host if port == 22 else f"[{host}]:{port}"
        return f"{who} {self.known_host_key}"


def _ed25519() -> tuple[bytes, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def _write_private(path: Path, data: bytes) -> Path:
    """Create ``path`` as 0600 from the start (no window where it is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def sha512_crypt(password: str) -> str:
    """``$6$...`` via ``openssl passwd -6`` (the password goes on stdin, never on a command line)."""
    try:
        out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n",
                             capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise ImageError("openssl not found: it hashes the guest's console password "
                         "(apt-get install openssl)") from None
    except subprocess.TimeoutExpired:
        raise ImageError("openssl passwd did not answer within 30 s") from None
    hashed = out.stdout.strip()
    if out.returncode != 0 or not hashed.startswith("$6$"):
        raise ImageError(f"openssl passwd -6 failed (exit {out.returncode}): {out.stderr.strip()[:200]}",
                         evidence={"stderr": out.stderr[-1000:]})
    return hashed


def make_credentials(workdir: str | Path) -> GuestCredentials:
    """Make this run's credentials in ``workdir`` (created 0700; keep it out of reports/: it holds a
    private key). Every file written is 0600. Returns what the launcher and the SSH client need."""
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    client_private, client_public = _ed25519()
    host_private, host_public = _ed25519()
    password = secrets.token_urlsafe(18)
    public_line = f"{client_public} sevkit-run"

    key_path = _write_private(folder / "id_ed25519", client_private)
    _write_private(folder / "id_ed25519.pub", (public_line + "\n").encode())
    files = {
        "authorized_keys": (public_line + "\n").encode(),
        "root_password_hash": (sha512_crypt(password) + "\n").encode(),
        "ssh_host_ed25519_key": host_private,
    }
    fw_cfg = []
    for name in FW_CFG_NAMES:
        path = _write_private(folder / f"fw_cfg.{name}", files[name])
        fw_cfg.append((FW_CFG_PREFIX + name, path.resolve()))
    return GuestCredentials(private_key_path=key_path.resolve(), public_key_line=public_line,
                            known_host_key=host_public, fw_cfg=fw_cfg, root_password=password)
