"""The KDS client, for real, against a small KDS on 127.0.0.1 (stdlib http.server in a thread).

The server indexes the real VCEKs from tests/data/realdata by what the CERTIFICATES say (productName,
hwID, SPL extensions) and serves them at AMD's KDS paths; the client builds its URL from the
REPORT (CHIP_ID, REPORTED_TCB). A match therefore cross-checks the two. It also answers 404, 429
(with Retry-After, then success), 500 and 503. Nothing here contacts the internet.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers.httpserve import serve

from sevkit.attestation import attest, load_certificates, load_report, split_leaf
from sevkit.attestation.certs import amd_info
from sevkit.attestation.certtable import build_cert_table
from sevkit.attestation.kds import KdsClient, cache_name, obtain_vcek, vcek_path
from sevkit.cli import main
from sevkit.errors import KdsError

REALDATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "realdata" / "attestation"
VCEKS = ["virtee-sev/vcek_milan.der", "go-sev-guest/vcek.testcer", "constellation/vcek.cert",
         "trustee/test-vcek.der", "trustee/e2e-evidence.vcek.derived.der", "oak/cb_vcek.extracted.der",
         "oak/milan_oc_release_vcek.extracted.der", "oak/milan_rk_release_vcek.extracted.der",
         "oak/genoa_oc_vcek.extracted.der", "virtee-sev/vcek_turin.der"]
REPORTS = {  # VCEK-signed real reports -> (their VCEK, product)
    "virtee-sev/report_milan.bin": ("virtee-sev/vcek_milan.der", "Milan"),
    "go-sev-guest/attestation.bin": ("go-sev-guest/vcek.testcer", "Milan"),
    "constellation/attestation.bin": ("constellation/vcek.cert", "Milan"),
    "trustee/test-report.bin": ("trustee/test-vcek.der", "Milan"),
    "trustee/e2e-evidence.report.derived.bin": ("trustee/e2e-evidence.vcek.derived.der", "Genoa"),
    "oak/cb_report.extracted.bin": ("oak/cb_vcek.extracted.der", "Milan"),
    "oak/milan_oc_release_report.extracted.bin": ("oak/milan_oc_release_vcek.extracted.der", "Milan"),
    "oak/milan_rk_release_report.extracted.bin": ("oak/milan_rk_release_vcek.extracted.der", "Milan"),
    "oak/genoa_oc_report.extracted.bin": ("oak/genoa_oc_vcek.extracted.der", "Genoa"),
}


def _read(rel: str) -> bytes:
    p = REALDATA / rel
    if not p.is_file():
        pytest.fail(f"real attestation data missing at {p.resolve()} (expected tests/data/realdata in the clone)")
    return p.read_bytes()


class FakeKds:
    """Routes: /vcek/v1/<product>/<hwid>?...SPL=..; /vcek/v1/<product>/cert_chain; plus failure modes
    keyed by hwid prefix: 'dead' -> 500 always, and a 'flaky' set that answers 429/503 first."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, str, tuple[tuple[str, int], ...]], bytes] = {}
        for rel in VCEKS:
            der = _read(rel)
            cert = split_leaf(load_certificates(der), rel)[0]
            info = amd_info(cert)
            product = (info.product_name or "").split("-")[0]
            assert info.hwid is not None
            self.index[(product, info.hwid.hex(), tuple(sorted(info.spl.items())))] = der
        self.hits: Counter[str] = Counter()
        self.fail_first: dict[str, list[tuple[int, str | None]]] = {}   # path -> [(status, Retry-After)]
        self.always: dict[str, int] = {}

    def answer(self, raw_path: str) -> tuple[int, bytes, dict[str, str]]:
        self.hits[raw_path] += 1
        url = urlsplit(raw_path)
        if url.path in self.always:
            return self.always[url.path], b"server error", {}
        queue = self.fail_first.get(url.path)
        if queue:
            status, retry_after = queue.pop(0)
            return status, b"busy", ({"Retry-After": retry_after} if retry_after is not None else {})
        parts = url.path.strip("/").split("/")
        if len(parts) == 4 and parts[:2] == ["vcek", "v1"]:
            product, hwid = parts[2], parts[3]
            if hwid == "cert_chain":
                return 200, _read(f"go-sev-guest/ask_ark_{product.lower()}.pem"), {}
            q = {k: int(v[0]) for k, v in parse_qs(url.query).items()}   # accepts 03 and 3
            der = self.index.get((product, hwid, tuple(sorted(q.items()))))
            if der is not None:
                return 200, der, {"Content-Type": "application/x-x509-ca-cert"}
        return 404, b"Not Found", {}


@pytest.fixture
def kds() -> Iterator[tuple[str, FakeKds]]:
    state = FakeKds()
    with serve(state.answer) as base:
        yield base, state


def _client(base: str, **kw: object) -> tuple[KdsClient, list[float]]:
    sleeps: list[float] = []
    client = KdsClient(base_url=base, sleep=sleeps.append, allow_http=True, **kw)  # type: ignore[arg-type]
    return client, sleeps


@pytest.mark.parametrize("report_rel", sorted(REPORTS))
def test_fetch_vcek_for_every_real_report_and_it_verifies(report_rel: str, kds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, _state = kds
    vcek_rel, product = REPORTS[report_rel]
    report = load_report(_read(report_rel))
    client, sleeps = _client(base)
    got = obtain_vcek(report, product=product, kds=client, cache_dir=tmp_path)
    assert got.der == _read(vcek_rel) and got.source.startswith(f"kds:{base}/vcek/v1/{product}/")
    assert not sleeps
    assert attest(_read(report_rel), got.der, expectations=None).verified


def test_cache_is_written_and_used(kds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, state = kds
    report = load_report(_read("virtee-sev/report_milan.bin"))
    client, _ = _client(base)
    first = obtain_vcek(report, product="Milan", kds=client, cache_dir=tmp_path)
    assert (tmp_path / cache_name("Milan", report)).read_bytes() == first.der
    second = obtain_vcek(report, product="Milan", kds=client, cache_dir=tmp_path)
    assert second.source.startswith("cache:") and second.der == first.der
    assert sum(state.hits.values()) == 1
    # offline from then on
    assert obtain_vcek(report, product="Milan", kds=None, cache_dir=tmp_path).der == first.der


def test_429_with_retry_after_then_success(kds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base, state = kds
    report = load_report(_read("oak/cb_report.extracted.bin"))
    path = vcek_path("Milan", report).split("?")[0]
    state.fail_first[path] = [(429, "7"), (503, None), (429, "0")]
    client, sleeps = _client(base, backoff=0.5)
    got = obtain_vcek(report, kds=client, cache_dir=tmp_path)
    assert got.der == _read("oak/cb_vcek.extracted.der")
    assert sleeps == [7.0, 1.0, 0.0]          # Retry-After honoured; backoff 0.5 doubled otherwise
    assert [line.split(" -> ")[1] for line in client.log] == ["429", "503", "429", "200 (1351 bytes)"]
    assert sum(state.hits.values()) == 4


def test_404_is_not_retried(kds) -> None:  # type: ignore[no-untyped-def]
    base, state = kds
    report = load_report(_read("virtee-sev/report_milan.bin"))
    client, sleeps = _client(base)
    with pytest.raises(KdsError, match="HTTP 404"):
        obtain_vcek(report, product="Genoa", kds=client)      # wrong product: KDS has no such VCEK
    assert not sleeps and sum(state.hits.values()) == 1


def test_500_gives_up_after_max_attempts(kds) -> None:  # type: ignore[no-untyped-def]
    base, state = kds
    report = load_report(_read("virtee-sev/report_milan.bin"))
    state.always[vcek_path("Milan", report).split("?")[0]] = 500
    client, sleeps = _client(base, max_attempts=4, backoff=1.0)
    with pytest.raises(KdsError, match=r"gave up after 4 attempt\(s\).*HTTP 500") as exc:
        obtain_vcek(report, product="Milan", kds=client)
    assert sleeps == [1.0, 2.0, 4.0] and len(exc.value.evidence["log"]) == 4


def test_total_time_is_bounded_with_real_sleeps(kds) -> None:  # type: ignore[no-untyped-def]
    base, state = kds
    report = load_report(_read("virtee-sev/report_milan.bin"))
    state.always[vcek_path("Milan", report).split("?")[0]] = 500
    client = KdsClient(base_url=base, allow_http=True, total_timeout=1.0, backoff=0.3, max_attempts=100)
    start = time.monotonic()
    with pytest.raises(KdsError, match="gave up"):
        obtain_vcek(report, product="Milan", kds=client)
    assert time.monotonic() - start < 1.5


def test_unreachable_kds_is_an_error_not_a_hang() -> None:
    import socket
    with socket.socket() as s:        # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = load_report(_read("virtee-sev/report_milan.bin"))
    client, sleeps = _client(f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(KdsError, match="gave up after 3"):
        obtain_vcek(report, product="Milan", kds=client)
    assert len(sleeps) == 2


def test_certificate_table_wins_over_kds(tmp_path: Path) -> None:
    report = load_report(_read("virtee-sev/report_milan.bin"))
    table = build_cert_table({"VCEK": _read("virtee-sev/vcek_milan.der")})
    got = obtain_vcek(report, cert_table=table, kds=None)
    assert got.source == "cert-table" and got.der == _read("virtee-sev/vcek_milan.der")
    with pytest.raises(KdsError, match="KDS disabled"):
        obtain_vcek(report, product="Milan", cert_table=build_cert_table({}), cache_dir=tmp_path)


def test_refusals_before_any_request() -> None:
    local = KdsClient(base_url="http://127.0.0.1:9", allow_http=True)
    with pytest.raises(KdsError, match="cannot tell Milan from Genoa"):
        obtain_vcek(load_report(_read("virtee-sev/report_milan.bin")), kds=local)
    with pytest.raises(KdsError, match="VLEK"):
        obtain_vcek(load_report(_read("constellation/aws_report.txt")), kds=local)


def test_turin_url_shape() -> None:
    """Turin: 8-byte hwid and fmcSPL first (sev-facts §7.2). Built from the real Milan report by
    zeroing CHIP_ID[8:], which makes a v2 report Turin; only the URL is checked."""
    raw = bytearray(_read("virtee-sev/report_milan.bin"))
    raw[0x1A8:0x1E0] = bytes(56)
    report = load_report(bytes(raw))
    path = vcek_path("Turin", report)
    assert path.startswith(f"/vcek/v1/Turin/{bytes(raw[0x1A0:0x1A8]).hex()}?fmcSPL=")
    assert "blSPL=" in path and "ucodeSPL=" in path


def test_cli_fetch_vcek(kds, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    base, _ = kds
    out = tmp_path / "vcek.der"
    rc = main(["attest", "fetch-vcek", str(REALDATA / "trustee/test-report.bin"), "--product", "Milan",
               "--kds-url", base, "--kds-allow-http", "--cache", str(tmp_path / "cache"), "-o", str(out)])
    assert rc == 0 and out.read_bytes() == _read("trustee/test-vcek.der")
    assert "VCEK from kds:" in capsys.readouterr().out
    rc = main(["attest", "fetch-vcek", str(REALDATA / "trustee/test-report.bin"), "--product", "Milan",
               "--offline", "--cache", str(tmp_path / "cache"), "-o", str(out)])
    assert rc == 0 and "VCEK from cache:" in capsys.readouterr().out
    rc = main(["attest", "fetch-vcek", str(REALDATA / "trustee/test-report.bin"), "--offline", "-o", str(out)])
    assert rc == 2 and "cannot tell Milan from Genoa" in capsys.readouterr().err
