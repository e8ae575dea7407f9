"""The host identity fields result.json needs (DMI, BIOS, command line, SNP firmware and TCB, IOMMU), from a
SYNTHETIC RawInputs (tests/unit/hostraw.py); a bundle from an older collector lacks DMI and says so."""

from __future__ import annotations

from helpers.hostraw import make_raw

from sevkit.host import grade


def test_identity_has_dmi_cmdline_snp_tcb_and_iommu() -> None:
    raw = make_raw(cmdline="BOOT_IMAGE=/vmlinuz ro amd_iommu=on")
    raw.data["files"].update({
        "/sys/class/dmi/id/sys_vendor": {"text": "Dell Inc.\n"},
        "/sys/class/dmi/id/product_name": {"text": "PowerEdge R6625\n"},
        "/sys/class/dmi/id/bios_vendor": {"text": "Dell Inc.\n"},
        "/sys/class/dmi/id/bios_version": {"text": "1.9.2\n"},
        "/sys/class/dmi/id/bios_date": {"text": "03/12/2026\n"},
    })
    ident = grade(raw).identity
    assert (ident["dmi_vendor"], ident["dmi_product"], ident["bios_version"], ident["bios_date"]) == (
        "Dell Inc.", "PowerEdge R6625", "1.9.2", "03/12/2026")
    assert ident["cmdline"] == "BOOT_IMAGE=/vmlinuz ro amd_iommu=on"
    assert ident["iommu"] == "2 unit(s); amd_iommu=on"
    assert ident["snp_firmware"].startswith("SNP API ")
    assert ident["snp_tcb_current"].startswith("0x") and len(ident["snp_tcb_reported"]) == 18


def test_identity_from_an_older_bundle_says_unknown() -> None:
    ident = grade(make_raw()).identity
    assert ident["bios_version"].startswith("unknown (") and ident["dmi_product"].startswith("unknown (")
