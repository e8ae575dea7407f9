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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..deadline import Deadline
from ..errors import InputError, TransportError, UsageError
from . import collector
from .rawinputs import RawInputs

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
    if identity and not os.path.isfile(identity):
        raise InputError(f"--identity {identity}: no such key file")
    client = paramiko.SSHClient()
    try:
        kh = known_hosts or os.environ.get("SEVKIT_KNOWN_HOSTS") or os.path.expanduser("~/.ssh/known_hosts")
        if os.path.exists(kh):
            client.load_host_keys(kh)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(target.host, port=target.port, username=target.user, key_filename=identity or None,
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
        out = stdout.read()
        err = stderr.read().decode("utf-8", "replace")
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
        data = json.loads(out)
    except ValueError as exc:
        raise TransportError(f"ssh {target}: remote collector output is not JSON ({exc})",
                             evidence={"stdout_head": out[:500].decode("utf-8", "replace")}) from exc
    return RawInputs(data, origin=str(target))


def collect(target: Target, identity: str | None = None) -> RawInputs:
    if target.kind == "local":
        return collect_local()
    return collect_ssh(target, identity)


# -- bundles -------------------------------------------------------------------------------
def write_bundle(raw: RawInputs, path: str | Path) -> Path:
    """raw.json (what the grader reads) plus the bulky texts as files a person can open."""
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    members: dict[str, bytes] = {BUNDLE_RAW: json.dumps(raw.data, indent=1, sort_keys=True).encode()}
    d = raw.section("dmesg")
    if "text" in d:
        members["dmesg.txt"] = str(d["text"]).encode()
    if "text" in raw.section("cpuinfo"):
        members["cpuinfo.txt"] = str(raw.section("cpuinfo")["text"]).encode()
    members["README.txt"] = (f"sevkit host evidence bundle, collected {raw.data.get('collected_at')} from "
                             f"{raw.origin}. Grade it with: sevkit probe --bundle {path.name}\n").encode()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.part")   # concurrent writers never share a temp file
    with tarfile.open(tmp, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, path)
    return path


def read_bundle(path: str | Path) -> RawInputs:
    p = Path(path)
    if not p.exists():
        raise InputError(f"bundle {p}: no such file")
    if p.is_dir():
        raise InputError(f"bundle {p}: is a folder, expected a .tar.gz from 'sevkit collect'")
    try:
        if p.stat().st_size == 0:
            raise InputError(f"bundle {p}: empty file")
        with tarfile.open(p, "r:gz") as tar:
            member = tar.getmember(BUNDLE_RAW)
            fh = tar.extractfile(member)
            if fh is None:
                raise InputError(f"bundle {p}: {BUNDLE_RAW} is not a regular file")
            blob = fh.read()
    except KeyError:
        raise InputError(f"bundle {p}: no {BUNDLE_RAW} inside (not a sevkit collect bundle)") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"bundle {p}: not a readable tar.gz ({detail})") from None
    try:
        data: Any = json.loads(blob)
    except ValueError as exc:
        raise InputError(f"bundle {p}: {BUNDLE_RAW} is not valid JSON ({exc})") from None
    raw = RawInputs(data if isinstance(data, dict) else {}, origin=f"bundle:{p}")
    try:
        raw.validate()
    except ValueError as exc:
        raise InputError(f"bundle {p}: {exc}") from None
    return raw
