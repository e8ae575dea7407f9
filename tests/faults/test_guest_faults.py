"""Fault-matrix cells on real QEMU (TCG): launch, boot to login, serial and SSH commands, memory dump, scan.

CPU is the budget (2 cores, guests boot in 40-150 s): one guest boots fully and is shared by every cell
whose fault is recoverable (a stopped QEMU for "serial silent"/"SSH never answering", a dropped SSH
transport, a dump into a full tmpfs) and then ends with the one destructive cell (a guest panic, seen
over serial and SSH at once). Launch and boot cells cut QEMU within seconds of its start; dump and scan
cells kill a QEMU that runs no guest OS at all (-S, nothing to boot). Each cell records its row
(tests/faults/matrix.py); the table is printed at the end of the run (tests/faults/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.launch import built_image_and_pflash

from sevkit.deadline import Deadline
from sevkit.errors import DumpError, GuestDied, GuestError, GuestPanic, GuestTimeout, SevkitError, StateError
from sevkit.evidence import ArtifactDir
from sevkit.guests import boot_with_tcg_retry
from sevkit.image import GuestImage
from sevkit.image.credentials import make_credentials
from sevkit.memory import dump as D
from sevkit.qemu import reaper
from sevkit.qemu.machine import GuestAccess, GuestState, GuestVM
from sevkit.qemu.qmp import Qmp
from sevkit.qemu.spec import Firmware, GuestSpec, panic_exits
from sevkit.timeouts import DEFAULT

from .matrix import Row, record
from .probes import files_in, qemu_pids_under, session_members

pytestmark = pytest.mark.qemu
NOT_A_SUITE = "n/a (library cell)"


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@dataclass
class Kit:
    image: GuestImage
    firmware: Firmware
    root: Path
    access: GuestAccess
    fw_cfg: tuple[tuple[str, Path], ...]

    def vm(self, name: str, evidence: Path, *, ssh: bool = True, serial: bool = True, **timeouts: float) -> GuestVM:
        spec = GuestSpec(kind="plain", name=name, firmware=self.firmware, kernel=self.image.kernel,
                         initrd=self.image.initrd, append=panic_exits(self.image.append), disk=self.image.disk,
                         disk_format=self.image.disk_format, fw_cfg=self.fw_cfg)
        access = GuestAccess(password=self.access.password if serial else None,
                             ssh_key=self.access.ssh_key if ssh else None, host_keys=self.access.host_keys)
        return GuestVM(spec, evidence=ArtifactDir(evidence), run_root=self.root, access=access,
                       timeouts=DEFAULT.override(**timeouts) if timeouts else DEFAULT)


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    image, fw = built_image_and_pflash()
    root = Path(tempfile.mkdtemp(prefix="sk-fault-"))
    try:
        cred = make_credentials(root / "cred")
        keytype, blob = cred.known_host_key.split()[:2]
        access = GuestAccess(password=cred.root_password, ssh_key=cred.private_key_path,
                             host_keys=((keytype, blob),))
        yield Kit(image, fw, root, access, tuple(cred.fw_cfg))
    finally:
        left = qemu_pids_under(root)
        reaper.reap(root)
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"QEMU processes left by the fault cells: {left}"


def _signal_when_started(vm: GuestVM, sig: int, after: float) -> threading.Thread:
    """Send ``sig`` to the guest's QEMU ``after`` seconds after its process exists (a real signal)."""
    def go() -> None:
        wait = Deadline(120)
        while vm.proc is None and not wait.expired:
            time.sleep(0.02)
        time.sleep(after)
        if vm.proc is not None and vm.proc.poll() is None:
            os.kill(vm.proc.pid, sig)
    t = threading.Thread(target=go, daemon=True, name=f"fault-{sig}")
    t.start()
    return t


def _evidence_kept(ev: Path, *names: str) -> str:
    have = [n for n in names if (ev / n).is_file() and (ev / n).stat().st_size > 0]
    return "+".join(have) if have else "NONE"


def _boot_cell(kit: Kit, tmp_path: Path, *, phase: str, fault: str, sig: int, after: float,
               expect: tuple[type[BaseException], ...], match: str, ssh: bool = True, serial: bool = True,
               **timeouts: float) -> SevkitError:
    ev = tmp_path / "evidence"
    vm = kit.vm(f"flt-{phase.split()[0]}-{sig}", ev, ssh=ssh, serial=serial, **timeouts)
    start = time.monotonic()
    killer = _signal_when_started(vm, sig, after)
    try:
        with pytest.raises(expect) as info:
            vm.boot()
    finally:
        killer.join(10)
        vm.shutdown(grace=0)
    took = time.monotonic() - start
    exc = info.value
    assert isinstance(exc, SevkitError)
    left = qemu_pids_under(kit.root)
    kept = _evidence_kept(ev, "run.sh", "qemu.argv.json", "qemu.log", "console.log")
    record(Row(phase, fault, _first_line(exc), kept, NOT_A_SUITE, len(left), 0, round(took, 1),
               test=f"faults/test_guest_faults.py::{phase}/{fault}"))
    assert match.lower() in str(exc).lower(), str(exc)
    assert not left, left
    assert vm.run_dir is None and not list(kit.root.glob(f"{vm.name}-*")), "run folder left"
    assert "run.sh" in kept, kept
    return exc


# -- launch and boot: short-lived QEMUs, cut within seconds ------------------------------------------

def test_launch_qemu_killed(kit: Kit, tmp_path: Path) -> None:
    """QEMU SIGKILLed the moment it exists: LaunchError (QMP never answered) or GuestDied, naming the kill."""
    from sevkit.errors import LaunchError
    _boot_cell(kit, tmp_path, phase="launch", fault="QEMU killed", sig=signal.SIGKILL, after=0.0,
               expect=(LaunchError, GuestDied), match="SIGKILL")


def test_launch_disk_full(kit: Kit, small_tmpfs: Path, tmp_path: Path) -> None:
    """The run folder (qcow2 overlay, OVMF_VARS copy, sockets) on a full tmpfs: an error naming the lack
    of space, no QEMU, no half-made run folder."""
    filler = small_tmpfs / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        except OSError:
            pass
    root = small_tmpfs / "r"
    root.mkdir(exist_ok=True)
    full = Kit(kit.image, kit.firmware, root, kit.access, kit.fw_cfg)
    ev = tmp_path / "evidence"
    vm = full.vm("flt-launch-full", ev)
    start = time.monotonic()
    try:
        with pytest.raises((SevkitError, OSError)) as info:
            vm.launch()
    finally:
        vm.shutdown(grace=0)
    exc = info.value
    left = qemu_pids_under(root) + qemu_pids_under(ev)
    leftovers = [p.name for p in root.iterdir()]
    typed = isinstance(exc, SevkitError)
    record(Row("launch", "disk full", ("" if typed else "UNTYPED ") + _first_line(exc),
               "error names the run folder and KiB free", NOT_A_SUITE, len(left), 0,
               round(time.monotonic() - start, 1), test="faults/test_guest_faults.py::test_launch_disk_full",
               note=f"run root left: {leftovers}"))
    assert typed, f"untyped {type(exc).__name__} escaped: {exc}"
    assert "space" in str(exc).lower(), str(exc)
    assert not left and not leftovers, (left, leftovers)


def test_boot_qemu_killed(kit: Kit, tmp_path: Path) -> None:
    """QEMU SIGKILLed 4 s into the boot (firmware or early kernel): GuestDied naming the signal, at once."""
    _boot_cell(kit, tmp_path, phase="boot to login", fault="QEMU killed", sig=signal.SIGKILL, after=4.0,
               expect=(GuestDied,), match="SIGKILL")


def test_boot_serial_silent(kit: Kit, tmp_path: Path) -> None:
    """QEMU stopped (SIGSTOP) 2 s into the boot: the console stays silent; GuestTimeout at the boot+login
    deadline (shortened here to 8 s), and the stopped QEMU is still killed."""
    _boot_cell(kit, tmp_path, phase="boot to login", fault="serial silent", sig=signal.SIGSTOP, after=2.0,
               expect=(GuestTimeout,), match="login", ssh=False, boot=6.0, login=2.0)


def test_boot_ssh_never_answering(kit: Kit, tmp_path: Path) -> None:
    """SSH-only guest whose QEMU is stopped 2 s in: the forwarded port accepts nothing useful;
    GuestTimeout at the SSH readiness deadline (shortened to 10 s)."""
    _boot_cell(kit, tmp_path, phase="boot to login", fault="SSH never answering", sig=signal.SIGSTOP, after=2.0,
               expect=(GuestTimeout,), match="SSH", serial=False, ssh_ready=10.0)


# -- one shared guest: recoverable faults first, the panic last ----------------------------------------

@pytest.fixture(scope="module")
def shared(kit: Kit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuestVM]:
    ev = tmp_path_factory.mktemp("flt-shared-ev")
    # generous: the default deadlines assume a quiet 2-core machine, and CI runners are shared
    slow = {"boot": 420.0, "ssh_ready": 480.0}
    vms: list[GuestVM] = []
    try:   # QEMU 7.2's TCG early-boot faults: one retry, as the guest pool does
        yield boot_with_tcg_retry(lambda: kit.vm("flt-shared", ev, **slow), vms.append)
    finally:
        for vm in vms:
            vm.shutdown(grace=0)


@contextlib.contextmanager
def _stopped(vm: GuestVM) -> Iterator[None]:
    """QEMU frozen by SIGSTOP (a real stopped process: its console and forwarded port go silent)."""
    assert vm.pid is not None
    os.kill(vm.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(vm.pid, signal.SIGCONT)


def _guest_cell(vm: GuestVM, phase: str, fault: str, action: Callable[[], object],
                expect: tuple[type[BaseException], ...], match: str, recover: Callable[[], bool],
                note_of: Callable[[], str] = str) -> SevkitError:
    start = time.monotonic()
    with pytest.raises(expect) as info:
        action()
    took = time.monotonic() - start
    exc = info.value
    assert isinstance(exc, SevkitError)
    ok = recover()
    ev = vm.evidence.path
    record(Row(phase, fault, _first_line(exc), _evidence_kept(ev, "console.log", "qemu.log", "ssh.log"),
               NOT_A_SUITE, 0, 0, round(took, 1), test=f"faults/test_guest_faults.py::{phase}/{fault}",
               note=(note_of() + "; " if note_of() else "") + f"guest answers again: {'yes' if ok else 'NO'}"))
    assert match.lower() in str(exc).lower(), str(exc)
    assert ok, "the guest did not recover after the fault was lifted"
    return exc


def test_serial_command_serial_silent(shared: GuestVM) -> None:
    """QEMU stopped while a serial command waits: GuestTimeout naming the command; after SIGCONT the
    console answers the next command correctly."""
    def act() -> None:
        with _stopped(shared):
            shared.run("echo one", via="serial", timeout=5)
    def recover() -> bool:
        # the contract is the guest's: it answers again. The serial console itself may stay out of step
        # (keystrokes typed while QEMU was stopped are lost), which the row notes.
        try:
            serial = "next serial command " + ("works" if shared.run("echo two", via="serial", timeout=20)
                                               .stdout.strip() == "two" else "gives wrong output")
        except GuestError as exc:
            serial = f"next serial command fails ({type(exc).__name__}: console out of step)"
        notes.append(serial)
        return shared.run("echo three", via="ssh", timeout=60).stdout.strip() == "three"
    notes: list[str] = []
    _guest_cell(shared, "serial command", "serial silent", act, (GuestTimeout,), "echo one", recover,
                note_of=lambda: "; ".join(notes))


def test_ssh_command_never_answering(shared: GuestVM) -> None:
    """QEMU stopped while an SSH command waits: GuestTimeout naming the command; after SIGCONT the
    same session runs the next command."""
    def act() -> None:
        with _stopped(shared):
            shared.run("echo one", via="ssh", timeout=5)
    def recover() -> bool:
        try:
            ok = shared.run("echo two", via="ssh", timeout=30).stdout.strip() == "two"
            notes.append("same session works")
        except GuestError as exc:   # the transport's channel request timed out while QEMU was stopped
            notes.append(f"same session fails ({type(exc).__name__}), a new connection works")
            shared.ssh.close()
            shared.ssh.connect(Deadline(60))
            ok = shared.run("echo two", via="ssh", timeout=60).stdout.strip() == "two"
        return ok
    notes: list[str] = []
    _guest_cell(shared, "SSH command", "SSH never answering", act, (GuestTimeout,), "echo one", recover,
                note_of=lambda: "; ".join(notes))


def test_memory_dump_disk_full(shared: GuestVM, small_tmpfs: Path) -> None:
    """An ELF dump of the running guest into a 16 MiB tmpfs: DumpError naming need and free space before
    QEMU writes anything; no dump file; the guest is unharmed."""
    assert shared.qmp is not None and shared.pid is not None
    folder = small_tmpfs / "dumps"
    start = time.monotonic()
    with pytest.raises(DumpError) as info:
        D.acquire_and_scan("elf", qmp=shared.qmp, pid=shared.pid, ram_bytes=shared.spec.memory_mib << 20,
                           needles=[os.urandom(32)], folder=folder)
    dumps = files_in(folder)
    ok = shared.run("true", via="ssh").ok
    record(Row("memory dump", "disk full", _first_line(info.value), "error names need and free MiB", NOT_A_SUITE,
               len(qemu_pids_under(small_tmpfs)), len(dumps), round(time.monotonic() - start, 1),
               test="faults/test_guest_faults.py::test_memory_dump_disk_full",
               note=f"next command {'works' if ok else 'FAILS'}"))
    assert "MiB free" in str(info.value) and not dumps and ok


def test_ssh_command_dropped(shared: GuestVM) -> None:
    """The SSH transport's TCP connection shut down under a running command: a GuestError naming the
    closed channel, not a hang; the guest is fine (serial answers) and a new SSH connection works."""
    client = shared.ssh.client
    transport = client.get_transport()
    assert transport is not None
    sock = transport.sock

    def drop() -> None:
        time.sleep(1.5)
        sock.shutdown(2)          # socket.SHUT_RDWR on the real TCP connection to QEMU's hostfwd

    def recover() -> bool:
        serial_ok = shared.run("echo s", via="serial", timeout=60).stdout.strip() == "s"
        shared.ssh.close()
        shared.ssh.connect(Deadline(60))
        return serial_ok and shared.run("echo two", via="ssh", timeout=60).stdout.strip() == "two"

    threading.Thread(target=drop, daemon=True).start()
    _guest_cell(shared, "SSH command", "SSH dropped", lambda: shared.run("sleep 20", via="ssh", timeout=40),
                (GuestError,), "sleep 20", recover)


def test_commands_guest_panic(shared: GuestVM, kit: Kit) -> None:
    """LAST on the shared guest. A panic (sysrq 'c') triggered over serial while an SSH command runs:
    both commands end within seconds as GuestPanic/GuestDied with the panic on the console tail; QEMU
    (-no-reboot) is gone, later calls are StateError; nothing is left after shutdown."""
    shared.run("echo 1 > /proc/sys/kernel/sysrq", via="ssh").check()
    ssh_err: list[BaseException] = []

    def ssh_side() -> None:
        try:
            shared.run("sleep 50", via="ssh", timeout=60)
        except BaseException as exc:   # handed to the assertions below
            ssh_err.append(exc)
    t = threading.Thread(target=ssh_side, daemon=True)
    t.start()
    time.sleep(1.0)
    start = time.monotonic()
    with pytest.raises((GuestPanic, GuestDied)) as info:
        shared.run("echo c > /proc/sysrq-trigger", via="serial", timeout=60)
    took = time.monotonic() - start
    t.join(60)
    shared.shutdown(grace=0)
    left = qemu_pids_under(kit.root)
    ev = shared.evidence.path
    console = (ev / "console.log").read_text(errors="replace")
    kept = ("console.log with the panic" if "Kernel panic" in console or "sysrq" in console.lower()
            else "console.log WITHOUT the panic")
    shows = " (its console tail shows the panic)" if "Kernel panic" in str(info.value) else ""
    record(Row("serial command", "guest panic", _first_line(info.value) + shows, kept, NOT_A_SUITE, len(left), 0,
               round(took, 1), test="faults/test_guest_faults.py::test_commands_guest_panic"))
    assert ssh_err, "the SSH command did not end"
    ssh_exc = ssh_err[0]
    shows = " (its console tail shows the panic)" if "Kernel panic" in str(ssh_exc) else ""
    record(Row("SSH command", "guest panic", _first_line(ssh_exc) + shows, kept, NOT_A_SUITE, len(left), 0,
               round(took, 1), test="faults/test_guest_faults.py::test_commands_guest_panic"))
    assert isinstance(ssh_exc, (GuestPanic, GuestDied, StateError)), repr(ssh_exc)
    assert "panic" in console.lower() and took < 30, (took, console[-500:])
    assert shared.state is GuestState.BROKEN and not left


# -- dump and scan: a QEMU with no guest OS (nothing to boot), killed mid-read ------------------------

RAM_MIB = 2900   # above q35's 2816 MiB low-RAM limit: two RAM ranges, several seconds to dump


@dataclass
class Bare:
    proc: subprocess.Popen[bytes]
    qmp: Qmp
    folder: Path


@pytest.fixture
def bare(kit: Kit) -> Iterator[Bare]:
    d = Path(tempfile.mkdtemp(prefix="bare-", dir=kit.root))
    argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", str(RAM_MIB), "-nodefaults",
            "-display", "none", "-no-user-config", "-S", "-qmp", f"unix:{d}/qmp.sock,server=on,wait=off",
            "-qmp", f"unix:{d}/qmp2.sock,server=on,wait=off", "-name", str(d)]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    qmp = Qmp(d / "qmp.sock", d / "qmp.log", name="bare")
    try:
        qmp.connect(Deadline(20))
        yield Bare(proc, qmp, d)
    finally:
        qmp.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _kill_after(proc: subprocess.Popen[bytes], after: float) -> threading.Thread:
    def go() -> None:
        time.sleep(after)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_memory_dump_qemu_killed(bare: Bare, kit: Kit) -> None:
    """QEMU SIGKILLed half a second into a detached ELF dump: DumpError (QMP lost), the partial dump
    file is deleted."""
    folder = bare.folder / "dumps"
    start = time.monotonic()
    killer = _kill_after(bare.proc, 0.5)
    with pytest.raises(SevkitError) as info:
        D.acquire_and_scan("elf", qmp=bare.qmp, pid=bare.proc.pid, ram_bytes=RAM_MIB << 20,
                           needles=[os.urandom(32)], folder=folder)
    killer.join(10)
    bare.proc.wait(10)
    dumps = files_in(folder)
    left = qemu_pids_under(bare.folder)
    record(Row("memory dump", "QEMU killed", _first_line(info.value), "error carries path and QMP cause",
               NOT_A_SUITE, len(left), len(dumps), round(time.monotonic() - start, 1),
               test="faults/test_guest_faults.py::test_memory_dump_qemu_killed"))
    assert isinstance(info.value, DumpError), repr(info.value)
    assert not dumps and not left, (dumps, left)


def test_scan_qemu_killed(bare: Bare, kit: Kit) -> None:
    """QEMU SIGKILLed while /proc/<pid>/mem is streamed into the scanner (no dump file): the contract is
    an error naming the exit; what happens is recorded either way."""
    start = time.monotonic()
    killer = _kill_after(bare.proc, 0.3)
    outcome = ""
    error: BaseException | None = None
    try:
        ms = D.acquire_and_scan("procmem", qmp=bare.qmp, pid=bare.proc.pid, ram_bytes=RAM_MIB << 20,
                                needles=[os.urandom(32)], folder=bare.folder / "dumps")
        reasons = sorted({why for _, why in ms.coverage.unreadable})
        outcome = (f"NO ERROR: coverage {ms.coverage.bytes_read >> 20}/{RAM_MIB} MiB, "
                   f"unreadable: {'; '.join(reasons)[:80]}")
    except SevkitError as exc:
        error = exc
        outcome = _first_line(exc)
    killer.join(10)
    bare.proc.wait(10)
    left = qemu_pids_under(bare.folder)
    record(Row("scan", "QEMU killed", outcome, "coverage names the unread ranges", NOT_A_SUITE, len(left),
               len(files_in(bare.folder / "dumps")), round(time.monotonic() - start, 1),
               test="faults/test_guest_faults.py::test_scan_qemu_killed",
               note="partial coverage returned without an error" if error is None else ""))
    assert not left
    assert isinstance(error, DumpError), outcome


# A process that reads guest memory the way the suite does (SIGTERM handled as Ctrl-C, as in
# fixtures/evidence.py), so the signal lands in the library's dump or scan loop, not in the self-test.
_READER = """
import sys
from pathlib import Path
from sevkit.deadline import Deadline
from sevkit.memory import dump as D
from sevkit.qemu.qmp import Qmp
from sevkit.signals import install_sigterm_as_interrupt
install_sigterm_as_interrupt()
sock, pid, folder, method, ram = sys.argv[1:]
qmp = Qmp(Path(sock), name="reader")
qmp.connect(Deadline(20))
print("reading", flush=True)
try:
    D.acquire_and_scan(method, qmp=qmp, pid=int(pid), ram_bytes=int(ram), needles=[bytes(32)], folder=Path(folder))
    print("finished before the signal", flush=True)
finally:
    qmp.close()
"""


@pytest.mark.parametrize(("phase", "method"), [("memory dump", "elf"), ("scan", "procmem")])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_memory_read_interrupted(bare: Bare, phase: str, method: str, sig: signal.Signals) -> None:
    """SIGTERM or Ctrl-C half a second into an ELF dump or a /proc/<pid>/mem scan: the reader ends with
    KeyboardInterrupt naming the signal, the partial dump file is deleted, no reader process is left."""
    folder = bare.folder / "dumps"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _READER, str(bare.folder / "qmp2.sock"), str(bare.proc.pid),
                             str(folder), method, str(RAM_MIB << 20)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"reading"
        start = time.monotonic()
        time.sleep(0.5)
        proc.send_signal(sig)
        out = proc.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    took = time.monotonic() - start
    last = [ln for ln in out.splitlines() if ln.strip()][-1:] or [""]
    left = session_members(proc.pid)
    dumps = files_in(folder)
    record(Row(phase, sig.name, f"exit {proc.returncode}: {last[0]}", "n/a (nothing measured yet)", NOT_A_SUITE,
               len(left), len(dumps), round(took, 1), test=f"faults/test_guest_faults.py::test_memory_read_interrupted"
               f"[{sig.name}-{phase}]"))
    assert "finished before the signal" not in out, "the read ended before the signal: no fault injected"
    assert "KeyboardInterrupt" in last[0], out[-1500:]       # Ctrl-C, or SIGTERM turned into it ("signal 15")
    assert sig is signal.SIGINT or f"signal {int(sig)}" in last[0], out[-1500:]
    assert proc.returncode != 0 and not dumps and not left, (proc.returncode, dumps, left)
    assert bare.qmp.execute("query-status")["status"] == "prelaunch"    # QEMU itself is unharmed
