"""Planting a secret in a guest's private memory without the plaintext ever leaving the guest.

The host sends only a random seed; the guest expands it (SHA-256 in counter mode) into the
secret, keeps many copies in the anonymous memory of a long-lived, mlock'ed process and in a
tmpfs file (kernel page cache), and writes a status file holding counts and a hash of the
secret, never the secret. The host derives the same needle from the seed, plus a control needle
that is never planted anywhere. Serial, SSH and virtio buffers are shared, unencrypted memory in
every SEV mode (sev-facts §8.7), so nothing that crosses them may equal the needle.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..deadline import Deadline
from ..errors import CommandFailed, GuestError
from ..guestpy import detached_python_command
from ..results import Shell

SECRET_LEN = 64
COPIES = 256            # one per 4 KiB page of the planter's buffer

# Runs in the guest (python3), shipped by sevkit.guestpy (base64-encoded).
PLANTER = r'''
import ctypes, hashlib, json, os, sys, time
seed = bytes.fromhex(sys.argv[1]); copies = int(sys.argv[2]); tag = sys.argv[3]
def expand(label, n):
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label + seed + i.to_bytes(4, "little")).digest()
        i += 1
    return out[:n]
secret = expand(b"sevkit-secret\0", int(sys.argv[4]))
mlock = "not tried"
try:
    libc = ctypes.CDLL(None, use_errno=True)
    mlock = "ok" if libc.mlockall(3) == 0 else "errno %d" % ctypes.get_errno()
except Exception as exc:
    mlock = "failed: %r" % (exc,)
page = 4096
buf = bytearray(copies * page)
for i in range(copies):
    buf[i * page + 64:i * page + 64 + len(secret)] = secret
shm = "/dev/shm/sevkit-secret-%s.bin" % tag
with open(shm, "wb") as fh:
    fh.write(bytes(buf))
with open(shm, "rb") as fh:
    in_file = fh.read().count(secret)
status = {"pid": os.getpid(), "copies_anon": bytes(buf).count(secret), "copies_tmpfs": in_file,
          "tmpfs_file": shm, "secret_sha256": hashlib.sha256(secret).hexdigest(), "mlockall": mlock}
tmp = "/run/sevkit-plant-%s.json.tmp" % tag
with open(tmp, "w") as fh:
    json.dump(status, fh)
os.rename(tmp, "/run/sevkit-plant-%s.json" % tag)
del secret
while True:
    time.sleep(3600)
    buf[0] ^= 0
'''


def expand(label: bytes, seed: bytes, n: int) -> bytes:
    """SHA-256 in counter mode, exactly as the planter does it."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(label + seed + i.to_bytes(4, "little")).digest()
        i += 1
    return out[:n]


@dataclass(frozen=True)
class Secret:
    """A fresh seed and what follows from it. ``needle`` is the planted plaintext; ``control``
    is derived with another label and planted nowhere (a scan must never find it)."""

    seed: bytes
    tag: str
    length: int = SECRET_LEN

    @classmethod
    def fresh(cls, length: int = SECRET_LEN) -> Secret:
        return cls(secrets.token_bytes(32), secrets.token_hex(4), length)

    @property
    def needle(self) -> bytes:
        return expand(b"sevkit-secret\0", self.seed, self.length)

    @property
    def control(self) -> bytes:
        return expand(b"sevkit-control\0", self.seed, self.length)

    @property
    def needle_sha256(self) -> str:
        return hashlib.sha256(self.needle).hexdigest()

    def __repr__(self) -> str:   # never print the seed or the secret by accident
        return f"Secret(tag={self.tag!r}, needle_sha256={self.needle_sha256[:16]}…)"


@dataclass(frozen=True)
class Planted:
    secret: Secret
    pid: int
    copies_anon: int
    copies_tmpfs: int
    tmpfs_file: str
    mlockall: str
    plant_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.secret.tag, "needle_sha256": self.secret.needle_sha256,
                "needle_len": self.secret.length, "guest_pid": self.pid, "copies_anon": self.copies_anon,
                "copies_tmpfs": self.copies_tmpfs, "tmpfs_file": self.tmpfs_file, "mlockall": self.mlockall,
                "plant_seconds": round(self.plant_seconds, 3)}


def plant_command(secret: Secret, copies: int = COPIES) -> str:
    """The shell command that installs the planter as /run/sevkit-plant-<tag>.py and starts it
    detached (it must outlive the shell)."""
    return detached_python_command(PLANTER, f"/run/sevkit-plant-{secret.tag}.py",
                                   [secret.seed.hex(), str(copies), secret.tag, str(secret.length)])


def plant(shell: Shell, secret: Secret, *, copies: int = COPIES, timeout: float = 60.0) -> Planted:
    """Start the planter in the guest and wait for its status file. Raises GuestError/CommandFailed."""
    deadline = Deadline(timeout)
    shell.run(plant_command(secret, copies), timeout=deadline.cap(30.0)).check()
    status_file = f"/run/sevkit-plant-{secret.tag}.json"
    while True:
        r = shell.run(f"cat {status_file} 2>/dev/null || true", timeout=deadline.cap(30.0))
        text = r.stdout.strip()
        if text.startswith("{"):
            break
        if deadline.expired:
            ps = shell.run("ps ax 2>/dev/null | grep -c sevkit-plant || true", timeout=10.0).stdout.strip()
            raise GuestError(f"the secret planter wrote no status within {timeout:.0f}s",
                             evidence={"status_file": status_file, "planter_processes": ps})
        shell.run("sleep 0.5", timeout=deadline.cap(10.0))
    try:
        st = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        raise GuestError("the planter's status is not JSON", evidence={"status": text[:500]}) from None
    if st.get("secret_sha256") != secret.needle_sha256:
        raise GuestError("the guest derived a different secret from the seed (hash mismatch)",
                         evidence={"guest": st.get("secret_sha256"), "host": secret.needle_sha256})
    if int(st.get("copies_anon", 0)) < copies or int(st.get("copies_tmpfs", 0)) < copies:
        raise CommandFailed("the planter did not place all copies", evidence=st)
    if st.get("mlockall") != "ok":
        # Unlocked copies could be swapped out of guest RAM, and a scan would then prove nothing.
        raise GuestError(f"the planter could not lock its copies in RAM (mlockall: {st.get('mlockall')})",
                         evidence=st)
    return Planted(secret, int(st["pid"]), int(st["copies_anon"]), int(st["copies_tmpfs"]),
                   str(st["tmpfs_file"]), str(st["mlockall"]), deadline.elapsed)


def unplant(shell: Shell, planted: Planted, timeout: float = 30.0) -> None:
    """Stop the planter and remove its files (the freed pages may still hold copies: seeds are
    never reused)."""
    tag = planted.secret.tag
    shell.run(f"kill {planted.pid} 2>/dev/null; rm -f {planted.tmpfs_file} /run/sevkit-plant-{tag}.json "
              f"/run/sevkit-plant-{tag}.py", timeout=timeout)
