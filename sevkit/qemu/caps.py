"""Ask QEMU itself what SEV parameters to use, as libvirt does: ``query-sev-capabilities``
on a throw-away ``-machine none`` QEMU, then cross-check ``cbitpos`` with host CPUID.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..deadline import Deadline
from ..errors import LaunchError, LaunchRefused, QmpError
from .qmp import Qmp


@dataclass(frozen=True, slots=True)
class SevCapabilities:
    cbitpos: int
    reduced_phys_bits: int
    raw: dict[str, Any]


def query_sev_capabilities(qemu_binary: str, *, accel: str = "kvm", timeout: float = 10.0,
                           log_path: Path | None = None) -> SevCapabilities:
    """Start ``qemu -machine none`` paused, run ``query-sev-capabilities``, stop it.

    Raises LaunchError carrying QEMU's own text when QEMU or the command refuses
    (e.g. "KVM not enabled" under TCG, "SEV is not enabled in KVM").
    """
    folder = Path(tempfile.mkdtemp(prefix="sevkit-caps-"))
    sock = folder / "qmp.sock"
    argv = [qemu_binary, "-machine", "none", "-accel", accel, "-nodefaults", "-no-user-config",
            "-display", "none", "-S", "-qmp", f"unix:{sock},server=on,wait=off"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)

    def alive() -> None:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise LaunchError(f"QEMU exited ({proc.returncode}) before answering query-sev-capabilities: "
                              f"{err.strip()[-500:]}", evidence={"argv": argv, "stderr": err[-4000:]})

    try:
        with Qmp(sock, log_path, name="sev-caps") as qmp:
            qmp.connect(Deadline(timeout), alive=alive)
            try:
                caps = qmp.execute("query-sev-capabilities", timeout=timeout)
            except QmpError as exc:
                raise LaunchError(f"query-sev-capabilities refused: {exc.evidence.get('qemu_says', exc)}",
                                  evidence={"argv": argv, **exc.evidence}) from None
        return SevCapabilities(int(caps["cbitpos"]), int(caps["reduced-phys-bits"]), dict(caps))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


def cross_check_cbitpos(qemu_caps: SevCapabilities, host_cbitpos: int | None) -> None:
    """Refuse a launch when QEMU and host CPUID Fn8000_001F EBX[5:0] disagree on the C-bit."""
    if host_cbitpos is not None and host_cbitpos != qemu_caps.cbitpos:
        raise LaunchRefused(f"C-bit position disagrees: QEMU query-sev-capabilities says {qemu_caps.cbitpos}, "
                            f"host CPUID Fn8000_001F EBX[5:0] says {host_cbitpos}",
                            evidence={"qemu": qemu_caps.raw, "host_cbitpos": host_cbitpos})
