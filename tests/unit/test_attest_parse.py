"""Report layout, decoders, input formats, certificate formats, the certificate table and the
shipped AMD roots. Inputs are the real captures; where a value no real capture has is needed
(Turin TCB order, version 4), the test builds it from named bytes and says so."""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.attestdata import leaf_of, read

from sevkit.attestation import load_certificates, load_report, parse_report
from sevkit.attestation.certs import amd_info, chain_for_leaf, common_name, shipped_chain
from sevkit.attestation.certtable import build_cert_table, parse_cert_table
from sevkit.attestation.inputs import decode_report_bytes
from sevkit.attestation.layout import LAYOUT, REPORT_SIZE, SIGNED_SIZE, fields_for
from sevkit.attestation.report import (
    KeyInfo,
    PlatformInfo,
    Policy,
    product_from_cpuid,
    product_from_name,
)
from sevkit.attestation.verify import pss_signed_by
from sevkit.errors import AttestationError, InputError, ReportParseError
from sevkit.tcb import TcbVersion


def test_layout_table_matches_sev_facts() -> None:
    by = {f.name: f for f in LAYOUT}
    assert (by["report_data"].offset, by["report_data"].size) == (0x50, 64)
    assert (by["measurement"].offset, by["measurement"].size) == (0x90, 48)
    assert (by["reported_tcb"].offset, by["chip_id"].offset, by["launch_tcb"].offset) == (0x180, 0x1A0, 0x1F0)
    assert by["signature_r"].offset == SIGNED_SIZE == 0x2A0 and by["signature_s"].offset == 0x2E8
    assert REPORT_SIZE == 1184
    assert "cpuid_fam_id" not in {f.name for f in fields_for(2)}
    assert "cpuid_fam_id" in {f.name for f in fields_for(3)}
    assert "launch_mit_vector" not in {f.name for f in fields_for(3)}
    assert "current_mit_vector" in {f.name for f in fields_for(5)}


@pytest.mark.parametrize("version", [0, 1, 0x100, 0x4C058230])
def test_impossible_versions_refused(version: int) -> None:
    """0 and 1 predate the SNP ABI's report (virtee/sev snp.rs: ``0 | 1 => Unsupported``); a u32 far
    beyond any ABI revision is text or a wrong offset, not a report."""
    raw = version.to_bytes(4, "little") + read("oak/genoa_oc_report.extracted.bin")[4:]
    with pytest.raises(ReportParseError, match=f"unsupported report version {version}"):
        parse_report(raw)


def test_version_4_parses_with_the_v3_layout() -> None:
    """Version 4 shares version 3's layout (virtee/sev snp.rs ``3 | 4 => V3``; go-sev-guest abi.go
    ReportVersion4 within 2..5, CPUID bytes read for Version >= 3). SYNTHETIC: the real Milan v3
    report (oak cb_report) with its version field set to 4: every field must decode as in v3."""
    v3 = read("oak/cb_report.extracted.bin")
    a, b = parse_report(v3), parse_report((4).to_bytes(4, "little") + v3[4:])
    assert (a.version, b.version, b.layout_version, b.warnings) == (3, 4, 4, ())
    assert (b.cpuid_fam_id, b.cpuid_mod_id, b.product, b.product_source) == (0x19, 0x01, "Milan", "cpuid")
    assert b.launch_mit_vector is None                 # a v5 field: not in v4
    da, db = a.to_dict(), b.to_dict()
    assert {k for k in da if da[k] != db[k]} == {"version", "layout_version"}


def test_version_above_newest_parses_with_newest_layout_and_warns() -> None:
    """SYNTHETIC: the real Genoa v5 report with version 7."""
    v5 = read("oak/genoa_oc_report.extracted.bin")
    r = parse_report((7).to_bytes(4, "little") + v5[4:])
    assert r.version == 7 and r.layout_version == 5 and r.current_mit_vector is not None
    assert len(r.warnings) == 1 and "newer than the newest sevkit knows (5)" in r.warnings[0]
    assert parse_report(v5).warnings == ()


def test_policy_bits() -> None:
    p = Policy.decode(0x30000)
    assert p.smt and p.reserved_must_be_one and not p.debug and not p.migrate_ma and p.abi_major == 0
    p = Policy.decode(0xB0000 | 0x0105)
    assert p.debug and p.abi_major == 1 and p.abi_minor == 5
    every = Policy.decode((1 << 26) - 1)
    assert all([every.migrate_ma, every.single_socket, every.cxl_allow, every.mem_aes_256_xts,
                every.rapl_dis, every.ciphertext_hiding, every.page_swap_disable])
    assert Policy.decode(1 << 40).reserved_bits_set == 1 << 14


def test_platform_and_key_info() -> None:
    assert PlatformInfo.decode(0b100001).smt_en and PlatformInfo.decode(0b100001).alias_check_complete
    assert KeyInfo.decode(0).signing_key == "VCEK"
    assert KeyInfo.decode(1 << 2).signing_key == "VLEK"
    assert KeyInfo.decode(7 << 2).signing_key == "none"
    k = KeyInfo.decode(0b11)
    assert k.author_key_en and k.mask_chip_key


def test_tcb_layouts() -> None:
    """Milan byte order from the real report_milan; Turin order from sev-facts §6.3 on named bytes."""
    milan = load_report(read("virtee-sev/report_milan.bin")).reported_tcb
    assert (milan.bootloader, milan.tee, milan.snp, milan.microcode, milan.fmc) == (3, 0, 8, 115, None)
    turin = TcbVersion.decode(bytes([1, 2, 3, 4, 0, 0, 0, 9]), "turin")
    assert (turin.fmc, turin.bootloader, turin.tee, turin.snp, turin.microcode) == (1, 2, 3, 4, 9)
    assert turin.components() == {"blSPL": 2, "teeSPL": 3, "snpSPL": 4, "ucodeSPL": 9, "fmcSPL": 1}


def test_products() -> None:
    assert product_from_cpuid(0x19, 0x01) == "Milan"
    assert product_from_cpuid(0x19, 0x11) == "Genoa" and product_from_cpuid(0x19, 0xA0) == "Genoa"
    assert product_from_cpuid(0x1A, 0x02) == "Turin"
    assert product_from_cpuid(0x17, 0x31) is None
    assert product_from_name("Milan-B0") == "Milan" and product_from_name("genoa") == "Genoa"
    assert product_from_name("Venice") is None


def test_v2_turin_from_chip_id_padding() -> None:
    """A v2 report whose CHIP_ID is 8 bytes + zeros is Turin (sev-facts §6.4). Built from the real
    Milan report with CHIP_ID[8:] zeroed: a parsing test, the signature is not relevant."""
    raw = bytearray(read("virtee-sev/report_milan.bin"))
    raw[0x1A8:0x1E0] = bytes(56)
    r = parse_report(bytes(raw))
    assert r.product == "Turin" and r.product_source == "chip_id" and r.reported_tcb.layout == "turin"
    assert r.hwid == bytes(raw[0x1A0:0x1A8])
    assert parse_report(read("virtee-sev/report_milan.bin")).product is None   # Milan or Genoa: unknown


def test_input_formats_agree() -> None:
    raw = read("virtee-sev/report_milan.bin")
    hexed = read("virtee-sev/report_milan.hex")
    assert decode_report_bytes(hexed).format == "hex"
    assert load_report(hexed).raw == raw
    spaced = " ".join(raw.hex()[i:i + 64] for i in range(0, len(raw) * 2, 64)).encode()
    assert load_report(b"0x" + raw.hex().upper().encode()).raw == raw
    assert load_report(spaced).raw == raw
    b64 = base64.encodebytes(raw)                      # with newlines every 76 characters
    assert decode_report_bytes(b64).format == "base64" and load_report(b64).raw == raw
    assert load_report(base64.urlsafe_b64encode(raw).rstrip(b"=")).raw == raw
    trailing = load_report(raw + b"\x01" * 100)
    assert trailing.raw == raw and trailing.trailing_bytes == 100
    hcl = decode_report_bytes(read("trustee/hcl-report.bin"))
    assert hcl.format == "azure-hcl" and len(hcl.data) == REPORT_SIZE


def test_hcl_of_another_type_refused() -> None:
    data = bytearray(read("trustee/hcl-report.bin"))
    data[0x4C8:0x4CC] = (4).to_bytes(4, "little")      # runtime header says TDX
    with pytest.raises(ReportParseError, match="type 4, not SNP"):
        decode_report_bytes(bytes(data))


def test_certificate_formats() -> None:
    der = read("constellation/vcek.cert")
    pem = read("constellation/vcek.pem")
    assert load_certificates(der)[0].public_bytes(Encoding.DER) == load_certificates(pem)[0].public_bytes(Encoding.DER)
    bundle = load_certificates(read("trustee/vcek.pem"))
    assert [common_name(c.subject) for c in bundle] == ["SEV-VCEK", "SEV-Milan", "ARK-Milan"]
    assert len(load_certificates(read("trustee/milan_ask_ark_asvk.pem"))) == 3
    with pytest.raises(InputError):
        load_certificates(b"\x30\x03\x02\x01\x00")


def test_vcek_extensions() -> None:
    milan = amd_info(leaf_of("virtee-sev/vcek_milan.der"))
    assert milan.role == "VCEK" and milan.product_name == "Milan-B0" and len(milan.hwid or b"") == 64
    assert milan.spl == {"blSPL": 3, "teeSPL": 0, "snpSPL": 8, "ucodeSPL": 115}
    turin = amd_info(leaf_of("virtee-sev/vcek_turin.der"))
    assert turin.product_name == "Turin" and len(turin.hwid or b"") == 8 and "fmcSPL" in turin.spl
    vlek = amd_info(leaf_of("constellation/aws_vlek.pem"))
    assert vlek.role == "VLEK" and vlek.hwid is None and vlek.csp_id and "amazon" in vlek.csp_id


def test_turin_vcek_chains_to_shipped_turin_roots() -> None:
    """No Turin report exists in realdata; its VCEK still proves the shipped Turin chain."""
    vcek = leaf_of("virtee-sev/vcek_turin.der")
    chain = chain_for_leaf(vcek)
    assert common_name(chain.ark.subject) == "ARK-Turin"
    assert pss_signed_by(chain.intermediate, vcek)[0] and pss_signed_by(chain.ark, chain.intermediate)[0]


EXPECTED_ROOTS = {
    "milan_vcek_chain.pem": "22e62f8d2c21a156470145fc75f7b5a377cb053ced3e97f0bd3f8d8ca5941ce6",
    "milan_vlek_chain.pem": "3098f7e90ee7049b8cf116448d1bdf33b08847b4250bd99507cf73b5c49d3467",
    "genoa_vcek_chain.pem": "e6ecc853fa56d3170a624d40851f98a1036f974b50204ea69e6aec91d777aca3",
    "genoa_vlek_chain.pem": "95f8b0deab936fe5d44a7cd6ed32590ad360581da2858a27dc2e59ac6eacb2e8",
    "turin_vcek_chain.pem": "cc9a52fbed3fbc6e4a0a50149a541a75938f975658909c2a6084767829b36e85",
    "turin_vlek_chain.pem": "5928f39615a10790e4c3d985fbe5b025524eab50c0801c2b69d2031e476cdfe5",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ROOTS))
def test_shipped_roots_byte_exact_and_valid(name: str) -> None:
    data = resources.files("sevkit").joinpath("data", "amd", name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == EXPECTED_ROOTS[name]
    product, key = name.split("_")[0].capitalize(), name.split("_")[1].upper()
    chain = shipped_chain(product, key)  # type: ignore[arg-type]
    assert pss_signed_by(chain.ark, chain.ark)[0], "ARK self-signed"
    assert pss_signed_by(chain.ark, chain.intermediate)[0], "intermediate signed by ARK"
    assert common_name(chain.ark.subject) == f"ARK-{product}"
    want = f"SEV-VLEK-{product}" if key == "VLEK" else f"SEV-{product}"
    assert common_name(chain.intermediate.subject) == want


def test_cert_table_roundtrip_with_real_certificates() -> None:
    vcek = read("virtee-sev/vcek_milan.der")
    ark = load_certificates(read("virtee-sev/milan_ark.pem"))[0].public_bytes(Encoding.DER)
    table = build_cert_table({"VCEK": vcek, "ARK": ark})
    assert parse_cert_table(table) == {"VCEK": vcek, "ARK": ark}
    assert parse_cert_table(bytes(4096)) == {}                          # host supplied none
    assert parse_cert_table(table + bytes(4096 - len(table) % 4096)) == {"VCEK": vcek, "ARK": ark}
    with pytest.raises(AttestationError, match="outside"):
        parse_cert_table(table[:100])
