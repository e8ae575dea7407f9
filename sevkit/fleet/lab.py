"""labgrid, used as its own clients use it: one ClientSession (gRPC) to the coordinator.

labgrid's client is asyncio; the fleet is threads (one per host job). The session lives on an
event loop in one private thread and every call is submitted there with a deadline, so a dead
coordinator can never hang a host job. The requests are labgrid's own RPCs, exactly what
``labgrid-client reserve / wait / lock / unlock / cancel-reservation`` send
(labgrid/remote/client.py: create_reservation, _wait_reservation, _acquire_place,
_release_place, cancel_reservation). A reservation filters on ``name=<place>`` (the
coordinator's scheduler adds a ``name`` tag to every place, labgrid/remote/coordinator.py
schedule_reservations), so the fleet waits in labgrid's own queue for each place it selected.
Waiting reservations expire unless polled within 60 s (common.py Reservation.refresh); polling
refreshes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import LabError

T = TypeVar("T")
DEFAULT_PORT = 20408   # labgrid-coordinator's default --listen port (coordinator.py main)


@dataclass(frozen=True)
class PlaceView:
    """A snapshot of one labgrid place."""

    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    acquired: str | None = None          # "host/user" of the holder
    reservation: str | None = None       # token of the reservation it is allocated to
    comment: str = ""


@dataclass(frozen=True)
class SshService:
    """The place's ``NetworkService`` resource: where its SSH server answers."""

    address: str
    port: int
    username: str


@dataclass(frozen=True)
class ReservationView:
    token: str
    state: str                           # waiting, allocated, acquired, expired, invalid
    places: tuple[str, ...] = ()


def _err(what: str, exc: BaseException) -> LabError:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return LabError(f"labgrid: {what}: {text or type(exc).__name__}", evidence={"request": what})


class Lab:
    """A connection to a labgrid coordinator (``HOST[:PORT]``, default port 20408)."""

    def __init__(self, address: str, *, timeout: float = 20.0) -> None:
        self.address = address if ":" in address.rsplit("]", 1)[-1] else f"{address}:{DEFAULT_PORT}"
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="labgrid-session", daemon=True)
        self._thread.start()
        self._session: Any = None
        try:
            self._session = self._call(self._start(), f"connect to coordinator {self.address}")
        except BaseException:
            self._stop_loop()
            raise

    # -- plumbing ---------------------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout or self.timeout)
        except TimeoutError as exc:
            fut.cancel()
            raise LabError(f"labgrid: {what}: no answer from {self.address} within "
                           f"{timeout or self.timeout:.0f}s", evidence={"coordinator": self.address}) from exc
        except LabError:
            raise
        except Exception as exc:
            raise _err(what, exc) from exc

    async def _start(self) -> Any:
        from labgrid.remote.client import ClientSession

        session = ClientSession(self.address, self._loop)
        await session.start()
        return session

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None

            async def _close() -> None:
                await session.stop()
                await session.close()
            with contextlib.suppress(LabError):   # the coordinator went away: nothing left to tell it
                self._call(_close(), "close session", timeout=10)
        self._stop_loop()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def owner(self) -> str:
        """The name labgrid records as holder ("host/user", LG_HOSTNAME/LG_USERNAME override)."""
        return f"{self._session.gethostname()}/{self._session.getuser()}"

    # -- places -------------------------------------------------------------------------
    def places(self) -> dict[str, PlaceView]:
        async def _snapshot() -> dict[str, PlaceView]:
            await self._session.sync_with_coordinator()
            return {name: PlaceView(name, dict(p.tags), p.acquired, p.reservation, p.comment or "")
                    for name, p in self._session.places.items()}
        return self._call(_snapshot(), "list places")

    def ssh_service(self, place: str) -> SshService | None:
        """The first ``NetworkService`` resource the place matches (None if it has none)."""
        async def _find() -> SshService | None:
            p = self._session.places.get(place)
            if p is None:
                raise LabError(f"labgrid: place {place} does not exist")
            for exporter, groups in sorted(self._session.resources.items()):
                for group_name, group in sorted(groups.items()):
                    for res_name, res in sorted(group.items()):
                        if res.cls != "NetworkService":
                            continue
                        if p.hasmatch((exporter, group_name, res.cls, res_name)):
                            args = res.args
                            return SshService(str(args["address"]), int(args.get("port") or 22),
                                              str(args.get("username") or "root"))
            return None
        return self._call(_find(), f"find NetworkService of {place}")

    # -- reservations and locks -----------------------------------------------------------
    def reserve(self, place: str, *, prio: float = 0.0) -> str:
        """Queue a reservation for exactly this place; returns its token."""
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _create() -> str:
            request = pb.CreateReservationRequest(
                filters={"main": pb.Reservation.Filter(filter={"name": place})}, prio=prio)
            response = await self._session.stub.CreateReservation(request)
            return str(Reservation.from_pb2(response.reservation).token)
        return self._call(_create(), f"reserve {place}")

    def poll(self, token: str) -> ReservationView:
        """The reservation's state; polling also refreshes it (it would expire after 60 s)."""
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _poll() -> ReservationView:
            response = await self._session.stub.PollReservation(pb.PollReservationRequest(token=token))
            res = Reservation.from_pb2(response.reservation)
            places = tuple(name for group in res.allocations.values() for name in group)
            return ReservationView(res.token, res.state.name, places)
        return self._call(_poll(), f"poll reservation {token}")

    def acquire(self, place: str) -> None:
        """Lock the place (``labgrid-client -p +TOKEN lock``): only our reservation's owner may."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _acquire() -> None:
            await self._session.stub.AcquirePlace(pb.AcquirePlaceRequest(placename=place))
            await self._session.sync_with_coordinator()
        self._call(_acquire(), f"lock {place}")

    def release(self, place: str) -> None:
        """Unlock the place; releasing one that is no longer locked by us is not an error."""
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _release() -> None:
            p = self._session.places.get(place)
            if p is None or p.acquired != self.owner:
                return
            await self._session.stub.ReleasePlace(pb.ReleasePlaceRequest(placename=place, fromuser=self.owner))
            await self._session.sync_with_coordinator()
        self._call(_release(), f"unlock {place}")

    def cancel(self, token: str) -> None:
        """Cancel a reservation; one the coordinator already dropped is not an error."""
        import grpc
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _cancel() -> None:
            try:
                await self._session.stub.CancelReservation(pb.CancelReservationRequest(token=token))
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:   # "does not exist"
                    raise
        self._call(_cancel(), f"cancel reservation {token}")

    def reservations(self) -> list[ReservationView]:
        from labgrid.remote.common import Reservation
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _list() -> list[ReservationView]:
            response = await self._session.stub.GetReservations(pb.GetReservationsRequest())
            out = []
            for r in response.reservations:
                res = Reservation.from_pb2(r)
                out.append(ReservationView(res.token, res.state.name,
                                           tuple(n for g in res.allocations.values() for n in g)))
            return out
        return self._call(_list(), "list reservations")

    # -- lab set-up (what `labgrid-client create / add-match / set-tags` do) ---------------
    def add_place(self, name: str, *, matches: list[str], tags: Mapping[str, str]) -> None:
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

        async def _add() -> None:
            stub = self._session.stub
            await stub.AddPlace(pb.AddPlaceRequest(name=name))
            for pattern in matches:
                await stub.AddPlaceMatch(pb.AddPlaceMatchRequest(placename=name, pattern=pattern))
            if tags:
                await stub.SetPlaceTags(pb.SetPlaceTagsRequest(placename=name, tags=dict(tags)))
            await self._session.sync_with_coordinator()
        self._call(_add(), f"create place {name}")
