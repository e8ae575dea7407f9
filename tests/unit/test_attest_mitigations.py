"""sevkit.attestation.mitigations: the mitigation-vector verdict on a real v5 report's vectors.

The report is a real capture (oak/genoa_oc_report.extracted.bin, version 5: LAUNCH_MIT_VECTOR and
CURRENT_MIT_VECTOR both 0x1). No real capture of /sys/firmware/sev/vulnerabilities exists (the interface
is from 2026 and no host here has SEV), so every host vector below is SYNTHETIC, written in the format
sev-dev.c's supported_mitigations_show prints ("0x%llx\\n")."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.attestdata import ATT

from sevkit.attestation import load_report
from sevkit.attestation.mitigations import MitigationFloors, bits, judge_mitigations, read_host_vectors
from sevkit.errors import MeasurementError

REAL = load_report((ATT / "oak/genoa_oc_report.extracted.bin").read_bytes(), "oak genoa v5")


def _judge(supported: int, verified: int, *, after: dict[str, int] | None = None,
           floors: MitigationFloors | None = None) -> list[str]:
    assert REAL.launch_mit_vector is not None and REAL.current_mit_vector is not None
    host = {"supported": supported, "verified": verified}
    return list(judge_mitigations(launch=REAL.launch_mit_vector, current=REAL.current_mit_vector,
                                  host_before=host, host_after=after or host,
                                  floors=floors or MitigationFloors()).failures)


def test_real_v5_report_carries_both_vectors() -> None:
    assert REAL.version == 5
    assert (REAL.launch_mit_vector, REAL.current_mit_vector) == (1, 1)


def test_agreeing_host_passes_and_lists_verified_bits() -> None:
    host = {"supported": 0x3, "verified": 0x1}          # SYNTHETIC host vectors
    v = judge_mitigations(launch=1, current=1, host_before=host, host_after=host)
    assert v.failures == ()
    assert v.evidence["verified_bits"] == [0] and v.evidence["supported_bits"] == [0, 1]
    assert _judge(0x3, 0x1) == []


def test_host_verified_bit_missing_from_current_fails() -> None:
    failures = _judge(0x3, 0x3)                          # SYNTHETIC: host says bits 0 and 1 are verified
    assert failures == ["CURRENT_MIT_VECTOR 0x1 lacks bits [1] that the host's SNP_VERIFY_MITIGATION STATUS "
                        "lists as verified (0x3)"]


def test_verified_beyond_supported_fails() -> None:
    failures = _judge(0x0, 0x1)                          # SYNTHETIC: verified bit 0, supported none
    assert len(failures) == 1 and "that its supported vector 0x0 lacks" in failures[0]


def test_current_beyond_verified_is_recorded_not_failed() -> None:
    host = {"supported": 0x1, "verified": 0x0}           # SYNTHETIC
    v = judge_mitigations(launch=1, current=1, host_before=host, host_after=host)
    assert v.failures == () and v.evidence["current_beyond_verified_bits"] == [0]


def test_launch_bit_missing_from_current_fails() -> None:
    host = {"supported": 0x3, "verified": 0x0}           # SYNTHETIC report vectors below
    v = judge_mitigations(launch=0x2, current=0x1, host_before=host, host_after=host)
    assert v.failures == ("LAUNCH_MIT_VECTOR 0x2 has bits [1] that CURRENT_MIT_VECTOR 0x1 lacks: a mitigation "
                          "in effect at launch is no longer in effect",)


def test_lab_floors_on_both_vectors() -> None:
    assert _judge(0x1, 0x1, floors=MitigationFloors(launch=0x1, current=0x1)) == []
    failures = _judge(0x1, 0x1, floors=MitigationFloors(launch=0x4, current=0x5))
    assert failures == ["LAUNCH_MIT_VECTOR 0x1 lacks bits [2] the lab requires (0x4)",
                        "CURRENT_MIT_VECTOR 0x1 lacks bits [2] the lab requires (0x5)"]


def test_host_vectors_changing_during_the_report_is_an_error_not_a_verdict() -> None:
    with pytest.raises(MeasurementError, match="changed while the report was fetched") as exc:
        _judge(0x3, 0x1, after={"supported": 0x3, "verified": 0x3})
    assert exc.value.evidence["host_after"] == {"supported": "0x3", "verified": "0x3"}


def test_read_host_vectors_parses_the_kernel_format(tmp_path: Path) -> None:
    (tmp_path / "supported_mitigations").write_text("0x3\n")     # SYNTHETIC files, kernel format
    (tmp_path / "verified_mitigations").write_text("0x1\n")
    assert read_host_vectors(tmp_path) == {"supported": 3, "verified": 1}


def test_read_host_vectors_names_the_failing_file(tmp_path: Path) -> None:
    (tmp_path / "supported_mitigations").write_text("0x3\n")
    with pytest.raises(MeasurementError, match=r"verified mitigation vector from .*verified_mitigations"):
        read_host_vectors(tmp_path)
    (tmp_path / "verified_mitigations").write_text("garbage\n")
    with pytest.raises(MeasurementError, match="invalid literal"):
        read_host_vectors(tmp_path)


def test_bits() -> None:
    assert bits(0) == [] and bits(0b1010) == [1, 3] and bits(1 << 63) == [63]
