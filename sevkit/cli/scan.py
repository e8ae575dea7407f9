"""``sevkit scan [--json] FILE --needle HEX [--needle HEX ...]``: search a memory dump for byte strings.

Exit 0 when the scan ran (whatever it found: finding or not finding is the caller's verdict),
2 for bad input (missing, unreadable or empty file, bad hex, empty needle).

``python -m sevkit.cli.scan ...`` is the same command without the dispatcher, which imports every
subcommand (about 0.2 s of start-up): for scripts that scan many files.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import SevkitError, UsageError
from ..memory.scan import ENTROPY_SAMPLES, parse_hex_needle, scan_file

DESCRIPTION = ("Search FILE for every --needle in one pass; ELF dumps from QEMU dump-guest-memory get "
               "guest-physical addresses.")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("scan", help="search a file or memory dump for byte strings (hex needles)",
                              description=DESCRIPTION)
    _arguments(p)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")
    p.add_argument("--needle", action="append", default=[], metavar="HEX",
                   help="byte string to find, in hex; repeat for more")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--workers", type=int, default=None, help="processes to use (default: up to 2)")
    p.add_argument("--no-entropy", action="store_true", help="skip the per-page entropy sample")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    if not args.needle:
        raise UsageError("scan: give at least one --needle HEX")
    if args.workers is not None and args.workers < 1:
        raise UsageError("scan: --workers must be >= 1")
    needles = [parse_hex_needle(n) for n in args.needle]
    res = scan_file(args.file, needles, workers=args.workers,
                    entropy_samples=0 if args.no_entropy else ENTROPY_SAMPLES)
    if args.json:
        print(json.dumps(res.to_json(), sort_keys=True))
        return 0
    for n in res.needles:
        print(f"{n.hex()}: {res.count(n)} hit(s)")
    for h in res.hits:
        where = f" gpa {h.gpa:#x}" if h.gpa is not None else ""
        print(f"  {h.needle.hex()[:16]}… at offset {h.offset:#x}{where}")
    gbps = res.bytes_scanned / res.seconds / 1e9 if res.seconds else 0.0
    print(f"{res.bytes_scanned} bytes in {res.seconds:.3f} s ({gbps:.2f} GB/s, {res.workers} worker(s))")
    for note in res.notes:
        print(f"note: {note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The scan command on its own (same options, output and exit codes as ``sevkit scan``)."""
    p = argparse.ArgumentParser(prog="sevkit scan", description=DESCRIPTION)
    _arguments(p)
    args = p.parse_args(argv)
    try:
        return handler(args)
    except SevkitError as exc:
        print(f"sevkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
