"""The fleet: many EPYC hosts in one run, reserved and locked through labgrid, one merged report.

labgrid owns inventory and exclusive access (coordinator, exporters, places, reservations,
locks); SSH (paramiko) carries the work; this package only orchestrates and merges:

    lab.py        the labgrid client: places, reservations, locks (one gRPC session)
    selection.py  ``--match k=v[,k=v]`` selectors over place tags
    payload.py    what is shipped: this checkout's wheel + its dependency wheels + the suite
    remote.py     one SSH connection to a host: pinned keys, streamed commands, checked copies
    hostjob.py    one host's phases: connect, check python, install, run, fetch, clean up
    progress.py   the live table (host, phase, passed, failed, errors, elapsed)
    merge.py      per-host results -> fleet result.json, report.html, merged junit.xml
    runner.py     the whole run: reserve, bounded parallel host jobs, release on every path
"""
