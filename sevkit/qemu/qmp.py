"""A synchronous facade over the asynchronous ``qemu.qmp`` client.

``qemu.qmp.QMPClient`` is the real API, but it is async, and its legacy sync wrapper breaks
inside a running event loop (qemu-tcg-notes.md §5). So one dedicated thread runs an event
loop; ``execute``/``event_wait`` submit coroutines to it with a deadline. A QMP socket
serves one client at a time and a client left connected makes the next ``connect`` hang
forever (P4): ``close()`` always disconnects, and callers use ``with Qmp(...)``.
Every command, reply and event goes to ``qmp.log``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from qemu.qmp import EventListener, ExecuteError, QMPClient, Runstate
from qemu.qmp import QMPError as _LibQmpError

from ..deadline import Deadline
from ..errors import GuestTimeout, QmpError

T = TypeVar("T")


class Qmp:
    """One QMP client on one socket, usable from synchronous code.

    ``execute(cmd, args, timeout)`` returns QEMU's ``return`` value or raises QmpError with
    QEMU's text; ``event_wait(name, timeout)`` returns the first event of that name not yet
    consumed (events are recorded from connect on, so none is missed between calls).
    """

    def __init__(self, socket_path: Path, log_path: Path | None = None, *, name: str = "qmp") -> None:
        self.socket_path = socket_path
        self.log_path = log_path
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: QMPClient | None = None
        self._listener: EventListener | None = None
        self._events: list[dict[str, Any]] = []
        self._events_cv = threading.Condition()
        self._pump: concurrent.futures.Future[None] | None = None
        self._log_lock = threading.Lock()

    # -- logging -------------------------------------------------------------------------
    def _log(self, direction: str, obj: object) -> None:
        if self.log_path is None:
            return
        line = f"{time.strftime('%H:%M:%S')} {direction} {json.dumps(obj, default=str, sort_keys=True)}\n"
        with self._log_lock, open(self.log_path, "a") as fh:
            fh.write(line)

    # -- loop plumbing -------------------------------------------------------------------
    def _submit(self, coro: Coroutine[Any, Any, T], timeout: float, what: str) -> T:
        if self._loop is None:
            coro.close()
            raise QmpError(f"{self.name}: {what}: QMP is not connected")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout=max(timeout, 0.001))
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise GuestTimeout(f"{self.name}: {what}: no answer from QMP within {timeout:.1f}s",
                               evidence={"socket": str(self.socket_path)}) from None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self, deadline: Deadline, alive: Any = None) -> None:
        """Connect, retrying while the socket does not exist yet, until ``deadline``.

        ``alive`` is an optional callable raising when QEMU has died (checked between tries).
        Raises GuestTimeout (deadline), QmpError (protocol failure).
        """
        if self._client is not None:
            return
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        last: Exception | None = None
        try:
            while True:
                if alive is not None:
                    alive()
                if self.socket_path.exists():
                    client = QMPClient(self.name)
                    try:
                        self._submit(client.connect(str(self.socket_path)), deadline.cap(5.0), "connect")
                        self._client = client
                        break
                    except (OSError, _LibQmpError, GuestTimeout) as exc:
                        last = exc
                        self._submit(client.disconnect(), 2.0, "disconnect after failed connect")
                if deadline.expired:
                    raise GuestTimeout(f"{self.name}: QMP socket {self.socket_path} not answering within "
                                       f"{deadline.seconds:.0f}s" + (f": {last}" if last else ""),
                                       evidence={"socket": str(self.socket_path)})
                time.sleep(0.05)
            self._log("connected", {"greeting": str(self._client.greeting)})
            self._listener = EventListener()
            self._client.register_listener(self._listener)
            self._pump = asyncio.run_coroutine_threadsafe(self._pump_events(), self._loop)
        except BaseException:
            self.close()
            raise

    async def _pump_events(self) -> None:
        assert self._listener is not None
        async for event in self._listener:
            ev = dict(event)
            self._log("event", ev)
            with self._events_cv:
                self._events.append(ev)
                self._events_cv.notify_all()

    # -- commands ------------------------------------------------------------------------
    def execute(self, cmd: str, args: Mapping[str, object] | None = None, timeout: float = 30.0) -> Any:
        """Run one QMP command; return its ``return`` value.

        Raises QmpError carrying QEMU's error class and text, GuestTimeout after ``timeout``.
        """
        client = self._client
        if client is None:
            raise QmpError(f"{self.name}: {cmd}: QMP is not connected")
        self._log("->", {"execute": cmd, "arguments": dict(args) if args else None})
        try:
            result = self._submit(client.execute(cmd, args), timeout, cmd)
        except ExecuteError as exc:
            self._log("<-", {"error": exc.error_class, "desc": str(exc)})
            raise QmpError(f"{self.name}: QMP {cmd} failed: {exc.error_class}: {exc}",
                           evidence={"command": cmd, "arguments": dict(args or {}),
                                     "error_class": exc.error_class, "qemu_says": str(exc)}) from None
        except (_LibQmpError, EOFError, OSError) as exc:
            self._log("<-", {"failure": repr(exc)})
            raise QmpError(f"{self.name}: QMP {cmd}: connection failed: {exc!r}",
                           evidence={"command": cmd}) from exc
        self._log("<-", {"return": result})
        return result

    def event_wait(self, name: str, timeout: float) -> dict[str, Any]:
        """Wait for (and consume) the first recorded event called ``name``.

        Raises GuestTimeout after ``timeout`` seconds, QmpError within half a second of the connection
        being lost (QEMU exited: no event can come any more, so waiting out a long deadline is pointless).
        """
        deadline = Deadline(timeout)
        with self._events_cv:
            while True:
                for i, ev in enumerate(self._events):
                    if ev.get("event") == name:
                        del self._events[i]
                        return ev
                client = self._client
                if client is None or client.runstate is not Runstate.RUNNING:
                    raise QmpError(f"{self.name}: QMP connection lost while waiting for event {name} "
                                   f"after {deadline.elapsed:.1f}s (QEMU exited?)",
                                   evidence={"socket": str(self.socket_path), "waited_s": round(deadline.elapsed, 1)})
                if deadline.expired:
                    raise GuestTimeout(f"{self.name}: no QMP event {name} within {timeout:.1f}s",
                                       evidence={"seen": [e.get("event") for e in self._events]})
                self._events_cv.wait(deadline.cap(0.5))

    def events(self) -> list[dict[str, Any]]:
        """Events recorded and not consumed yet (a copy)."""
        with self._events_cv:
            return list(self._events)

    # -- teardown ------------------------------------------------------------------------
    @staticmethod
    async def _cancel_tasks() -> None:
        """Cancel the event pump (and anything else left) inside the loop, so none is left pending."""
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Disconnect (always safe; QEMU may already be gone) and stop the loop thread."""
        loop, client = self._loop, self._client
        self._client = None
        if loop is not None:
            if client is not None:
                try:
                    if self._listener is not None:
                        client.remove_listener(self._listener)
                    # after 'quit' or a dead QEMU, disconnect can surface EOFError (§5): expected
                    self._submit(client.disconnect(), 5.0, "disconnect")
                except (_LibQmpError, EOFError, OSError, GuestTimeout, QmpError, ValueError):
                    pass
                self._log("disconnected", {})
            with contextlib.suppress(GuestTimeout, QmpError):
                self._submit(self._cancel_tasks(), 5.0, "stop event pump")
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(5.0)
            if not loop.is_running():
                loop.close()
        self._loop = None
        self._thread = None
        self._listener = None
        self._pump = None

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
