"""``sevkit image``: bad input is one line and exit 2; find/build report the cached image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sevkit.cli import main
from sevkit.image import store as store_mod

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv", [
    ["image", "build", "--suite", "Trixie;reboot"],
    ["image", "build", "--mirror", "ftp://deb.debian.org/debian"],
    ["image", "find", "--suite", ""],
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sevkit: error: ") and "\n" not in err
    assert list(tmp_path.iterdir()) == []          # nothing was started


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sevkit", "image", "build", "--suite", "no such", "--out",
                           str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sevkit: error: suite 'no such' is not a Debian suite name (like trixie or bookworm)"


def test_find_without_an_image_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "find", "--out", str(tmp_path)]) == 1
    assert "no built image trixie-" in capsys.readouterr().err


def test_build_error_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from sevkit.image import build as build_mod
    monkeypatch.setattr(build_mod.os, "geteuid", lambda: 1000)
    assert main(["image", "build", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs root" in err[0]


def test_build_and_find_report_the_cached_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from helpers.imagefakes import FakeBuilder
    FakeBuilder.calls, FakeBuilder.fail, FakeBuilder.delay = 0, None, 0.0
    monkeypatch.setattr(store_mod, "Builder", FakeBuilder)
    monkeypatch.setattr(store_mod, "preflight", lambda *a, **k: None)
    assert main(["image", "build", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("/image.json") and "built in" in err
    assert main(["image", "build", "--out", str(tmp_path)]) == 0
    out2, err2 = capsys.readouterr()
    assert out2 == out and "cached" in err2 and FakeBuilder.calls == 1
    assert main(["image", "find", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out == out
