"""The fleet demo and the fleet scale benchmark, on a real labgrid lab of namespace hosts.

    python -m benchmarks.fleet demo            # 3 hosts, one fleet run, prints the report path
    python -m benchmarks.fleet bench [--hosts 30] [--installed-checkout DIR]
    python -m benchmarks.run fleet             # the benchmark with its defaults, JSON in reports/bench/

The benchmark measures the controller process (`sevkit fleet`) itself: CPU seconds, peak
memory (VmHWM), peak threads, SSH sessions per host, and the fleet's wall time against its
slowest host and against one host run alone. Every "host" shares this machine's CPUs, so host
work competes with the controller; the controller's own figures are what scale.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._fleetlab import fleet_lab

REPO = Path(__file__).resolve().parents[1]


def _fleet_argv(lab: Any, report_dir: Path, args: list[str], pytest_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "sevkit", "fleet", "--coordinator", lab.coordinator,
            "--identity", str(lab.user_key), "--known-hosts", str(lab.known_hosts),
            "--report-dir", str(report_dir), *args, "--", *pytest_args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def demo() -> int:
    tags = [{"gen": "genoa", "bios": "1_9"}, {"gen": "genoa", "bios": "2_0"}, {"gen": "turin", "bios": "1_0"}]
    with tempfile.TemporaryDirectory(prefix="sevkit-fleet-demo-") as tmp:
        print("fleet-demo: starting a labgrid coordinator, an exporter and 3 namespace hosts (own sshd each)")
        with fleet_lab(Path(tmp), tags, net=215) as lab:
            print(f"fleet-demo: coordinator {lab.coordinator}; places h00 h01 (gen=genoa), h02 (gen=turin)")
            argv = _fleet_argv(lab, REPO / "reports", ["--match", "gen=genoa", "--match", "gen=turin",
                                                        "--parallel", "3"], ["suites/host"])
            print("fleet-demo: $ sevkit fleet " + " ".join(argv[4:]), flush=True)
            rc = subprocess.run(argv, cwd=REPO, env=_env(), check=False).returncode
        print("fleet-demo: lab torn down (coordinator, exporter, namespaces, sshds)")
    folders = sorted((REPO / "reports").glob("fleet-*"))
    if folders:
        print(f"fleet-demo: fleet report: {folders[-1] / 'report.html'} (result.json, junit.xml, hosts/<place>/)")
    print(f"fleet-demo: sevkit fleet exited {rc}")
    return 0 if rc in (0, 1) else rc


def _measure(argv: list[str], log: Path) -> dict[str, Any]:
    """Run the controller, sampling its peak memory (VmHWM) and threads; CPU is taken by the
    caller from RUSAGE_CHILDREN around this call (the controller and its pip, not the hosts)."""
    t0 = time.monotonic()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=fh, stderr=subprocess.STDOUT)
        peak_rss = peak_threads = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                peak_rss = max(peak_rss, int(fields.get("VmHWM", "0 kB").split()[0]))
                peak_threads = max(peak_threads, int(fields.get("Threads", "0")))
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
    return {"wall_s": round(time.monotonic() - t0, 2), "exit": proc.returncode,
            "peak_rss_mib": round(peak_rss / 1024, 1), "peak_threads": peak_threads,
            "output_tail": log.read_text(errors="replace").splitlines()[-3:]}


def bench(hosts: int = 30, installed_checkout: str | None = None, parallel: int | None = None) -> dict[str, Any]:
    """``hosts`` namespace hosts, host suite only; the fleet once with 1 host, once with all."""
    import resource

    tags = [{"gen": "bench"} for _ in range(hosts)]
    extra = ["--installed-checkout", installed_checkout] if installed_checkout else []
    pytest_args = ["suites/host"]
    result: dict[str, Any] = {"hosts": hosts, "cpus": os.cpu_count(), "installed_checkout": bool(installed_checkout),
                              "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="sevkit-fleet-bench-") as tmp, \
            fleet_lab(Path(tmp) / "lab", tags, net=216) as lab:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        single = _measure(_fleet_argv(lab, Path(tmp) / "r1", ["--match", "name=h00", *extra], pytest_args),
                          Path(tmp) / "single.log")
        mid = resource.getrusage(resource.RUSAGE_CHILDREN)
        single["cpu_user_s"] = round(mid.ru_utime - before.ru_utime, 2)
        single["cpu_sys_s"] = round(mid.ru_stime - before.ru_stime, 2)
        full = _measure(_fleet_argv(lab, Path(tmp) / "rN", ["--match", "gen=bench", "--parallel",
                                                            str(parallel or hosts), *extra], pytest_args),
                        Path(tmp) / "fleet.log")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        full["cpu_user_s"] = round(after.ru_utime - mid.ru_utime, 2)
        full["cpu_sys_s"] = round(after.ru_stime - mid.ru_stime, 2)
        data = json.loads(next((Path(tmp) / "rN").glob("fleet-*/result.json")).read_text())
        one = json.loads(next((Path(tmp) / "r1").glob("fleet-*/result.json")).read_text())
    elapsed = [h["elapsed_s"] for h in data["hosts"]]
    sessions = [h["ssh_sessions"] for h in data["hosts"]]
    result.update({
        "single_host": {**single, "host_elapsed_s": one["hosts"][0]["elapsed_s"]},
        "fleet": full,
        "statuses": data["counts"],
        "slowest_host_s": max(elapsed), "fastest_host_s": min(elapsed),
        "fleet_wall_over_slowest_host": round(full["wall_s"] / max(elapsed), 2),
        "fleet_wall_over_single_host_run": round(full["wall_s"] / single["wall_s"], 2),
        "ssh_sessions_per_host": sorted(set(sessions)),
        "controller_cpu_s_per_host": round((full["cpu_user_s"] + full["cpu_sys_s"]) / hosts, 3),
        "controller_rss_mib_per_host": round((full["peak_rss_mib"] - single["peak_rss_mib"]) / max(1, hosts - 1), 2),
        "load_after": os.getloadavg(),
    })
    return result


def run(out_dir: Path) -> dict[str, Any]:
    """benchmarks.run entry: 30 hosts, this repository's own .venv as the installed sevkit."""
    checkout = str(REPO) if (REPO / ".venv" / "bin" / "python").exists() else None
    return bench(30, checkout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fleet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("demo")
    b = sub.add_parser("bench")
    b.add_argument("--hosts", type=int, default=30)
    b.add_argument("--parallel", type=int)
    b.add_argument("--installed-checkout", metavar="DIR")
    args = parser.parse_args(argv)
    if args.cmd == "demo":
        return demo()
    print(json.dumps(bench(args.hosts, args.installed_checkout, args.parallel), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
