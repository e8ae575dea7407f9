"""Issue 10 items 1-11: one self-test per defect, each with the input that showed it.

Synthetic inputs are built here (bundles from hostraw.make_raw, junk certificates); the real Milan
report and VCEK come from tests/data/realdata unchanged.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
from pathlib import Path

import pytest
from helpers.hostraw import REALDATA, make_raw

from sevkit.attestation import load_report
from sevkit.attestation.kds import cache_name, obtain_vcek
from sevkit.cli import main
from sevkit.errors import InputError, KdsError
from sevkit.host import read_bundle, write_bundle
from sevkit.host.transport import raw_from_json
from sevkit.userfiles import atomic_output, read_file, shown

REPORT_BIN = REALDATA / "attestation" / "virtee-sev" / "report_milan.bin"
VCEK_DER = REALDATA / "attestation" / "virtee-sev" / "vcek_milan.der"


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, err.getvalue()


def one_line(code: int, err: str, *words: str) -> None:
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sevkit: error: "), (code, err)
    for w in words:
        assert w in lines[0], (w, lines[0])


# -- 1. collect -o ------------------------------------------------------------------------------------
def test_planted_symlink_at_the_old_predictable_temp_name_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "etc-shadow"
    victim.write_text("root:secret\n")
    out = tmp_path / "host.tar.gz"
    for pid in range(os.getpid() - 2, os.getpid() + 3):            # the old name was <out>.<pid>.part
        (tmp_path / f"host.tar.gz.{pid}.part").symlink_to(victim)
    write_bundle(make_raw(), out)
    assert victim.read_text() == "root:secret\n"
    assert read_bundle(out).data["schema"] == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600               # item 4: the bundle holds the kernel log


def test_collect_refuses_device_fifo_folder_and_empty_output(tmp_path: Path) -> None:
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))         # our own /dev/null, safe to aim at
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for target, words in ((node, "character device"), (fifo, "FIFO"), (tmp_path, "directory"),
                          ("", "empty file name")):
        one_line(*run(["collect", "-o", str(target)]), str(words))
    assert stat.S_ISCHR(node.lstat().st_mode) and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert list(tmp_path.glob("*.part")) == [] and list(tmp_path.glob(".*.part")) == []


def test_atomic_output_removes_its_temp_file_on_every_path(tmp_path: Path) -> None:
    out = tmp_path / "x.bin"
    out.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(out, "x") as fh:
        fh.write(b"half")
        raise RuntimeError("interrupted mid-write")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.bin"]


# -- 3. empty or malformed expected values ----------------------------------------------------------------
@pytest.mark.parametrize("option", ["--nonce", "--measurement", "--host-data", "--id-key-digest",
                                    "--author-key-digest", "--min-tcb"])
@pytest.mark.parametrize("value", ["", " ", "0x"])
def test_empty_expected_value_is_a_usage_error(option: str, value: str) -> None:
    if option == "--min-tcb" and value == "0x":
        value = "bl="
    one_line(*run(["attest", "verify", str(REPORT_BIN), "--cert", str(VCEK_DER), option, value]), option)


# -- 4. VCEK cache --------------------------------------------------------------------------------------
def test_junk_in_the_vcek_cache_is_not_written_out_as_the_vcek(tmp_path: Path) -> None:
    report = load_report(REPORT_BIN.read_bytes())
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cache_name("Milan", report)).write_bytes(b"junk, not a certificate")
    out = tmp_path / "vcek.der"
    code, err = run(["attest", "fetch-vcek", str(REPORT_BIN), "--product", "Milan", "--offline",
                     "--cache", str(cache), "-o", str(out)])
    one_line(code, err, "unusable", "not a DER or PEM")
    assert not out.exists()


def test_a_cached_vcek_of_another_chip_is_not_used(tmp_path: Path) -> None:
    """The real Milan VCEK filed under a Turin report's name (another chip): refused."""
    raw = bytearray(REPORT_BIN.read_bytes())
    raw[0x1A8:0x1E0] = bytes(56)              # CHIP_ID[8:] zero: a v2 report then reads as Turin's
    other = load_report(bytes(raw))
    cache = tmp_path
    (cache / cache_name("Turin", other)).write_bytes(VCEK_DER.read_bytes())
    with pytest.raises(KdsError, match="hwID is not this report's CHIP_ID"):
        obtain_vcek(other, product="Turin", cache_dir=cache)


def test_cache_key_keeps_the_whole_chip_id() -> None:
    report = load_report(REPORT_BIN.read_bytes())
    assert report.chip_id.hex() in cache_name("Milan", report) and len(report.chip_id) == 64


# -- 6, 8. special files and caps -------------------------------------------------------------------------
def test_fifo_and_dev_zero_are_refused_before_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)                    # nobody writes: a blocking open would hang this test
    for path, words in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        with pytest.raises(InputError, match=words):
            read_file(path, __import__("sevkit.userfiles").userfiles.REPORT, "report")


def test_text_report_over_the_cap_names_the_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(200 << 20)        # attest show of a 200 MB text file used 4 GB
    one_line(*run(["attest", "show", str(big)]), "1 MiB cap for a attestation report")


# -- 9. bundle JSON ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mutate,where", [
    (lambda d: d["collector"].update(euid="root"), "collector/euid"),
    (lambda d: d.update(dmesg=None), "dmesg"),
    (lambda d: d["cpuid"].update(leaves={"0x8000001f": [1, 2, "x", 4]}), "cpuid/leaves"),
    (lambda d: d["files"].update({"/proc/cmdline": {"text": 7}}), "files"),
    (lambda d: d["dmesg"].update(attempts=[[[[[[[[[[[]]]]]]]]]]]), "dmesg/attempts"),
])
def test_bundle_json_of_wrong_shape_is_one_line(mutate, where: str) -> None:  # type: ignore[no-untyped-def]
    import json
    data = json.loads(json.dumps(make_raw().data))
    mutate(data)
    with pytest.raises(InputError, match="does not fit the collector schema at " + where):
        raw_from_json(json.dumps(data).encode(), "bundle b.tar.gz", origin="test")


def test_deeply_nested_raw_json_is_one_line() -> None:
    with pytest.raises(InputError, match="not valid JSON"):
        raw_from_json(b"[" * 200_000 + b"]" * 200_000, "bundle b.tar.gz", origin="test")


# -- 10. the remaining crashes ------------------------------------------------------------------------------
def test_scan_of_an_unmappable_sysfs_file_is_one_line() -> None:
    one_line(*run(["scan", "/sys/kernel/mm/transparent_hugepage/enabled", "--needle", "41"]), "cannot map")


def test_binary_identity_is_one_line(tmp_path: Path) -> None:
    key = tmp_path / "id"
    key.write_bytes(bytes(range(256)) * 4)
    one_line(*run(["probe", "--target", "ssh://root@127.0.0.1:1", "--identity", str(key)]),
             "not a usable SSH private key")


def test_fetch_vcek_output_failures_are_one_line(tmp_path: Path) -> None:
    base = ["attest", "fetch-vcek", str(REPORT_BIN), "--product", "Milan", "--offline"]
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / cache_name("Milan", load_report(REPORT_BIN.read_bytes()))).write_bytes(VCEK_DER.read_bytes())
    for out, words in ((tmp_path / "missing" / "v.der", "does not exist"), (tmp_path, "directory"),
                       (Path("/dev/full"), "character device")):
        one_line(*run([*base, "--cache", str(cache), "-o", str(out)]), *words.split("|"))
    cache_file = tmp_path / "cache-file"
    cache_file.write_text("x")
    one_line(*run([*base, "--cache", str(cache_file), "-o", str(tmp_path / "v.der")]), "not a folder")


def test_probe_bundle_empty_name_does_not_probe_the_local_host() -> None:
    one_line(*run(["probe", "--bundle", ""]), "empty file name")


def _run_as_nobody(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` in a forked child that dropped to uid/gid 65534 (root reads everything, so
    an unreadable folder needs an unprivileged user). Everything is imported before the fork: the
    child may not be able to read the interpreter's own files."""
    import sevkit.host.transport
    import sevkit.image.store  # noqa: F401
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            sys.stderr = open(w, "w")           # pytest's capture replaced sys.stderr  # noqa: SIM115
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            code = main(argv)
            sys.stderr.flush()
            os._exit(code)
        except BaseException:
            os._exit(99)
    os.close(w)
    with os.fdopen(r) as fh:
        err = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unreadable_parent_folder_as_an_unprivileged_user(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    (locked / "inner").mkdir(parents=True)
    locked.chmod(0o700)                        # root-owned: 'nobody' cannot enter it
    tmp_path.chmod(0o755)
    for argv, words in ((["probe", "--bundle", str(locked / "b.tar.gz")], "permission denied"),
                        (["image", "find", "--out", str(locked / "inner")], "permission denied")):
        one_line(*_run_as_nobody(argv), words)


# -- 11. names quoted, every error names its file ----------------------------------------------------------
def test_a_newline_in_a_file_name_cannot_forge_a_second_line(tmp_path: Path) -> None:
    forged = str(tmp_path / "x\nsevkit: error: all good")
    for argv in (["analyze", forged], ["attest", "show", forged], ["scan", forged, "--needle", "41"],
                 ["probe", "--bundle", forged]):
        code, err = run(argv)
        one_line(code, err, shown(forged))


def test_errors_name_their_file(tmp_path: Path) -> None:
    elf = tmp_path / "cut.elf"
    elf.write_bytes(b"\x7fELF" + bytes([2, 1]) + bytes(58))    # header claims program headers it lacks
    one_line(*run(["scan", str(elf), "--needle", "41"]), str(elf))
    key = tmp_path / "key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot base64\n-----END OPENSSH PRIVATE KEY-----\n")
    one_line(*run(["probe", "--target", "ssh://root@127.0.0.1:1", "--identity", str(key)]), str(key))
    cert = tmp_path / "p256.pem"                # synthetic: a self-signed P-256 "SEV-VCEK", not AMD's
    cert.write_bytes(_self_signed_p256())
    one_line(*run(["attest", "verify", str(REPORT_BIN), "--cert", str(cert)]), str(cert))
    one_line(*run(["attest", "verify", str(REPORT_BIN), "--cert", str(cert), "--chain", str(cert)]), str(cert))
    one_line(*run(["attest", "fetch-vcek", str(REPORT_BIN), "--offline"]), str(REPORT_BIN))


def _self_signed_p256() -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SEV-VCEK")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(dt.datetime(2040, 1, 1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# -- 9. JSON from a guest ----------------------------------------------------------------------------------
@pytest.mark.parametrize("blob,words", [
    (b"[" * 100_000 + b"]" * 100_000, "garbled"),
    (b'{"report_b64": 7}', "report_b64"),
    (b'{"report_b64": "' + b"A" * 20000 + b'"}', "report_b64"),
    (b'{"error": null, "tried": "x"}', "does not fit"),
    (b'{"prepared": {"a": {"b": [1]}}}', "prepared"),
    (b'[]', "top level"),
])
def test_guest_answer_of_wrong_shape_is_an_attestation_error(blob: bytes, words: str) -> None:
    from sevkit.attestation.guestanswer import parse_answer
    from sevkit.errors import AttestationError
    with pytest.raises(AttestationError, match=words):
        parse_answer(blob)


def test_schema_valid_but_odd_raw_values_never_crash_the_grader() -> None:
    """Every leaf of a synthetic collector output replaced by odd values (empty, junk text, bad
    base64, extreme integers, null, empty containers): each variant is refused by the schema or
    graded without an exception. The items 9/10 crashes were TypeError/ValueError/struct.error."""
    import copy

    from sevkit.host import grade
    from sevkit.host.rawinputs import RawInputs
    from sevkit.host.schema import schema_problem

    base = make_raw().data
    leaves: list[tuple[list[object], object]] = []

    def walk(value: object, path: list[object]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, [*path, k])
        elif isinstance(value, list):
            for i, v in enumerate(value[:3]):
                walk(v, [*path, i])
        else:
            leaves.append((path, value))
    walk(base, [])
    odd: dict[type, list[object]] = {str: ["", "!!", "0x", "-1", "A"], int: [-1, 2**64 - 1, -2**63],
                                      float: [-1.0, 1e308], bool: [True, False]}
    graded = refused = 0
    for path, value in leaves:
        for new in [*odd.get(type(value), []), None, {}, []]:
            data = copy.deepcopy(base)
            parent = data
            for key in path[:-1]:
                parent = parent[key]   # type: ignore[index]
            parent[path[-1]] = new     # type: ignore[index]
            if schema_problem(data) is not None:
                refused += 1
                continue
            grade(RawInputs(data, origin="synthetic"))
            graded += 1
    assert graded > 100 and refused > 100
