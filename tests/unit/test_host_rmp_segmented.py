"""Segmented RMP (Turin, Linux >= 6.14) and the RMP coverage rule per layout (issue 9 §6).

Upstream facts (arch/x86/virt/svm/sev.c, arch/x86/include/asm/msr-index.h):
- snp_probe_rmptable_info() reads MSR_AMD64_RMP_CFG (0xc0010136) only when X86_FEATURE_SEGMENTED_RMP
  (CPUID Fn8000_001F EAX bit 23) is set; bit 0 (MSR_AMD64_SEG_RMP_ENABLED) selects the segmented layout.
- probe_segmented_rmptable_info(): RMP_BASE must be set, RMP_END is expected to be 0 (WARN_ONCE
  "Segmented RMP enabled but RMP_END MSR is non-zero"), the segment shift MSR_AMD64_RMP_SEGMENT_SHIFT
  (bits 13:8) must lie within CPUID Fn8000_0025 EAX[5:0]..EAX[11:6] ("RMP segment size (%u) is not within
  advertised bounds (min=%u, max=%u)").
- setup_contiguous_rmptable(): calc_rmp_sz = (max(max_pfn, PFN_UP(rmp_end)) << 4) + 0x4000 must not
  exceed RMP_END - RMP_BASE + 1.
- setup_segmented_rmptable(): "RMP segment %u physical address [..] covering [0x%llx - 0x%llx]"; fails
  with "Segmented RMP does not cover full system RAM (expected 0x%llx got 0x%llx)".

The kernel log is a REAL capture (AMDESE/AMDSEV README, see PROVENANCE.md). The MSR and CPUID values
around it are SYNTHETIC, chosen to match that log (base 0x9ba00000, 128 GB = 2^37 segments).
"""

from __future__ import annotations

from helpers.hostraw import make_raw, realdata

from sevkit.host import grade
from sevkit.logs.dmesg import parse_host_dmesg

SEG_LOG = "dmesg-host/amdsev-readme_turin-segmented-rmp_snp-api-1.58_asids-1-98.txt"
EAX_SEG = 0x0101FD3F | 1 << 23          # SYNTHETIC Fn8000_001F EAX with SegmentedRmp (bit 23)
LEAF_25 = (30 | 40 << 6, 0, 0, 0)        # SYNTHETIC Fn8000_0025 EAX: segment shift min 30, max 40
CFG_128G = 1 | 37 << 8                   # RMP_CFG: enabled, shift 37 (128 GB, as the log says)
RAM_END = 0x13FFFFFFFFF                  # SYNTHETIC: RAM ends where the log's segment 9 ends


def _seg(**kw: object) -> object:
    args: dict[str, object] = dict(leaf_1f=(EAX_SEG, 51 | 6 << 6 | 4 << 12, 1006, 99), rmp=(0x9BA00000, 0),
                                   rmp_cfg=CFG_128G, leaf_25=LEAF_25, ram_end=RAM_END, dmesg=realdata(SEG_LOG))
    args.update(kw)
    return grade(make_raw(**args))  # type: ignore[arg-type]


def test_real_segmented_log_parses() -> None:
    d = parse_host_dmesg(realdata(SEG_LOG))
    assert d.rmp_segmented and d.rmp_segment_gb == 128
    assert d.rmp_range == (0x9BA00000, 0x9BA05000)
    assert d.rmp_segments == {0: (0x0, 0x87FFFFFFF), 8: (0x10000000000, 0x11FFFFFFFFF),
                              9: (0x12000000000, 0x13FFFFFFFFF)}
    assert d.errors == []
    assert d.features["SEV-SNP"] is True


def test_segmented_rmp_with_rmp_end_zero_passes_and_snp_stays_usable() -> None:
    r = _seg()
    c = r.check("msr.rmp")
    assert c.status == "pass", c.message
    assert "segmented RMP" in c.message and "128 GiB segments" in c.message
    assert any("RMP_CFG" in e.source for e in c.evidence)
    cov = r.check("msr.rmp_coverage")
    assert cov.status == "pass", cov.message
    assert "0x14000000000" in cov.message      # segment 9 ends at RAM's end
    dm = r.check("dmesg.rmp")
    assert dm.status == "pass" and "Segmented RMP" in dm.message
    assert r.features["SEV-SNP"] is True


def test_segmented_coverage_short_of_ram_fails_with_kernel_rule() -> None:
    r = _seg(ram_end=0x17FFFFFFFFF)   # SYNTHETIC: 256 GB more RAM than the log's segments cover
    cov = r.check("msr.rmp_coverage")
    assert cov.status == "fail"
    assert "Segmented RMP does not cover full system RAM (expected 0x18000000000 got 0x14000000000)" in cov.message


def test_segmented_coverage_without_segment_lines_is_not_measured() -> None:
    r = _seg(dmesg="")
    cov = r.check("msr.rmp_coverage")
    assert cov.status == "skip" and "not measured" in cov.message


def test_segment_shift_outside_cpuid_bounds_fails() -> None:
    r = _seg(rmp_cfg=1 | 41 << 8)
    c = r.check("msr.rmp")
    assert c.status == "fail"
    assert "RMP segment size (41) is not within advertised bounds (min=30, max=40)" in c.message
    assert r.features["SEV-SNP"] is False


def test_segmented_rmp_end_nonzero_warns() -> None:
    c = _seg(rmp=(0x9BA00000, 0x9BAFFFFF)).check("msr.rmp")
    assert c.status == "warn" and "RMP_END" in c.message


def test_segmented_capable_but_contiguous_uses_contiguous_rule() -> None:
    # Bit 23 set, RMP_CFG bit 0 clear: probe_contiguous_rmptable_info(); RMP_END = 0 is then "not reserved".
    r = _seg(rmp_cfg=0)
    assert r.check("msr.rmp").status == "fail"
    assert "not been reserved" in r.check("msr.rmp").message
    ok = _seg(rmp_cfg=0, rmp=(0x601D200000, 0x607DAFFFFF), ram_end=0x17FFFFFFFF, dmesg="")
    assert ok.check("msr.rmp").status == "pass" and "contiguous" in ok.check("msr.rmp").message


def test_old_cpu_never_needs_rmp_cfg() -> None:
    # No bit 23 (Milan/Genoa): RMP_CFG is not read, so a bundle without it still grades.
    r = grade(make_raw())
    assert r.check("msr.rmp").status == "pass"
    assert not any("RMP_CFG" in e.source for e in r.check("msr.rmp").evidence)


def test_contiguous_coverage_is_the_kernel_formula() -> None:
    # RMP of 0x60900000 bytes: (max_pfn << 4) + 0x4000 must fit. RAM end 0x17FFFFFFFF -> max_pfn 0x1800000,
    # needs 0x18004000 bytes; an RMP that ends above RAM must also cover itself (PFN_UP(rmp_end)).
    base = 0x601D200000
    ok = grade(make_raw(rmp=(base, base + 0x18004000 - 1), ram_end=0x17FFFFFFFF))
    assert ok.check("msr.rmp_coverage").status == "fail"   # RMP itself lies above RAM: PFN_UP(rmp_end) rules
    low = 0x1000000
    exact = grade(make_raw(rmp=(low, low + 0x18004000 - 1), ram_end=0x17FFFFFFFF))
    assert exact.check("msr.rmp_coverage").status == "pass", exact.check("msr.rmp_coverage").message
    short = grade(make_raw(rmp=(low, low + 0x18004000 - 2), ram_end=0x17FFFFFFFF))
    c = short.check("msr.rmp_coverage")
    assert c.status == "fail"
    assert "does not cover full system RAM (expected 0x18004000 got 0x18003fff)" in c.message


def test_kernel_segmented_failures_are_rmp_errors() -> None:
    for line in ("SEV-SNP: Segmented RMP does not cover full system RAM (expected 0x18000000000 got 0x14000000000)",
                 "SEV-SNP: RMP segment size (41) is not within advertised bounds (min=30, max=40)"):
        d = parse_host_dmesg(f"[    1.000000] {line}\n")
        assert d.errors == [line]
        assert d.features["SEV-SNP"] is False
