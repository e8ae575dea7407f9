"""OVMF capabilities by content: the collector ships sha256, head and 64 KiB tail; sev-snp-measure parses.

The first tests read the real Debian 12 OVMF images installed on this machine (scripts/host-deps.sh
installs the ovmf package); they fail loudly when those are missing. The grader tests use
SYNTHETIC images from hostraw.ovmf_image, whose GUID tables sev-snp-measure parses like real ones.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.hostraw import make_raw, ovmf_image
from sevsnpmeasure.ovmf import OVMF

from sevkit.host import collect_local, collector, grade
from sevkit.host import ovmf as ovmf_mod
from sevkit.host.ovmf import SEV_HASH_TABLE, inspect, inspect_all

DEBIAN_CODE_4M = "/usr/share/OVMF/OVMF_CODE_4M.fd"
DEBIAN_COMBINED = "/usr/share/ovmf/OVMF.fd"
DEBIAN_VARS_4M = "/usr/share/OVMF/OVMF_VARS_4M.fd"


def _installed(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        pytest.fail(f"{path} missing: install Debian's ovmf package (scripts/host-deps.sh)")
    return {"path": path, "realpath": os.path.realpath(path), "size": os.path.getsize(path),
            **collector.ovmf_content(path)}


def test_collector_content_is_digest_head_and_tail() -> None:
    entry = _installed(DEBIAN_CODE_4M)
    blob = Path(DEBIAN_CODE_4M).read_bytes()
    assert entry["sha256"] == hashlib.sha256(blob).hexdigest()
    assert entry["tail_offset"] == len(blob) - collector.OVMF_TAIL
    sec = collector._ovmf()
    reals = [i["realpath"] for i in sec["images"] if i["size"] > 0]
    assert set(sec["content"]) == set(reals)      # symlinked variants are read (and shipped) once


def test_debian_code_4m_has_sev_es_but_no_snp_metadata() -> None:
    """Real Debian 12 ovmf: the 4M CODE image has the GUID table with the SEV-ES reset block and a
    hash-table entry whose GPA is 0, but no SEV metadata, so no SNP and no kernel hashes."""
    img = inspect(_installed(DEBIAN_CODE_4M))
    assert (img.role, img.has_guid_table, img.sev_es, img.snp, img.kernel_hashes) == ("code", True, True, False, False)
    assert img.sections == () and any(g.endswith(SEV_HASH_TABLE) for g in img.guids)
    assert "GPA 0" in img.summary() and not img.combined


def test_debian_combined_ovmf_fd_has_snp_metadata_without_kernel_hashes() -> None:
    img = inspect(_installed(DEBIAN_COMBINED))
    assert (img.role, img.sev_es, img.snp, img.kernel_hashes, img.snp_kernel_hashes) == \
        ("combined", True, True, False, False)
    assert img.combined and img.firmware
    vars_img = inspect(_installed(DEBIAN_VARS_4M))
    assert (vars_img.role, vars_img.has_guid_table, vars_img.firmware) == ("vars", False, False)


@pytest.mark.parametrize("path", [DEBIAN_CODE_4M, DEBIAN_COMBINED, "/usr/share/OVMF/OVMF_CODE.fd"])
def test_tail_parse_equals_whole_file_parse(path: str) -> None:
    """The 64 KiB tail gives sev-snp-measure's answer for the whole image."""
    img = inspect(_installed(path))
    whole = OVMF(path)
    assert img.sections == tuple(s.section_type().name for s in whole.metadata_items())
    assert img.kernel_hashes == whole.is_sev_hashes_table_supported()
    assert img.sev_es == (whole.SEV_ES_RESET_BLOCK_GUID in {g.split()[-1] for g in img.guids})


def test_local_probe_reports_this_machines_images() -> None:
    r = grade(collect_local())
    by_path = {i.path: i for i in r.ovmf_images}
    assert by_path[DEBIAN_CODE_4M].sev_es and not by_path[DEBIAN_CODE_4M].snp
    assert r.check("ovmf.sev_es").status == "pass"
    assert r.check("ovmf.kernel_hashes").status == "warn"   # Debian: hash-table entry with GPA 0 only
    snp = r.ovmf_for(snp=True)   # Debian 12: OVMF.fd (combined) and the 2M OVMF_CODE*.fd
    assert r.check("ovmf.snp").status == "pass" and snp[0].path == DEBIAN_COMBINED and snp[0].combined
    assert DEBIAN_CODE_4M not in [i.path for i in snp]


# -- grading (SYNTHETIC images) ---------------------------------------------------------------
def test_full_capability_image_passes_every_ovmf_check() -> None:
    r = grade(make_raw(ovmf=(ovmf_image("/opt/AMDSEV/usr/local/share/qemu/OVMF.fd"),)))
    for cid in ("ovmf.present", "ovmf.sev_es", "ovmf.snp", "ovmf.kernel_hashes"):
        assert r.check(cid).status == "pass", r.check(cid)
    assert "SNP_KERNEL_HASHES section in /opt/AMDSEV" in r.check("ovmf.kernel_hashes").message
    (img,) = r.ovmf_images
    assert img.combined and img.snp and img.kernel_hashes and img.snp_kernel_hashes
    assert r.to_json()["ovmf_images"][0]["sha256"] == img.sha256


def test_debian_like_code_image_fails_snp_with_hint_and_evidence() -> None:
    code = ovmf_image("/usr/share/OVMF/OVMF_CODE_4M.fd", snp=False, snp_kernel_hashes=False, hash_gpa=0,
                      combined=False)
    r = grade(make_raw(ovmf=(code,)))
    snp, hashes = r.check("ovmf.snp"), r.check("ovmf.kernel_hashes")
    assert r.check("ovmf.sev_es").status == "pass"
    assert snp.status == "fail" and snp.feature == "SEV-SNP" and "AmdSevX64.dsc" in (snp.hint or "")
    assert hashes.status == "warn" and "Debian's ovmf package has no AMD SEV build" in (hashes.hint or "")
    assert code["sha256"][:16] in snp.evidence[0].source and "[code]" in snp.message
    # the OVMF checks name what is missing; they do not change which features the CPU/firmware provide
    assert r.features["SEV-SNP"] is True and not r.verdict("sev-snp").holds
    assert [c.id for c in r.verdict("sev-snp").failures] == ["ovmf.snp"]
    assert r.verdict("sev-es").holds


def test_vars_only_and_unparseable_images() -> None:
    vars_only = ovmf_image("/usr/share/OVMF/OVMF_VARS.fd", table=False)
    truncated = dict(ovmf_image("/x/OVMF.fd"))
    truncated["tail_b64"] = ovmf_image("/x/OVMF.fd")["tail_b64"][-200:]   # metadata beyond the tail
    old = {"path": "/y/OVMF.fd", "realpath": "/y/OVMF.fd", "size": 2 << 20}  # a bundle from an older collector
    r = grade(make_raw(ovmf=(vars_only, truncated, old)))
    imgs = {i.path: i for i in r.ovmf_images}
    assert imgs["/usr/share/OVMF/OVMF_VARS.fd"].role == "vars"
    assert imgs["/x/OVMF.fd"].error and "not parseable" in imgs["/x/OVMF.fd"].error
    assert "not collected" in (imgs["/y/OVMF.fd"].error or "")
    assert r.check("ovmf.sev_es").status == "fail" and "inspected 0 firmware image(s)" in r.check("ovmf.sev_es").message


def test_ovmf_for_prefers_combined_images() -> None:
    code = ovmf_image("/a/OVMF_CODE.fd", combined=False)
    r = grade(make_raw(ovmf=(code, ovmf_image("/b/OVMF.fd"))))
    assert [i.path for i in r.ovmf_for(snp=True)] == ["/b/OVMF.fd", "/a/OVMF_CODE.fd"]
    assert [i.path for i in r.ovmf_for(snp=True, combined=False)] == ["/a/OVMF_CODE.fd"]


def test_missing_parser_is_an_error_not_a_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable() -> Any:
        raise ovmf_mod.ParserUnavailable("sev-snp-measure is not installed")
    monkeypatch.setattr(ovmf_mod, "_ovmf_class", unavailable)
    r = grade(make_raw())
    assert r.check("ovmf.snp").status == "error" and r.check("ovmf.present").status == "pass"
    assert r.verdict("none").errors and r.ovmf_images == ()


def test_inspect_all_shares_content_between_symlinks() -> None:
    img = ovmf_image("/usr/share/OVMF/OVMF_CODE_4M.fd")
    content = {k: v for k, v in img.items() if k not in ("path", "realpath", "size")}
    section = {"images": [{"path": "/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "realpath": img["path"], "size": 1},
                          {"path": img["path"], "realpath": img["path"], "size": 1},
                          {"path": "/broken", "realpath": "/broken", "size": -1}],
               "content": {img["path"]: content}}
    out = inspect_all(section)
    assert [i.path for i in out] == ["/usr/share/OVMF/OVMF_CODE_4M.ms.fd", img["path"]]
    assert out[0].sha256 == out[1].sha256 == img["sha256"]


def test_sev_only_hash_table_says_snp_section_is_missing() -> None:
    r = grade(make_raw(ovmf=(ovmf_image("/o/OVMF.fd", snp_kernel_hashes=False),)))
    c = r.check("ovmf.kernel_hashes")
    assert c.status == "pass" and c.message.endswith("SNP_KERNEL_HASHES section in none of them")
