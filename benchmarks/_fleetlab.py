"""A real labgrid lab on one machine: coordinator, exporter, and "hosts" that are network
namespaces, each with its own OpenSSH server, for the fleet self-tests, demo and benchmark.

Each host ``i`` is a namespace of our own (``sevkit-fl-<tag>-<i>``) joined to the root namespace
by a veth pair with 10.<net>.<i>.1/30 (root side) and 10.<net>.<i>.2/30 (its sshd). Only
namespaces and links created here are touched. The exporter publishes one ``NetworkService`` per
host; the place of the same name matches it and carries the tags given. Everything is stopped
and deleted on exit, on every path.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._sshd import SSHD, keygen
from sevkit.deadline import Deadline

BIN = Path(sys.executable).parent


class LabUnavailable(RuntimeError):
    """Not root, or ip/sshd/labgrid missing."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def _wait_log(proc: subprocess.Popen[bytes], log: Path, text: str, seconds: float, what: str) -> None:
    deadline = Deadline(seconds)
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None:
            raise LabUnavailable(f"{what} exited {proc.returncode}: {log.read_text(errors='replace')[-800:]}")
        if deadline.expired:
            raise LabUnavailable(f"{what} not ready within {seconds:.0f}s: {log.read_text(errors='replace')[-800:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NsHost:
    index: int
    netns: str
    veth_root: str
    address: str
    tags: dict[str, str]
    folder: Path
    sshd: subprocess.Popen[bytes] | None = None

    @property
    def place(self) -> str:
        return f"h{self.index:02d}"

    def pids(self) -> list[int]:
        """Every process in the namespace (sshd included)."""
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split()]

    def stray_pids(self) -> list[int]:
        """Processes in the namespace other than its sshd listener."""
        keep = {self.sshd.pid} if self.sshd is not None else set()
        return [p for p in self.pids() if p not in keep]

    def link(self, up: bool) -> None:
        _ip("link", "set", self.veth_root, "up" if up else "down")


@dataclass
class FleetLab:
    folder: Path
    coordinator: str = ""
    hosts: list[NsHost] = field(default_factory=list)
    user_key: Path = Path()
    known_hosts: Path = Path()
    tag: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def host(self, place: str) -> NsHost:
        return next(h for h in self.hosts if h.place == place)


def check_available() -> None:
    if os.geteuid() != 0:
        raise LabUnavailable("network namespaces need root")
    for tool in ("ip", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise LabUnavailable(f"{tool} is required")
    if not os.path.exists(SSHD):
        raise LabUnavailable(f"{SSHD} is required (Debian: openssh-server)")
    for tool in ("labgrid-coordinator", "labgrid-exporter"):
        if not (BIN / tool).exists():
            raise LabUnavailable(f"{BIN / tool} is missing: pip install 'labgrid>=26,<27'")


def _add_host(lab: FleetLab, i: int, net: int, tags: Mapping[str, str]) -> NsHost:
    ns = f"sevkit-fl-{lab.tag}-{i}"
    vr, vn = f"vf{lab.tag}{i}r", f"vf{lab.tag}{i}n"
    folder = lab.folder / f"h{i:02d}"
    folder.mkdir(parents=True)
    host = NsHost(i, ns, vr, f"10.{net}.{i}.2", dict(tags), folder)
    lab.hosts.append(host)   # registered first: teardown deletes whatever part exists
    _ip("netns", "add", ns)
    _ip("link", "add", vr, "type", "veth", "peer", "name", vn)
    _ip("link", "set", vn, "netns", ns)
    _ip("addr", "add", f"10.{net}.{i}.1/30", "dev", vr)
    _ip("link", "set", vr, "up")
    _ip("-n", ns, "addr", "add", f"10.{net}.{i}.2/30", "dev", vn)
    _ip("-n", ns, "link", "set", vn, "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    keygen(folder / "host_key")
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {host.address}:22", f"HostKey {folder / 'host_key'}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {lab.folder / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no", "LogLevel VERBOSE", "MaxSessions 20", "MaxStartups 100",
        "Subsystem sftp internal-sftp",
        # a session whose client vanished is ended (and its command HUPed) after ~6 s
        "ClientAliveInterval 2", "ClientAliveCountMax 3", ""]))
    log = folder / "sshd.log"
    with open(log, "wb") as fh:
        host.sshd = subprocess.Popen(["ip", "netns", "exec", ns, SSHD, "-D", "-e", "-f", str(config)],
                                     stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    pub = (folder / "host_key.pub").read_text().split()
    with open(lab.known_hosts, "a") as fh:
        fh.write(f"{host.address} {pub[0]} {pub[1]}\n")
    return host


def _wait_sshd(host: NsHost, seconds: float = 15) -> None:
    deadline = Deadline(seconds)
    while True:
        if host.sshd is not None and host.sshd.poll() is not None:
            raise LabUnavailable(f"sshd in {host.netns} exited: {(host.folder / 'sshd.log').read_text()[-500:]}")
        try:
            with socket.create_connection((host.address, 22), timeout=1):
                return
        except OSError:
            if deadline.expired:
                raise LabUnavailable(f"sshd in {host.netns} did not listen on {host.address}:22") from None
            time.sleep(0.05)


@contextlib.contextmanager
def fleet_lab(folder: Path, host_tags: Sequence[Mapping[str, str]], *, net: int = 213,
              unreachable: set[int] | None = None) -> Iterator[FleetLab]:
    """Coordinator + exporter + one namespace host per entry of ``host_tags`` (places h00, h01, ...).

    Hosts in ``unreachable`` get a place and a NetworkService but no namespace or sshd
    (an address nothing answers on).
    """
    check_available()
    unreachable = unreachable or set()
    folder.mkdir(parents=True, exist_ok=True)
    lab = FleetLab(folder, tag=secrets.token_hex(2))
    lab.user_key = folder / "user_key"
    lab.known_hosts = folder / "known_hosts"
    lab.known_hosts.write_text("")
    try:
        keygen(lab.user_key)
        (folder / "authorized_keys").write_text((folder / "user_key.pub").read_text())
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        port = _free_port()
        lab.coordinator = f"127.0.0.1:{port}"
        cdir = folder / "coordinator"
        cdir.mkdir()
        clog = cdir / "coordinator.log"
        with open(clog, "wb") as fh:
            coord = subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", lab.coordinator], cwd=cdir,
                                     stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        lab.procs.append(coord)
        _wait_log(coord, clog, "Coordinator ready", 60, "labgrid-coordinator")
        exports = []
        for i, tags in enumerate(host_tags):
            if i in unreachable:
                lab.hosts.append(NsHost(i, "", "", f"10.{net}.{i}.2", dict(tags), folder / f"h{i:02d}"))
            else:
                _add_host(lab, i, net, tags)
            exports.append(f"h{i:02d}:\n  NetworkService:\n    address: '10.{net}.{i}.2'\n"
                           f"    username: root\n    port: 22\n")
        for h in lab.hosts:
            if h.sshd is not None:
                _wait_sshd(h)
        (folder / "exporter.yaml").write_text("".join(exports))
        elog = folder / "exporter.log"
        with open(elog, "wb") as fh:
            exp = subprocess.Popen([str(BIN / "labgrid-exporter"), "-c", lab.coordinator, "--name", "nslab",
                                    "--hostname", "127.0.0.1", str(folder / "exporter.yaml")],
                                   cwd=folder, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        lab.procs.append(exp)
        _wait_log(exp, elog, "connected to coordinator", 60, "labgrid-exporter")
        from sevkit.fleet.lab import Lab
        with Lab(lab.coordinator) as client:
            for h in lab.hosts:
                client.add_place(h.place, matches=[f"nslab/{h.place}/NetworkService"], tags=h.tags)
            _wait_resources(client, [h.place for h in lab.hosts])
        yield lab
    finally:
        teardown(lab)


def _wait_resources(client: object, places: list[str], seconds: float = 30) -> None:
    from sevkit.fleet.lab import Lab
    assert isinstance(client, Lab)
    deadline = Deadline(seconds)
    missing = list(places)
    while missing:
        missing = [p for p in missing if client.ssh_service(p) is None]
        if missing and deadline.expired:
            raise LabUnavailable(f"exporter resources never appeared for {missing}")
        time.sleep(0.1)


def teardown(lab: FleetLab) -> None:
    """Stop sshds and anything left in our namespaces, delete them, stop exporter and coordinator."""
    for h in lab.hosts:
        _stop(h.sshd)
        if h.netns:
            for pid in h.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _ip("netns", "del", h.netns, check=False)
            if h.veth_root:
                _ip("link", "del", h.veth_root, check=False)
    for proc in reversed(lab.procs):
        _stop(proc)


def leftover_namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if re.match(r"sevkit-fl-", line)]
