"""The one options table (fixtures/options.py): every bad value, from the command line or the ini
file, stops the real suite before collection with exactly one line naming the option and what it
accepts, exit 2, within seconds. No run folder is made, so no probe ran and no QEMU started.
A remote --sev-target with guest suites selected is refused the same way (issue 9 §10).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def suite(tmp_path: Path, *args: str, paths: tuple[str, ...] = ("suites",)) -> tuple[int, list[str], float]:
    reports = tmp_path / "reports"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", *paths, "-q", "--no-header", "-p", "no:cacheprovider",
                           f"--sev-report-dir={reports}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, PYTHONPATH=str(REPO)))
    took = time.monotonic() - start
    return proc.returncode, (proc.stdout + proc.stderr).splitlines(), took


BAD = [
    (("--sev-min-tcb=garbage",), "--sev-min-tcb / sev_min_tcb (command line): 'garbage'", "keys bl, tee, snp, ucode"),
    (("--sev-guest-cpus=two",), "--sev-guest-cpus / sev_guest_cpus (command line): 'two'", "an integer >= 1"),
    (("--sev-accel=warp",), "--sev-accel / sev_accel (command line): 'warp'", "one of auto, kvm, tcg"),
    (("--sev-expect=bogus",), "--sev-expect / sev_expect (command line): 'bogus'", "none, sev, sev-es, sev-snp"),
    (("--sev-guest-memory=32",), "--sev-guest-memory / sev_guest_memory (command line): '32'", ">= 64 (MiB)"),
    (("--sev-timeout-boot=soon",), "--sev-timeout-boot / sev_timeout_boot (command line): 'soon'", "seconds > 0"),
    (("--sev-dump-method=xray",), "--sev-dump-method / sev_dump_method (command line): 'xray'", "procmem, elf"),
    (("--sev-target=ftp://lab",), "--sev-target / sev_target (command line): 'ftp://lab'", "ssh://user@host"),
    (("--sev-kds-url=kds.amd.com",), "--sev-kds-url / sev_kds_url (command line)", "'off'"),
    (("--sev-kds-url=http://kds.lab.example",), "--sev-kds-url / sev_kds_url (command line)",
     "plain http only to a loopback test server"),
    (("--sev-min-current-mit-vector=lots",), "--sev-min-current-mit-vector / sev_min_current_mit_vector "
     "(command line): 'lots'", "a 64-bit mask"),
    (("-o", "sev_accel=warp"), "--sev-accel / sev_accel (ini): 'warp'", "one of auto, kvm, tcg"),
]


@pytest.mark.parametrize(("args", "names", "accepted"), BAD, ids=[b[0][-1] for b in BAD])
def test_bad_value_exits_2_with_one_line_before_anything_runs(tmp_path: Path, args: tuple[str, ...], names: str,
                                                              accepted: str) -> None:
    code, lines, took = suite(tmp_path, *args)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("sevkit: error: " + names), lines[0]
    assert accepted in lines[0] and "is not accepted; expected" in lines[0]
    assert not (tmp_path / "reports").exists()      # pytest_configure never ran: no probe, no guest
    assert took < 30, f"took {took:.1f}s"


def test_bad_value_in_the_ini_file(tmp_path: Path) -> None:
    """A lab's pytest.ini with a bad value: the same one line, naming the ini source."""
    ini = tmp_path / "lab.ini"
    ini.write_text((REPO / "pytest.ini").read_text() + "sev_guest_cpus = two\n")
    code, lines, _ = suite(tmp_path, "-c", str(ini), "--rootdir", str(REPO), "--confcutdir", str(REPO),
                           paths=(str(REPO / "suites"),))
    assert code == 2, lines
    assert lines == ["sevkit: error: --sev-guest-cpus / sev_guest_cpus (ini): 'two' is not accepted; "
                     "expected an integer >= 1"]


def test_good_values_reach_the_frozen_settings(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["fixtures.options"]\n')
    (tmp_path / "pytest.ini").write_text("[pytest]\nsev_guest_memory = 2048\nsev_dump_method = all\n")
    (tmp_path / "test_settings.py").write_text(
        "import dataclasses, pytest\n"
        "from fixtures.options import settings\n"
        "def test_s(request):\n"
        "    s = settings(request.config)\n"
        "    assert s.guest.vcpus == 3 and s.guest.memory_mib == 2048 and s.guest.accel == 'tcg'\n"
        "    assert s.expect == 'sev-es' and s.demands('SEV') and not s.demands('SEV-SNP')\n"
        "    assert s.dump_methods == ('procmem', 'elf', 'pmemsave') and s.kds_url is None\n"
        "    assert s.min_tcb == {'blSPL': 3, 'snpSPL': 8} and s.timeouts.boot == 7.5\n"
        "    assert s.min_mit_vectors == (0, 5)\n"
        "    with pytest.raises(dataclasses.FrozenInstanceError):\n"
        "        s.expect = 'none'\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--sev-guest-cpus=3",
                           "--sev-accel", "TCG", "--sev-expect=sev-es", "--sev-kds-url=off", "--sev-min-tcb=bl=3,snp=8",
                           "--sev-timeout-boot=7.5", "--sev-min-current-mit-vector=0x5"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("paths", [("suites",), ("suites/guest/test_guest_launch.py::test_query_sev",)],
                         ids=["all-suites", "one-guest-test"])
def test_remote_target_refuses_guest_suites(tmp_path: Path, paths: tuple[str, ...]) -> None:
    """Issue 9 §10: --sev-target ssh:// grades the remote host, but guests would start here: refused
    before collection (also under xdist, whose workers would collect), one line, exit 2."""
    code, lines, took = suite(tmp_path, "--sev-target=ssh://root@192.0.2.1", paths=paths)
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith(
        "sevkit: error: --sev-target ssh://root@192.0.2.1 applies to host checks only; deselect the suites"), lines
    assert "suites/guest" in lines[0]
    assert not (tmp_path / "reports").exists() and took < 30


def test_remote_target_with_host_suites_only_is_not_refused(tmp_path: Path) -> None:
    code, lines, _ = suite(tmp_path, "--sev-target=ssh://root@192.0.2.1", "--collect-only",
                           paths=("suites/host",))
    assert code == 0, lines
    assert not any("applies to host checks only" in line for line in lines)
