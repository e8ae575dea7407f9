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
# Each copy sits at offset 64 of its own page of an anonymous mapping, so one copy = one page. The
# mapping is MADV_NOHUGEPAGE: khugepaged would otherwise copy the pages into a huge page (new
# physical pages) while the host reads. The guest-physical address of each copy comes from
# /proc/self/pagemap (root sees PFNs: bits 54:0, bit 63 = present;
# Documentation/admin-guide/mm/pagemap.rst); the tmpfs copies are mapped MAP_SHARED so their
# page-cache pages show there too. mlock does not pin a physical page (compaction
# may move it), so SIGUSR1 re-reads the addresses into /run/sevkit-plant-<tag>.gpas.json and the host
# can tell whether a page moved during its reads.
PLANTER = r'''
import ctypes, hashlib, json, mmap, os, signal, sys, time
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
buf = mmap.mmap(-1, copies * page, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
thp = "default"
try:
    buf.madvise(mmap.MADV_NOHUGEPAGE)
    thp = "MADV_NOHUGEPAGE"
except (AttributeError, OSError) as exc:
    thp = "madvise failed: %r" % (exc,)
base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
for i in range(copies):
    at = i * page + 64
    buf[at:at + len(secret)] = secret
shm = "/dev/shm/sevkit-secret-%s.bin" % tag
with open(shm, "wb") as fh:
    fh.write(buf[:])
fh_map = open(shm, "r+b")
mm = mmap.mmap(fh_map.fileno(), copies * page, mmap.MAP_SHARED)
mbase = ctypes.addressof(ctypes.c_char.from_buffer(mm))
in_file = mm[:].count(secret)
anon_va = [base + i * page + 64 for i in range(copies)]
shm_va = [mbase + i * page + 64 for i in range(copies)]
def gpas(vas):
    out = []
    with open("/proc/self/pagemap", "rb") as pm:
        for va in vas:
            pm.seek(va // page * 8)
            e = int.from_bytes(pm.read(8), "little")
            pfn = e & ((1 << 55) - 1)
            out.append(pfn * page + va % page if e >> 63 and pfn else None)
    return out
def where():
    return {"anon_gpas": gpas(anon_va), "tmpfs_gpas": gpas(shm_va)}
def on_usr1(signum, frame):
    tmp = "/run/sevkit-plant-%s.gpas.json.tmp" % tag
    with open(tmp, "w") as fh:
        json.dump(dict(where(), at=time.time()), fh)
    os.rename(tmp, "/run/sevkit-plant-%s.gpas.json" % tag)
signal.signal(signal.SIGUSR1, on_usr1)
status = {"pid": os.getpid(), "copies_anon": buf[:].count(secret), "copies_tmpfs": in_file, "anon_thp": thp,
          "tmpfs_file": shm, "secret_sha256": hashlib.sha256(secret).hexdigest(), "mlockall": mlock,
          "secret_offset_in_page": 64}
status.update(where())
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
    # Guest-physical address of each copy (None: the guest's pagemap showed no page), per holder.
    anon_gpas: tuple[int | None, ...] = ()
    tmpfs_gpas: tuple[int | None, ...] = ()
    anon_thp: str = ""      # MADV_NOHUGEPAGE on the buffer, or why not

    @property
    def pages(self) -> dict[int, str]:
        """Page-aligned gpa -> holder ("anon" / "tmpfs") of every copy the guest located."""
        out: dict[int, str] = {}
        for holder, gpas in (("anon", self.anon_gpas), ("tmpfs", self.tmpfs_gpas)):
            for g in gpas:
                if g is not None:
                    out.setdefault(g & ~0xFFF, holder)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"tag": self.secret.tag, "needle_sha256": self.secret.needle_sha256,
                "needle_len": self.secret.length, "guest_pid": self.pid, "copies_anon": self.copies_anon,
                "copies_tmpfs": self.copies_tmpfs, "tmpfs_file": self.tmpfs_file, "mlockall": self.mlockall,
                "anon_thp": self.anon_thp,
                "copies_located": {"anon": sum(g is not None for g in self.anon_gpas),
                                   "tmpfs": sum(g is not None for g in self.tmpfs_gpas)},
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
                   str(st["tmpfs_file"]), str(st["mlockall"]), deadline.elapsed,
                   _gpas(st.get("anon_gpas")), _gpas(st.get("tmpfs_gpas")), str(st.get("anon_thp", "")))


def _gpas(value: Any) -> tuple[int | None, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(int(v) if isinstance(v, int) and v > 0 else None for v in value)


def relocate(shell: Shell, planted: Planted, *, timeout: float = 30.0) -> tuple[tuple[int | None, ...],
                                                                                 tuple[int | None, ...]]:
    """The copies' guest-physical addresses now (the planter re-reads its pagemap on SIGUSR1)."""
    deadline = Deadline(timeout)
    path = f"/run/sevkit-plant-{planted.secret.tag}.gpas.json"
    shell.run(f"rm -f {path}; kill -USR1 {planted.pid}", timeout=deadline.cap(10.0)).check()
    while True:
        text = shell.run(f"cat {path} 2>/dev/null || true", timeout=deadline.cap(30.0)).stdout.strip()
        if text.startswith("{"):
            break
        if deadline.expired:
            raise GuestError(f"the planter did not re-read its page addresses within {timeout:.0f}s",
                             evidence={"file": path})
        shell.run("sleep 0.3", timeout=deadline.cap(10.0))
    try:
        st = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        raise GuestError("the planter's page addresses are not JSON", evidence={"text": text[:300]}) from None
    return _gpas(st.get("anon_gpas")), _gpas(st.get("tmpfs_gpas"))


def unplant(shell: Shell, planted: Planted, timeout: float = 30.0) -> None:
    """Stop the planter and remove its files (the freed pages may still hold copies: seeds are
    never reused)."""
    tag = planted.secret.tag
    shell.run(f"kill {planted.pid} 2>/dev/null; rm -f {planted.tmpfs_file} /run/sevkit-plant-{tag}.json "
              f"/run/sevkit-plant-{tag}.gpas.json /run/sevkit-plant-{tag}.py", timeout=timeout)
