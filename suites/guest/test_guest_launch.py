"""What QEMU reports about the launched guest (QMP), and that an impossible policy is refused.
(sev-facts.md §8.2, §8.3, §8.6)"""

from __future__ import annotations

import re

import pytest

from fixtures.guest import GuestPool
from sevkit.errors import LaunchError, LaunchRefused
from sevkit.evidence import ArtifactDir
from sevkit.qemu.machine import GuestVM

# Policies no firmware can satisfy: the minimum firmware API version is 255.255
# (SEV: bits 31:16, sev-facts.md §8.2; SNP: ABI_MAJOR/MINOR bits 15:0, §6.2). Our own
# validation accepts them, so the refusal must come from the firmware through QEMU.
UNSATISFIABLE_POLICY = {"sev": 0xFFFF0001, "sev-es": 0xFFFF0005, "sev-snp": 0x3FFFF}


def test_query_sev(guest: GuestVM, artifacts: ArtifactDir) -> None:
    """QMP ``query-sev`` shows SEV enabled, state ``running`` and the launched policy for SEV
    types, and SEV disabled for the plain guest. Spec: sev-facts.md §8.6 (SevInfo)."""
    info = guest.query("query-sev")
    artifacts.write_json("query-sev.json", info)
    kind = guest.spec.kind
    if kind == "plain":
        assert info.get("enabled") is False, f"plain guest: query-sev says enabled: {info}"
        return
    assert info.get("enabled") is True, f"{kind} guest: query-sev says not enabled: {info}"
    assert info.get("state") == "running", f"{kind} guest: SEV state is {info.get('state')!r}, expected running"
    launched = guest.spec.effective_policy
    policy = info.get("snp-policy") if kind == "sev-snp" else info.get("policy")
    assert policy == launched, f"{kind} guest: query-sev policy {policy!r}, launched with {launched:#x}"
    if "sev-type" in info:   # QEMU >= 9.1
        assert info["sev-type"] == ("sev-snp" if kind == "sev-snp" else "sev")


@pytest.mark.parametrize("kind", ["sev", "sev-es", "sev-snp"])
def test_unsatisfiable_policy_refused(kind: str, guest_pool: GuestPool, artifacts: ArtifactDir) -> None:
    """A guest whose policy demands firmware API 255.255 is refused at launch, and the refusal
    names the launch (LAUNCH_START) or the policy. Spec: SEV API / SNP ABI LAUNCH_START
    (POLICY_FAILURE); sev-facts.md §6.2, §8.2."""
    pool = guest_pool
    pool.require(kind)
    spec = pool.spec(kind, policy=UNSATISFIABLE_POLICY[kind],
                     name=f"{kind}-badpolicy")
    vm = pool.new_vm(spec, f"guest-{kind}-badpolicy")
    try:
        vm.launch()
    except LaunchRefused as exc:
        pytest.fail(f"sevkit refused the launch itself, so the firmware was never asked: {exc}")
    except LaunchError as exc:
        artifacts.write_text("refusal.txt", str(exc) + "\n")
        assert re.search(r"LAUNCH_START|[Pp]olicy", str(exc)), f"refused, but not for the policy: {exc}"
        return
    finally:
        vm.shutdown(grace=0)
    pytest.fail(f"{kind} guest with policy {UNSATISFIABLE_POLICY[kind]:#x} was launched: the firmware "
                "accepted a policy it cannot satisfy")
