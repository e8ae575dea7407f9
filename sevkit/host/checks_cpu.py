"""CPU checks: vendor, brand, generation, CPUID Fn8000_001F, SYSCFG and RMP MSRs.

References: sev-facts.md §1 (CPUID), §2 (MSRs), §9.1 (snphost ok tree).
"""

from __future__ import annotations

from functools import partial

from ..logs.dmesg import parse_host_dmesg
from ..memencrypt import LEAF, SOURCE, EaxBit, MemEncryptInfo, regs_text
from ..vocab import FEATURE_CHAIN, FEATURES, Feature, dependents
from . import cpu
from .checkdef import Checks, Context, Meta, Outcome, ev
from .report import Evidence

ALL = FEATURES
SEVS = FEATURE_CHAIN
ES_UP = dependents(Feature.SEV_ES)   # SEV-ES, SEV-SNP: the guests that use the SEV-ES ASIDs
SYSCFG, RMP_BASE, RMP_END = 0xC0010010, 0xC0010132, 0xC0010133
# arch/x86/include/asm/msr-index.h MSR_AMD64_RMP_CFG, MSR_AMD64_SEG_RMP_ENABLED; arch/x86/virt/svm/sev.c
# RMP_ADDR_MASK GENMASK_ULL(51, 13), RMPTABLE_CPU_BOOKKEEPING_SZ 0x4000, RST_SIZE SZ_4K.
RMP_CFG, SEG_RMP_ENABLED = 0xC0010136, 1
RMP_ADDR_MASK = ((1 << 52) - 1) & ~((1 << 13) - 1)
RMP_BOOKKEEPING, RST_SIZE = 0x4000, 0x1000
LEAF_RMP_SEG = 0x80000025
F_SRC = SOURCE

HINT_SMEE = ("BIOS: enable SMEE (AMD CBS > CPU Common Options > SMEE / 'Secure Memory Encryption'); "
             "SEV INIT error 0x13 means SMEE is off")
HINT_RMP_BIOS = "BIOS: enable 'SEV-SNP Support' and set 'SNP Memory Coverage' so the RMP table is reserved"
HINT_SNP_BIOS = ("BIOS: enable 'SEV-SNP Support' and 'SNP Memory Coverage' (RMP table reserved), IOMMU enabled; "
                 "kernel >= 6.11 built with CONFIG_KVM_AMD_SEV, IOMMU not in passthrough (no iommu=pt, "
                 "no amd_iommu=off)")

CHECKS = Checks()


def vendor(ctx: Context) -> Outcome:
    raw = ctx.raw
    v = cpu.vendor(raw.cpuid(0))
    e = [ev(f"{raw.cpuid_source} leaf 0x00000000 (EBX,EDX,ECX)", v)]
    ctx.facts["vendor"] = v
    if v == "AuthenticAMD":
        return Outcome("pass", "AuthenticAMD", e)
    return Outcome("fail", f"CPUID Fn0000_0000 vendor is {v}, not AuthenticAMD", e,
                   "SEV, SEV-ES and SEV-SNP need an AMD EPYC processor")


CHECKS.add(Meta("cpu.vendor", "AMD CPU", Feature.SEV, ALL, ref="snphost ok 'AMD CPU'; APM CPUID Fn0000_0000"), vendor)


def brand(ctx: Context) -> Outcome:
    raw = ctx.raw
    b = cpu.brand(raw.cpuid(0x80000002), raw.cpuid(0x80000003), raw.cpuid(0x80000004))
    ctx.facts["brand"] = b
    e = [ev(f"{raw.cpuid_source} leaves 0x80000002-0x80000004", b)]
    if "EPYC" in b:
        return Outcome("pass", b, e)
    return Outcome("fail", f"brand string {b!r} does not name an EPYC processor", e,
                   "SEV needs an EPYC part: client Ryzen CPUs advertise the CPUID bits but their PSP "
                   "firmware does not run SEV guests")


CHECKS.add(Meta("cpu.epyc", "EPYC processor (microcode support)", Feature.SEV, SEVS, ("cpu.vendor",),
                "snphost ok 'Microcode support'"), brand)


def ident(ctx: Context) -> Outcome:
    raw = ctx.raw
    eax1 = raw.cpuid(1)[0]
    sig = cpu.signature(eax1)
    gen = cpu.generation(sig, ctx.facts.get("brand", ""))
    ctx.facts["signature"], ctx.facts["generation"] = sig, gen
    e = [ev(f"{raw.cpuid_source} leaf 0x00000001 EAX", f"0x{eax1:08x}"), ev("decoded", str(sig))]
    if gen:
        return Outcome("pass", f"{gen} ({sig})", e)
    return Outcome("warn", f"unrecognised AMD generation ({sig})", e,
                   "known EPYC generations: Naples, Rome, Milan, Genoa, Bergamo/Siena, Turin")


CHECKS.add(Meta("cpu.generation", "CPU family/model/stepping and generation", Feature.SEV, (), ("cpu.vendor",),
                "APM CPUID Fn0000_0001 EAX"), ident)


def leaf(ctx: Context) -> Outcome:
    raw = ctx.raw
    maxext = raw.cpuid(0x80000000)[0]
    e = [ev(f"{raw.cpuid_source} leaf 0x80000000 EAX", f"0x{maxext:08x}")]
    if maxext < LEAF:
        return Outcome("fail", f"CPUID Fn8000_0000 EAX max extended leaf 0x{maxext:08x} < 0x8000001f", e,
                       "this CPU has no memory-encryption leaf: it cannot run SEV")
    regs = raw.cpuid(LEAF)
    ctx.facts["mem_encrypt"] = MemEncryptInfo(*regs)
    return Outcome("pass", regs_text(LEAF, regs),
                   [*e, ev(f"{raw.cpuid_source} leaf 0x8000001f", regs_text(LEAF, regs))])


CHECKS.add(Meta("cpuid.leaf_8000001f", "CPUID memory-encryption leaf present", Feature.SEV, ALL, ("cpu.vendor",),
                "APM CPUID Fn8000_001F"), leaf)


def me(ctx: Context) -> MemEncryptInfo:
    """The decoded leaf (set by cpuid.leaf_8000001f, which every user of it needs)."""
    info: MemEncryptInfo = ctx.facts["mem_encrypt"]
    return info


def bit_check(name: str, bit: EaxBit, hint: str, ctx: Context) -> Outcome:
    m = me(ctx)
    e = [ev(f"{F_SRC} EAX", f"0x{m.eax:08x}"), ev(f"{F_SRC} EAX bit {bit:d}", int(m.bit(bit)))]
    if m.bit(bit):
        return Outcome("pass", f"{F_SRC} EAX bit {bit:d} ({name}) is 1", e)
    return Outcome("fail", f"{F_SRC} EAX bit {bit:d} ({name}) is 0", e, hint)


CHECKS.add(Meta("cpuid.sme", "Secure Memory Encryption (SME) supported", Feature.SME, (Feature.SME,),
                ("cpuid.leaf_8000001f",), "sev-facts §1.1 bit 0; snphost 'Secure Memory Encryption (SME)'"),
           partial(bit_check, "SME", EaxBit.SME, "this CPU does not implement SME"))
CHECKS.add(Meta("cpuid.sev", "Secure Encrypted Virtualization (SEV) supported", Feature.SEV, SEVS,
                ("cpuid.leaf_8000001f",), "sev-facts §1.1 bit 1; snphost 'Secure Encrypted Virtualization (SEV)'"),
           partial(bit_check, "SEV", EaxBit.SEV, "this CPU does not implement SEV (needs AMD EPYC, Naples or later)"))


def page_flush(ctx: Context) -> Outcome:
    on = me(ctx).bit(EaxBit.PAGE_FLUSH_MSR)
    state = "ENABLED" if on else "DISABLED"
    return Outcome("pass", f"{F_SRC} EAX bit 2 (PageFlushMsr) is {int(on)} ({state}; informational)",
                   [ev(f"{F_SRC} EAX bit 2", int(on))])


CHECKS.add(Meta("cpuid.page_flush", "Page flush MSR", Feature.SEV, (), ("cpuid.sev",),
                "sev-facts §1.1 bit 2; snphost 'Page flush MSR'"), page_flush)
CHECKS.add(Meta("cpuid.sev_es", "Encrypted State (SEV-ES) supported", Feature.SEV_ES, ES_UP,
                ("cpuid.sev",), "sev-facts §1.1 bit 3; snphost 'Encrypted State (SEV-ES)'"),
           partial(bit_check, "SEV-ES", EaxBit.SEV_ES, "this CPU does not implement SEV-ES (Rome or later)"))
CHECKS.add(Meta("cpuid.sev_snp", "Secure Nested Paging (SEV-SNP) supported", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("cpuid.sev_es",), "sev-facts §1.1 bit 4; snphost 'Secure Nested Paging (SEV-SNP)'"),
           partial(bit_check, "SEV-SNP", EaxBit.SEV_SNP, "this CPU does not implement SEV-SNP (Milan or later)"))
CHECKS.add(Meta("cpuid.vmpl", "VM Permission Levels supported", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("cpuid.sev_snp",), "sev-facts §1.1 bit 5; snphost 'VM Permission Levels'"),
           partial(bit_check, "VMPL", EaxBit.VMPL, "this CPU does not implement VMPLs"))


def num_vmpl(ctx: Context) -> Outcome:
    n = me(ctx).num_vmpl
    e = [ev(f"{F_SRC} EBX[15:12]", n)]
    if n == 4:
        return Outcome("pass", f"{n} VMPLs", e)
    return Outcome("warn", f"{n} VMPLs (expected 4)", e, "SNP parts report 4 VMPLs; check the BIOS/microcode")


CHECKS.add(Meta("cpuid.num_vmpl", "Number of VMPLs", Feature.SEV_SNP, (), ("cpuid.vmpl",),
                "sev-facts §1.2 EBX[15:12]; snphost 'Number of VMPLs'"), num_vmpl)


def eax_features(ctx: Context) -> Outcome:
    m = me(ctx)
    names = m.eax_features()
    return Outcome("pass", "EAX features: " + (", ".join(names) or "none"),
                   [ev(f"{F_SRC} EAX", f"0x{m.eax:08x}"), ev("decoded (sev-facts §1.1)", names),
                    ev(f"{F_SRC} EBX bit 31 COHERENCY_SFW_NO", int(m.coherency_sfw_no))])


CHECKS.add(Meta("cpuid.features", "Every documented Fn8000_001F EAX bit", Feature.SEV, (), ("cpuid.sev",),
                "sev-facts §1.1 table"), eax_features)


def cbit(ctx: Context) -> Outcome:
    c = me(ctx).cbitpos
    e = [ev(f"{F_SRC} EBX[5:0]", c)]
    if 32 <= c <= 63:
        return Outcome("pass", f"C-bit position {c}", e)
    return Outcome("fail", f"C-bit position {c} is not a valid physical-address bit", e,
                   "CPUID reports no usable C-bit: update BIOS/microcode")


CHECKS.add(Meta("cpuid.cbit", "C-bit location", Feature.SEV, SEVS, ("cpuid.sev",),
                "sev-facts §1.2 EBX[5:0]; snphost 'C-bit location'"), cbit)


def phys_addr_reduction(ctx: Context) -> Outcome:
    n = me(ctx).phys_addr_reduction
    return Outcome("pass", f"{n} bits", [ev(f"{F_SRC} EBX[11:6]", n)])


CHECKS.add(Meta("cpuid.phys_addr_reduction", "Physical address bit reduction", Feature.SEV, (), ("cpuid.sev",),
                "sev-facts §1.2 EBX[11:6]; snphost 'Physical address bit reduction'"), phys_addr_reduction)


def max_guests(ctx: Context) -> Outcome:
    n = me(ctx).max_guests
    e = [ev(f"{F_SRC} ECX", n)]
    if n > 0:
        return Outcome("pass", f"{n} encrypted guests supported simultaneously", e)
    return Outcome("fail", f"{F_SRC} ECX (number of encrypted guests) is 0", e,
                   "BIOS: enable SEV and set 'SEV ASID Count' / 'SEV-ES ASID Space Limit'; enable SMEE")


CHECKS.add(Meta("cpuid.max_guests", "Number of encrypted guests supported simultaneously", Feature.SEV, SEVS,
                ("cpuid.sev",), "sev-facts §1.2 ECX; snphost"), max_guests)


def min_asid(ctx: Context) -> Outcome:
    m = me(ctx)
    e = [ev(f"{F_SRC} EDX (min SEV-only ASID)", m.min_sev_asid), ev(f"{F_SRC} ECX (max ASID)", m.max_guests)]
    es, sev_only = m.es_asids, m.sev_only_asids
    ctx.facts["asid_budget"] = {Feature.SEV: sev_only, Feature.SEV_ES: es}
    msg = f"min SEV ASID {m.min_sev_asid}: {es} SEV-ES/SNP ASIDs (1-{es}), {sev_only} SEV-only ASIDs"
    if es == 0:
        return Outcome("fail", f"{F_SRC} EDX (min SEV ASID) is {m.min_sev_asid}: no ASIDs left for SEV-ES/SEV-SNP",
                       e, "BIOS: raise 'SEV-ES ASID Space Limit' (minimum SEV non-ES ASID) above 1 so "
                          "ASIDs 1..limit-1 go to SEV-ES/SEV-SNP guests")
    # No plain-SEV ASIDs leaves SEV-ES/SNP intact: asid.sev_plain makes plain SEV unusable.
    return Outcome("pass", msg, e)


CHECKS.add(Meta("cpuid.min_sev_asid", "Minimum ASID value for SEV-enabled, SEV-ES disabled guest", Feature.SEV_ES,
                ES_UP, ("cpuid.sev_es",), "sev-facts §1.2 EDX; AMDSEV#84"), min_asid)


# -- MSRs -------------------------------------------------------------------------------
def syscfg_bit(bit: int, name: str, hint: str, ctx: Context) -> Outcome:
    val = ctx.raw.msr(SYSCFG)
    ctx.facts["syscfg"] = val
    e = [ev("/dev/cpu/0/msr MSR 0xc0010010 (SYSCFG)", f"0x{val:x}"),
         ev(f"SYSCFG bit {bit} ({name})", val >> bit & 1)]
    if val >> bit & 1:
        return Outcome("pass", f"SYSCFG bit {bit} ({name}) is 1", e)
    return Outcome("fail", f"SYSCFG MSR 0xC0010010 bit {bit} ({name}) is 0", e, hint)


CHECKS.add(Meta("msr.syscfg.smee", "SME/SEV enabled in SYSCFG (MemEncryptionModEn)", Feature.SEV, ALL,
                ("cpuid.sme",), "sev-facts §2.2 bit 23; snphost 'SME'"),
           partial(syscfg_bit, 23, "MemEncryptionModEn", HINT_SMEE))
CHECKS.add(Meta("msr.syscfg.snpen", "SNP enabled in SYSCFG (SNPEn)", Feature.SEV_SNP, (Feature.SEV_SNP,),
                ("cpuid.sev_snp",), "sev-facts §2.2 bit 24; snphost 'SEV-SNP'"),
           partial(syscfg_bit, 24, "SNPEn", HINT_SNP_BIOS))


def rmp(ctx: Context) -> Outcome:
    # arch/x86/virt/svm/sev.c snp_probe_rmptable_info(): RMP_CFG is read only when CPUID
    # Fn8000_001F EAX bit 23 (X86_FEATURE_SEGMENTED_RMP) is set; its bit 0 picks the layout.
    raw = ctx.raw
    base, end = raw.msr(RMP_BASE), raw.msr(RMP_END)
    e = [ev("/dev/cpu/0/msr MSR 0xc0010132 (RMP_BASE)", f"0x{base:x}"),
         ev("/dev/cpu/0/msr MSR 0xc0010133 (RMP_END)", f"0x{end:x}")]
    cfg = 0
    seg = me(ctx).bit(EaxBit.SEGMENTED_RMP)
    if seg:
        cfg = raw.msr(RMP_CFG)
        e.append(ev("/dev/cpu/0/msr MSR 0xc0010136 (RMP_CFG)", f"0x{cfg:x}"))
    e.append(ev(f"{F_SRC} EAX bit {int(EaxBit.SEGMENTED_RMP)} (SegmentedRmp)", int(seg)))
    if cfg & SEG_RMP_ENABLED:
        return segmented_rmp(ctx, base, end, cfg, e)
    # probe_contiguous_rmptable_info()
    if not base & RMP_ADDR_MASK or not end & RMP_ADDR_MASK:
        return Outcome("fail", f"RMP base/end MSRs are 0x{base:x} / 0x{end:x}: no RMP table reserved "
                               "(kernel: 'Memory for the RMP table has not been reserved by BIOS')", e, HINT_RMP_BIOS)
    if base > end:
        return Outcome("fail", f"RMP configuration not valid: base=0x{base:x} > end=0x{end:x}", e, HINT_RMP_BIOS)
    ctx.facts["rmp"] = {"layout": "contiguous", "base": base, "end": end}
    return Outcome("pass", f"RMP table 0x{base:x} - 0x{end:x} ({(end - base + 1) >> 20} MiB, contiguous)", e)


def segmented_rmp(ctx: Context, base: int, end: int, cfg: int, e: list[Evidence]) -> Outcome:
    # probe_segmented_rmptable_info(): RMP_BASE locates the bookkeeping area and the 4 KiB RMP segment
    # table (RST); RMP_END is expected to be 0; the segment shift (RMP_CFG bits 13:8) must lie within
    # CPUID Fn8000_0025 EAX[5:0] (min) and EAX[11:6] (max).
    raw = ctx.raw
    shift = cfg >> 8 & 0x3F
    e.append(ev("RMP_CFG bit 0 (segmented RMP enabled) / bits 13:8 (segment shift)", f"1 / {shift}"))
    if not base & RMP_ADDR_MASK:
        return Outcome("fail", f"segmented RMP enabled but RMP_BASE is 0x{base:x}: no RMP table reserved "
                               "(kernel: 'Memory for the RMP table has not been reserved by BIOS')", e, HINT_RMP_BIOS)
    if raw.cpuid(0x80000000)[0] >= LEAF_RMP_SEG:
        eax = raw.cpuid(LEAF_RMP_SEG)[0]
        lo, hi = eax & 0x3F, eax >> 6 & 0x3F
        e.append(ev(f"{raw.cpuid_source} leaf 0x80000025 EAX (segment shift min/max)", f"{lo}/{hi}"))
        if not lo <= shift <= hi:
            return Outcome("fail", f"RMP segment size ({shift}) is not within advertised bounds (min={lo}, max={hi})",
                           e, HINT_RMP_BIOS)
    ctx.facts["rmp"] = {"layout": "segmented", "base": base, "segment_shift": shift}
    msg = (f"segmented RMP: bookkeeping + segment table at 0x{base:x} - 0x{base + RMP_BOOKKEEPING + RST_SIZE:x}, "
           f"{(1 << shift) >> 30} GiB segments")
    if end & RMP_ADDR_MASK:
        return Outcome("warn", msg + f"; RMP_END is 0x{end:x}, not 0", e,
                       "the kernel warns 'Segmented RMP enabled but RMP_END MSR is non-zero': check the BIOS")
    return Outcome("pass", msg, e)


CHECKS.add(Meta("msr.rmp", "RMP table reserved (RMP_BASE/RMP_END, or RMP_CFG for a segmented RMP)", Feature.SEV_SNP,
                (Feature.SEV_SNP,), ("cpuid.sev_snp",),
                "sev-facts §2.1; snphost 'Read RMP tables'; arch/x86/virt/svm/sev.c snp_probe_rmptable_info()"), rmp)


def rmp_cover(ctx: Context) -> Outcome:
    raw = ctx.raw
    rmp_facts = ctx.facts["rmp"]
    iomem = raw.section("iomem")
    ram_end = iomem.get("system_ram_end")
    e = [ev("/proc/iomem highest System RAM address", ram_end)]
    if not ram_end:
        if raw.euid not in (0, None) or "error" in iomem:
            return Outcome("error", "/proc/iomem gives no RAM addresses (needs root)", e, "run the probe as root")
        return Outcome("error", "no System RAM ranges in /proc/iomem", e, "check /proc/iomem")
    max_pfn = (ram_end >> 12) + 1
    if rmp_facts["layout"] == "segmented":
        return segmented_cover(ctx, max_pfn << 12, e)
    # setup_contiguous_rmptable(): 16 bytes per 4 KiB page up to max(max_pfn, PFN_UP(rmp_end)), plus the
    # 16 KiB bookkeeping area, must fit in RMP_END - RMP_BASE + 1.
    base, end = rmp_facts["base"], rmp_facts["end"]
    size = end - base + 1
    need = (max(max_pfn, (end + 0xFFF) >> 12) << 4) + RMP_BOOKKEEPING
    e += [ev("RMP MSRs", f"0x{base:x} - 0x{end:x} (0x{size:x} bytes)"),
          ev("RMP bytes needed (max_pfn << 4) + 0x4000", f"0x{need:x}")]
    if need <= size:
        return Outcome("pass", f"RMP of 0x{size:x} bytes covers RAM up to 0x{ram_end:x} (needs 0x{need:x})", e)
    return Outcome("fail", "Memory reserved for the RMP table does not cover full system RAM "
                           f"(expected 0x{need:x} got 0x{size:x})", e,
                   "BIOS: set 'SNP Memory Coverage' to cover all system memory (not Custom/partial)")


def segmented_cover(ctx: Context, ram_pa_max: int, e: list[Evidence]) -> Outcome:
    # setup_segmented_rmptable(): the segments below RAM's end must reach it (ram_pa_end >= max_pfn <<
    # PAGE_SHIFT). The segment table lives in reserved memory the probe cannot read, so the kernel's
    # "RMP segment N ... covering [lo - hi]" lines are the evidence.
    log = ctx.raw.section("dmesg")
    d = parse_host_dmesg(str(log["text"])) if "text" in log else None
    e.append(ev("RAM end (max_pfn << 12)", f"0x{ram_pa_max:x}"))
    if d is None:
        return Outcome("skip", "segmented RMP: coverage not measured (the kernel log is not readable; the "
                               "segment table is in memory the probe cannot read)", e,
                       "make the kernel log readable (root, dmesg_restrict) so the 'RMP segment' lines show")
    bad = [x for x in d.errors if "Segmented RMP does not cover" in x]
    segs = d.rmp_segments
    e.append(ev("kernel log RMP segments (index: covered range)",
                {str(i): f"0x{lo:x} - 0x{hi:x}" for i, (lo, hi) in sorted(segs.items())}))
    if bad:
        return Outcome("fail", bad[0], e, "BIOS: set 'SNP Memory Coverage' to cover all system memory")
    if not segs:
        return Outcome("skip", "segmented RMP: coverage not measured (no 'RMP segment' lines in the kernel log: "
                               "log wrapped, or SNP host setup did not run)", e,
                       "capture the kernel log soon after boot (journalctl -k -b)")
    ram_pa_end = max((lo + (hi - lo + 1) for lo, hi in segs.values() if lo < ram_pa_max), default=0)
    if ram_pa_end >= ram_pa_max:
        return Outcome("pass", f"RMP segments cover RAM up to 0x{ram_pa_end:x} >= RAM end 0x{ram_pa_max:x}", e)
    return Outcome("fail", f"Segmented RMP does not cover full system RAM (expected 0x{ram_pa_max:x} got "
                           f"0x{ram_pa_end:x})", e, "BIOS: set 'SNP Memory Coverage' to cover all system memory")


CHECKS.add(Meta("msr.rmp_coverage", "RMP covers installed memory", Feature.SEV_SNP, (), ("msr.rmp",),
                "sev-facts §3.4; AMDSEV#226; arch/x86/virt/svm/sev.c setup_contiguous_rmptable(), "
                "setup_segmented_rmptable()"), rmp_cover)
