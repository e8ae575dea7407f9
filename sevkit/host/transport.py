"""How RawInputs are obtained: locally, over SSH (one batched command), or from a bundle.

All three feed the same pure grader, so "the results equal the local probe's" holds by
construction. The SSH side runs collector.py's source under ``python3 -`` on the remote host.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from .. import userfiles
from ..deadline import Deadline
from ..errors import InputError, TransportError, UsageError
from ..userfiles import atomic_output
from . import collector
from .collector import SCHEMA
from .rawinputs import RawInputs
from .schema import loads_bounded, schema_problem

BUNDLE_RAW = "raw.json"
# One remote command: the collector arrives on stdin. A non-root login uses passwordless sudo
# when it has it (CPUID, MSRs and /dev/sev need root); otherwise it runs as is and the
# unreadable inputs come back as access errors.
REMOTE_COMMAND = ('if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; '
                  'then exec sudo -n python3 -; else exec python3 -; fi')
TARGET_RE = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[0-9a-fA-F:]+\]|[^@/:\s\[\]]+)"
                       r"(?::(?P<port>\d{1,5}))?/?$")


@dataclass(frozen=True)
class Target:
    kind: str                 # "local" or "ssh"
    host: str = ""
    user: str = "root"
    port: int = 22

    def __str__(self) -> str:
        return "local" if self.kind == "local" else f"ssh://{self.user}@{self.host}:{self.port}"


def parse_target(text: str) -> Target:
    """'local' or 'ssh://user@host[:port]'; UsageError with the expected form otherwise."""
    t = (text or "").strip()
    if t in ("", "local"):
        return Target("local")
    m = TARGET_RE.match(t)
    if not m:
        raise UsageError(f"bad target {text!r}: expected 'local' or 'ssh://user@host[:port]'")
    port = int(m.group("port") or 22)
    if not 0 < port < 65536:
        raise UsageError(f"bad target {text!r}: port {port} out of range")
    return Target("ssh", m.group("host").strip("[]"), m.group("user") or "root", port)


def collect_local() -> RawInputs:
    return RawInputs(collector.collect(), origin="local")


@dataclass
class SshStats:
    connects: int = 0
    commands: int = 0          # remote commands run: the round trips that matter
    bytes_in: int = 0
    seconds: float = 0.0


def collect_ssh(target: Target, identity: str | None = None, *, known_hosts: str | None = None,
                timeout: float = 60.0, stats: SshStats | None = None) -> RawInputs:
    """One SSH connection, one remote command: ``python3 -`` reading the collector on stdin.

    The host key must already be known (``known_hosts``, default ~/.ssh/known_hosts, or
    $SEVKIT_KNOWN_HOSTS): unknown keys are refused, never added.
    """
    import paramiko

    stats = stats if stats is not None else SshStats()
    deadline = Deadline(timeout)
    started = time.monotonic()
    pkey = _load_identity(identity) if identity is not None else None
    client = paramiko.SSHClient()
    try:
        kh = known_hosts or os.environ.get("SEVKIT_KNOWN_HOSTS") or os.path.expanduser("~/.ssh/known_hosts")
        if os.path.exists(kh):
            userfiles.check_regular(kh, "known_hosts")     # a FIFO here would block paramiko
            try:
                client.load_host_keys(kh)
            except (UnicodeDecodeError, ValueError, paramiko.SSHException) as exc:
                raise InputError(f"known_hosts {userfiles.shown(kh)}: not readable ({exc})") from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(target.host, port=target.port, username=target.user, pkey=pkey,
                           timeout=deadline.cap(20), banner_timeout=deadline.cap(20), auth_timeout=deadline.cap(20),
                           allow_agent=identity is None, look_for_keys=identity is None)
        except paramiko.SSHException as exc:
            raise TransportError(f"ssh {target}: {exc}", evidence={"target": str(target), "known_hosts": kh}) from exc
        except OSError as exc:
            raise TransportError(f"ssh {target}: cannot connect: {exc}", evidence={"target": str(target)}) from exc
        stats.connects += 1
        source = Path(collector.__file__).read_bytes()
        stdin, stdout, stderr = client.exec_command(REMOTE_COMMAND, timeout=deadline.cap(timeout))
        stats.commands += 1
        stdin.write(source)
        stdin.channel.shutdown_write()
        out = _read_capped(stdout, userfiles.BUNDLE_RAW_JSON.limit, target)
        err = stderr.read(1 << 20).decode("utf-8", "replace")
        rc = stdout.channel.recv_exit_status()
        stats.bytes_in += len(out)
    except TimeoutError as exc:
        raise TransportError(f"ssh {target}: remote probe exceeded {timeout:.0f}s") from exc
    except (paramiko.SSHException, OSError) as exc:   # channel refused, connection lost mid-probe
        raise TransportError(f"ssh {target}: remote probe failed: {exc}", evidence={"target": str(target)}) from exc
    finally:
        client.close()
    stats.seconds = time.monotonic() - started
    if rc != 0:
        tail = " | ".join(err.strip().splitlines()[-3:]) or "(no stderr)"
        raise TransportError(f"ssh {target}: remote collector exited {rc}: {tail}",
                             evidence={"exit_status": rc, "stderr": err[-2000:]})
    try:
        return raw_from_json(out, f"ssh {target}: remote collector output", origin=str(target))
    except InputError as exc:
        raise TransportError(exc.message, evidence={"stdout_head": out[:500].decode("utf-8", "replace")}) from None


def _read_capped(stream: Any, cap: int, target: Target) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise TransportError(f"ssh {target}: remote collector output is over the "
                                 f"{userfiles.BUNDLE_RAW_JSON.text} cap for a {userfiles.BUNDLE_RAW_JSON.kind}")
        chunks.append(chunk)


def _load_identity(path: str) -> Any:
    """The private key of ``--identity`` (userfiles rules: regular file, size cap), or InputError
    naming the file (a binary or foreign file is one line, not a UnicodeDecodeError)."""
    import paramiko

    label = f"--identity {userfiles.shown(path)}"
    userfiles.read_file(path, userfiles.SSH_KEY, "--identity")     # type, size and emptiness first
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise InputError(f"{label}: the key is encrypted; use an unencrypted key or an ssh-agent") from None
    except (paramiko.SSHException, UnicodeDecodeError, ValueError, TypeError, IndexError) as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{label}: not a usable SSH private key ({detail})") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror or exc}") from None


def collect(target: Target, identity: str | None = None) -> RawInputs:
    if target.kind == "local":
        return collect_local()
    return collect_ssh(target, identity)


# -- bundles -------------------------------------------------------------------------------
def write_bundle(raw: RawInputs, path: str | Path) -> Path:
    """raw.json (what the grader reads) plus the bulky texts as files a person can open.

    Mode 0600 (it holds the kernel log, which hosts restrict with dmesg_restrict); written to a
    fresh O_EXCL temporary file in the destination folder and renamed into place
    (``userfiles.atomic_output``), so no planted symlink and no device node is ever written through."""
    members: dict[str, bytes] = {BUNDLE_RAW: json.dumps(raw.data, indent=1, sort_keys=True).encode()}
    d = raw.section("dmesg")
    if "text" in d:
        members["dmesg.txt"] = str(d["text"]).encode()
    if "text" in raw.section("cpuinfo"):
        members["cpuinfo.txt"] = str(raw.section("cpuinfo")["text"]).encode()
    members["README.txt"] = (f"sevkit host evidence bundle, collected {raw.data.get('collected_at')} from "
                             f"{raw.origin}. Grade it with: sevkit probe --bundle {Path(path).name}\n").encode()
    with atomic_output(path, "bundle", mode=0o600) as fh, tarfile.open(fileobj=fh, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(blob))
    return Path(path)


BUNDLE_MAX_MEMBERS = 16          # sevkit writes 4; raw.json is the first
BUNDLE_MAX_SCAN = 128 * 1024 * 1024   # decompressed bytes walked looking for raw.json


def _raw_json_of(fh: BinaryIO, label: str) -> bytes:
    with tarfile.open(fileobj=fh, mode="r:gz") as tar:
        for _ in range(BUNDLE_MAX_MEMBERS):
            member = tar.next()
            if member is None:
                break
            if member.name != BUNDLE_RAW:
                if tar.offset > BUNDLE_MAX_SCAN:
                    break
                continue
            if not member.isfile():
                raise InputError(f"{label}: {BUNDLE_RAW} is not a regular file")
            cap = userfiles.BUNDLE_RAW_JSON
            if member.size > cap.limit:
                raise InputError(f"{label}: {BUNDLE_RAW} is {member.size} bytes, over the {cap.text} cap "
                                 f"for a {cap.kind}")
            data = tar.extractfile(member)
            assert data is not None      # a regular member always has data
            return data.read(cap.limit + 1)
    raise InputError(f"{label}: no {BUNDLE_RAW} inside (not a sevkit collect bundle)")


def _check_gzip_whole(fh: BinaryIO, label: str) -> None:
    """Decompress the whole stream once (output discarded, at most BUNDLE_MAX_SCAN bytes): a bundle
    cut short anywhere, even after raw.json, is refused rather than graded as if complete."""
    inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    produced = 0
    while not inflate.eof:
        chunk = inflate.unconsumed_tail or fh.read(65536)
        if not chunk:
            raise InputError(f"{label}: truncated (the gzip stream ends early)")
        produced += len(inflate.decompress(chunk, 1 << 20))
        if produced > BUNDLE_MAX_SCAN:
            raise InputError(f"{label}: expands to over {BUNDLE_MAX_SCAN >> 20} MiB, not a sevkit collect bundle")


def read_bundle(path: str | Path) -> RawInputs:
    """The collector output inside a bundle, checked against the schema; InputError (one line
    naming the bundle) for anything else."""
    label = f"bundle {userfiles.shown(path)}"
    with userfiles.open_regular(path, "bundle") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise InputError(f"{label}: empty file")
        if size > userfiles.BUNDLE.limit:
            raise InputError(f"{label}: larger than the {userfiles.BUNDLE.text} cap for a {userfiles.BUNDLE.kind}")
        try:
            _check_gzip_whole(fh, label)
            fh.seek(0)
            blob = _raw_json_of(fh, label)
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{label}: not a readable tar.gz ({detail})") from None
    return raw_from_json(blob, label, origin=f"bundle:{path}")


def raw_from_json(blob: bytes, label: str, *, origin: str) -> RawInputs:
    """Collector JSON (from a bundle or a remote collector) -> RawInputs, or InputError naming ``label``."""
    try:
        data: Any = loads_bounded(blob)
    except ValueError as exc:
        raise InputError(f"{label}: {BUNDLE_RAW} is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(data, dict):
        raise InputError(f"{label}: {BUNDLE_RAW} is a JSON {type(data).__name__}, not collector output")
    if data.get("schema") != SCHEMA:
        raise InputError(f"{label}: raw inputs schema {str(data.get('schema'))[:40]!r} is not {SCHEMA}")
    problem = schema_problem(data)
    if problem is not None:
        raise InputError(f"{label}: {BUNDLE_RAW} does not fit the collector schema at {problem}")
    return RawInputs(data, origin=origin)
