"""coconut-svsm's igvmmeasure, where a lab installed it: a second, independent digest of the same file.

Invocation per tools/igvmmeasure/src/cmd_options.rs: ``igvmmeasure INPUT measure --bare`` prints the
launch digest alone, as upper-case hex (main.rs measure_command). --check-kvm is not passed: it also
refuses more than one VMSA ("QEMU/KVM only supports setting of the VMSA for the first virtual CPU"),
which QEMU >= 10.1 no longer holds (docs/system/igvm.rst: boot CPU and additional CPUs), and sevkit's
files carry one VMSA per vCPU, last and in vCPU order, where igvmmeasure measures them in file order.
--check-kvm would also refuse sevkit's CR0 of 0x10 (it wants 0x30/0x31, "overridden by KVM"); 0x10 is
sev-snp-measure's value for QEMU's reset state, which matches real flash launches. Which of the two KVM
measures on the IGVM path has not been checked on SNP hardware.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ..errors import MeasurementError

TOOL = "igvmmeasure"


def find_igvmmeasure() -> str | None:
    return shutil.which(TOOL)


def igvmmeasure_digest(tool: str, path: Path, *, timeout: float = 120.0) -> bytes:
    """The digest ``tool`` computes for the IGVM file at ``path``. Raises MeasurementError."""
    argv = [tool, str(path), "measure", "--bare"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MeasurementError(f"{TOOL} could not run: {exc}", evidence={"argv": argv}) from None
    out = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"[0-9A-Fa-f]{96}", out):
        raise MeasurementError(f"{TOOL} exited {proc.returncode} without a digest: "
                               f"{(proc.stderr or out).strip()[-300:]}",
                               evidence={"argv": argv, "stdout": out[-500:], "stderr": proc.stderr[-500:]})
    return bytes.fromhex(out)
