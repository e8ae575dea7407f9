"""Memory confidentiality: the scanner, host-side dump acquisition and in-guest secret planting.

``scan`` is pure (bytes in, hits out); ``dump`` reads guest memory from the host through QMP or
``/proc/<pid>/mem``; ``plant`` derives a secret inside the guest from a seed. Nothing here knows
about pytest or a particular GuestVM class: callers pass a QMP-like object, a pid, a RAM size
and a Shell.
"""
