"""The named time budgets (seconds). fixtures/options.py lets pytest.ini or the command line override them.

Defaults are about 5x what was measured under TCG on a 2-core machine (boot times in README.md, "Guest images"):
a slow lab or software emulation raises them, it never needs to edit code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True, slots=True)
class Timeouts:
    qemu_start: float = 10.0       # QMP socket answering after exec
    boot: float = 180.0            # cont -> login prompt on the serial console
    login: float = 60.0            # login prompt -> shell prompt
    command: float = 60.0          # one command over serial or SSH
    ssh_ready: float = 180.0       # cont -> first successful SSH command
    shutdown: float = 30.0         # soft power-off before the hard kill
    dump_per_gib: float = 60.0     # memory dump, per GiB of guest RAM

    def override(self, **values: float) -> Timeouts:
        known = {f.name for f in fields(self)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown timeout(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        return replace(self, **values)


DEFAULT = Timeouts()
