"""Every kernel/tool format the parsers claim to read, one line each.

These lines are built from the kernel's format strings (the project's sev-facts notes, §3:
`pr_*`/`dev_*` formats filled with example values). They are NOT captures from a machine:
the real captures are tested in test_logs_realdata.py.
"""

from __future__ import annotations

import pytest

from sevkit.logs.analyze import analyze_text, detect_kind
from sevkit.logs.cpuid import parse_cpuid_text
from sevkit.logs.cpuinfo import parse_cpuinfo
from sevkit.logs.dmesg import parse_guest_dmesg, parse_host_dmesg
from sevkit.logs.kvmparams import parse_kvm_params

CCP = "[   13.7] ccp 0000:01:00.5: "


def feats(f: dict[str, bool | None]) -> str:
    return "".join({True: "Y", False: "N", None: "-"}[f[k]] for k in ("SME", "SEV", "SEV-ES", "SEV-SNP"))


# ---- host: kvm_amd ASID lines (§3.2) ------------------------------------------------------

@pytest.mark.parametrize(("lines", "counts", "features"), [
    # 6.5+: disabled (ASIDs 0 - 0) counts 0
    (["kvm_amd: SEV enabled (ASIDs 100 - 509)", "kvm_amd: SEV-ES disabled (ASIDs 0 - 0)"],
     {"SEV": 410, "SEV-ES": 0, "SEV-SNP": 0}, "-YNN"),
    # 0aa6b90ef9d7: an empty range is "unusable"
    (["kvm_amd: SEV enabled (ASIDs 1 - 509)", "kvm_amd: SEV-ES unusable (ASIDs 1 - 0)",
      "kvm_amd: SEV-SNP unusable (ASIDs 1 - 0)"], {"SEV": 509, "SEV-ES": 0, "SEV-SNP": 0}, "-YNN"),
    (["kvm_amd: SEV disabled (ASIDs 0 - 0)"], {"SEV": 0, "SEV-ES": 0, "SEV-SNP": 0}, "-NNN"),
    # 5.11-6.4 mainline: no SNP in KVM at all
    (["SEV supported: 410 ASIDs", "SEV-ES supported: 99 ASIDs"], {"SEV": 410, "SEV-ES": 99, "SEV-SNP": 0},
     "-YYN"),
    (["kvm_amd: SEV supported: 509 ASIDs"], {"SEV": 509, "SEV-ES": 0, "SEV-SNP": 0}, "-YNN"),
    # AMD out-of-tree SNP host kernels
    (["SEV supported: 382 ASIDs", "SEV-ES and SEV-SNP supported: 127 ASIDs"],
     {"SEV": 382, "SEV-ES": 127, "SEV-SNP": 127}, "-YYY"),
])
def test_kvm_asid_formats(lines: list[str], counts: dict[str, int], features: str) -> None:
    text = "\n".join([CCP + "SEV API:1.55 build:38", CCP + "SEV-SNP API:1.55 build:38", *lines]) + "\n"
    h = parse_host_dmesg(text)
    assert h.asid_counts == counts
    assert feats(h.features) == features


def test_kvm_supported_without_count_is_pre_5_11() -> None:
    h = parse_host_dmesg("[    1.0] SEV supported\n")
    assert h.asid_counts == {}
    assert h.features["SEV"] is None     # no firmware line: not shown usable
    assert h.features["SEV-ES"] is False  # KVM had no SEV-ES before 5.11


# ---- host: ccp INIT failures in every §3.3 format, code kept as printed ----------------------

@pytest.mark.parametrize(("line", "error", "features"), [
    ("SEV: failed to INIT error 0x13", "SEV INIT failed: error 0x13", "-NNY"),
    ("SEV: failed to INIT error 0x1, rc -5", "SEV INIT failed: error 0x1, rc -5", "-NNY"),
    ("SEV-SNP: failed to INIT error 0x3", "SEV-SNP INIT failed: error 0x3", "-YYN"),
    ("SEV-SNP: failed to INIT rc -5, error 0x14", "SEV-SNP INIT failed: error 0x14, rc -5", "-YYN"),
    ("SEV-SNP: SNP_INIT_EX failed rc -5, error 0x3", "SEV-SNP SNP_INIT_EX failed: error 0x3, rc -5", "-YYN"),
    ("SEV-SNP: SNP_INIT failed rc -22, error 0x0", "SEV-SNP SNP_INIT failed: error 0x0, rc -22", "-YYN"),
    ("SEV: INIT_EX failed 0x3, rc -5", "SEV INIT_EX failed: error 0x3, rc -5", "-NNY"),
    ("SEV: INIT failed 0, rc -16", "SEV INIT failed: error 0, rc -16", "-NNY"),
])
def test_init_failure_formats(line: str, error: str, features: str) -> None:
    text = "\n".join([CCP + line, CCP + "SEV API:1.55 build:38", CCP + "SEV-SNP API:1.55 build:38",
                      "kvm_amd: SEV enabled (ASIDs 100 - 1006)", "kvm_amd: SEV-ES enabled (ASIDs 1 - 99)",
                      "kvm_amd: SEV-SNP enabled (ASIDs 1 - 99)"]) + "\n"
    h = parse_host_dmesg(text)
    assert h.errors == [error]
    assert feats(h.features) == features


def test_single_line_sev_snp_api_form_means_both_initialized() -> None:
    # ≈6.11 sev_pci_init(): "SEV%s API" with "-SNP" when SNP initialized
    h = parse_host_dmesg(CCP + "SEV-SNP API:1.55 build:21\nkvm_amd: SEV enabled (ASIDs 100 - 1006)\n"
                         "kvm_amd: SEV-ES enabled (ASIDs 1 - 99)\nkvm_amd: SEV-SNP enabled (ASIDs 1 - 99)\n")
    assert h.firmware == {"snp_api": "1.55", "snp_build": 21}
    assert feats(h.features) == "-YYY"


def test_bios_off_turns_everything_off() -> None:
    h = parse_host_dmesg(CCP + "SEV: memory encryption not enabled by BIOS\n")
    assert feats(h.features) == "NNNN"
    assert h.errors == ["SEV: memory encryption not enabled by BIOS"]


@pytest.mark.parametrize("line", [
    "AMD-Vi: SNP: IOMMU disabled or configured in passthrough mode, SNP cannot be supported.",
    "AMD-Vi: SNP: IOMMU is configured with V2 page table mode, SNP cannot be supported.",
    "AMD-Vi: SNP: IOMMU SNP feature not enabled, SNP cannot be supported.",
])
def test_iommu_refusal_blocks_snp(line: str) -> None:
    h = parse_host_dmesg(f"[ 4.2] {line}\n{CCP}SEV-SNP API:1.55 build:38\nkvm_amd: SEV-SNP enabled (ASIDs 1 - 99)\n")
    assert h.iommu_snp is False
    assert h.features["SEV-SNP"] is False
    assert h.errors == [line]


@pytest.mark.parametrize(("line", "rng"), [
    ("SEV-SNP: RMP table physical range [0x000000601d200000 - 0x000000607dafffff]", (0x601D200000, 0x607DAFFFFF)),
    ("SEV-SNP: RMP table physical address 0x0000000035600000 - 0x0000000075bfffff", (0x35600000, 0x75BFFFFF)),
    ("SEV-SNP: RMP table physical address [0x0000000097900000 - 0x00000000a7efffff]", (0x97900000, 0xA7EFFFFF)),
])
def test_rmp_range_formats(line: str, rng: tuple[int, int]) -> None:
    assert parse_host_dmesg(f"[ 0.5] {line}\n").rmp_range == rng


@pytest.mark.parametrize("line", [
    "SEV-SNP: RMP configuration not valid: base=0x0, end=0x0",
    "SEV-SNP: Memory reserved for the RMP table does not cover full system RAM (expected 0x1 got 0x2)",
    "SEV-SNP: Failed to map RMP table",
])
def test_rmp_failures_block_snp(line: str) -> None:
    h = parse_host_dmesg(line + "\n")
    assert h.features["SEV-SNP"] is False and h.errors == [line]


@pytest.mark.parametrize("prefix", [
    "", "[   13.720990] ", "[Wed Oct 11 10:36:17 2023] ", "Nov 26 12:00:00 lab7 kernel: ",
    "2025-06-06T10:00:00+0000 lab7 kernel: ", "<6>[   13.720990] ",
])
def test_any_timestamp_style(prefix: str) -> None:
    text = (f"{prefix}ccp 0000:01:00.5: SEV API:1.55 build:38\n"
            f"{prefix}kvm_amd: SEV enabled (ASIDs 100 - 1006)\n")
    h = parse_host_dmesg(text)
    assert h.firmware == {"sev_api": "1.55", "sev_build": 38}
    assert h.asid_counts["SEV"] == 907
    assert detect_kind(text) == "host-dmesg"


@pytest.mark.parametrize("line", [
    "AMD Memory Encryption Features active: SME", "Memory Encryption Features active: AMD SME",
    "AMD Secure Memory Encryption (SME) active"])
def test_host_sme_banner(line: str) -> None:
    assert parse_host_dmesg(f"[ 0.1] {line}\n").features["SME"] is True
    assert detect_kind(f"[ 0.1] {line}\n") == "host-dmesg"


def test_kernel_command_line_is_not_evidence() -> None:
    text = ("[    0.0] Kernel command line: ro mem_encrypt=on kvm_amd.sev=1 kvm_amd.sev_snp=1 sev=debug\n"
            "[    0.0] Linux version 6.9.0-rc7-snp-host\n")
    assert detect_kind(text) == "unknown"
    assert parse_host_dmesg(text).evidence_lines == []


def test_param_grep_form_in_host_capture() -> None:
    h = parse_host_dmesg("/sys/module/kvm_amd/parameters/sev:Y\n/sys/module/kvm_amd/parameters/sev_snp:N\n"
                         + CCP + "SEV API:1.55 build:38\nkvm_amd: SEV enabled (ASIDs 100 - 1006)\n")
    assert h.kvm_params == {"SEV": True, "SEV-SNP": False}
    assert h.features["SEV"] is True and h.features["SEV-SNP"] is False


# ---- guest (§3.1) ---------------------------------------------------------------------------

@pytest.mark.parametrize(("lines", "features"), [
    (["AMD Secure Encrypted Virtualization (SEV) active"], "-Y--"),                  # 4.15-5.9
    (["AMD Memory Encryption Features active: SEV SEV-ES"], "NYYN"),                 # 5.10-5.18
    (["Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP"], "NYYY"),         # 5.19+
    (["SEV: Status: SEV SEV-ES SEV-SNP DebugSwap "], "NYYY"),                        # 6.9+
    (["SEV: SNP guest platform devices initialized."], "-YYY"),                      # 6.16+ plural
    (["sev-guest sev-guest: Initialized SEV guest driver (using VMPCK2 communication key)"], "-YYY"),
    (["SEV: Using GHCB protocol version 2"], "-YY-"),
    (["systemd[1]: Detected confidential virtualization sev-snp."], "-YYY"),
])
def test_guest_formats(lines: list[str], features: str) -> None:
    text = "\n".join(f"[    0.3] {ln}" for ln in lines) + "\n"
    assert detect_kind(text) == "guest-dmesg"
    assert feats(parse_guest_dmesg(text).features) == features


def test_guest_vmpl_driver_and_vmpck_disable() -> None:
    g = parse_guest_dmesg(
        "[ 0.7] SEV: SNP running at VMPL0.\n"
        "[ 4.9] sev-guest sev-guest: Initialized SEV guest driver (using VMPCK0 communication key)\n"
        "[ 9.1] sev-guest sev-guest: Disabling VMPCK0 communication key to prevent IV reuse.\n")
    assert g.vmpl == 0 and g.vmpck_id == 0 and g.sev_guest_driver is True
    assert g.errors == ["sev-guest sev-guest: Disabling VMPCK0 communication key to prevent IV reuse."]


def test_guest_json_has_vmpl_key_even_when_unsaid() -> None:
    obj = analyze_text("[ 0.2] Memory Encryption Features active: AMD SEV\n", "g.txt")
    assert obj["kind"] == "guest-dmesg" and obj["vmpl"] is None


# ---- cpuinfo / lscpu ------------------------------------------------------------------------

def test_lscpu_flags_and_model_name() -> None:
    text = ("Vendor ID:                AuthenticAMD\nModel name:               AMD Ryzen 7 PRO 3700U\n"
            "Flags:                    fpu sme sev sev_es\n")
    c = parse_cpuinfo(text)
    assert detect_kind(text) == "cpuinfo"
    assert feats(c.features) == "YYYN"
    assert c.is_epyc is False and any("not an AMD EPYC" in n for n in c.notes)


def test_cpuinfo_epyc_hygon_and_guest() -> None:
    epyc = parse_cpuinfo("vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7313 16-Core Processor\n"
                         "flags\t\t: fpu sme sev sev_es sev_snp\n")
    assert epyc.is_epyc is True and feats(epyc.features) == "YYYY" and epyc.notes == []
    hygon = parse_cpuinfo("vendor_id\t: HygonGenuine\nmodel name\t: Hygon C86 7265\nflags\t\t: fpu sme sev\n")
    assert any("not AMD" in n for n in hygon.notes) and hygon.is_epyc is False
    guest = parse_cpuinfo("flags\t\t: fpu hypervisor\n")
    assert feats(guest.features) == "NNNN" and any("guest" in n for n in guest.notes)


def test_intel_vmx_flags_line_is_not_cpu_flags() -> None:
    assert detect_kind("vmx flags\t: vnmi preemption_timer\n") == "unknown"


# ---- cpuid ----------------------------------------------------------------------------------

def test_cpuid_raw_all_cpus_first_wins_and_vendor() -> None:
    text = ("CPU 0:\n   0x00000000 0x00: eax=0x00000010 ebx=0x68747541 ecx=0x444d4163 edx=0x69746e65\n"
            "   0x8000001f 0x00: eax=0x0001fe7f ebx=0x00004173 ecx=0x000003ee edx=0x00000064\n"
            "CPU 1:\n   0x8000001f 0x00: eax=0x00000000 ebx=0x00000000 ecx=0x00000000 edx=0x00000000\n")
    x = parse_cpuid_text(text)
    assert x.vendor == "AuthenticAMD"
    assert feats(x.features) == "YYYY"
    assert x.fields == {"c_bit": 51, "phys_addr_reduction": 5, "num_vmpls": 4, "max_guests": 1006,
                        "min_sev_asid": 100}


def test_cpuid_decoded_full_block() -> None:
    text = ("      SME: secure memory encryption support    = true\n"
            "      SEV: secure encrypted virtualize support = true\n"
            "      SEV-ES: SEV encrypted state support      = true\n"
            "      SEV-SNP: SEV secure nested paging        = false\n"
            "      encryption bit position in PTE           = 0x2f (47)\n"
            "      physical address space width reduction   = 0x5 (5)\n"
            "      number of SEV-enabled guests supported   = 0x1fd (509)\n"
            "      minimum SEV guest ASID                   = 0x80 (128)\n")
    x = parse_cpuid_text(text)
    assert detect_kind(text) == "cpuid"
    assert feats(x.features) == "YYYN"
    assert x.fields["c_bit"] == 47 and x.fields["min_sev_asid"] == 128 and x.fields["max_guests"] == 509


def test_cpuid_without_leaf_8000001f() -> None:
    x = parse_cpuid_text("   0x80000000 0x00: eax=0x80000008 ebx=0x00000000 ecx=0x00000000 edx=0x00000000\n")
    assert feats(x.features) == "NNNN"


# ---- kvm_amd parameters ---------------------------------------------------------------------

def test_kvm_params_bare_and_named() -> None:
    assert detect_kind("Y\nN\n") == "kvm-amd-params"
    assert feats(parse_kvm_params("Y\nN\n").features) == "-YN-"
    named = "$ cat /sys/module/kvm_amd/parameters/sev_snp\nN\n$ cat /sys/module/kvm_amd/parameters/sev\n1\n"
    assert detect_kind(named) == "kvm-amd-params"
    assert parse_kvm_params(named).params == {"SEV-SNP": False, "SEV": True}


def test_cpu0_line_names_the_cpu_and_hygon_is_not_amd_sev() -> None:
    fw = CCP + "SEV API:1.2 build:3\nSEV supported: 32 ASIDs\n"
    epyc = parse_host_dmesg("[ 0.2] smpboot: CPU0: AMD EPYC 7313 16-Core Processor (family: 0x19, model: 0x1, "
                            "stepping: 0x1)\n" + fw)
    assert epyc.cpu == "AMD EPYC 7313 16-Core Processor" and epyc.features["SEV"] is True
    hygon = parse_host_dmesg("[ 0.2] smpboot: CPU0: Hygon C86 7265 24-core Processor (family: 0x18, "
                             "model: 0x2, stepping: 0x2)\n" + fw)
    assert feats(hygon.features)[1:] == "NNN"
    assert any("Hygon" in n for n in hygon.notes)
