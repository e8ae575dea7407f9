"""The repository is self-contained: the real captures ship byte-exact in tests/data/realdata, with
their provenance and a sha256 list, and no self-test reads a file beside the clone (a sibling folder of captures)."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "realdata"


def test_every_capture_matches_its_recorded_sha256() -> None:
    listed: dict[str, str] = {}
    for line in (DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name.removeprefix("./")] = digest
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert on_disk == set(listed), \
        f"unlisted: {sorted(on_disk - set(listed))}, missing: {sorted(set(listed) - on_disk)}"
    bad = [n for n, d in listed.items() if hashlib.sha256((DATA / n).read_bytes()).hexdigest() != d]
    assert bad == [], f"captures changed since they were copied (never edit a capture): {bad}"


def test_every_capture_has_a_provenance_row() -> None:
    provenance = (DATA / "PROVENANCE.md").read_text()
    names = [p for p in DATA.rglob("*") if p.is_file() and p.name not in {"SHA256SUMS", "PROVENANCE.md"}]
    # Rows name a file by its base name (or its folder for certificate sets such as sev-legacy-certs).
    missing = [p.relative_to(DATA).as_posix() for p in names
               if p.name not in provenance and p.stem not in provenance and p.parent.name not in provenance]
    assert missing == [], f"captures without a provenance row: {missing}"


def test_no_self_test_source_points_beside_the_clone() -> None:
    hits = subprocess.run(["git", "grep", "-n", "-I", "-E", r"\.\./shared|\"shared\" / \"realdata\"", "--",
                           "tests", "benchmarks", "sevkit", "fixtures", "suites"],
                          cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    hits = [h for h in hits if not h.startswith("tests/unit/test_self_contained.py")]
    assert hits == [], f"sources refer to files outside the clone: {hits}"


def test_outside_open_guard_sees_a_read_beside_the_clone(tmp_path: Path) -> None:
    """The audit hook in tests/conftest.py is live: a read of ../<something> is recorded (then forgotten,
    so this proof itself does not fail the run)."""
    import conftest  # the self-tests' conftest (tests/ is the rootdir)

    before = len(conftest.OUTSIDE_OPENS)
    probe = REPO.parent / "sevkit-selfcontained-probe-does-not-exist"
    with contextlib.suppress(OSError), open(probe):
        pass
    seen = conftest.OUTSIDE_OPENS[before:]
    del conftest.OUTSIDE_OPENS[before:]
    assert str(probe) in seen
    assert sys.audit is not None


def test_what_the_run_creates_beside_the_clone_is_not_a_sibling_read() -> None:
    """A clone in /tmp (git clone . /tmp/x) has pytest's temp root and the tests' own mkdtemp folders beside it:
    reading those is not reading a sibling capture, so the hook lets them pass; the live-hook test above shows a
    name that was not made by this run is still recorded."""
    import tempfile

    import conftest

    before = len(conftest.OUTSIDE_OPENS)
    made = Path(tempfile.mkdtemp(prefix="sevkit-selfcontained-", dir=REPO.parent))
    try:
        (made / "f.txt").write_text("made by this run\n")
        assert (made / "f.txt").read_text() == "made by this run\n"
    finally:
        shutil.rmtree(made, ignore_errors=True)
    assert conftest.OUTSIDE_OPENS[before:] == []
