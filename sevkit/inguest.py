"""Checks run inside a guest over any Shell (serial console or SSH): what the guest itself
says about memory encryption.

* The kernel's ``Memory Encryption Features active:`` banner (sev-facts.md §3.1), parsed with
  the shared patterns of sevkit.logs, and the problems in the kernel log (oops, call trace,
  ``#VC`` failures).
* SEV_STATUS (MSR 0xC0010131, §2.3) and CPUID Fn8000_001F (§1, §11.3), read by a small python3
  probe through ``/dev/cpu/0/{msr,cpuid}`` after ``modprobe``. A read that faults is reported
  as such (``msr_error``); it is never turned into a value.
* ``/dev/sev-guest`` and the configfs-tsm report interface (§4.2, §4.3).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import GuestError
from .guestpy import python_command
from .logs import patterns as P
from .logs.dmesg import parse_guest_dmesg
from .logs.lines import cap_lines
from .memencrypt import MemEncryptInfo, feature_mask
from .results import CommandResult, Shell
from .vocab import Feature, GuestKind, chain

SEV_STATUS_MSR = 0xC0010131
# Features each guest kind must announce: its own and every one it builds on, in the kernel's
# token spelling, which is the Feature values (§3.1, §11.3).
EXPECTED_FEATURES: dict[str, frozenset[str]] = {
    k: frozenset(f.value for f in chain(k.feature)) if k.feature else frozenset() for k in GuestKind}
# SEV_STATUS bits 0..2 = SEV, SEV-ES, SEV-SNP (§2.3); higher bits are optional SNP features.
SEV_STATUS_BITS = {Feature.SEV: 0, Feature.SEV_ES: 1, Feature.SEV_SNP: 2}
EXPECTED_STATUS_LOW3 = {k: sum(1 << SEV_STATUS_BITS[Feature(f)] for f in fs) for k, fs in EXPECTED_FEATURES.items()}
# CPUID Fn8000_001F EAX as QEMU builds it for the guest: the SEV/SEV-ES/SNP bits of its features (§11.3).
EXPECTED_CPUID_EAX = {k: feature_mask(frozenset(Feature(f) for f in fs)) for k, fs in EXPECTED_FEATURES.items()}

KERNEL_PROBLEMS = (
    ("oops", re.compile(r"\bOops: |\bgeneral protection fault\b|\bBUG: |\bkernel BUG at\b")),
    ("call trace", re.compile(r"\bCall Trace:")),
    ("kernel panic", re.compile(r"Kernel panic - not syncing")),
    ("#VC failure", P.GUEST_VC_FAIL),
)


@dataclass(frozen=True, slots=True)
class EncryptionBanner:
    """The guest kernel's memory-encryption banner: the line (None if absent) and its tokens."""

    line: str | None
    features: frozenset[str]

    @property
    def present(self) -> bool:
        return self.line is not None


def encryption_banner(dmesg: str) -> EncryptionBanner:
    """Find the ``Memory Encryption Features active:`` line (any of the three kernel formats)."""
    found: EncryptionBanner = EncryptionBanner(None, frozenset())
    for raw in dmesg.splitlines():
        line = raw.rstrip()
        m = P.MEM_ENCRYPT_NEW.search(line) or P.MEM_ENCRYPT_OLD.search(line)
        if m:
            found = EncryptionBanner(line, frozenset(m["tok"].split()))
            continue
        m = P.MEM_ENCRYPT_OLDEST.search(line)
        if m:
            found = EncryptionBanner(line, frozenset({"SEV"} if m["sev"] else {"SME"}))
    return found


def kernel_problems(dmesg: str) -> list[str]:
    """Lines of the kernel log that show an oops, a call trace, a panic or a ``#VC`` failure."""
    out: list[str] = []
    for line in dmesg.splitlines():
        for name, rx in KERNEL_PROBLEMS:
            if rx.search(line):
                out.append(f"{name}: {line.strip()}")
                break
    for err in parse_guest_dmesg(cap_lines(dmesg)[0]).errors:
        entry = f"guest log error: {err}"
        if not any(err in o for o in out):
            out.append(entry)
    return out


# The probe runs as root in the guest (shipped by sevkit.guestpy, base64-encoded: P3).
_PROBE = r'''
import json, os, struct, subprocess
out = {}
for mod in ("msr", "cpuid"):
    try:
        r = subprocess.run(["modprobe", mod], capture_output=True, text=True, timeout=30)
        out["modprobe_" + mod] = "ok" if r.returncode == 0 else (r.stderr.strip() or "exit %d" % r.returncode)
    except (OSError, subprocess.SubprocessError) as e:
        out["modprobe_" + mod] = repr(e)
def rd(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, n, off)
    finally:
        os.close(fd)
    if len(data) != n:
        raise OSError(0, "short read of %d bytes" % len(data))
    return data
def err(e):
    return "%s: errno %s (%s)" % (type(e).__name__, e.errno, os.strerror(e.errno) if e.errno else e)
try:
    out["sev_status"] = struct.unpack("<Q", rd("/dev/cpu/0/msr", 0xC0010131, 8))[0]
except OSError as e:
    out["msr_error"] = err(e)
try:
    out["cpuid_max_ext"] = struct.unpack("<4I", rd("/dev/cpu/0/cpuid", 0x80000000, 16))[0]
    if out["cpuid_max_ext"] >= 0x8000001F:
        out["cpuid_8000001f"] = list(struct.unpack("<4I", rd("/dev/cpu/0/cpuid", 0x8000001F, 16)))
except OSError as e:
    out["cpuid_error"] = err(e)
out["sev_guest_dev"] = os.path.exists("/dev/sev-guest")
cfg = "/sys/kernel/config"
if os.path.isdir(cfg) and not os.path.ismount(cfg):
    subprocess.run(["mount", "-t", "configfs", "none", cfg], capture_output=True, timeout=30)
tsm = cfg + "/tsm/report"
out["tsm_report_dir"] = os.path.isdir(tsm)
if out["tsm_report_dir"]:
    entry = tsm + "/sevkit-probe-%d" % os.getpid()
    try:
        os.mkdir(entry)
        try:
            with open(entry + "/provider") as fh:
                out["tsm_provider"] = fh.read().strip()
        finally:
            os.rmdir(entry)
    except OSError as e:
        out["tsm_error"] = err(e)
with open("/proc/cpuinfo") as fh:
    flags = next((l.split(":", 1)[1].split() for l in fh if l.startswith("flags")), [])
out["cpuinfo_sev_flags"] = sorted(f for f in flags if f in ("sme", "sev", "sev_es", "sev_snp"))
out["kernel"] = os.uname().release
print("SEVKIT-PROBE " + json.dumps(out, sort_keys=True))
'''


def probe_command() -> str:
    """The shell command that runs the in-guest probe (python3, as root)."""
    return python_command(_PROBE)


@dataclass(frozen=True, slots=True)
class GuestProbe:
    """What the guest reads from its own CPU and devices. ``None`` = could not be read; the
    matching ``*_error`` says why."""

    sev_status: int | None
    msr_error: str | None
    cpuid_max_ext: int | None
    cpuid_8000001f: tuple[int, int, int, int] | None
    cpuid_error: str | None
    sev_guest_dev: bool
    tsm_report_dir: bool
    tsm_provider: str | None
    kernel: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def status_low3(self) -> int | None:
        return None if self.sev_status is None else self.sev_status & 0b111

    @property
    def cpuid_eax_sev_bits(self) -> int | None:
        """EAX bits SEV|SEV-ES|SNP of Fn8000_001F; 0 when the leaf does not exist (no SEV)."""
        if self.cpuid_8000001f is not None:
            return MemEncryptInfo(*self.cpuid_8000001f).sev_mode_bits
        if self.cpuid_max_ext is not None:
            return 0
        return None

    @property
    def cbitpos(self) -> int | None:
        return None if self.cpuid_8000001f is None else MemEncryptInfo(*self.cpuid_8000001f).cbitpos


def parse_probe(result: CommandResult) -> GuestProbe:
    """Parse the probe's output. Raises GuestError (with the output) if it did not run."""
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("SEVKIT-PROBE ")), None)
    if result.exit_status != 0 or line is None:
        raise GuestError(f"in-guest probe failed over {result.transport or 'shell'} (exit {result.exit_status}): "
                         f"{(result.stderr or result.stdout).strip()[-300:]}",
                         evidence={"stdout": result.stdout[-2000:], "stderr": result.stderr[-2000:]})
    try:
        raw: dict[str, Any] = json.loads(line[len("SEVKIT-PROBE "):])
    except json.JSONDecodeError as exc:
        raise GuestError(f"in-guest probe printed unreadable JSON: {exc}", evidence={"line": line}) from exc
    leaf = raw.get("cpuid_8000001f")
    return GuestProbe(
        sev_status=raw.get("sev_status"), msr_error=raw.get("msr_error"),
        cpuid_max_ext=raw.get("cpuid_max_ext"),
        cpuid_8000001f=(int(leaf[0]), int(leaf[1]), int(leaf[2]), int(leaf[3])) if leaf else None,
        cpuid_error=raw.get("cpuid_error"), sev_guest_dev=bool(raw.get("sev_guest_dev")),
        tsm_report_dir=bool(raw.get("tsm_report_dir")), tsm_provider=raw.get("tsm_provider"),
        kernel=str(raw.get("kernel", "")), raw=raw)


def run_probe(shell: Shell, timeout: float | None = None) -> GuestProbe:
    """Run the probe over ``shell`` (serial or SSH) and parse it."""
    return parse_probe(shell.run(probe_command(), timeout=timeout))


def read_dmesg(shell: Shell, timeout: float | None = None) -> CommandResult:
    """The guest kernel log (``dmesg``), checked for a zero exit status."""
    return shell.run("dmesg", timeout=timeout).check()
