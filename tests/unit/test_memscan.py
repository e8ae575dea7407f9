"""The pure memory scanner: boundaries, overlaps, streams, ELF gpa mapping, entropy and the CLI."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.memdumps import make_elf, make_elf32

from sevkit.errors import InputError
from sevkit.memory import scan as S

REPO = Path(__file__).resolve().parents[2]


def rnd(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def offsets(res: S.ScanResult, needle: bytes) -> list[int]:
    return [h.offset for h in res.hits if h.needle == needle]


NEEDLE = bytes.fromhex("5e5e5e5e" "0123456789abcdef" "fedcba9876543210" "a5a5a5a5")  # 24 bytes


def test_needle_at_start_and_end_and_middle() -> None:
    data = bytearray(rnd(10_000))
    data[0:24] = NEEDLE
    data[5000:5024] = NEEDLE
    data[-24:] = NEEDLE
    res = S.scan_buffer(bytes(data), [NEEDLE])
    assert offsets(res, NEEDLE) == [0, 5000, 10_000 - 24]
    assert res.count(NEEDLE) == 3
    assert res.bytes_scanned == 10_000


@pytest.mark.parametrize("delta", range(-24, 2))
def test_needle_straddling_chunk_boundary(monkeypatch: pytest.MonkeyPatch, delta: int) -> None:
    monkeypatch.setattr(S, "CHUNK", 4096)
    data = bytearray(rnd(3 * 4096))
    pos = 4096 + delta
    data[pos:pos + 24] = NEEDLE
    res = S.scan_buffer(bytes(data), [NEEDLE])
    assert offsets(res, NEEDLE) == [pos]   # found exactly once, never twice


@pytest.mark.parametrize("chunk", [1, 7, 23, 24, 25, 4096])
def test_stream_chunks_of_any_size(chunk: int) -> None:
    data = bytearray(rnd(20_000, seed=chunk))
    where = [0, 4096 - 12, 8191, 9_999, 20_000 - 24]
    for w in where:
        data[w:w + 24] = NEEDLE
    res = S.scan_stream(io.BytesIO(bytes(data)), [NEEDLE, b"\x00never-planted\x00"], chunk_size=chunk)
    assert offsets(res, NEEDLE) == sorted(where)
    assert res.count(b"\x00never-planted\x00") == 0
    assert res.bytes_scanned == 20_000


def test_overlapping_occurrences_and_overlapping_needles() -> None:
    data = b"xxaaaaxx" + b"abcabcab"
    res = S.scan_buffer(data, [b"aaa", b"aa", b"abcab", b"cab"])
    assert offsets(res, b"aaa") == [2, 3]           # self-overlap counted
    assert offsets(res, b"aa") == [2, 3, 4]
    assert offsets(res, b"abcab") == [8, 11]
    assert offsets(res, b"cab") == [10, 13]         # inside another needle's hit


def test_duplicate_needles_are_merged_and_empty_needles_refused() -> None:
    res = S.scan_buffer(b"abcabc", [b"abc", b"abc"])
    assert res.needles == [b"abc"] and res.count(b"abc") == 2
    with pytest.raises(InputError):
        S.scan_buffer(b"abc", [b""])
    with pytest.raises(InputError):
        S.scan_buffer(b"abc", [])


def test_no_false_hits_in_random_data() -> None:
    data = rnd(4 << 20, seed=7)
    needles = [rnd(32, seed=100 + i) for i in range(4)]
    res = S.scan_buffer(data, needles)
    assert res.hits == [] and all(res.count(n) == 0 for n in needles)


def test_stream_truncated_mid_needle_gives_no_hit() -> None:
    data = rnd(1000) + NEEDLE[:23]
    assert S.scan_stream(io.BytesIO(data), [NEEDLE], chunk_size=64).hits == []
    assert S.scan_stream(io.BytesIO(b""), [NEEDLE]).bytes_scanned == 0


def test_hit_offsets_capped_but_counted() -> None:
    res = S.scan_buffer(b"\x00" * 5000, [b"\x00\x00"], limit=10)
    assert res.count(b"\x00\x00") == 4999 and len(res.hits) == 10
    assert res.to_json()["offsets_truncated"] is True


@pytest.fixture(params=["memmem", "bytes.find"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with glibc memmem and again with the pure-Python fallback."""
    if request.param == "bytes.find":
        monkeypatch.setattr(S, "_MEMMEM", None)
    else:
        assert S._MEMMEM is not None, "glibc memmem not found: the fast path is not tested"
    return str(request.param)


def test_both_engines_agree(engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(S, "CHUNK", 4096)
    data = bytearray(rnd(50_000, seed=11))
    where = [0, 4096 - 5, 4096 * 3 - 23, 50_000 - 24]
    for w in where:
        data[w:w + 24] = NEEDLE
    f = tmp_path / "d.bin"
    f.write_bytes(bytes(data))
    assert offsets(S.scan_buffer(bytes(data), [NEEDLE, b"aa"]), NEEDLE) == where
    assert offsets(S.scan_file(f, [NEEDLE], workers=1, entropy_samples=0), NEEDLE) == where
    assert offsets(S.scan_stream(io.BytesIO(bytes(data)), [NEEDLE], chunk_size=999), NEEDLE) == where


def test_file_scan_two_workers_matches_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           engine: str) -> None:
    monkeypatch.setattr(S, "CHUNK", 1 << 16)
    size = 130 << 20   # > 2 x 64 MiB so that two workers are used
    f = tmp_path / "big.bin"
    with open(f, "wb") as fh:
        fh.truncate(size)
        for pos in (0, size // 2 - 10, size // 2 + 100, size - 24):   # one straddles the worker split
            fh.seek(pos)
            fh.write(NEEDLE)
    two = S.scan_file(f, [NEEDLE, b"nope"], workers=2, entropy_samples=0)
    one = S.scan_file(f, [NEEDLE, b"nope"], workers=1, entropy_samples=0)
    assert two.workers == 2 and one.workers == 1
    assert offsets(two, NEEDLE) == offsets(one, NEEDLE) == [0, size // 2 - 10, size // 2 + 100, size - 24]
    assert two.count(b"nope") == 0


# --- ELF ------------------------------------------------------------------------------------

@pytest.mark.parametrize("xnum", [False, True])
def test_elf_offsets_map_to_guest_physical(tmp_path: Path, xnum: bool) -> None:
    low = bytearray(rnd(0xA0000, seed=2))
    low[0x1234:0x1234 + 24] = NEEDLE
    high = bytearray(rnd(0x20000, seed=3))
    high[0x10:0x10 + 24] = NEEDLE
    f = tmp_path / "dump.elf"
    f.write_bytes(make_elf([(0, bytes(low)), (0x100000000, bytes(high))], xnum=xnum))
    res = S.scan_file(f, [NEEDLE])
    assert res.segments is not None and [s.gpa for s in res.segments] == [0, 0x100000000]
    assert [h.gpa for h in res.hits] == [0x1234, 0x100000010]
    for h in res.hits:   # the offset is the byte offset in the file; the gpa follows the segment
        seg = next(s for s in res.segments if s.contains(h.offset))
        assert h.gpa == seg.gpa + h.offset - seg.offset
        assert f.read_bytes()[h.offset:h.offset + 24] == NEEDLE


@pytest.mark.parametrize("xnum", [False, True])
def test_elf32_dump_maps_to_guest_physical(tmp_path: Path, xnum: bool) -> None:
    """An SEV-ES guest's dump-guest-memory can be ELF32 (QEMU >= 9.1: encrypted vCPU state, no LMA seen)."""
    low = bytearray(rnd(0xA0000, seed=4))
    low[0x2345:0x2345 + 24] = NEEDLE
    high = bytearray(rnd(0x30000, seed=5))
    high[0x100:0x100 + 24] = NEEDLE
    f = tmp_path / "dump32.elf"
    f.write_bytes(make_elf32([(0, bytes(low)), (0x100000, bytes(high))], xnum=xnum))
    res = S.scan_file(f, [NEEDLE])
    assert res.segments is not None and [(s.gpa, s.size) for s in res.segments] == [(0, 0xA0000), (0x100000, 0x30000)]
    assert [h.gpa for h in res.hits] == [0x2345, 0x100100]
    (tmp_path / "h32.elf").write_bytes(make_elf32([(0, rnd(0x1000))])[:60])   # program headers cut short
    with pytest.raises(InputError, match="truncated"):
        S.scan_file(tmp_path / "h32.elf", [NEEDLE])
    big = bytearray(make_elf32([(0, rnd(0x1000))]))
    big[5] = 2                                                                  # big-endian: refused
    (tmp_path / "be.elf").write_bytes(bytes(big))
    with pytest.raises(InputError, match="little-endian"):
        S.scan_file(tmp_path / "be.elf", [NEEDLE])


def test_elf_hit_in_notes_has_no_gpa(tmp_path: Path) -> None:
    f = tmp_path / "d.elf"
    f.write_bytes(make_elf([(0x1000, rnd(8192))], notes=NEEDLE + bytes(8)))
    res = S.scan_file(f, [NEEDLE])
    assert len(res.hits) == 1 and res.hits[0].gpa is None


def test_truncated_elf_is_reported(tmp_path: Path) -> None:
    blob = make_elf([(0, rnd(0x8000)), (0x100000, rnd(0x8000, seed=9))])
    f = tmp_path / "t.elf"
    f.write_bytes(blob[:-0x4000])
    res = S.scan_file(f, [NEEDLE])
    assert any("ELF truncated" in n for n in res.notes)
    assert res.segments is not None and res.segments[-1].size == 0x4000
    (tmp_path / "h.elf").write_bytes(blob[:80])   # headers cut short
    with pytest.raises(InputError, match="truncated"):
        S.scan_file(tmp_path / "h.elf", [NEEDLE])


def test_entropy_separates_random_from_plain() -> None:
    ent_rand = S.scan_buffer(rnd(64 * 4096), [NEEDLE], entropy_samples=64).entropy
    text = (b"Linux version 6.1.0 root=/dev/vda ro console=ttyS0 " * 8000)[: 64 * 4096]
    ent_text = S.scan_buffer(text + bytes(64 * 4096), [NEEDLE], entropy_samples=128).entropy
    assert ent_rand is not None and ent_text is not None
    assert ent_rand.to_json()["high_entropy_fraction_of_nonzero"] == 1.0
    assert ent_text.to_json()["high_entropy_fraction_of_nonzero"] == 0.0
    assert ent_text.zero_pages == 64
    assert S.page_entropy(bytes(4096)) == 0.0


def test_hidden_needles_in_json() -> None:
    res = S.scan_buffer(NEEDLE, [NEEDLE])
    js = json.dumps(res.to_json(hide_needles=True))
    assert NEEDLE.hex() not in js and S.needle_id(NEEDLE) in js


# --- CLI ------------------------------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sevkit", "scan", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)


def test_cli_json(tmp_path: Path) -> None:
    f = tmp_path / "d.bin"
    data = bytearray(rnd(100_000))
    data[777:777 + 24] = NEEDLE
    f.write_bytes(bytes(data))
    p = cli("--json", str(f), "--needle", NEEDLE.hex(), "--needle", "00ff00ff00ff00ff00ff")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["hits"] == [{"needle": NEEDLE.hex(), "offset": 777}]
    assert out["bytes"] == 100_000 and out["seconds"] >= 0
    assert out["counts"]["00ff00ff00ff00ff00ff"] == 0


def test_cli_elf_gives_gpa(tmp_path: Path) -> None:
    seg = bytearray(rnd(8192))
    seg[100:124] = NEEDLE
    f = tmp_path / "d.elf"
    f.write_bytes(make_elf([(0x7000, bytes(seg))]))
    out = json.loads(cli("--json", str(f), "--needle", NEEDLE.hex()).stdout)
    assert out["hits"][0]["gpa"] == 0x7000 + 100


@pytest.mark.parametrize("case", ["missing", "empty", "dir", "badhex", "emptyneedle", "noneedle", "unreadable"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(b"abc")
    args = {"missing": [str(tmp_path / "nope"), "--needle", "ab"],
            "empty": [str(tmp_path / "e"), "--needle", "ab"],
            "dir": [str(tmp_path), "--needle", "ab"],
            "badhex": [str(f), "--needle", "xyz"],
            "emptyneedle": [str(f), "--needle", ""],
            "noneedle": [str(f)],
            "unreadable": [str(f / "inner"), "--needle", "ab"]}[case]   # ENOTDIR
    (tmp_path / "e").write_bytes(b"")
    p = cli(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert p.stdout == ""


def test_permission_denied_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(b"abc")

    def deny(*a: object, **k: object) -> None:
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr("sevkit.userfiles.os.open", deny)   # root reads mode-0 files, so simulate the denial
    with pytest.raises(InputError, match="permission denied"):
        S.scan_file(f, [b"ab"])


def test_module_entry_point_matches_the_subcommand(tmp_path: Path) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(rnd(5000) + NEEDLE)
    args = ["--json", "--no-entropy", str(f), "--needle", NEEDLE.hex()]
    mod = subprocess.run([sys.executable, "-m", "sevkit.cli.scan", *args], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    sub = cli(*args)
    assert mod.returncode == sub.returncode == 0
    assert json.loads(mod.stdout)["hits"] == json.loads(sub.stdout)["hits"] == [{"needle": NEEDLE.hex(),
                                                                                "offset": 5000}]
    bad = subprocess.run([sys.executable, "-m", "sevkit.cli.scan", str(tmp_path / "nope"), "--needle", "ab"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and bad.stdout == ""


@pytest.mark.parametrize("read_size", [5, 24, 4096, 10_000])
def test_feed_from_reads_into_the_scanner_buffer(monkeypatch: pytest.MonkeyPatch, engine: str,
                                                 read_size: int) -> None:
    monkeypatch.setattr(S, "CHUNK", 4096)   # windows inside each read, too
    data = bytearray(rnd(30_000, seed=read_size))
    where = [0, 4096 - 3, 10_000 - 12, 30_000 - 24]
    for w in where:
        data[w:w + 24] = NEEDLE
    src = io.BytesIO(bytes(data))
    sc = S.StreamScanner([NEEDLE, b"\x01\x02\x03never"], base_offset=0x1000, entropy_every=1)
    while sc.feed_from(src.readinto, read_size):
        pass
    res = sc.result()
    assert offsets(res, NEEDLE) == [0x1000 + w for w in where]
    assert res.bytes_scanned == 30_000 and res.count(b"\x01\x02\x03never") == 0
    assert res.entropy is not None and res.entropy.pages_total == sum(
        n // 4096 for n in [read_size] * (30_000 // read_size) + [30_000 % read_size])
