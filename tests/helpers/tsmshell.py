"""A stand-in SNP guest shell for fake-transport suite runs (not an SNP claim): it runs sevkit's in-guest
report script on this machine, with configfs-tsm (/sys/kernel/config/tsm/report) redirected to a folder whose
entries answer with a canned report (``outblob``) and certificate table (``auxblob``), as the kernel's tsm
report interface does (Documentation/ABI/testing/configfs-tsm: provider, generation, outblob, auxblob)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from sevkit.results import CommandResult

TSM = "/sys/kernel/config/tsm/report"


class TsmShell:
    def __init__(self, root: Path, outblob: Path, auxblob: Path) -> None:
        self.root, self.outblob, self.auxblob = root, outblob, auxblob

    def run(self, cmd: str, timeout: float | None = None) -> CommandResult:
        entry = re.search(r"--entry (\S+)", cmd)
        if entry:
            cmd = cmd.replace(TSM, str(self.root))
            d = self.root / shlex.split(entry.group(1))[0]
            d.mkdir(parents=True, exist_ok=True)
            (d / "provider").write_text("sev_guest\n")
            (d / "generation").write_text("1\n")
            (d / "outblob").write_bytes(self.outblob.read_bytes())
            (d / "auxblob").write_bytes(self.auxblob.read_bytes())
        cmd = cmd.replace("python3 ", sys.executable + " ", 1)
        t = time.monotonic()
        p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout, check=False)
        return CommandResult(cmd, p.stdout, p.returncode, time.monotonic() - t, p.stderr, "fake-local")
