"""The secret's own pages (issue 9 §11): reading them in each view, classifying, and the verdict per outcome.

All page contents are SYNTHETIC, built here: random bytes stand in for ciphertext, zeros for QEMU's
shared guest_memfd view, 0xFF for ciphertext hiding. The procmem view reads a real child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers.memdumps import CHILD, FakeQmp, make_elf, make_elf32

from sevkit.errors import DumpError
from sevkit.memory import dump as D
from sevkit.memory.judge import CANNOT_SEE, judge_pages
from sevkit.memory.pages import (
    PAGE,
    PageView,
    classify,
    examine_reader,
    mark_moved,
    moved,
    not_examined,
    procmem_reader,
    require_pages,
    segment_reader,
)
from sevkit.memory.scan import elf_segments

MiB = 1 << 20
NEEDLE = bytes.fromhex("c0ffee00" * 4) + os.urandom(16)


def _page(fill: bytes = b"\0", secret_at: int | None = None) -> bytes:
    data = bytearray((fill * PAGE)[:PAGE])
    if secret_at is not None:
        data[secret_at:secret_at + len(NEEDLE)] = NEEDLE
    return bytes(data)


def test_classify_each_outcome() -> None:
    assert classify(_page(secret_at=64), NEEDLE)[0] == "secret"
    assert classify(_page(), NEEDLE) == ("zero", 0.0)
    assert classify(_page(b"\xff"), NEEDLE) == ("ones", 0.0)
    outcome, h = classify(os.urandom(PAGE), NEEDLE)
    assert outcome == "ciphertext" and h is not None and h > 7.5
    assert classify(_page(b"Linux version 6.1 console=ttyS0 "), NEEDLE)[0] == "plaintext"


def test_procmem_reads_the_exact_pages_of_a_real_process() -> None:
    size = 8 * MiB
    p = subprocess.Popen([sys.executable, "-c", CHILD, NEEDLE.hex(), str(size)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        addr = int(p.stdout.readline(), 16)
        pages = {0: "anon", size // 2: "tmpfs", 4096: "anon"}
        views = examine_reader("procmem", pages, NEEDLE, procmem_reader(p.pid, lambda gpa: addr + gpa))
        assert [(v.gpa, v.outcome) for v in views] == [(0, "secret"), (4096, "zero"), (size // 2, "secret")]
        # the library path: gpa2hva once per RAM range, through QMP
        qmp = FakeQmp(hva=addr)
        views = D.examine_pages("procmem", qmp=qmp, pid=p.pid, ram_bytes=size, pages=pages, needle=NEEDLE,
                                folder=Path("/nonexistent"))
        assert [v.outcome for v in views] == ["secret", "zero", "secret"]
        assert sum(1 for c, _ in qmp.calls if c == "human-monitor-command") == 1
        gone = examine_reader("procmem", {0: "anon"}, NEEDLE, procmem_reader(p.pid, lambda gpa: None))
        assert gone[0].outcome == "absent"
        bad = examine_reader("procmem", {0: "anon"}, NEEDLE, procmem_reader(p.pid, lambda gpa: 0x10))
        assert bad[0].outcome == "unreadable" and bad[0].detail   # unmapped host address: EIO
    finally:
        p.kill()
        p.wait(10)


@pytest.mark.parametrize("build", [make_elf, make_elf32])
def test_elf_view_of_the_pages(tmp_path: Path, build: Any) -> None:
    low = bytearray(os.urandom(0x10000))
    low[0x3000 + 64:0x3000 + 64 + len(NEEDLE)] = NEEDLE
    f = tmp_path / "d.elf"
    f.write_bytes(build([(0, bytes(low)), (0x100000, bytes(0x2000))]))
    with open(f, "rb") as fh:
        segs = elf_segments(fh.read(), f.stat().st_size)
    assert segs is not None
    views = examine_reader("elf", {0x3000: "anon", 0x1000: "anon", 0x101000: "tmpfs", 0x200000: "tmpfs"},
                           NEEDLE, segment_reader(f, segs))
    assert [(v.gpa, v.outcome) for v in views] == [(0x1000, "ciphertext"), (0x3000, "secret"), (0x101000, "zero"),
                                                   (0x200000, "absent")]


def test_pmemsave_saves_just_the_pages(tmp_path: Path) -> None:
    class PmemQmp(FakeQmp):
        def execute(self, cmd: str, args: Any = None, timeout: float = 30.0) -> Any:
            if cmd == "pmemsave":   # SYNTHETIC guest RAM: the secret lives at gpa 0x5000 + 64
                Path(args["filename"]).write_bytes(_page(secret_at=64) if args["val"] == 0x5000 else _page(b"\xff"))
            return super().execute(cmd, args, timeout)
    qmp = PmemQmp()
    views = D.examine_pages("pmemsave", qmp=qmp, pid=0, ram_bytes=MiB, pages={0x5000: "anon", 0x6000: "tmpfs",
                                                                              2 * MiB: "anon"},
                            needle=NEEDLE, folder=tmp_path / "s")
    assert [(v.gpa, v.outcome) for v in views] == [(0x5000, "secret"), (0x6000, "ones"), (2 * MiB, "absent")]
    assert [a["size"] for c, a in qmp.calls if c == "pmemsave"] == [PAGE, PAGE]
    assert list((tmp_path / "s").iterdir()) == []   # the page file is removed


def _views(method: str, *outcomes: str) -> list[PageView]:
    return [PageView(0x1000 * (i + 1), "anon", method, o) for i, o in enumerate(outcomes)]


def test_plain_control_needs_the_secret_at_its_pages() -> None:
    fails, proof = judge_pages("plain", {"procmem": _views("procmem", "secret", "secret")}, {})
    assert not fails and "read the secret at 2 of 2 pages" in proof
    with pytest.raises(DumpError, match=CANNOT_SEE):
        judge_pages("plain", {"elf": _views("elf", "zero", "absent")}, {})


def test_sev_pages_must_read_as_ciphertext() -> None:
    fails, proof = judge_pages("sev-es", {"procmem": _views("procmem", "ciphertext", "ciphertext")}, {})
    assert not fails and "only encrypted" in proof
    fails, _ = judge_pages("sev", {"procmem": _views("procmem", "ciphertext", "secret", "plaintext")}, {})
    assert any("reads the secret in plaintext at 1" in f for f in fails)
    assert any("unencrypted-looking" in f for f in fails)
    with pytest.raises(DumpError, match="no verdict"):
        judge_pages("sev", {"elf": _views("elf", "ciphertext", "absent")}, {})


def test_snp_outcomes_each_have_a_rule() -> None:
    fails, proof = judge_pages("sev-snp", {"procmem": _views("procmem", "zero", "zero"),
                                           "elf": _views("elf", "ones", "absent"),
                                           "pmemsave": _views("pmemsave", "unreadable", "zero")}, {})
    assert not fails
    assert "procmem: at the 2 pages that hold the secret the host saw zero-filled 2" in proof
    assert "not proven: that those pages are encrypted" in proof
    fails, proof = judge_pages("sev-snp", {"procmem": _views("procmem", "ciphertext", "ciphertext")}, {})
    assert not fails and "ciphertext 2" in proof and "not proven" not in proof
    fails, _ = judge_pages("sev-snp", {"procmem": _views("procmem", "zero", "secret")}, {})
    assert fails and "plaintext at 1 of its 2 pages" in fails[0]


def test_ciphertext_hiding_turns_ciphertext_into_a_failure() -> None:
    """Ciphertext hiding (policy bit 24): the host must read 0xFF at private pages, never ciphertext."""
    fails, proof = judge_pages("sev-snp", {"procmem": _views("procmem", "ones", "ones")}, {}, ciphertext_hiding=True)
    assert not fails and "procmem: ciphertext hiding seen at 2 of 2 pages (0xFF)" in proof
    fails, proof = judge_pages("sev-snp", {"procmem": _views("procmem", "zero", "absent")}, {},
                               ciphertext_hiding=True)
    assert not fails and "ciphertext hiding not observable in this view: none of the 2 pages" in proof
    fails, _ = judge_pages("sev-snp", {"procmem": _views("procmem", "ones", "ciphertext")}, {}, ciphertext_hiding=True)
    assert len(fails) == 1 and "reads ciphertext at 1 of the secret's 2 pages" in fails[0]
    assert "host reads see 0xff" in fails[0]
    fails, _ = judge_pages("sev-snp", {"procmem": _views("procmem", "ciphertext")}, {})
    assert not fails                                     # without ciphertext hiding, ciphertext is the expectation


def test_moved_pages_are_not_examined() -> None:
    pages = {0x1000: "anon", 0x2000: "anon"}
    gone = moved(pages, [0x1040, 0x2040], [0x1040, 0x9040])
    assert gone == {0x2000}
    views = mark_moved(_views("procmem", "zero", "zero"), gone)
    assert [v.outcome for v in views] == ["zero", "not-examined"]
    _, proof = judge_pages("sev-snp", {"procmem": views}, {})
    assert "1 page view(s) not examined" in proof
    with pytest.raises(DumpError, match="no method could examine any"):
        judge_pages("sev-snp", {"procmem": mark_moved(views, {0x1000, 0x2000})}, {})
    # a method that gave no view at all is reported, the others still judged
    fails, proof = judge_pages("sev-snp", {"procmem": _views("procmem", "zero"),
                                           "elf": not_examined({0x1000: "anon"}, "elf", "elf gave no view: refused")},
                               {})
    assert not fails and "elf: not examined (elf gave no view: refused)" in proof
    with pytest.raises(DumpError, match="located none"):
        require_pages({})


def test_one_methods_failure_does_not_hide_anothers_proof() -> None:
    fails, proof = judge_pages("sev-snp", {"elf": _views("elf", "secret"), "procmem": _views("procmem", "ones")}, {},
                               ciphertext_hiding=True)
    assert len(fails) == 1 and "elf reads the secret" in fails[0]
    assert "procmem: ciphertext hiding seen at 1 of 1 pages (0xFF)" in proof
