"""``sevkit attest``: verify, show, and fetch-vcek for SEV-SNP attestation reports.

    sevkit attest verify [--json] REPORT --cert CERT [--chain PEM] [--trust-root FILE] [--nonce HEX] [--measurement HEX]
                         [--vmpl N] [--min-tcb bl=3,tee=0,snp=8,ucode=115] [--host-data HEX]
                         [--policy HEX] [--smt on|off] [--allow-debug] [--allow-migration-agent]
                         [--id-key-digest HEX] [--author-key-digest HEX] [--at YYYY-MM-DD]
    sevkit attest show [--json] REPORT
    sevkit attest fetch-vcek REPORT [--product P] [--certs TABLE] [--cache DIR] [--kds-url URL] [-o FILE]

A report verifies only when its chain ends at an AMD root shipped with sevkit (byte-equal public
key), or at a root named with --trust-root (the verdict then says so): --chain alone trusts nothing.

Exit: 0 verified and every requested check holds; 1 not; 2 unusable input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..attestation.appraise import Expectations, hex_bytes, parse_min_tcb
from ..attestation.inputs import load_report
from ..attestation.kds import KDS_URL, KdsClient, obtain_vcek
from ..attestation.verdict import attest
from ..errors import SevkitError, UsageError
from ..userfiles import CERT_TABLE, CERTIFICATE, CHAIN, REPORT, read_file, shown, write_output


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("attest", help="verify and inspect SEV-SNP attestation reports",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="attest_command", metavar="ACTION")
    sub.required = True

    v = sub.add_parser("verify", help="verify a report against AMD's chain and the lab's expectations")
    v.add_argument("report", help="report: raw binary, hex, base64, or an Azure HCL report")
    v.add_argument("--cert", required=True, help="VCEK or VLEK (DER or PEM; a PEM bundle's leaf is used)")
    v.add_argument("--chain", help="PEM with ASK/ASVK and ARK (default: the shipped AMD chain); its ARK must "
                   "be a shipped AMD root or a --trust-root")
    v.add_argument("--trust-root", metavar="FILE",
                   help="also trust this root certificate (PEM/DER, self-issued); the verdict names it as "
                   "user-trusted, not AMD")
    v.add_argument("--nonce", help="expected REPORT_DATA, hex (up to 64 bytes, zero-padded)")
    v.add_argument("--measurement", help="expected MEASUREMENT, 48 bytes hex")
    v.add_argument("--vmpl", type=int, help="expected VMPL")
    v.add_argument("--min-tcb", help="minimum reported TCB, e.g. bl=3,tee=0,snp=8,ucode=115[,fmc=N]")
    v.add_argument("--host-data", help="expected HOST_DATA, 32 bytes hex")
    v.add_argument("--id-key-digest", help="expected ID_KEY_DIGEST, 48 bytes hex")
    v.add_argument("--author-key-digest", help="expected AUTHOR_KEY_DIGEST, 48 bytes hex")
    v.add_argument("--policy", help="expected exact guest policy (e.g. 0x30000)")
    v.add_argument("--smt", choices=("on", "off"), help="expected policy SMT bit")
    v.add_argument("--allow-debug", action="store_true", help="accept the DEBUG policy bit")
    v.add_argument("--allow-migration-agent", action="store_true", help="accept the MIGRATE_MA policy bit")
    v.add_argument("--at", help="check certificate validity at this date (YYYY-MM-DD; default now)")
    v.add_argument("--json", action="store_true", help="print the verdict as JSON")
    v.set_defaults(func=cmd_verify)

    s = sub.add_parser("show", help="decode a report")
    s.add_argument("report")
    s.add_argument("--product", help="Milan, Genoa or Turin (v2 reports cannot tell Milan from Genoa)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)

    f = sub.add_parser("fetch-vcek", help="get the VCEK for a report (certificate table, cache, AMD KDS)")
    f.add_argument("report")
    f.add_argument("--product", help="Milan, Genoa or Turin (needed for v2 reports)")
    f.add_argument("--certs", help="certificate table from the extended report (auxblob)")
    f.add_argument("--cache", help="cache folder: read first, and receives what is fetched")
    f.add_argument("--kds-url", default=KDS_URL, help=f"KDS base URL (default {KDS_URL})")
    f.add_argument("--kds-allow-http", action="store_true",
                   help="allow a plain http:// --kds-url on a loopback address (a local test server only)")
    f.add_argument("--offline", action="store_true", help="never contact the KDS")
    f.add_argument("--timeout", type=float, default=60.0, help="total seconds for the KDS (default 60)")
    f.add_argument("-o", "--output", help="write the DER here (default vcek.der)", default="vcek.der")
    f.set_defaults(func=cmd_fetch_vcek)


def _hex(text: str | None, what: str, size: int, *, pad: bool = False) -> bytes | None:
    """None only when the option was not given: an empty value is a usage error, never "no check"."""
    return None if text is None else hex_bytes(text, what, size, pad=pad)


def _min_tcb(text: str) -> dict[str, int]:
    try:
        return parse_min_tcb(text)
    except UsageError as exc:
        raise UsageError(f"--min-tcb: {exc}") from None


def _expectations(a: argparse.Namespace) -> Expectations:
    if a.vmpl is not None and not 0 <= a.vmpl <= 3:
        raise UsageError(f"--vmpl {a.vmpl}: VMPL is 0..3")
    policy = None
    if a.policy is not None:
        try:
            policy = int(a.policy, 0)
        except ValueError:
            raise UsageError(f"--policy {a.policy!r} is not a number (e.g. 0x30000)") from None
    return Expectations(
        nonce=_hex(a.nonce, "--nonce", 64, pad=True), measurement=_hex(a.measurement, "--measurement", 48),
        vmpl=a.vmpl, min_tcb=None if a.min_tcb is None else _min_tcb(a.min_tcb),
        host_data=_hex(a.host_data, "--host-data", 32),
        id_key_digest=_hex(a.id_key_digest, "--id-key-digest", 48),
        author_key_digest=_hex(a.author_key_digest, "--author-key-digest", 48),
        policy=policy, allow_debug=a.allow_debug, allow_migration_agent=a.allow_migration_agent,
        smt=None if a.smt is None else a.smt == "on")


def _at(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: expected a date like 2025-06-01") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@contextmanager
def _naming(*inputs: tuple[str, str | None]) -> Iterator[None]:
    """An error that names none of the input files gets them appended: every error line says
    which files it is about (issue 10 item 11; e.g. a leaf whose key is not ECDSA P-384)."""
    try:
        yield
    except SevkitError as exc:
        given = [(what, shown(name)) for what, name in inputs if name is not None]
        if not any(name in exc.message for _, name in given):
            exc.message = f"{exc.message} ({', '.join(f'{what} {name}' for what, name in given)})"
            exc.args = (exc.message,)
        raise


def cmd_verify(a: argparse.Namespace) -> int:
    expectations = _expectations(a)
    when = _at(a.at)
    with _naming(("report", a.report), ("certificate", a.cert), ("chain", a.chain), ("trust root", a.trust_root)):
        verdict = attest(read_file(a.report, REPORT, "report"), read_file(a.cert, CERTIFICATE, "certificate"),
                         chain_data=None if a.chain is None else read_file(a.chain, CHAIN, "chain"),
                         expectations=expectations, at=when, report_source=shown(a.report),
                         cert_source=shown(a.cert), chain_source="chain" if a.chain is None else shown(a.chain),
                         trust_data=None if a.trust_root is None else read_file(a.trust_root, CHAIN, "trust root"),
                         trust_source=f"--trust-root {shown(a.trust_root)}" if a.trust_root else "--trust-root")
    if a.json:
        json.dump(verdict.to_dict(), sys.stdout, indent=2)
        print()
    else:
        print(verdict.text())
    return 0 if verdict.ok else 1


def cmd_show(a: argparse.Namespace) -> int:
    report = load_report(read_file(a.report, REPORT, "report"), shown(a.report), product_hint=a.product)
    if a.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        print()
        return 0
    d = report.to_dict()
    for key, value in d.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0


def cmd_fetch_vcek(a: argparse.Namespace) -> int:
    if not (math.isfinite(a.timeout) and 0 < a.timeout <= 3600):
        raise UsageError(f"--timeout {a.timeout}: expected seconds in (0, 3600]")
    if a.cache is not None and a.cache == "":
        raise UsageError("--cache: empty folder name")
    kds = None if a.offline else KdsClient(base_url=a.kds_url, total_timeout=a.timeout,
                                           allow_http=a.kds_allow_http)
    report = load_report(read_file(a.report, REPORT, "report"), shown(a.report), product_hint=a.product)
    with _naming(("report", a.report), ("certificate table", a.certs)):
        got = obtain_vcek(report, product=a.product,
                          cert_table=None if a.certs is None else read_file(a.certs, CERT_TABLE, "certificate table"),
                          cache_dir=None if a.cache is None else Path(a.cache), kds=kds)
    write_output(a.output, got.der, "VCEK output", mode=0o644)
    print(f"VCEK from {got.source} -> {shown(a.output)}")
    return 0
