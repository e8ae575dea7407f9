"""The fleet run: select places, reserve and lock them through labgrid, run bounded host jobs,
release everything on every path, merge.

The main thread owns labgrid (poll/refresh reservations, lock when allocated, unlock and cancel
when a job ends) and the progress table; host jobs run in a bounded thread pool. Ctrl-C or
SIGTERM (raised as KeyboardInterrupt, sevkit/signals.py) sets the stop flag: running jobs stop
their remote suites and clean up, queued hosts are not started, and the run is written with
``complete: false``. Further signals during that clean-up are ignored so it can finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import secrets
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ..errors import SevkitError, UsageError
from . import merge
from .hostjob import JobSettings, run_host
from .lab import Lab
from .outcome import HostOutcome, HostState, Phase, Status
from .payload import build_payload
from .progress import Progress
from .selection import Selector, describe, matches

# labgrid expires a reservation not polled for 60 s (common.py Reservation.refresh); acquired
# ones are kept by the coordinator, polling them too is cheap insurance
REFRESH_S = 20.0
STOP_GRACE_S = 120.0   # how long running jobs get to stop their suites and clean up after a stop


@dataclass
class FleetSettings:
    coordinator: str
    selectors: list[Selector]
    job: JobSettings                    # payload and run_id are filled in by run_fleet
    checkout: Path
    parallel: int = 4
    reserve_timeout: float = 600.0
    report_root: Path = Path("reports")
    poll_interval: float = 1.0
    progress_out: TextIO | None = None
    live: bool | None = None


@dataclass
class FleetRun:
    run_id: str
    folder: Path
    exit_code: int
    complete: bool
    outcomes: list[HostOutcome] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def previous_run(root: Path, selection: list[str]) -> Path | None:
    """The newest earlier fleet folder with the same selection (for regressions)."""
    best: Path | None = None
    for folder in sorted(root.glob("fleet-*")):
        try:
            data = json.loads((folder / "result.json").read_text())
        except (OSError, ValueError):
            continue
        if sorted(data.get("selection") or []) == sorted(selection):
            best = folder
    return best


class _Holds:
    """What labgrid holds for us: reservation tokens and locked places, released on every path."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.tokens: dict[str, str] = {}     # place -> token
        self.locked: set[str] = set()
        self.problems: list[str] = []

    def release(self, place: str) -> None:
        if place in self.locked:
            try:
                self.lab.release(place)
                self.locked.discard(place)
            except SevkitError as exc:
                self.problems.append(f"{place}: unlock failed: {exc}")
        token = self.tokens.pop(place, None)
        if token is not None:
            try:
                self.lab.cancel(token)
            except SevkitError as exc:
                self.problems.append(f"{place}: cancelling reservation {token} failed: {exc}")

    def release_all(self) -> None:
        for place in sorted(set(self.tokens) | self.locked):
            self.release(place)


def run_fleet(settings: FleetSettings) -> FleetRun:
    run_id = new_run_id()
    folder = settings.report_root.resolve() / f"fleet-{run_id}"
    selection = describe(settings.selectors)
    previous = previous_run(settings.report_root, selection)
    started = dt.datetime.now(dt.UTC)
    stop = threading.Event()
    outcomes: dict[str, HostOutcome] = {}
    states: dict[str, HostState] = {}
    notes: list[str] = []
    complete = True

    with tempfile.TemporaryDirectory(prefix="sevkit-fleet-payload-") as tmp:
        lab = Lab(settings.coordinator)   # first: a wrong address or selection fails in a second
        holds = _Holds(lab)
        pool = cf.ThreadPoolExecutor(max_workers=max(1, settings.parallel), thread_name_prefix="fleet-host")
        running: dict[cf.Future[HostOutcome], str] = {}
        progress: Progress | None = None
        try:
            places = lab.places()
            chosen = sorted(n for n, p in places.items() if matches(n, p.tags, settings.selectors))
            if not chosen:
                known = ", ".join(f"{n}({','.join(f'{k}={v}' for k, v in sorted(p.tags.items()))})"
                                  for n, p in sorted(places.items())) or "none"
                raise UsageError(f"--match {' '.join(selection)} selects no labgrid place "
                                 f"(places at {lab.address}: {known})")
            # built before reserving: no place is held while the controller builds wheels
            payload = build_payload(settings.checkout, Path(tmp),
                                    with_wheels=settings.job.installed_checkout is None)
            job = replace(settings.job, payload=payload, run_id=run_id)
            (folder / "hosts").mkdir(parents=True, exist_ok=True)
            for name in chosen:
                states[name] = HostState(name, dict(places[name].tags))
                states[name].set_phase(Phase.RESERVING)
                holds.tokens[name] = lab.reserve(name)
            progress = Progress(list(states.values()), settings.progress_out, live=settings.live)
            reserve_start = refreshed = time.monotonic()
            pending = list(chosen)
            while pending or running:
                for name in list(pending):
                    view = lab.poll(holds.tokens[name])
                    if view.state in ("allocated", "acquired") and len(running) < settings.parallel:
                        pending.remove(name)
                        fut = _start(name, lab, holds, job, states[name], folder, stop, pool, outcomes)
                        if fut is not None:
                            running[fut] = name
                    elif view.state in ("expired", "invalid"):
                        pending.remove(name)
                        _finish(outcomes, states[name], holds, f"labgrid reservation became {view.state}")
                    elif view.state == "waiting" and time.monotonic() - reserve_start > settings.reserve_timeout:
                        pending.remove(name)
                        holder = lab.places().get(name)
                        who = f" (held by {holder.acquired})" if holder and holder.acquired else ""
                        _finish(outcomes, states[name], holds,
                                f"reservation timeout: place busy for {settings.reserve_timeout:.0f}s{who}")
                if time.monotonic() - refreshed > REFRESH_S:
                    refreshed = time.monotonic()
                    for token in [holds.tokens[n] for n in running.values() if n in holds.tokens]:
                        lab.poll(token)   # keep our reservations fresh while we work
                done, _ = cf.wait(list(running), timeout=settings.poll_interval, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    name = running.pop(fut)
                    outcomes[name] = fut.result()
                    holds.release(name)
                progress.update()
        except KeyboardInterrupt:
            complete = False
            stop.set()
            _ignore_signals()
            notes.append("interrupted (Ctrl-C or SIGTERM): running suites were stopped, queued hosts not started")
            cf.wait(list(running), timeout=STOP_GRACE_S)
            for fut, name in running.items():
                if fut.done():
                    outcomes[name] = fut.result()
                holds.release(name)
            running.clear()
        finally:
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            holds.release_all()
            notes.extend(holds.problems)
            lab.close()
        for name, state in states.items():
            if name not in outcomes:
                complete = False
                outcomes[name] = HostOutcome(name, Status.NOT_MEASURED, tags=dict(state.tags),
                                             reason="not run: the fleet run was interrupted",
                                             last_phase=str(state.phase), elapsed_s=state.elapsed)
                state.status = Status.NOT_MEASURED
        if progress is not None:
            progress.final()

    folder.mkdir(parents=True, exist_ok=True)   # also when interrupted before any host started
    (folder / "hosts").mkdir(exist_ok=True)
    ordered = [outcomes[n] for n in sorted(outcomes)]
    for o in ordered:   # report folders are stored relative to the fleet folder
        if o.report_dir:
            o.report_dir = str(Path(o.report_dir).relative_to(folder))
    result = merge.write_result(folder, run_id=run_id, selection=selection, profile=settings.job.profile,
                                pytest_args=settings.job.pytest_args, outcomes=ordered, complete=complete,
                                started=started, previous=previous, notes=notes)
    merge.write_junit(folder, ordered)
    from .page import write_page
    write_page(folder, result)
    return FleetRun(run_id, folder, int(result["exit_code"]), complete, ordered, result)


def _finish(outcomes: dict[str, HostOutcome], state: HostState, holds: _Holds, reason: str) -> None:
    state.set_phase(Phase.DONE)
    state.ended = time.monotonic()
    state.status = Status.NOT_MEASURED
    outcomes[state.place] = HostOutcome(state.place, Status.NOT_MEASURED, reason=reason, tags=dict(state.tags),
                                        last_phase="reserving", elapsed_s=state.elapsed)
    holds.release(state.place)


def _start(name: str, lab: Lab, holds: _Holds, job: JobSettings, state: HostState, folder: Path,
           stop: threading.Event, pool: cf.ThreadPoolExecutor,
           outcomes: dict[str, HostOutcome]) -> cf.Future[HostOutcome] | None:
    """Lock the allocated place and submit its job; a place that cannot be used is an outcome."""
    try:
        lab.acquire(name)
        holds.locked.add(name)
        service = lab.ssh_service(name)
    except SevkitError as exc:
        _finish(outcomes, state, holds, str(exc))
        return None
    if service is None:
        _finish(outcomes, state, holds, "the place has no NetworkService resource (where its SSH answers)")
        return None
    state.started = time.monotonic()
    return pool.submit(run_host, name, service.address, service.port, service.username, job, state,
                       folder / "hosts" / name, stop.is_set)


def _ignore_signals() -> None:
    """During the stop clean-up a second Ctrl-C/SIGTERM must not abort the release of places."""
    if threading.current_thread() is not threading.main_thread():
        return

    def _note(signum: int, frame: FrameType | None) -> None:
        pass
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _note)
