"""The fleet's typed errors (evidence attached, as in sevkit/errors.py)."""

from __future__ import annotations

from ..errors import SevkitError, TransportError


class FleetError(SevkitError):
    """A fleet-level infrastructure failure (coordinator unreachable, payload build failed)."""


class LabError(FleetError):
    """labgrid refused or failed a request (place, reservation, lock)."""


class HostUnreachable(TransportError):
    """The host's SSH could not be reached or authenticated."""


class LinkLost(TransportError):
    """The SSH link went silent or dropped while a remote command ran."""


class RemoteFailed(TransportError):
    """A remote step (python check, install, fetch) failed; evidence has the output tail."""


class Interrupted(FleetError):
    """The controller was asked to stop (Ctrl-C, SIGTERM)."""
