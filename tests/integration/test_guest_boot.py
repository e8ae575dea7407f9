"""Real guests under TCG on this machine: the sevkit image through OVMF with direct kernel boot.

One plain guest is booted for the whole module (each OVMF boot costs ~22 s here, more when the
machine is busy) and ends with a kernel panic (sysrq); the kill test and the boot-panic test boot
short-lived ones. Launch refusals start no guest at all. At the end no QEMU started here may be
left running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sevkit.deadline import Deadline
from sevkit.errors import GuestDied, GuestPanic, LaunchError, LaunchRefused, StateError
from sevkit.evidence import ArtifactDir
from sevkit.guests import boot_with_tcg_retry
from sevkit.image import GuestImage, ensure_image
from sevkit.image.credentials import make_credentials
from sevkit.inguest import encryption_banner, run_probe
from sevkit.qemu import reaper
from sevkit.qemu.firmware import find_pflash
from sevkit.qemu.machine import GuestAccess, GuestState, GuestVM
from sevkit.qemu.spec import Firmware, GuestSpec, panic_exits

pytestmark = pytest.mark.qemu
QEMU = shutil.which("qemu-system-x86_64")


@pytest.fixture(scope="module")
def run_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="sk-it-"))
    yield root
    left = reaper.running_from(root)
    reaper.reap(root)
    shutil.rmtree(root, ignore_errors=True)
    assert not left, f"QEMU processes left running after the tests: {left}"


@pytest.fixture(scope="module")
def image() -> GuestImage:
    if QEMU is None:
        pytest.fail("qemu-system-x86_64 is not installed (scripts/host-deps.sh installs it)")
    return ensure_image()


@pytest.fixture(scope="module")
def firmware() -> Firmware:
    fw = find_pflash()
    if fw is None:
        pytest.fail("no OVMF pflash CODE/VARS installed (Debian: ovmf)")
    return fw


@pytest.fixture(scope="module")
def access_and_cfg(run_root: Path) -> tuple[GuestAccess, tuple[tuple[str, Path], ...]]:
    cred = make_credentials(run_root / "credentials")
    return GuestAccess.from_credentials(cred), tuple(cred.fw_cfg)


def _spec(image: GuestImage, firmware: Firmware, fw_cfg: tuple[tuple[str, Path], ...], **kw: object) -> GuestSpec:
    base: dict[str, object] = dict(kind="plain", name="it-plain", firmware=firmware, kernel=image.kernel,
                                   initrd=image.initrd, append=panic_exits(image.append), disk=image.disk,
                                   disk_format=image.disk_format, fw_cfg=fw_cfg)
    base.update(kw)
    return GuestSpec(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def plain(image: GuestImage, firmware: Firmware, run_root: Path, tmp_path_factory: pytest.TempPathFactory,
          access_and_cfg: tuple[GuestAccess, tuple[tuple[str, Path], ...]]) -> Iterator[GuestVM]:
    access, fw_cfg = access_and_cfg
    ev = ArtifactDir(tmp_path_factory.mktemp("ev-plain"))
    vm = boot_with_tcg_retry(lambda: GuestVM(_spec(image, firmware, fw_cfg), evidence=ev, run_root=run_root,
                                             access=access))
    with vm:
        yield vm


def test_boot_login_serial_and_ssh(plain: GuestVM) -> None:
    assert plain.state is GuestState.SSH_READY
    assert plain.times["serial_login_s"] > 0 and plain.times["ssh_ready_s"] > 0
    print(f"boot times: serial login {plain.times['serial_login_s']} s, SSH ready {plain.times['ssh_ready_s']} s")


def test_same_result_over_serial_and_ssh(plain: GuestVM) -> None:
    for cmd in ["uname -r", "echo out; echo err >&2; exit 4", "printf 'a\\tb'", "cat /proc/cmdline"]:
        s, h = plain.run(cmd, via="serial"), plain.run(cmd, via="ssh")
        assert (s.stdout, s.stderr, s.exit_status) == (h.stdout, h.stderr, h.exit_status), cmd


def test_plain_guest_log_and_msr_truthfully(plain: GuestVM) -> None:
    dmesg = plain.run("dmesg", via="ssh").check().stdout
    assert "Linux version" in dmesg
    assert not encryption_banner(dmesg).present
    for via in ("serial", "ssh"):
        probe = run_probe(plain.console if via == "serial" else plain.ssh, timeout=120)
        # Under TCG the read either works (and must say no SEV) or faults: both are reported as such.
        if probe.sev_status is not None:
            assert probe.status_low3 == 0
        else:
            assert probe.msr_error and probe.cpuid_eax_sev_bits == 0
        assert probe.sev_guest_dev is False


def test_qmp_and_evidence(plain: GuestVM) -> None:
    info = plain.query("query-sev")
    assert info["enabled"] is False
    ev = plain.evidence.path
    assert os.access(ev / "run.sh", os.X_OK)
    assert "qemu-system-x86_64" in (ev / "run.sh").read_text()
    assert "Linux version" in (ev / "console.log").read_text(errors="replace")
    assert (ev / "qmp.log").read_text().count("query-sev") >= 1
    assert "connected to 127.0.0.1" in (ev / "ssh.log").read_text()


def test_wrong_state_calls(plain: GuestVM, run_root: Path, tmp_path: Path) -> None:
    with pytest.raises(StateError, match="requires CREATED"):
        plain.launch()
    fresh = GuestVM(plain.spec, evidence=ArtifactDir(tmp_path), run_root=run_root)
    with pytest.raises(StateError, match="requires SSH_READY"):
        _ = fresh.ssh
    with pytest.raises(StateError):
        fresh.login()


def test_panic_in_running_guest_is_guest_died_within_seconds(plain: GuestVM) -> None:
    """LAST use of the shared guest. A kernel panic mid-test (sysrq crash) ends the next command
    within seconds as GuestDied with the panic on the console tail: panic=-1 reboots the kernel at
    once and QEMU, started with -no-reboot, exits. Without panic=-1 this is a 60 s timeout."""
    assert "panic=-1" in plain.spec.append and "-no-reboot" in plain.argv
    plain.run("echo 1 > /proc/sys/kernel/sysrq && "
              "nohup sh -c 'sleep 1; echo c > /proc/sysrq-trigger' >/dev/null 2>&1 &", via="ssh").check()
    start = time.monotonic()
    with pytest.raises((GuestDied, GuestPanic)) as info:
        plain.run("sleep 50", via="ssh", timeout=60)
    raised_at = time.monotonic()
    took = raised_at - start
    tail = info.value.evidence["console_tail"]
    assert "Kernel panic" in tail or "sysrq" in tail, tail
    assert took < 15, f"the panic took {took:.1f}s to end the command (1 s of it is the trigger's sleep)"
    seen = plain.console.drain.panic_seen_at
    assert seen is not None and start < seen <= raised_at, "no 'Kernel panic - not syncing' line on the console"
    assert raised_at - seen < 5, f"{raised_at - seen:.1f}s from the panic line's arrival to the error"
    print(f"panic -> error: {took:.1f}s after the trigger (which sleeps 1 s), "
          f"{raised_at - seen:.2f}s after the panic line arrived")
    assert plain.state is GuestState.BROKEN
    with pytest.raises(StateError) as later:
        plain.run("true", via="serial", timeout=20)
    assert isinstance(later.value.__cause__, (GuestDied, GuestPanic))


def test_killed_qemu_is_guest_died(image: GuestImage, firmware: Firmware, run_root: Path, tmp_path: Path,
                                   access_and_cfg: tuple[GuestAccess, tuple[tuple[str, Path], ...]]) -> None:
    """QEMU killed mid-test: the first command gives a clear GuestDied naming the signal, not a
    hang; every later one is a StateError caused by that GuestDied. The run folder (sockets,
    overlay, VARS copy) is gone after shutdown()."""
    access, fw_cfg = access_and_cfg
    vm = boot_with_tcg_retry(lambda: GuestVM(_spec(image, firmware, fw_cfg, name="it-victim"),
                                             evidence=ArtifactDir(tmp_path), run_root=run_root, access=access))
    with vm:
        run_dir = vm.run_dir
        assert run_dir is not None and (run_dir / "overlay.qcow2").is_file() and (run_dir / "OVMF_VARS.fd").is_file()
        assert vm.pid is not None
        os.kill(vm.pid, signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(GuestDied, match="SIGKILL") as first:
            vm.run("true", via="serial", timeout=20)
        assert time.monotonic() - start < 5
        with pytest.raises(StateError) as later:
            vm.run("true", via="ssh", timeout=20)
        assert later.value.__cause__ is first.value
    assert not run_dir.exists(), f"shutdown() left {sorted(p.name for p in run_dir.iterdir())}"


def test_shutdown_removes_the_run_folder(image: GuestImage, firmware: Firmware, run_root: Path, tmp_path: Path,
                                        access_and_cfg: tuple[GuestAccess, tuple[tuple[str, Path], ...]]) -> None:
    """shutdown() of a running guest (still in firmware: no boot needed) stops QEMU and deletes its
    run folder: sockets, pidfile, qcow2 overlay and the private OVMF_VARS copy."""
    access, fw_cfg = access_and_cfg
    vm = GuestVM(_spec(image, firmware, fw_cfg, name="it-stop"), evidence=ArtifactDir(tmp_path),
                 run_root=run_root, access=access)
    try:
        vm.launch()
        run_dir = vm.run_dir
        assert run_dir is not None and vm.state is GuestState.RUNNING
        assert {"overlay.qcow2", "OVMF_VARS.fd", "qemu.pid", "qmp.sock", "serial.sock"} <= {
            p.name for p in run_dir.iterdir()}
        vm.shutdown(grace=3)          # ACPI power button first; OVMF may ignore it, then the kill
    finally:
        vm.shutdown(grace=0)
    assert vm.state is GuestState.STOPPED and vm.proc is not None and vm.proc.poll() is not None
    assert not run_dir.exists(), f"shutdown() left {sorted(p.name for p in run_dir.iterdir())}"
    assert vm.pid not in reaper.running_from(run_root)


def test_kernel_panic_detected_within_seconds(image: GuestImage, firmware: Firmware, run_root: Path,
                                              tmp_path: Path,
                                              access_and_cfg: tuple[GuestAccess, tuple[tuple[str, Path], ...]]) -> None:
    """A bad root= without an initrd panics the kernel; login fails fast with the console tail."""
    access, fw_cfg = access_and_cfg
    spec = _spec(image, firmware, fw_cfg, name="it-panic", initrd=None,
                 append="root=/dev/sevkit-nonexistent ro console=ttyS0,115200")
    for attempt in (1, 2):
        vm = GuestVM(spec, evidence=ArtifactDir(tmp_path / f"attempt{attempt}"), run_root=run_root, access=access)
        start = time.monotonic()
        with vm, pytest.raises(GuestPanic) as info:
            vm.boot()
        took = time.monotonic() - start
        # under TCG the emulator itself can fault the kernel before it reaches the root mount (see
        # sevkit.guests.boot_with_tcg_retry): that panic is not the one under test, so boot once more
        if "VFS" in info.value.evidence["console_tail"] or spec.accel != "tcg":
            break
    assert "Kernel panic" in str(info.value)
    assert "VFS" in info.value.evidence["console_tail"]
    assert took < 90, f"panic took {took:.0f}s to be noticed"
    assert vm.state is GuestState.BROKEN and vm.pid is not None and vm.proc is not None
    assert vm.proc.poll() is not None


def test_sev_refused_before_qemu_starts(image: GuestImage, firmware: Firmware, run_root: Path,
                                       tmp_path: Path) -> None:
    """SEV under TCG is refused when the spec is made; SEV under KVM on a host without /dev/sev is
    refused by launch(): either way no QEMU process is spawned and no run folder is created."""
    before = reaper.running_from(run_root)
    with pytest.raises(LaunchRefused, match="TCG cannot run confidential guests"):
        GuestSpec(kind="sev", accel="tcg", firmware=firmware, kernel=image.kernel, disk=image.disk,
                  cbitpos=51, reduced_phys_bits=1)
    if Path("/dev/sev").exists():
        pytest.skip("this host has /dev/sev: launch() would start QEMU (the refusal path needs a host without it)")
    spec = GuestSpec(kind="sev", name="it-sev-refused", accel="kvm", firmware=firmware, kernel=image.kernel,
                     initrd=image.initrd, append=image.append, cbitpos=51, reduced_phys_bits=1)
    folders = set(run_root.iterdir())
    vm = GuestVM(spec, evidence=ArtifactDir(tmp_path), run_root=run_root)
    with pytest.raises(LaunchRefused, match="/dev/sev"):
        vm.launch()
    assert vm.proc is None and vm.pid is None and vm.run_dir is None and not vm.argv
    assert set(run_root.iterdir()) == folders, "launch() created a run folder before refusing"
    assert not list(run_root.glob("it-sev-refused-*/qemu.pid"))
    assert reaper.running_from(run_root) == before
    assert vm.state is GuestState.CREATED


@pytest.mark.parametrize(("kind", "pattern"), [
    ("sev-snp", r"Parameter 'qom-type' does not accept value 'sev-snp-guest'"),
    ("sev", r"SIGABRT|Assertion"),
])
def test_qemu_own_refusal_surfaced(kind: str, pattern: str, image: GuestImage, run_root: Path,
                                   tmp_path: Path) -> None:
    """With our validation bypassed, QEMU 7.2 itself refuses: its message reaches LaunchError."""
    fw = Firmware("bios", image=Path("/usr/share/OVMF/OVMF_CODE_4M.fd")) if kind == "sev-snp" else find_pflash()
    assert fw is not None
    spec = GuestSpec(kind=kind, name=f"it-{kind}", accel="tcg", firmware=fw, kernel=image.kernel, initrd=image.initrd,
                     append=image.append, cbitpos=51, reduced_phys_bits=1, check=False)
    vm = GuestVM(spec, evidence=ArtifactDir(tmp_path), run_root=run_root)
    with pytest.raises(LaunchError) as info:
        vm.launch()
    assert re.search(pattern, str(info.value)), str(info.value)
    assert info.value.evidence["argv"][0].endswith("qemu-system-x86_64")
    assert (tmp_path / "run.sh").is_file()
    assert vm.state is GuestState.STOPPED and vm.run_dir is None


def _qemu_pids_under(path: Path) -> list[int]:
    """Live qemu-system processes whose command line mentions ``path`` (only ones this test started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        needle = str(path).encode()
        if status != "Z" and b"qemu-system" in os.path.basename(args[0]) and any(needle in a for a in args):
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_suites_qemu(tmp_path: Path) -> None:
    """A suite run cancelled with SIGTERM while its guest boots still stops that guest's QEMU:
    fixtures/evidence.py turns SIGTERM into KeyboardInterrupt, so the GuestVM and pool teardowns run."""
    repo = Path(__file__).resolve().parents[2]
    # the run's guest folders (mkdtemp honours TMPDIR); short, for QEMU's 108-byte socket paths
    private = Path(tempfile.mkdtemp(prefix="sk-term-", dir="/tmp"))
    env = {**os.environ, "TMPDIR": str(private)}
    cmd = [sys.executable, "-m", "pytest", "suites/guest", "-k", "plain and banner", "-q", "-p", "no:cacheprovider",
           f"--sev-report-dir={tmp_path / 'reports'}"]
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait = Deadline(180)
        while not _qemu_pids_under(private):
            assert proc.poll() is None, f"pytest exited before QEMU started: {proc.stdout.read()!r}"  # type: ignore[union-attr]
            assert not wait.expired, "no QEMU from the suite run appeared within 180 s"
            time.sleep(0.2)
        time.sleep(3)                    # QEMU is up and the suite is waiting for the guest
        assert _qemu_pids_under(private), "QEMU exited on its own before SIGTERM"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        text = out.decode(errors="replace")
        left = _qemu_pids_under(private)
        assert not left, f"QEMU {left} left running after SIGTERM; pytest said:\n{text[-2000:]}"
        assert proc.returncode != 0, text[-2000:]
        assert not list(private.glob("sevkit-*")), "the run's private folder was not removed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for pid in _qemu_pids_under(private):     # only QEMUs this test's run started
            os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(private, ignore_errors=True)
