"""Typed errors that carry their evidence.

Library code raises these; suites assert. A fixture that lets one escape makes pytest
report an ERROR (infrastructure), never a FAILED (non-conformance).

    SevkitError                     base; ``evidence`` holds what was observed
    ├── UsageError                  bad input from a person (CLI exit 2)
    │   └── InputError              a file that cannot be read or understood
    │       └── IgvmFormatError     an IGVM file that is malformed (offset and what is wrong)
    ├── HostProbeError              the host could not be read (access, transport)
    │   └── TransportError          SSH or bundle transport failure
    ├── ImageError                  guest image build or lookup failed
    ├── LaunchError                 QEMU refused or died at start (argv, exit code, qemu.log tail)
    │   └── LaunchRefused           sevkit refused to start an impossible combination
    ├── GuestError                  the running guest misbehaved
    │   ├── GuestTimeout            a deadline expired (console tail attached)
    │   ├── GuestPanic              kernel panic / firmware error seen on the console
    │   ├── GuestDied               QEMU exited while the guest was in use
    │   ├── CommandFailed           a guest command exited non-zero (result attached)
    │   └── QmpError                QEMU's monitor refused a command or could not be reached
    ├── StateError                  an operation was called in the wrong lifecycle state
    ├── DumpError                   a memory dump could not be taken (space, QMP, access)
    └── AttestationError            attestation input or verification infrastructure failed
        ├── ReportParseError        a report could not be parsed (unknown version, truncated)
        ├── KdsError                AMD KDS (or a cache) could not provide a certificate
        └── MeasurementError        the expected launch measurement could not be computed
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SevkitError(Exception):
    """Base class. ``evidence`` maps names to what was observed (strings, numbers, paths)."""

    def __init__(self, message: str, *, evidence: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.evidence: dict[str, Any] = dict(evidence or {})

    def __str__(self) -> str:
        return self.message


class UsageError(SevkitError):
    """Bad command-line input; the CLI prints one line and exits 2."""


class InputError(UsageError):
    """An input file is missing, unreadable, empty, binary junk or of an unknown kind."""


class IgvmFormatError(InputError):
    """A malformed IGVM file; ``offset`` is the byte offset in the file where it goes wrong."""

    def __init__(self, message: str, *, evidence: Mapping[str, Any] | None = None, offset: int = 0) -> None:
        super().__init__(message, evidence=evidence)
        self.offset = offset


class HostProbeError(SevkitError):
    """The host could not be probed (permissions, missing interfaces)."""


class TransportError(HostProbeError):
    """The remote transport (SSH) or an evidence bundle failed."""


class ImageError(SevkitError):
    """The guest image could not be built or found."""


class LaunchError(SevkitError):
    """QEMU failed to start; evidence carries argv, exit status and QEMU's own message."""


class LaunchRefused(LaunchError):
    """sevkit refused to start QEMU because the combination cannot work on this host."""


class GuestError(SevkitError):
    """The guest misbehaved after launch."""


class GuestTimeout(GuestError):
    """A deadline expired while waiting on the guest."""


class GuestPanic(GuestError):
    """The console showed a kernel panic or a firmware error."""


class GuestDied(GuestError):
    """QEMU exited while the guest was in use."""


class CommandFailed(GuestError):
    """A command in the guest exited non-zero; ``result`` holds the CommandResult."""

    def __init__(self, message: str, *, result: Any = None,
                 evidence: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, evidence=evidence)
        self.result = result


class QmpError(GuestError):
    """A QMP command failed (``evidence``: command, error class, QEMU's text) or QMP was unreachable."""


class StateError(SevkitError):
    """An operation was called in a lifecycle state that does not allow it."""


class DumpError(SevkitError):
    """A guest memory dump could not be taken."""


class AttestationError(SevkitError):
    """Attestation input or the verification machinery failed."""


class ReportParseError(AttestationError, InputError):
    """An attestation report could not be parsed."""


class KdsError(AttestationError):
    """The VCEK or chain could not be obtained from the KDS, a cache or the certificate table."""


class MeasurementError(AttestationError):
    """sev-snp-measure could not compute the expected measurement for these launch inputs."""


class PlatformConfigError(SevkitError):
    """SNP_PLATFORM_STATUS / SNP_SET_CONFIG on /dev/sev failed or was refused (``evidence``: command,
    errno, firmware error, the state before and after), or the prior configuration could not be restored."""
