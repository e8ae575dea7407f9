"""The ``sevkit`` command. Each module in this package adds one subcommand.

A module here defines ``register(subparsers)``; it adds its parser and sets
``func=handler`` where ``handler(args) -> int`` returns the exit code. Modules are
found by name, so adding a command never edits this file.

Exit codes: 0 ok, 1 the graded thing does not hold (non-conformant, not verified),
2 usage, input or infrastructure error (one line on stderr, no traceback),
130 interrupted. ``SEVKIT_DEBUG=1`` adds the traceback for sevkit's own bugs.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from .. import __version__
from ..errors import SevkitError

EXIT_OK, EXIT_FAIL, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its default prints the usage block first); exit 2."""

    def error(self, message: str) -> NoReturn:
        # the one error-line form of every sevkit error, naming the subcommand; one line even if
        # a value holds a newline
        where = self.prog.removeprefix("sevkit").strip()
        text = f"{where}: {message}" if where else message
        text = " ".join(text.splitlines())
        self.exit(EXIT_ERROR, f"sevkit: error: {text} (see {self.prog} --help)\n")


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or with ``only`` just the module of that name.

    Importing one module instead of all keeps start-up short (``sevkit scan`` must not pay
    for cryptography's import in ``attest``).
    """
    parser = _Parser(
        prog="sevkit", description="AMD SEV / SEV-ES / SEV-SNP conformance toolkit")
    parser.add_argument("--version", action="version", version=f"sevkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in [only] if only else _modules():
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def _parser_for(argv: Sequence[str]) -> argparse.ArgumentParser:
    first = next((a for a in argv if not a.startswith("-")), None)
    if first is not None and first in _modules():
        return build_parser(only=first)
    return build_parser()


def error(message: str) -> None:
    """Print one clear line on stderr (a newline inside a value cannot forge a second line)."""
    print(f"sevkit: error: {message}".replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser_for(argv)
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except SevkitError as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # a sevkit bug: still one line unless asked for more
        if os.environ.get("SEVKIT_DEBUG"):
            traceback.print_exc()
        error(f"internal error: {type(exc).__name__}: {exc} (set SEVKIT_DEBUG=1 for the traceback)")
        return EXIT_ERROR


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
