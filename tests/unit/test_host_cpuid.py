"""CPUID without /dev/cpu/N/cpuid: the collector executes the instruction itself (x86-64 only).

The cross-check runs on this machine: the instruction pinned to CPU 0 must give exactly what
/dev/cpu/0/cpuid gives (leaf 1 EBX holds the APIC ID, so the CPU matters).
"""

from __future__ import annotations

import errno
import json
import os
import platform
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers.hostraw import make_raw

from sevkit.host import RawInputs, collector, grade

LEAVES = (0x0, 0x1, 0x80000000, 0x80000001, 0x8000001F)
SOURCE = Path(collector.__file__)
NO_MODULE = {"cpuid": {"rc": 1, "stdout": "", "stderr": "modprobe: FATAL: Module cpuid not found"}}

x86_64 = pytest.mark.skipif(platform.machine() != "x86_64", reason=f"CPUID exists only on x86-64, not "
                            f"{platform.machine()}")


def _device_leaves(path: str = collector.CPUID_DEV) -> dict[int, tuple[int, ...]]:
    """What /dev/cpu/0/cpuid says, or a skip naming why it cannot be read here."""
    collector._modprobe("cpuid", path, {})
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        pytest.skip(f"cross-check needs {path}: {exc} (the instruction route is tested without it below)")
    try:
        return {leaf: struct.unpack("<4I", os.pread(fd, 16, leaf)) for leaf in LEAVES}
    finally:
        os.close(fd)


@x86_64
def test_instruction_pinned_to_cpu0_equals_dev_cpu0_cpuid() -> None:
    dev = _device_leaves()
    before = os.sched_getaffinity(0)
    insn = collector.cpuid_instruction(LEAVES, cpu=0)
    assert os.sched_getaffinity(0) == before          # affinity restored
    assert insn["cpu"] == 0
    got = {int(k, 16): tuple(v) for k, v in insn["leaves"].items()}
    assert got == dev, {hex(k): (got[k], dev[k]) for k in LEAVES if got[k] != dev[k]}
    with collector.CpuidInstruction() as fn:   # subleaf 0 is what the device node reads too
        assert fn(0) == dev[0]


@x86_64
def test_collector_falls_back_when_the_device_is_missing() -> None:
    sec = collector._cpuid(dict(NO_MODULE), path="/nonexistent/cpu/0/cpuid")
    assert sec["source"] == "CPUID instruction (cpuid module unavailable)"
    assert sec["device_error"]["errno"] == errno.ENOENT and sec["cpu"] == 0
    assert set(sec["leaves"]) == {f"0x{leaf:08x}" for leaf in collector.CPUID_LEAVES}
    vendor = struct.pack("<3I", sec["leaves"]["0x00000000"][1], sec["leaves"]["0x00000000"][3],
                         sec["leaves"]["0x00000000"][2]).decode()
    assert vendor in Path("/proc/cpuinfo").read_text()


@x86_64
def test_fallback_runs_in_a_bare_python3_like_the_ssh_remote() -> None:
    """The remote side is `python3 -` with the collector's source: the fallback is self-contained."""
    driver = ("import json, sys\nns = {'__name__': 'collector'}\nexec(sys.stdin.read(), ns)\n"
              "print(json.dumps(ns['_cpuid']({'cpuid': {'rc': 1}}, '/nonexistent/cpuid')))\n")
    proc = subprocess.run(["/usr/bin/python3", "-c", driver], input=SOURCE.read_bytes(), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    remote = json.loads(proc.stdout)
    assert remote["source"] == "CPUID instruction (cpuid module unavailable)"
    local = collector.cpuid_instruction(collector.CPUID_LEAVES, cpu=0)
    assert remote["leaves"] == local["leaves"]


@x86_64
def test_instruction_runs_on_the_lowest_allowed_cpu_when_cpu0_is_not_allowed() -> None:
    before = os.sched_getaffinity(0)
    others = sorted(before - {0})
    if not others:
        pytest.skip(f"needs a second CPU in the affinity set, have {sorted(before)}")
    os.sched_setaffinity(0, {others[0]})
    try:
        out = collector.cpuid_instruction((0x1,), cpu=0)
        assert out["cpu"] == others[0] and "not in this process's affinity set" in out["note"]
        assert os.sched_getaffinity(0) == {others[0]}
    finally:
        os.sched_setaffinity(0, before)


def test_no_fallback_off_x86_64(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector.platform, "machine", lambda: "aarch64")
    with pytest.raises(RuntimeError, match="only on x86-64"):
        collector.CpuidInstruction()
    sec = collector._cpuid(dict(NO_MODULE), path="/nonexistent/cpuid")
    assert sec["source"] == "/nonexistent/cpuid" and "error" in sec and "aarch64" in sec["instruction"]["error"]
    r = grade(make_raw(cpuid_error={k: v for k, v in sec.items() if k != "source"}))
    c = r.check("cpu.vendor")
    assert c.status == "error" and "aarch64" in json.dumps([e.value for e in c.evidence])


def test_grader_names_the_instruction_as_evidence_source() -> None:
    """SYNTHETIC registers; only the source differs from make_raw's default."""
    base = make_raw()
    data: dict[str, Any] = json.loads(json.dumps(base.data))
    data["cpuid"]["source"] = collector.CPUID_SRC_INSN
    r = grade(RawInputs(data))
    assert r.check("cpu.vendor").status == "pass"
    sources = [e.source for cid in ("cpu.vendor", "cpu.epyc", "cpuid.leaf_8000001f") for e in r.check(cid).evidence]
    assert all(s.startswith("CPUID instruction (cpuid module unavailable)") for s in sources[:2]), sources
    assert any(s.startswith("CPUID instruction") and "0x8000001f" in s for s in sources)
    assert grade(base).check("cpu.vendor").evidence[0].source.startswith("/dev/cpu/0/cpuid")


@x86_64
def test_unpinnable_process_still_reads_cpuid_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int, cpus: object) -> None:
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(collector.os, "sched_setaffinity", refuse)
    out = collector.cpuid_instruction((0x0,), cpu=0)
    assert out["cpu"] is None and "could not pin" in out["note"] and len(out["leaves"]["0x00000000"]) == 4


@x86_64
def test_cpuid_faulting_is_refused_not_a_crash() -> None:
    """With arch_prctl(ARCH_SET_CPUID, 0) the instruction would SIGSEGV the collector: it must refuse."""
    script = ("import ctypes, json, sys\nns = {'__name__': 'collector'}\nexec(sys.stdin.read(), ns)\n"
              "libc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
              "if libc.syscall(ctypes.c_long(158), ctypes.c_long(0x1012), ctypes.c_long(0)) != 0:\n"
              "    print(json.dumps({'unsupported': ctypes.get_errno()})); sys.exit(0)\n"
              "print(json.dumps(ns['_cpuid']({'cpuid': {'rc': 1}}, '/nonexistent/cpuid')))\n")
    proc = subprocess.run(["/usr/bin/python3", "-c", script], input=SOURCE.read_bytes(), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr.decode()[-2000:])
    out = json.loads(proc.stdout)
    if "unsupported" in out:
        pytest.skip(f"this CPU/kernel cannot enable CPUID faulting (errno {out['unsupported']})")
    assert "error" in out and "CPUID faulting" in out["instruction"]["error"]
