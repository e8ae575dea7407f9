"""Boots the cached guest image once under TCG the way the launcher will: OVMF + direct kernel boot,
per-run credentials over fw_cfg. Proves serial login with the per-run password, SSH with the per-run
key against the pinned per-run host key (and refusal of any other host key), and the kernel facts the
SNP checks rely on. A minimal smoke test: the launcher's own tests cover the real GuestVM.

Needs the image built (``make image``; ``make test`` builds it first): without it this test fails.
``SEVKIT_TEST_IMAGE_SUITE=bookworm`` boots the bookworm image instead.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from sevkit.deadline import Deadline
from sevkit.image import DEFAULT_SUITE, GuestImage, find_image, version_tuple
from sevkit.image.credentials import GuestCredentials, make_credentials

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
BOOT_S = 240.0

pytestmark = pytest.mark.qemu


class Console:
    """Reads the serial socket all the time (QEMU stalls the guest if it is not drained)."""

    def __init__(self, path: Path, deadline: Deadline) -> None:
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                deadline.check("serial socket")
                time.sleep(0.05)
        self.buf = bytearray()
        self.pos = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.buf += data

    def expect(self, pattern: str, deadline: Deadline) -> re.Match[str]:
        rx = re.compile(pattern)
        while True:
            with self.lock:
                text = self.buf[self.pos:].decode("utf-8", "replace")
            m = rx.search(text)
            if m:
                self.pos += len(text[:m.end()].encode("utf-8", "replace"))
                return m
            if deadline.expired:
                raise AssertionError(f"console: no {pattern!r} within {deadline.seconds:.0f}s; tail:\n"
                                     + self.text()[-3000:])
            time.sleep(0.05)

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r")

    def text(self) -> str:
        with self.lock:
            return self.buf.decode("utf-8", "replace")

    def close(self) -> None:
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def booted(tmp_path: Path) -> Iterator[tuple[GuestImage, GuestCredentials, Console, int, float, Path]]:
    suite = os.environ.get("SEVKIT_TEST_IMAGE_SUITE", DEFAULT_SUITE)
    image = find_image(suite=suite)
    assert image is not None, f"the {suite} guest image is not built: run `sevkit image build --suite {suite}` first"
    for tool in ("qemu-system-x86_64", "qemu-img"):
        assert shutil.which(tool), f"{tool} missing"
    assert OVMF_CODE.is_file() and OVMF_VARS.is_file(), "ovmf missing"
    creds = make_credentials(tmp_path / "creds")
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", image.disk_format, "-b", str(image.disk),
                    str(overlay)], check=True, timeout=30)
    vars_copy = tmp_path / "OVMF_VARS.fd"
    shutil.copyfile(OVMF_VARS, vars_copy)
    port = _free_port()
    serial = tmp_path / "serial.sock"
    argv = ["qemu-system-x86_64", "-name", "sevkit-image-smoke", "-accel", "tcg", "-cpu", "max", "-m", "1024",
            "-smp", "2", "-machine", "q35", "-nodefaults", "-display", "none", "-no-user-config",
            "-drive", f"if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}",
            "-chardev", f"socket,id=ser0,path={serial},server=on,wait=off,logfile={tmp_path / 'console.log'}",
            "-serial", "chardev:ser0",
            "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-drive", f"if=virtio,format=qcow2,file={overlay},cache=unsafe",
            "-kernel", str(image.kernel), "-initrd", str(image.initrd), "-append", image.append,
            *creds.fw_cfg_args()]
    with open(tmp_path / "qemu.log", "wb") as qemu_log:
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdout=qemu_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)   # own process group: killed as a whole below
        console = None
        try:
            console = Console(serial, Deadline(10))
            yield image, creds, console, port, t0, tmp_path
        finally:
            if console is not None:
                console.close()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _pinned_client(host_key_line: str, port: int) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, b64 = host_key_line.split()[:2]
    assert kind == "ssh-ed25519"
    client.get_host_keys().add(f"[127.0.0.1]:{port}", kind, paramiko.Ed25519Key(data=base64.b64decode(b64)))
    return client


def _ssh_run(creds: GuestCredentials, host_key_line: str, port: int, cmd: str, deadline: Deadline) -> str:
    """Retry the whole handshake while the guest comes up (an open forwarded port means nothing)."""
    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    last: Exception | None = None
    while not deadline.expired:
        client = _pinned_client(host_key_line, port)
        try:
            client.connect("127.0.0.1", port=port, username="root", key_filename=str(creds.private_key_path),
                           look_for_keys=False, allow_agent=False, timeout=3, banner_timeout=3, auth_timeout=5)
            _in, out, err = client.exec_command(cmd, timeout=30)
            status = out.channel.recv_exit_status()
            text = out.read().decode()
            assert status == 0, f"ssh {cmd!r} exited {status}: {err.read().decode()}"
            return text
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if isinstance(exc, paramiko.BadHostKeyException):
                raise
            last = exc
            time.sleep(1)
        finally:
            client.close()
    raise AssertionError(f"no SSH within {deadline.seconds:.0f}s: {last!r}")


def test_image_boots_with_per_run_credentials(booted: tuple[GuestImage, GuestCredentials, Console, int, float,
                                                             Path]) -> None:
    image, creds, console, port, t0, run = booted
    deadline = Deadline(BOOT_S)
    console.expect(r"sevkit-guest login: ", deadline)
    t_login = time.monotonic() - t0
    console.send("root")
    console.expect(r"Password: ", Deadline(30))
    console.send(creds.root_password)
    console.expect(r"root@sevkit-guest:~# ", Deadline(60))
    console.send("echo K=$(uname -r) C=$(test -d /sys/kernel/config && echo yes || echo no) F=$(ls /etc/ssh | "
                 "grep -c ssh_host_)")
    m = console.expect(r"K=(\S+) C=(\w+) F=(\d+)", Deadline(30))
    release, configfs, nkeys = m.group(1), m.group(2), int(m.group(3))
    assert release == image.kernel_version
    if image.suite == "trixie":
        assert version_tuple(release) >= (6, 7), release
    assert configfs == "yes"
    assert nkeys == 1, "only the per-run ed25519 host key is expected in /etc/ssh"

    out = _ssh_run(creds, creds.known_host_key, port,
                   "uname -r; systemctl is-system-running; systemctl --failed --no-legend --plain; "
                   "python3 -c 'import ctypes, fcntl, json, struct; print(\"py-ok\")'; "
                   "modprobe msr && test -e /dev/cpu/0/msr && echo msr-ok", Deadline(BOOT_S))
    t_ssh = time.monotonic() - t0
    lines = out.splitlines()
    assert lines[0] == image.kernel_version
    assert "py-ok" in lines and "msr-ok" in lines, out
    assert lines[1] in ("running", "starting"), f"guest state {lines[1]}; failed units:\n{out}"

    # pinning is real: the same guest under any other host key is refused
    other = make_credentials(run / "other")
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh_run(creds, other.known_host_key, port, "true", Deadline(30))

    # nothing plaintext in the console log but what we typed (the password is not echoed back)
    assert creds.root_password not in console.text()
    (run / "timings.txt").write_text(f"serial login prompt {t_login:.1f}s, ssh ok {t_ssh:.1f}s\n")
    print(f"\nboot timings (OVMF + -kernel, TCG): login prompt {t_login:.1f}s, SSH command ok {t_ssh:.1f}s")
