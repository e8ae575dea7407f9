"""fixtures/outcomes.py: a SevkitError raised in a test's body means "could not measure": the test is an
ERROR (terminal, -rA and junit.xml) and the run exits 2, never FAILED/1; so does any exception that
is not a verdict (an assertion or pytest.fail). One run per error class in
sevkit.errors (each builds its own instance, as the library raises it), plus the verdict paths that
must stay as they are: an assertion is FAILED/1, an expected failure stays XFAIL.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

import sevkit.errors as errors
from fixtures.outcomes import Outcome, final_outcome, is_infrastructure, run_exit_code

CONFTEST = 'pytest_plugins = ["fixtures.options", "fixtures.evidence"]\n'


def _subclasses(cls: type[errors.SevkitError]) -> Iterator[type[errors.SevkitError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


ERROR_CLASSES = sorted({c for c in _subclasses(errors.SevkitError) if c.__module__ == "sevkit.errors"}
                       | {errors.SevkitError}, key=lambda c: c.__name__)


def run(pytester: pytest.Pytester, body: str) -> tuple[pytest.RunResult, ET.Element]:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_case=body)
    # in-process (fast); labgrid's plugin keeps global state that a second in-process session trips on
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:labgrid", "-rA",
                                          f"--sev-report-dir={pytester.path / 'reports'}")
    junit = ET.parse(pytester.path / "reports" / "latest" / "junit.xml").getroot()
    return result, junit


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=[c.__name__ for c in ERROR_CLASSES])
def test_infrastructure_error_in_a_test_body_is_error_and_exit_2(pytester: pytest.Pytester,
                                                                 cls: type[errors.SevkitError]) -> None:
    body = ("import sevkit.errors as E\n"
            "def test_measures():\n"
            f"    raise E.{cls.__name__}('could not measure: SYNTHETIC', evidence={{'source': 'self-test'}})\n")
    result, junit = run(pytester, body)
    assert result.ret == 2, result.stdout.str()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*sevkit verdict: ERROR*exit 2*",
                                 f"ERROR test_case.py::test_measures - sevkit.errors.{cls.__name__}*"])
    case = junit.find(".//testcase")
    assert case is not None and case.find("error") is not None and case.find("failure") is None
    assert (pytester.path / "reports" / "latest" / "exit_code").read_text() == "2\n"


def test_assertion_is_still_a_failure_and_exit_1(pytester: pytest.Pytester) -> None:
    result, junit = run(pytester, "def test_requirement():\n    assert 1 == 2, 'not conformant'\n")
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    assert junit.find(".//failure") is not None and junit.find(".//error") is None


def test_pytest_fail_is_a_verdict(pytester: pytest.Pytester) -> None:
    result, junit = run(pytester, "import pytest\ndef test_requirement():\n    pytest.fail('SEV not enabled')\n")
    assert result.ret == 1
    result.assert_outcomes(failed=1)
    assert junit.find(".//failure") is not None and junit.find(".//error") is None


def test_a_bug_in_a_suite_test_is_error_not_a_verdict(pytester: pytest.Pytester) -> None:
    """A TypeError in a test's own code measured nothing: ERROR and exit 2, as result.json says too."""
    result, junit = run(pytester, "def test_requirement():\n    len(None)\n")
    assert result.ret == 2
    result.assert_outcomes(errors=1)
    assert junit.find(".//error") is not None and junit.find(".//failure") is None


def test_error_wins_over_failure(pytester: pytest.Pytester) -> None:
    body = ("import sevkit.errors as E\n"
            "def test_requirement():\n    assert False\n"
            "def test_probe():\n    raise E.HostProbeError('cannot read /dev/cpu/0/msr')\n")
    result, _ = run(pytester, body)
    assert result.ret == 2
    result.assert_outcomes(failed=1, errors=1)


def test_expected_failure_stays_xfail(pytester: pytest.Pytester) -> None:
    body = ("import pytest, sevkit.errors as E\n"
            "@pytest.mark.xfail(reason='known', strict=True)\n"
            "def test_known():\n    raise E.GuestTimeout('slow')\n")
    result, _ = run(pytester, body)
    assert result.ret == 0
    result.assert_outcomes(xfailed=1)


def test_the_decision_functions() -> None:
    assert is_infrastructure(errors.KdsError("x")) and not is_infrastructure(AssertionError("x"))
    assert not is_infrastructure(None)
    assert run_exit_code({"failed": 3, "error": 1}, 1) == 2
    assert run_exit_code({"failed": 1}, 1) == 1
    assert run_exit_code([Outcome.PASSED, Outcome.SKIPPED], 0) == 0
    assert run_exit_code([], pytest.ExitCode.NO_TESTS_COLLECTED) == 2
    assert run_exit_code([Outcome.PASSED], pytest.ExitCode.INTERRUPTED) == 2

    def rep(when: str, outcome: str) -> pytest.TestReport:
        return pytest.TestReport("t", ("f", 0, "t"), {}, outcome, None, when)  # type: ignore[arg-type]
    assert final_outcome([rep("setup", "passed"), rep("call", "failed"), rep("teardown", "passed")]) is Outcome.FAILED
    assert final_outcome([rep("setup", "passed"), rep("setup", "failed"), rep("teardown", "passed")]) is Outcome.ERROR
    assert final_outcome([rep("setup", "skipped")]) is Outcome.SKIPPED
    assert final_outcome([rep("setup", "passed"), rep("call", "passed"), rep("teardown", "passed")]) is Outcome.PASSED
