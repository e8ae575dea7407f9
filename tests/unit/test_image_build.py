"""The build machinery around the commands: log, progress, failure tail, deadlines, interrupts.

Real short commands stand in for debootstrap; the real build runs in `make image`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sevkit.errors import ImageError
from sevkit.image import Recipe, ensure_image
from sevkit.image import build as build_mod
from sevkit.image import store as store_mod
from sevkit.image.build import Builder


def make_builder(tmp_path: Path, messages: list[str]) -> Builder:
    return Builder(Recipe(), tmp_path, tmp_path / "build.log", tmp_path / "debs", messages.append)


def test_step_output_goes_to_the_log_and_progress_names_the_step(tmp_path: Path) -> None:
    messages: list[str] = []
    b = make_builder(tmp_path, messages)
    b.run("configure", ["sh", "-c", "echo configuring; echo more"])
    log = (tmp_path / "build.log").read_text()
    assert "### configure: sh -c" in log and "configuring\nmore\n" in log
    assert any("configure: done in" in m for m in messages)
    assert all(m.startswith("image: [") for m in messages)
    assert "configure" in b.timings


def test_a_failing_step_names_the_log_and_shows_its_tail(tmp_path: Path) -> None:
    b = make_builder(tmp_path, [])
    with pytest.raises(ImageError) as info:
        b.run("debootstrap", ["sh", "-c", "echo 'E: Failed getting release file'; exit 1"])
    text = str(info.value)
    first = text.splitlines()[0]
    assert first == f"image build step debootstrap failed (exit 1); log: {tmp_path / 'build.log'}"
    assert "E: Failed getting release file" in text
    assert info.value.evidence["exit_status"] == 1


def test_no_space_left_is_named(tmp_path: Path) -> None:
    b = make_builder(tmp_path, [])
    with pytest.raises(ImageError, match="no disk space left"):
        b.run("mkfs", ["sh", "-c", f"echo '{os.strerror(28)}' >&2; exit 1"])


def test_a_step_past_its_deadline_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(build_mod.STEP_DEADLINES, "qcow2", 1.0)
    monkeypatch.setattr(build_mod, "HEARTBEAT_S", 0.3)
    messages: list[str] = []
    b = make_builder(tmp_path, messages)
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ImageError, match="exceeded its 1s deadline"):
        b.run("qcow2", ["sh", "-c", f"echo $$ > {pidfile}; echo working; sleep 60"])
    assert time.monotonic() - started < 15
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert any("qcow2: " in m and "working" in m for m in messages)   # the heartbeat shows the log's last line


def test_interrupt_stops_the_build_and_removes_the_temp_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    class Interrupted(Builder):
        def build(self) -> dict[str, object]:
            (self.workdir / "rootfs" / "etc").mkdir(parents=True)
            raise KeyboardInterrupt
    monkeypatch.setattr(store_mod, "Builder", Interrupted)
    monkeypatch.setattr(store_mod, "preflight", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        ensure_image(cache_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
    assert not (tmp_path / Recipe().name).exists()


def test_fs_size_has_headroom_and_alignment(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * (3 << 20))
    size = build_mod._fs_size(tmp_path, 1024)
    assert size % (64 << 20) == 0
    assert size >= (1024 << 20) + (3 << 20)
