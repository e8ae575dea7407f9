"""Guest planning: which guest of each kind this host can launch, and the pool that boots them.

    settings.py  GuestSettings: the lab's guest inputs (image, firmware, QEMU, accel, size)
    firmware.py  choose_firmware: OVMF for a kind, chosen by content (the probe's analysis)
    plan.py      GuestPlanner.plan(kind) -> Plan: a launchable GuestSpec, or the blockers with evidence
    pool.py      GuestPool: boots each kind at most once, shares it, retries an early TCG panic once

The pytest layer (fixtures/guest.py) only turns blockers into skip or fail and hands guests out.
"""

from .plan import Blocker, GuestBlocked, GuestPlanner, Plan
from .pool import GuestPool, boot_with_tcg_retry
from .settings import GuestSettings

__all__ = ["Blocker", "GuestBlocked", "GuestPlanner", "GuestPool", "GuestSettings", "Plan", "boot_with_tcg_retry"]
