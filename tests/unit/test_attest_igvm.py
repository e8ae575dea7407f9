"""sevkit.attestation.igvm: the IGVM requirement names exactly what is missing, never a measurement."""

from __future__ import annotations

from pathlib import Path

import pytest

from sevkit.attestation import igvm


def test_without_igvmmeasure_the_predictor_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert igvm.find_predictor() is None
    reason = igvm.missing_for_launch()
    assert reason.startswith("no IGVM measurement predictor available: coconut-svsm igvmmeasure is not on PATH")


def test_with_igvmmeasure_the_igvm_build_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tool = tmp_path / "igvmmeasure"          # SYNTHETIC stand-in: only its presence on PATH matters here
    tool.write_text("#!/bin/sh\nexit 1\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert igvm.find_predictor() == str(tool)
    assert igvm.missing_for_launch().startswith(f"no IGVM build of the guest: sevkit's image recipe builds none "
                                                f"(predictor {tool} found")
