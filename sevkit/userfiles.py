"""The one way sevkit opens a file a person named (command line, ini option, bundle path), and
the one way it writes an output a person named (``atomic_output``).

Rules (issue 10): only a regular file, or ``-`` for standard input where the command allows it;
the type is checked with ``stat`` before the file is opened, and the open itself uses
``O_NONBLOCK | O_NOCTTY`` and re-checks the opened descriptor with ``fstat``, so a FIFO, a
device node (``/dev/zero``, a tty) or a socket is refused without blocking and without being
read. Each kind of input has a documented size cap (``Cap``) named in the error; nothing bigger
is read into memory. Every error is an ``InputError`` whose one line names the file, quoted
when the name holds anything a terminal would not show as itself (``shown``).

    Input kind               cap        why this size
    attestation report       1 MiB      a report is 1184 bytes; hex, base64 or an Azure HCL blob is a few KiB
    certificate / chain      1 MiB      a VCEK is ~1.4 KiB DER, ARK+ASK ~4 KiB PEM
    certificate table        1 MiB      the kernel's certificate blob is at most a few pages
    captured log             32 MiB     CONFIG_LOG_BUF_SHIFT is at most 25 (init/Kconfig): a whole kernel log fits
    host bundle (.tar.gz)    64 MiB     a collector bundle is ~100 KiB compressed
    bundle raw.json          32 MiB     uncompressed collector output, ~1 MiB on a large host
    SSH private key          1 MiB      an OpenSSH key is a few KiB
    image manifest           1 MiB      image.json is ~2 KiB
    memory dump              none       ``scan`` maps it and walks it in chunks, never reads it whole

Outputs (``-o``) are written to a fresh temporary file in the destination folder, created with
``O_EXCL | O_NOFOLLOW`` (``tempfile.mkstemp``), so no planted symlink or predictable name can
redirect the write; it is renamed over the target only when complete and removed on every other
path. An existing target that is not a regular file (a device node, FIFO, folder or symlink) is
refused, never replaced.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO

from .errors import InputError

STDIN = "-"
KiB, MiB = 1024, 1024 * 1024


@dataclass(frozen=True, slots=True)
class Cap:
    """A kind of input file and the most bytes sevkit reads of it (0: no cap, not read whole)."""

    kind: str
    limit: int

    @property
    def text(self) -> str:
        return _size(self.limit)


REPORT = Cap("attestation report", 1 * MiB)
CERTIFICATE = Cap("certificate", 1 * MiB)
CHAIN = Cap("certificate chain", 1 * MiB)
CERT_TABLE = Cap("certificate table", 1 * MiB)
CAPTURE = Cap("captured log", 32 * MiB)
BUNDLE = Cap("host bundle", 64 * MiB)
BUNDLE_RAW_JSON = Cap("bundle raw.json", 32 * MiB)
SSH_KEY = Cap("SSH private key", 1 * MiB)
MANIFEST = Cap("image manifest", 1 * MiB)
IGVM = Cap("IGVM file", 256 * MiB)
OVMF_IMAGE = Cap("OVMF image", 64 * MiB)
MEMORY_DUMP = Cap("memory dump", 0)


def _size(n: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", KiB)):
        if n >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n} bytes"


def shown(name: object) -> str:
    """A file name as it goes into a one-line message: as is when every character is a visible,
    non-quote character, otherwise Python-quoted (``'a\\nb'``) so a newline, a terminal escape or
    a trailing blank cannot forge or hide output."""
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    if text and all(c.isprintable() and c not in " '\"\\" for c in text):
        return text
    return repr(text)


def _label(what: str, name: str) -> str:
    return f"{what} {shown(name)}" if what else shown(name)


def _kind_of(mode: int) -> str:
    for test, word in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return word
    return "not a regular file"


def _refuse_mode(mode: int, label: str) -> None:
    if not stat.S_ISREG(mode):
        raise InputError(f"{label}: is {_kind_of(mode)}, not a regular file", evidence={"file": label})


def _oserror(exc: OSError, label: str) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{label}: no such file", evidence={"file": label})
    if isinstance(exc, PermissionError):
        return InputError(f"{label}: permission denied", evidence={"file": label})
    if isinstance(exc, NotADirectoryError):
        return InputError(f"{label}: cannot read: a component of the path is not a folder", evidence={"file": label})
    return InputError(f"{label}: cannot read: {exc.strerror or exc}", evidence={"file": label})


def check_regular(path: str | os.PathLike[str], what: str = "") -> os.stat_result:
    """``stat`` of a regular file (symlinks followed: the person named it), else InputError.
    Never opens the file, so a FIFO or a device is refused without any side effect."""
    name = os.fspath(path)
    label = _label(what, name)
    if name == "":
        raise InputError(f"{what or 'file'}: empty file name", evidence={"file": ""})
    try:
        st = os.stat(name)
    except OSError as exc:
        raise _oserror(exc, label) from None
    except ValueError:              # an embedded NUL
        raise InputError(f"{label}: not a valid file name", evidence={"file": label}) from None
    _refuse_mode(st.st_mode, label)
    return st


def open_regular(path: str | os.PathLike[str], what: str = "") -> BinaryIO:
    """Open a regular file for reading (see module docstring); the caller closes it."""
    name = os.fspath(path)
    label = _label(what, name)
    check_regular(name, what)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise _oserror(exc, label) from None
    try:
        _refuse_mode(os.fstat(fd).st_mode, label)    # swapped for a FIFO between stat and open
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _read_capped(fh: BinaryIO, cap: Cap, label: str) -> bytes:
    try:
        data = fh.read(cap.limit + 1)
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {exc.strerror or exc}", evidence={"file": label}) from None
    if len(data) > cap.limit:
        raise InputError(f"{label}: larger than the {cap.text} cap for a {cap.kind}",
                         evidence={"file": label, "cap": cap.limit})
    return data


def read_file(path: str | os.PathLike[str], cap: Cap, what: str = "", *, stdin: bool = False,
              allow_empty: bool = False) -> bytes:
    """The bytes of a user-named file, at most ``cap.limit`` of them (more is an InputError naming
    the cap). ``-`` reads standard input when ``stdin`` is true. Empty is an error unless allowed."""
    name = os.fspath(path)
    if name == STDIN and stdin:
        label = _label(what, "<stdin>")
        data = _read_capped(sys.stdin.buffer, cap, label)
    else:
        label = _label(what, name)
        st = check_regular(name, what)
        if cap.limit and st.st_size > cap.limit:
            raise InputError(f"{label}: {_size(st.st_size)}, larger than the {cap.text} cap for a {cap.kind}",
                             evidence={"file": label, "size": st.st_size, "cap": cap.limit})
        with open_regular(name, what) as fh:
            data = _read_capped(fh, cap, label)
    if not data and not allow_empty:
        raise InputError(f"{label}: empty file", evidence={"file": label})
    return data


def check_output(path: str | os.PathLike[str], what: str) -> tuple[str, str, str, str]:
    """Refuse an output name before any work is done: empty, a folder, an existing non-regular
    file (device node, FIFO, symlink), or a missing folder. Returns (name, label, folder, base)."""
    name = os.fspath(path)
    label = _label(what, name)
    if name == "":
        raise InputError(f"{what}: empty file name", evidence={"file": ""})
    folder, base = os.path.split(name)
    folder = folder or "."
    if not base or base in (".", ".."):
        raise InputError(f"{label}: names a folder, expected a file name", evidence={"file": label})
    try:
        st = os.lstat(name)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _oserror(exc, label) from None
    except ValueError:
        raise InputError(f"{label}: not a valid file name", evidence={"file": label}) from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else _kind_of(st.st_mode)
        raise InputError(f"{label}: exists and is {kind}; refusing to replace it with a regular file",
                         evidence={"file": label})
    if not os.path.isdir(folder):
        raise InputError(f"{label}: folder {shown(folder)} does not exist", evidence={"file": label})
    return name, label, folder, base


@contextmanager
def atomic_output(path: str | os.PathLike[str], what: str, *, mode: int = 0o600) -> Iterator[BinaryIO]:
    """Yield a file to write ``path``'s new content into; on a clean exit it replaces ``path``
    (mode ``mode``), on any exception it is removed and ``path`` is untouched. Errors name the file."""
    name, label, folder, base = check_output(path, what)
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base[:64]}.", suffix=".part")
    except OSError as exc:
        raise InputError(f"{label}: cannot create a file in {shown(folder)}: {exc.strerror or exc}",
                         evidence={"file": label}) from None
    done = False
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, name)
        done = True
    except OSError as exc:
        raise InputError(f"{label}: cannot write: {exc.strerror or exc}", evidence={"file": label}) from None
    finally:
        if not done:
            with suppress(OSError):
                os.unlink(tmp)


def write_output(path: str | os.PathLike[str], data: bytes, what: str, *, mode: int = 0o600) -> None:
    """``atomic_output`` for a whole blob."""
    with atomic_output(path, what, mode=mode) as fh:
        fh.write(data)
