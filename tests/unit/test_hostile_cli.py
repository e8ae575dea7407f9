"""The hostile-input harness (issue 10): every CLI command fed what a hostile or careless user
gives it, each command line in its own process (hostile_runner.py: RLIMIT_AS, SIGKILL at a
deadline, peak RSS from wait4).

Contract asserted for every case: no traceback, no ``internal error``, not killed (time), peak RSS
under the budget, and, where the input must be refused, exit 2 with exactly one stderr line
``sevkit: error: ...``. Cases whose input may legitimately be usable (scanning a huge sparse file,
``image find`` over a damaged manifest, which counts as "not built") allow exit 0/1 but the same
rest of the contract. The counts are printed (``-s`` shows them; the junit log keeps them).

Families: special files (FIFO, /dev/zero, /dev/null, a char device node of our own, a socket, a
folder, a symlink to a FIFO, missing, a name with a newline), empty, huge (sparse, one byte over
the kind's cap), binary, long lines, deep JSON, truncated at every length (report, certificate,
certificate table, bundle, ELF dump: run in-process, the process isolation adds nothing there),
and bad options. All inputs are synthetic (built here) except the real Milan report and VCEK from
tests/data/realdata, which are only truncated, never changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.hostraw import REALDATA, make_raw

from sevkit.cli import main
from sevkit.host import write_bundle
from sevkit.image import Recipe
from sevkit.userfiles import BUNDLE, CAPTURE, CERTIFICATE, IGVM, MANIFEST, OVMF_IMAGE, REPORT, SSH_KEY

RUNNER = Path(__file__).with_name("hostile_runner.py")
REPORT_BIN = REALDATA / "attestation" / "virtee-sev" / "report_milan.bin"
VCEK_DER = REALDATA / "attestation" / "virtee-sev" / "vcek_milan.der"
AS_LIMIT = 1 << 30            # 1 GiB of address space per command
RSS_BUDGET_KIB = 400 * 1024   # peak resident memory per command
CASE_TIMEOUT = 30.0           # generous wall-clock bound per input (2 shared cores); budgets come from make bench
WORKERS = 3


@dataclass
class Case:
    name: str
    argv: list[str]
    must_refuse: bool = True          # exit 2 with one line; else 0/1 allowed too
    stdin: str | None = None


def _specials(tmp: Path) -> dict[str, str]:
    """Input files no command may block on or read without limit."""
    d = tmp / "special"
    d.mkdir()
    fifo = d / "fifo"
    os.mkfifo(fifo)
    node = d / "null-node"                      # our own char device (1,3 = null): safe to test against
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    sock_path = d / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    (d / "link-to-fifo").symlink_to(fifo)
    (d / "folder").mkdir()
    return {"fifo": str(fifo), "dev-zero": "/dev/zero", "dev-null": "/dev/null", "char-node": str(node),
            "socket": str(sock_path), "symlink-fifo": str(d / "link-to-fifo"), "folder": str(d / "folder"),
            "missing": str(d / "missing"), "newline-name": str(d / "a\nsevkit: error: forged")}


def _file(tmp: Path, name: str, data: bytes) -> str:
    p = tmp / name
    p.write_bytes(data)
    return str(p)


def _sparse(tmp: Path, name: str, size: int) -> str:
    p = tmp / name
    with open(p, "wb") as fh:
        fh.truncate(size)
    return str(p)


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _long_lines() -> bytes:
    """1 MiB of the crafted lines issue 10 item 7 timed in minutes (padded [PASS], repeated 'SEV: ',
    cpuid lines with long blank runs), each 16 KiB long."""
    n = 16 * 1024
    lines = [b"[PASS] - a" + b" " * n + b"b", b"SEV: " * (n // 5), b"   SEV:" + b" " * n + b"x",
             b"cat " + b"kvm_amd/parameters/" * (n // 19) + b" x", b"Memory Encryption Features active: AMD"
             + b" a" * (n // 2) + b"!"]
    block = b"\n".join(lines) + b"\n"
    return block * ((1 << 20) // len(block))


def _bundle_with(tmp: Path, name: str, raw_json: bytes) -> str:
    import io as _io
    import tarfile
    p = tmp / name
    with tarfile.open(p, "w:gz") as tar:
        info = tarfile.TarInfo("raw.json")
        info.size = len(raw_json)
        tar.addfile(info, _io.BytesIO(raw_json))
    return str(p)


def _elf(segments: int = 2) -> bytes:
    """A minimal synthetic ELF64 core-like file: header, PT_LOAD program headers, data."""
    phoff, phnum = 64, segments
    data_off = phoff + 56 * phnum
    head = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    head += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, phoff, 0, 0, 64, 56, phnum, 64, 0, 0)
    body = b""
    for i in range(phnum):
        head += struct.pack("<IIQQQQQQ", 1, 4, data_off + i * 4096, 0, i * 0x100000, 4096, 4096, 0)
        body += bytes([0x41 + i]) * 4096
    return bytes(head) + body


def _cases(tmp: Path) -> list[Case]:
    sp = _specials(tmp)
    report, vcek = str(REPORT_BIN), str(VCEK_DER)
    binary = _file(tmp, "binary.bin", os.urandom(65536))
    empty = _file(tmp, "empty", b"")
    long_lines = _file(tmp, "long-lines.txt", _long_lines())
    synthetic = make_raw()                                   # synthetic collector output
    raw = synthetic.data
    good_bundle = str(write_bundle(synthetic, tmp / "good.tar.gz"))
    raw_bad_types = dict(raw, collector={"euid": "root"}, dmesg={"text": None})
    caps = {"text": CAPTURE, "bundle": BUNDLE, "report": REPORT, "cert": CERTIFICATE, "igvm": IGVM,
            "ovmf": OVMF_IMAGE}
    huge = {k: _sparse(tmp, f"huge-{k}", c.limit + 1) for k, c in caps.items()}
    common = {**sp, "empty": empty, "binary": binary}

    slots: dict[str, tuple[list[str], str, dict[str, str]]] = {
        # name: (argv with {} for the hostile file, kind, extra inputs of that kind)
        "analyze": (["analyze", "{}"], "text", {"long-lines": long_lines, "huge": huge["text"]}),
        "probe-bundle": (["probe", "--bundle", "{}"], "bundle", {
            "huge": huge["bundle"], "long-lines": long_lines,
            "deep-json": _bundle_with(tmp, "deep.tar.gz", _deep_json(100_000)),
            "deep-detail": _bundle_with(tmp, "deep2.tar.gz", json.dumps(
                dict(raw, dmesg={"attempts": json.loads(_deep_json(50))})).encode()),
            "wrong-types": _bundle_with(tmp, "types.tar.gz", json.dumps(raw_bad_types).encode()),
            "bomb": _bundle_with(tmp, "bomb.tar.gz", b" " * (40 << 20)),
            "not-json": _bundle_with(tmp, "notjson.tar.gz", b"{\"schema\": 1,"),
            "json-list": _bundle_with(tmp, "list.tar.gz", b"[1, 2]")}),
        "scan": (["scan", "{}", "--needle", "41"], "dump", {"huge-sparse": _sparse(tmp, "sparse.dump", 256 << 20)}),
        "attest-show": (["attest", "show", "{}"], "report", {"huge": huge["report"], "long-lines": long_lines}),
        "attest-verify-report": (["attest", "verify", "{}", "--cert", vcek], "report", {"huge": huge["report"]}),
        "attest-verify-cert": (["attest", "verify", report, "--cert", "{}"], "cert",
                               {"huge": huge["cert"], "long-lines": long_lines}),
        "attest-verify-chain": (["attest", "verify", report, "--cert", vcek, "--chain", "{}"], "cert", {}),
        "attest-fetch-certs": (["attest", "fetch-vcek", report, "--product", "Milan", "--offline",
                                "--certs", "{}", "-o", str(tmp / "vcek-out.der")], "cert", {}),
        "igvm-measure": (["igvm", "measure", "{}"], "igvm", {"huge": huge["igvm"], "long-lines": long_lines}),
        "igvm-build-ovmf": (["igvm", "build", "--ovmf", "{}", "--out", str(tmp / "never.igvm")], "ovmf",
                            {"huge": huge["ovmf"], "long-lines": long_lines}),
        "collect-identity": (["collect", "--target", "ssh://root@127.0.0.1:1", "--identity", "{}",
                              "-o", str(tmp / "never.tar.gz")], "key",
                             {"huge": _sparse(tmp, "huge-key", SSH_KEY.limit + 1), "long-lines": long_lines}),
    }
    cases: list[Case] = []
    for slot, (argv, _kind, extra) in slots.items():
        for fam, path in {**common, **extra}.items():
            # a binary file or a huge sparse one is a fine memory dump; long lines may hold real SEV lines
            may_work = (slot == "scan" and fam in ("huge-sparse", "binary")) or (
                slot == "analyze" and fam == "long-lines")
            cases.append(Case(f"{slot}/{fam}", [a.replace("{}", path) for a in argv], must_refuse=not may_work))
    cases.append(Case("analyze/stdin-fifo-as-dash", ["analyze", "-"], stdin=sp["dev-null"]))

    # image find/prune over a store of hostile manifests and look-alike folders
    for fam, blob in {"deep": _deep_json(100_000),
                      "deep-obj": b'{"disk": "d", "kernel": "k", "initrd": "i", "x": ' + _deep_json(60) + b"}",
                      "binary": os.urandom(4096), "huge": b" " * (MANIFEST.limit + 1),
                      "types": b'{"disk": 1, "kernel": [], "initrd": {}}'}.items():
        s = tmp / f"store-{fam}"
        (s / Recipe().name).mkdir(parents=True)
        (s / Recipe().name / "image.json").write_bytes(blob)
        cases.append(Case(f"image-find/manifest-{fam}", ["image", "find", "--out", str(s)], must_refuse=False))
    fifo_manifest = tmp / "store-fifo"
    (fifo_manifest / Recipe().name).mkdir(parents=True)
    os.mkfifo(fifo_manifest / Recipe().name / "image.json")
    cases.append(Case("image-find/manifest-fifo", ["image", "find", "--out", str(fifo_manifest)], must_refuse=False))
    for fam in ("fifo", "char-node", "dev-zero", "socket"):
        cases.append(Case(f"image-find/out-{fam}", ["image", "find", "--out", sp[fam]]))
        cases.append(Case(f"image-prune/out-{fam}", ["image", "prune", "--out", sp[fam]]))
    cases.append(Case("image-find/out-empty", ["image", "find", "--out", ""]))
    cases.append(Case("image-prune/out-empty", ["image", "prune", "--out", ""]))
    cases.append(Case("image-prune/out-file", ["image", "prune", "--out", binary]))

    # outputs: never written through a special file or symlink, never left half-written
    victim = _file(tmp, "victim.txt", b"must survive\n")
    (tmp / "out").mkdir()
    (tmp / "out" / "link").symlink_to(victim)
    outs = {"fifo": sp["fifo"], "char-node": sp["char-node"], "folder": sp["folder"], "empty": "",
            "missing-folder": str(tmp / "nope" / "x.tar.gz"), "symlink-to-victim": str(tmp / "out" / "link"),
            "dot": ".", "socket": sp["socket"]}
    for fam, out in outs.items():
        cases.append(Case(f"collect-o/{fam}", ["collect", "-o", out]))
        cases.append(Case(f"igvm-build-o/{fam}", ["igvm", "build", "--ovmf", "/usr/share/OVMF/OVMF_CODE.fd",
                                                  "--out", out]))
        cases.append(Case(f"fetch-vcek-o/{fam}", ["attest", "fetch-vcek", report, "--product", "Milan", "--offline",
                                                  "--cache", str(tmp / "cache"), "-o", out]))
    cases.append(Case("fetch-vcek-o/dev-full", ["attest", "fetch-vcek", report, "--product", "Milan", "--offline",
                                                "--cache", str(tmp / "cache"), "-o", "/dev/full"]))
    cases.append(Case("fetch-vcek/cache-is-file", ["attest", "fetch-vcek", report, "--product", "Milan",
                                                   "--cache", binary, "-o", str(tmp / "v.der")]))
    cases.append(Case("fetch-vcek/cache-fifo", ["attest", "fetch-vcek", report, "--product", "Milan",
                                                "--cache", sp["fifo"], "-o", str(tmp / "v.der")]))

    # bad options and values
    v = ["attest", "verify", report, "--cert", vcek]
    f = ["attest", "fetch-vcek", report, "--product", "Milan", "-o", str(tmp / "v2.der")]
    bad: dict[str, list[str]] = {
        **{f"verify{opt}=''": [*v, opt, ""] for opt in ("--nonce", "--measurement", "--host-data", "--id-key-digest",
                                                         "--author-key-digest", "--min-tcb", "--policy", "--at")},
        "verify--nonce=' '": [*v, "--nonce", " "], "verify--nonce=0x": [*v, "--nonce", "0x"],
        "verify--nonce=zz": [*v, "--nonce", "zz"], "verify--nonce=odd": [*v, "--nonce", "abc"],
        "verify--nonce=65-bytes": [*v, "--nonce", "00" * 65], "verify--measurement=47-bytes": [*v, "--measurement",
                                                                                                 "00" * 47],
        "verify--vmpl=9": [*v, "--vmpl", "9"], "verify--vmpl=x": [*v, "--vmpl", "x"],
        "verify--min-tcb=bl=999": [*v, "--min-tcb", "bl=999"], "verify--min-tcb=junk": [*v, "--min-tcb", "x=1,,="],
        "verify--at=junk": [*v, "--at", "yesterday"], "verify--smt=maybe": [*v, "--smt", "maybe"],
        "fetch--kds-url=file": [*f, "--kds-url", "file:///etc/passwd"],
        "fetch--kds-url=http-remote": [*f, "--kds-url", "http://kdsintf.amd.com"],
        "fetch--kds-url=http-local-no-opt-in": [*f, "--kds-url", "http://127.0.0.1:9"],
        "fetch--kds-url=broken": [*f, "--kds-url", "https://[::1"], "fetch--kds-url=port": [*f, "--kds-url",
                                                                                            "https://h:99999"],
        "fetch--kds-url=empty": [*f, "--kds-url", ""], "fetch--kds-url=creds": [*f, "--kds-url", "https://u:p@h"],
        "fetch--timeout=nan": [*f, "--timeout", "nan"], "fetch--timeout=-1": [*f, "--timeout", "-1"],
        "fetch--timeout=inf": [*f, "--timeout", "inf"], "fetch--cache=''": [*f, "--cache", ""],
        "scan--needle=zz": ["scan", binary, "--needle", "zz"], "scan--needle=''": ["scan", binary, "--needle", ""],
        "scan--workers=0": ["scan", binary, "--needle", "41", "--workers", "0"], "scan-no-needle": ["scan", binary],
        "probe--expect=bogus": ["probe", "--bundle", good_bundle, "--expect", "bogus"],
        "probe--bundle=''": ["probe", "--bundle", ""], "probe--target=ftp": ["probe", "--target", "ftp://h"],
        "probe--target=newline": ["probe", "--target", "ssh://h\nsevkit: error: forged"],
        "probe--identity-local": ["probe", "--identity", binary],
        "collect-o-missing": ["collect"], "unknown-command": ["frobnicate"], "unknown-option": ["analyze", "--frob"],
        "image--suite=bad-name": ["image", "find", "--suite", "Bad Name"],
        "image--mirror=junk": ["image", "find", "--mirror", "not a url"],
    }
    cases += [Case(f"options/{name}", argv) for name, argv in bad.items()]
    cases.append(Case("options/image--suite=unknown", ["image", "find", "--suite", "bogus"], must_refuse=False))
    return cases


def _check(case: Case, res: dict[str, Any]) -> list[str]:
    problems = []
    err, code = res["stderr"], res["code"]
    if "Traceback" in err or "internal error" in err:
        problems.append("traceback or internal error")
    if code < 0:
        problems.append(f"killed by signal {-code} (over {CASE_TIMEOUT:.0f}s?)")
    if res["maxrss_kib"] > RSS_BUDGET_KIB:
        problems.append(f"peak RSS {res['maxrss_kib']} KiB over {RSS_BUDGET_KIB} KiB")
    lines = err.splitlines()
    if code == 2 or case.must_refuse:
        if code != 2:
            problems.append(f"exit {code}, expected 2")
        if len(lines) != 1 or not lines[0].startswith("sevkit: error: "):
            problems.append(f"stderr is not one 'sevkit: error:' line: {err[:300]!r}")
    elif code not in (0, 1):
        problems.append(f"exit {code}")
    return problems


def test_every_command_survives_hostile_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEVKIT_CACHE_DIR", str(tmp_path / "cache-root"))   # never the real image store
    cases = _cases(tmp_path)
    spec = {"cases": [{"name": c.name, "argv": c.argv, "stdin": c.stdin, "cwd": str(tmp_path)} for c in cases],
            "workers": WORKERS, "timeout": CASE_TIMEOUT, "as_limit": AS_LIMIT}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(spec), capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert len(results) == len(cases)
    failures = {}
    for case, res in zip(cases, results, strict=True):
        problems = _check(case, res)
        if problems:
            failures[case.name] = (problems, res["code"], res["stderr"][:300])
    refused = sum(1 for r in results if r["code"] == 2)
    slowest = max(results, key=lambda r: r["seconds"])
    fattest = max(results, key=lambda r: r["maxrss_kib"])
    print(f"\nhostile harness: {len(cases)} command lines, {refused} refused with one line (exit 2), "
          f"{len(cases) - refused} ran (exit 0/1), {len(failures)} contract violations; slowest "
          f"{slowest['seconds']:.2f}s ({slowest['name']}), peak RSS {fattest['maxrss_kib'] // 1024} MiB "
          f"({fattest['name']})")
    assert not failures, json.dumps(failures, indent=1)
    # nothing outside the named output was touched
    assert (tmp_path / "victim.txt").read_bytes() == b"must survive\n"
    assert stat.S_ISCHR(os.lstat(tmp_path / "special" / "null-node").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "special" / "fifo").st_mode)
    assert (tmp_path / "out" / "link").is_symlink()
    leftovers = [p.name for p in tmp_path.rglob("*.part")]
    assert leftovers == []


# -- truncated at every length (in-process: thousands of cases; the parsers are what is exercised) ----------
def _run_inprocess(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def _assert_truncations(tmp: Path, blob: bytes, argv_for: Any, *, ok_codes: tuple[int, ...] = (),
                        lengths: range | list[int] | None = None) -> int:
    path = tmp / "cut"
    n = 0
    for length in range(len(blob)) if lengths is None else lengths:
        path.write_bytes(blob[:length])
        code, err = _run_inprocess(argv_for(str(path)))
        lines = err.splitlines()
        assert "Traceback" not in err and "internal error" not in err, (length, err)
        if code in ok_codes:
            continue
        assert code == 2 and len(lines) == 1 and lines[0].startswith("sevkit: error: "), (length, code, err)
        n += 1
    return n


def test_report_truncated_at_every_length(tmp_path: Path) -> None:
    blob = REPORT_BIN.read_bytes()
    refused = _assert_truncations(tmp_path, blob, lambda p: ["attest", "show", p])
    print(f"\nattest show: {len(blob)} truncations, {refused} refused with one line")
    assert refused == len(blob)


def test_certificate_truncated_at_every_length(tmp_path: Path) -> None:
    blob = VCEK_DER.read_bytes()
    refused = _assert_truncations(tmp_path, blob,
                                  lambda p: ["attest", "verify", str(REPORT_BIN), "--cert", p], ok_codes=(1,))
    print(f"\nattest verify --cert: {len(blob)} truncations, {refused} refused with one line")


def test_certificate_table_truncated_at_every_length(tmp_path: Path) -> None:
    from sevkit.attestation.certtable import build_cert_table
    blob = build_cert_table({"VCEK": VCEK_DER.read_bytes()})
    refused = _assert_truncations(tmp_path, blob, lambda p: ["attest", "fetch-vcek", str(REPORT_BIN), "--product",
                                                             "Milan", "--offline", "--certs", p,
                                                             "-o", str(tmp_path / "o.der")], ok_codes=(0,))
    print(f"\nfetch-vcek --certs: {len(blob)} truncations, {refused} refused with one line")


def test_bundle_truncated_at_every_length(tmp_path: Path) -> None:
    blob = Path(write_bundle(make_raw(), tmp_path / "b.tar.gz")).read_bytes()
    lengths = range(0, len(blob), max(1, len(blob) // 1500))      # ~1500 cuts across the whole file
    refused = _assert_truncations(tmp_path, blob, lambda p: ["probe", "--bundle", p], lengths=lengths)
    print(f"\nprobe --bundle: {len(lengths)} truncations of {len(blob)} bytes, {refused} refused with one line")
    assert refused == len(lengths)


def test_elf_dump_truncated_at_every_length(tmp_path: Path) -> None:
    blob = _elf()
    headers = 64 + 56 * 2                    # every cut inside the headers, then every 64th byte of data
    lengths = [*range(headers + 1), *range(headers + 1, len(blob), 64)]
    refused = _assert_truncations(tmp_path, blob, lambda p: ["scan", p, "--needle", "41", "--no-entropy"],
                                  ok_codes=(0,), lengths=lengths)
    print(f"\nscan: {len(lengths)} truncations of a synthetic ELF dump, {refused} refused with one line")
    assert refused >= 64            # at least an empty file and every cut header
