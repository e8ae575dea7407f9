"""GuestVM: one QEMU guest and everything it owns.

Owned, acquired in this order and released in reverse by ``_post_shutdown``: the run folder
(sockets, pidfile, qcow2 overlay, private OVMF_VARS copy), the QEMU process (own session, so
its whole group can be killed), the QMP client, the serial console drain, the SSH session.
Evidence (``qemu.argv.json``, ``run.sh``, ``qemu.log``, ``console.log``, ``qmp.log``,
``ssh.log``, ``times.json``) goes to the guest's evidence folder and stays.

States: CREATED → LAUNCHED (QEMU up, paused) → RUNNING (``cont``) → SHELL (serial login)
and/or SSH_READY → STOPPED; BROKEN is sticky after the guest died or panicked.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..console import SerialConsole
from ..deadline import Deadline
from ..errors import (
    GuestDied,
    GuestError,
    GuestPanic,
    GuestTimeout,
    LaunchError,
    LaunchRefused,
    QmpError,
    SevkitError,
    StateError,
)
from ..evidence import ArtifactDir
from ..results import CommandResult
from ..ssh import HostKey, ParamikoLog, SshSession, route_paramiko_log
from ..timeouts import DEFAULT, Timeouts
from . import reaper
from .argv import build_argv, run_script
from .qmp import Qmp
from .spec import GuestSpec, Wiring

log = logging.getLogger(__name__)


class GuestState(enum.Enum):
    CREATED = "created"
    LAUNCHED = "launched"
    RUNNING = "running"
    SHELL = "shell"
    SSH_READY = "ssh_ready"
    STOPPED = "stopped"
    BROKEN = "broken"


@dataclass(frozen=True, slots=True)
class GuestAccess:
    """How to get in: serial password (console only), SSH key and the guest's pinned host keys."""

    user: str = "root"
    password: str | None = None
    ssh_key: Path | None = None
    host_keys: tuple[HostKey, ...] = ()

    @classmethod
    def from_credentials(cls, creds: RunCredentials, user: str = "root") -> GuestAccess:
        """The one way in for a run's credentials (sevkit.image.credentials): the serial password,
        the client key and the guest's per-run host key, pinned."""
        keytype, blob = creds.known_host_key.split()[:2]
        return cls(user=user, password=creds.root_password, ssh_key=creds.private_key_path,
                   host_keys=((keytype, blob),))


class RunCredentials(Protocol):
    """What GuestAccess needs of sevkit.image.credentials.GuestCredentials (no import: no cycle)."""

    @property
    def private_key_path(self) -> Path: ...
    @property
    def known_host_key(self) -> str: ...
    @property
    def root_password(self) -> str: ...


def missing_devices(confidential: bool, exists: Callable[[str], bool] = os.path.exists) -> list[str]:
    """Host facts a GuestSpec cannot know: a confidential guest needs KVM and the PSP device
    QEMU's sev-guest opens (``sev-device``, default /dev/sev; sev-facts.md §5.1)."""
    if not confidential:
        return []
    return [dev for dev in ("/dev/kvm", "/dev/sev") if not exists(dev)]


def free_port() -> int:
    """A free TCP port on 127.0.0.1, found by binding (never derived from a fixed base)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _tail_file(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class GuestVM:
    """One guest. Use as a context manager, or call ``shutdown()`` in a ``finally``.

    ``run_root`` holds the short-lived run folder (Unix socket paths must stay short);
    ``evidence`` receives the logs. Raises LaunchError (QEMU refused or died at start, with
    QEMU's own message and the argv), GuestPanic, GuestDied, GuestTimeout, StateError.
    """

    def __init__(self, spec: GuestSpec, *, evidence: ArtifactDir, run_root: Path,
                 timeouts: Timeouts = DEFAULT, access: GuestAccess | None = None,
                 ssh_port: int | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.evidence = evidence
        self.run_root = run_root
        self.timeouts = timeouts
        self.access = access or GuestAccess()
        self.ssh_port = ssh_port
        self.state = GuestState.CREATED
        self.broken: SevkitError | None = None
        self.argv: list[str] = []
        self.run_dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp: Qmp | None = None
        self._console: SerialConsole | None = None
        self._ssh: SshSession | None = None
        self._ssh_log_handler: ParamikoLog | None = None
        self._qemu_log: Any = None
        self._t_cont: float | None = None
        self.times: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"GuestVM({self.name}, {self.spec.kind}, {self.state.value})"

    # -- guards --------------------------------------------------------------------------
    def _require(self, op: str, *states: GuestState) -> None:
        if self.state is GuestState.BROKEN and self.broken is not None:
            raise StateError(f"GuestVM({self.name}).{op}: guest is broken: {self.broken}",
                             evidence=self.broken.evidence)
        if self.state not in states:
            want = " or ".join(s.name for s in states)
            raise StateError(f"GuestVM({self.name}).{op} requires {want}, state is {self.state.name}")

    def _mark_broken(self, exc: SevkitError) -> None:
        self.broken = exc
        self.state = GuestState.BROKEN

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def qemu_log(self) -> Path:
        return self.evidence.file("qemu.log")

    # -- launch --------------------------------------------------------------------------
    def _prepare(self) -> tuple[Wiring, list[list[str]]]:
        self.run_root.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=self.run_root))
        rd = self.run_dir
        prepare: list[list[str]] = [["mkdir", "-p", str(rd)]]
        vars_copy = None
        if self.spec.firmware.kind == "pflash":
            assert self.spec.firmware.vars_template is not None
            vars_copy = rd / "OVMF_VARS.fd"
            try:
                shutil.copyfile(self.spec.firmware.vars_template, vars_copy)   # one VARS per guest
            except OSError as exc:   # a full or read-only run folder is an infrastructure error, typed
                raise LaunchError(f"{self.name}: cannot copy OVMF_VARS into the run folder {rd}: {exc.strerror} "
                                  f"({shutil.disk_usage(rd).free >> 10} KiB free there)",
                                  evidence={"run_dir": str(rd), "errno": exc.errno}) from exc
            prepare.append(["cp", str(self.spec.firmware.vars_template), str(vars_copy)])
        overlay = None
        if self.spec.disk is not None:
            overlay = rd / "overlay.qcow2"
            cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", self.spec.disk_format,
                   "-b", str(Path(self.spec.disk).resolve()), str(overlay)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            if proc.returncode != 0:
                raise LaunchError(f"{self.name}: qemu-img could not create the overlay: {proc.stderr.strip()}",
                                  evidence={"cmd": cmd, "stderr": proc.stderr})
            prepare.append(cmd)
        if self.ssh_port is None and self.access.ssh_key is not None:
            self.ssh_port = free_port()
        wiring = Wiring(qmp_socket=rd / "qmp.sock", serial_socket=rd / "serial.sock",
                        pidfile=rd / "qemu.pid", overlay=overlay, vars_copy=vars_copy, ssh_port=self.ssh_port)
        return wiring, prepare

    def _launch_failure(self, why: str, cause: BaseException | None = None) -> LaunchError:
        rc = self.proc.poll() if self.proc is not None else None
        qemu_says = _tail_file(self.qemu_log, 20).strip()
        signame = ""
        if rc is not None and rc < 0:
            signame = f" (killed by {signal.Signals(-rc).name})"
        msg = f"{self.name}: QEMU {why}"
        if rc is not None:
            msg += f", exit status {rc}{signame}"
        if qemu_says:
            msg += f"; QEMU says: {qemu_says}"
        msg += f" [argv in {self.evidence.path / 'run.sh'}]"
        return LaunchError(msg, evidence={"argv": self.argv, "returncode": rc, "qemu_log_tail": qemu_says,
                                          "cause": repr(cause) if cause else None})

    def _check_started(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise self._launch_failure("exited during start")

    def launch(self) -> None:
        """Start QEMU paused, connect QMP and the serial console, then ``cont``.

        Deadline: ``timeouts.qemu_start`` for QEMU to answer QMP. Raises LaunchError carrying
        QEMU's own message and the argv; on failure everything acquired is released.
        """
        self._require("launch", GuestState.CREATED)
        if self.spec.check:
            self._refuse_unrunnable()
        try:
            wiring, prepare = self._prepare()
            self.argv = build_argv(self.spec, wiring)
            self.evidence.write_json("qemu.argv.json", self.argv)
            self.evidence.write_script("run.sh", run_script(self.argv, prepare))
            self._qemu_log = open(self.qemu_log, "wb")  # noqa: SIM115 - closed in _post_shutdown
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._qemu_log,
                                         stderr=subprocess.STDOUT, start_new_session=True, cwd=self.run_dir)
            reaper.register(self.proc)
            self.times["exec"] = time.time()
            start = Deadline(self.timeouts.qemu_start)
            self.qmp = Qmp(wiring.qmp_socket, self.evidence.file("qmp.log"), name=f"{self.name}-qmp")
            try:
                self.qmp.connect(start, alive=self._check_started)
            except GuestTimeout as exc:
                raise self._launch_failure(f"did not answer QMP within {start.seconds:.0f}s", exc) from exc
            self.state = GuestState.LAUNCHED
            self._console = SerialConsole(wiring.serial_socket, self.evidence.file("console.log"),
                                          name=f"{self.name}-console")
            self._console.connect(start)
            self.qmp.execute("cont", timeout=start.cap(10.0) or 5.0)
            self._t_cont = time.monotonic()
            self.state = GuestState.RUNNING
        except QmpError as exc:
            failure = self._launch_failure(f"refused a start-up command ({exc})", exc)
            self._post_shutdown()
            raise failure from exc
        except BaseException:
            self._post_shutdown()
            raise

    def _refuse_unrunnable(self) -> None:
        """The last guard for callers that bypass the planner (sevkit.guests.plan): the same rule,
        ``missing_devices``, refused before anything is created or started."""
        missing = missing_devices(self.spec.confidential)
        if missing:
            raise LaunchRefused(f"{self.name} ({self.spec.kind}): {' and '.join(missing)} absent on this host; "
                                "QEMU cannot start a confidential guest without them",
                                evidence={"kind": self.spec.kind, "missing": missing})

    def expect_launch_failure(self, pattern: str) -> LaunchError:
        """Launch a guest that must be refused; return the LaunchError whose text matches ``pattern``.

        Raises GuestError if QEMU started the guest after all.
        """
        try:
            self.launch()
        except LaunchError as exc:
            if not re.search(pattern, str(exc)):
                raise
            return exc
        self.shutdown()
        raise GuestError(f"{self.name}: expected QEMU to refuse the launch ({pattern!r}), but it started")

    def boot(self) -> None:
        """``launch()``, then serial ``login()`` (if a password is known) and ``connect_ssh()`` (if a key
        is known) side by side: SSH polling runs in a thread while the console logs in, so the guest is
        ready as soon as the slower of the two is. On failure the guest is shut down and the first
        error re-raised."""
        errors: list[BaseException] = []

        def ssh_side() -> None:
            try:
                self.connect_ssh()
            except BaseException as exc:  # handed to the caller below
                errors.append(exc)

        worker: threading.Thread | None = None
        try:
            self.launch()
            if self.access.ssh_key is not None:
                worker = threading.Thread(target=ssh_side, name=f"{self.name}-ssh-wait", daemon=True)
                worker.start()
            if self.access.password is not None:
                self.login()
            if worker is not None:
                # connect_ssh() has its own deadline; this bound only guards against a hung thread.
                worker.join(self.timeouts.ssh_ready + self.timeouts.command)
                if worker.is_alive():
                    raise GuestTimeout(f"{self.name}: SSH readiness did not finish within its deadline")
                if errors:
                    raise errors[0]
        except BaseException:
            self.shutdown(grace=0)
            if worker is not None:
                worker.join(30)
            raise

    # -- liveness ------------------------------------------------------------------------
    def check_alive(self) -> None:
        """Raise GuestDied (exit status, console and qemu.log tails) if QEMU has exited."""
        if self.proc is None or self.proc.poll() is None:
            return
        if isinstance(self.broken, GuestDied):
            raise self.broken              # told once; the same error every time after
        rc = self.proc.returncode
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
        tail = self._console.tail(40) if self._console else ""   # a panic's trace is ~30 lines
        exc = GuestDied(f"{self.name}: QEMU exited while the guest was in use ({how})"
                        + (f"\n--- console tail ---\n{tail}" if tail else ""),
                        evidence={"returncode": rc, "console_tail": tail,
                                  "qemu_log_tail": _tail_file(self.qemu_log, 10)})
        self._mark_broken(exc)
        raise exc

    def _alive_and_booting(self) -> None:
        self.check_alive()
        if self._console is not None:
            try:
                self._console.check_failure()
            except GuestPanic as exc:
                self._mark_broken(exc)
                raise

    def _since_cont(self) -> float:
        return time.monotonic() - (self._t_cont or time.monotonic())

    # -- serial --------------------------------------------------------------------------
    def login(self) -> SerialConsole:
        """Wait for the login prompt and log in on the serial console.

        Deadline: ``timeouts.boot + timeouts.login`` from ``cont``.
        """
        self._require("login", GuestState.RUNNING, GuestState.SSH_READY)
        assert self._console is not None
        if self.access.password is None:
            raise GuestError(f"{self.name}: no serial password given; cannot log in on the console")
        budget = self.timeouts.boot + self.timeouts.login
        deadline = Deadline(budget, start=self._t_cont or time.monotonic())
        try:
            self._console.login(self.access.user, self.access.password, deadline)
        except (GuestDied, GuestPanic) as exc:
            # the console closes a moment before QEMU is reaped: tell the death with its exit status
            if isinstance(exc, GuestDied) and self._exited_soon() and isinstance(self.broken, GuestDied) \
                    and self.broken is not exc:
                raise self.broken from exc
            with contextlib.suppress(GuestDied):
                self.check_alive()
            self._mark_broken(exc)
            raise
        except GuestTimeout:
            self.check_alive()
            raise
        self.times["serial_login_s"] = round(self._since_cont(), 2)
        if self.state is GuestState.RUNNING:
            self.state = GuestState.SHELL
        return self._console

    @property
    def console(self) -> SerialConsole:
        """The logged-in serial console (StateError before ``login()``)."""
        if self._console is None or not self._console.logged_in:
            raise StateError(f"GuestVM({self.name}).console requires a serial login, state is {self.state.name}")
        return self._console

    @property
    def raw_console(self) -> SerialConsole:
        """The console before login (waiting for boot messages)."""
        self._require("raw_console", GuestState.RUNNING, GuestState.SHELL, GuestState.SSH_READY)
        assert self._console is not None
        return self._console

    # -- ssh -----------------------------------------------------------------------------
    def connect_ssh(self) -> SshSession:
        """Poll until an SSH handshake plus a command succeed (pinned host key, per-run key).

        Deadline: ``timeouts.ssh_ready`` from ``cont``. Fails fast if QEMU dies or the console
        shows a kernel panic meanwhile.
        """
        self._require("connect_ssh", GuestState.RUNNING, GuestState.SHELL)
        if self.access.ssh_key is None or self.ssh_port is None:
            raise GuestError(f"{self.name}: no SSH key or forwarded port for this guest")
        if self._ssh_log_handler is None:
            self._ssh_log_handler = route_paramiko_log(self.evidence.file("ssh.log"))
        session = SshSession("127.0.0.1", self.ssh_port, user=self.access.user, key_file=self.access.ssh_key,
                             host_keys=self.access.host_keys, log_path=self.evidence.file("ssh.log"),
                             name=f"{self.name}-ssh")
        deadline = Deadline(self.timeouts.ssh_ready, start=self._t_cont or time.monotonic())
        try:
            session.connect(deadline, alive=self._alive_and_booting)
        except GuestTimeout:
            self.check_alive()
            raise
        self._ssh = session
        self.times["ssh_ready_s"] = round(self._since_cont(), 2)
        self.state = GuestState.SSH_READY
        return session

    @property
    def ssh(self) -> SshSession:
        """The connected SSH session (StateError before ``connect_ssh()``)."""
        if self._ssh is None:
            raise StateError(f"GuestVM({self.name}).ssh requires SSH_READY, state is {self.state.name}")
        return self._ssh

    @property
    def has_ssh(self) -> bool:
        return self._ssh is not None

    def shell(self, via: str) -> GuestShell:
        """A ``sevkit.results.Shell`` over ``via`` ("ssh" or "serial") that goes through ``run()``,
        so callers get the same GuestDied/StateError handling as every other guest command."""
        if via not in ("ssh", "serial"):
            raise StateError(f"GuestVM({self.name}).shell: unknown transport {via!r} (ssh or serial)")
        return GuestShell(self, via)

    def run(self, cmd: str, *, via: str = "ssh", timeout: float | None = None) -> CommandResult:
        """Run ``cmd`` over ``via`` ("ssh" or "serial"). A dead QEMU becomes GuestDied (within about a
        second of its exit); a guest already broken raises StateError caused by what broke it."""
        if self.state is GuestState.BROKEN and self.broken is not None:
            raise StateError(f"GuestVM({self.name}).run: guest is broken: {self.broken}",
                             evidence=self.broken.evidence) from self.broken
        shell: SshSession | SerialConsole = self.ssh if via == "ssh" else self.console
        limit = self.timeouts.command if timeout is None else timeout
        try:
            # check_alive while waiting: a guest that panics (panic=-1 + -no-reboot) or is killed
            # ends the command within a second as GuestDied, not at its timeout
            return shell.run(cmd, timeout=limit, alive=self.check_alive)
        except GuestPanic as exc:
            self._mark_broken(exc)
            raise
        except GuestDied as exc:
            if self._exited_soon() and isinstance(self.broken, GuestDied) and self.broken is not exc:
                raise self.broken from exc    # the same death, told with QEMU's exit status
            if self.broken is None:
                self._mark_broken(exc)
            raise
        except Exception as exc:  # any transport failure: GuestDied if QEMU is gone, else unchanged
            if self._exited_soon(0.0 if isinstance(exc, GuestTimeout) else 2.0):
                try:
                    self.check_alive()
                except GuestDied as died:
                    raise died from exc
            raise

    def _exited_soon(self, grace: float = 2.0) -> bool:
        """True if QEMU has exited or exits within ``grace`` s (its sockets close just before it is
        reaped, so a transport error can be seen a moment before the exit status)."""
        if self.proc is None:
            return False
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            return False
        with contextlib.suppress(GuestDied):
            self.check_alive()      # marks the guest broken with QEMU's exit status
        return True

    def query(self, cmd: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> Any:
        """One QMP command on the running guest (QmpError carries QEMU's text; a dead QEMU is GuestDied)."""
        self._require("query", GuestState.LAUNCHED, GuestState.RUNNING, GuestState.SHELL, GuestState.SSH_READY)
        assert self.qmp is not None
        try:
            return self.qmp.execute(cmd, args, timeout=timeout)
        except (QmpError, GuestTimeout):
            self.check_alive()
            raise

    # -- stop ----------------------------------------------------------------------------
    def shutdown(self, *, grace: float | None = None) -> None:
        """Soft power-off, then a hard kill of QEMU's group after ``grace`` (default
        ``timeouts.shutdown``), then release everything. Safe to call in any state.

        Soft means ``poweroff`` in the guest when a shell is open (an ACPI button press can be
        lost while systemd is still starting), else ACPI ``system_powerdown`` over QMP.
        """
        grace = self.timeouts.shutdown if grace is None else grace
        try:
            if self.proc is not None and self.proc.poll() is None and grace > 0 and self.state in (
                    GuestState.RUNNING, GuestState.SHELL, GuestState.SSH_READY) and self._soft_poweroff():
                try:
                    self.proc.wait(grace)
                    self.times["powered_off"] = 1.0
                except subprocess.TimeoutExpired:
                    log.warning("%s: no power-off within %.0fs; killing QEMU", self.name, grace)
        finally:
            self._post_shutdown()

    def _soft_poweroff(self) -> bool:
        """Ask the guest to power off; True if the request was delivered somewhere."""
        if self._ssh is not None:
            try:   # --no-block: the command returns before sshd goes away
                self._ssh.run("systemctl poweroff --no-block 2>/dev/null || poweroff", timeout=10.0)
                return True
            except Exception as exc:  # any transport failure: fall back to the console or ACPI
                log.info("%s: poweroff over SSH failed (%s); trying ACPI", self.name, exc)
        if self._console is not None and self._console.logged_in:
            try:
                self._console.send("poweroff\r")
                return True
            except GuestError:
                pass
        if self.qmp is not None and self.qmp.connected:
            try:
                self.qmp.execute("system_powerdown", timeout=5.0)
                return True
            except (QmpError, GuestTimeout):
                pass
        return False

    def _post_shutdown(self) -> None:
        """Release in reverse order of acquisition; every step runs even if one fails."""
        if self._ssh is not None:
            with contextlib.suppress(Exception):
                self._ssh.close()
            self._ssh = None
        if self._ssh_log_handler is not None:
            self._ssh_log_handler.close()
            self._ssh_log_handler = None
        if self.proc is not None:
            if self.proc.poll() is None:
                reaper.kill_group(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                log.error("%s: QEMU pid %d survived SIGKILL for 10s", self.name, self.proc.pid)
            reaper.unregister(self.proc)
            self.times["returncode"] = float(self.proc.returncode if self.proc.returncode is not None else -999)
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self._console is not None:
            self._console.close()
        if self._qemu_log is not None:
            self._qemu_log.close()
            self._qemu_log = None
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)   # sockets, overlay, VARS copy
            self.run_dir = None
        if self.argv:
            with contextlib.suppress(OSError):
                self.evidence.write_json("times.json", self.times)
        if self.state is not GuestState.BROKEN:
            self.state = GuestState.STOPPED

    def __enter__(self) -> GuestVM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class GuestShell:
    """One transport of a GuestVM as a ``Shell`` (what in-guest checks, planters and fetchers take)."""

    def __init__(self, vm: GuestVM, via: str) -> None:
        self.vm = vm
        self.via = via

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        return self.vm.run(cmd, via=self.via, timeout=timeout)
