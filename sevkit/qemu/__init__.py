"""Launching guests: the pure argv builder, the QEMU process owner and the QMP facade.

    spec.py      GuestSpec (frozen, validated) and the per-launch Wiring (sockets, ports)
    argv.py      build_argv(spec, wiring) -> list[str] (pure) and the run.sh text
    qmp.py       Qmp: a sync facade over the async qemu.qmp client (own event-loop thread)
    caps.py      query-sev-capabilities through a throw-away QEMU, as libvirt does
    offers.py    what a QEMU binary offers (-object help, -object TYPE,help), not its version number
    machine.py   GuestVM: owns QEMU, its sockets, overlay, VARS copy and logs; state machine
    reaper.py    kill QEMU processes this run started, found through their pidfiles
"""

from ..vocab import GUEST_KINDS
from .argv import build_argv, run_script
from .spec import Firmware, GuestSpec, Wiring

__all__ = ["GUEST_KINDS", "Firmware", "GuestSpec", "Wiring", "build_argv", "run_script"]
