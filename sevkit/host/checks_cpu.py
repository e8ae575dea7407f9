"""CPU checks: vendor, brand, generation, CPUID Fn8000_001F, SYSCFG and RMP MSRs.

References: sev-facts.md §1 (CPUID), §2 (MSRs), §9.1 (snphost ok tree).
"""

from __future__ import annotations

from . import cpu
from .grader import Grader, Meta, Outcome, ev

ALL = ("SME", "SEV", "SEV-ES", "SEV-SNP")
SEVS = ("SEV", "SEV-ES", "SEV-SNP")
LEAF_MEM = 0x8000001F
SYSCFG, RMP_BASE, RMP_END = 0xC0010010, 0xC0010132, 0xC0010133
F_SRC = "CPUID Fn8000_001F"

HINT_SMEE = ("BIOS: enable SMEE (AMD CBS > CPU Common Options > SMEE / 'Secure Memory Encryption'); "
             "SEV INIT error 0x13 means SMEE is off")
HINT_SNP_BIOS = ("BIOS: enable 'SEV-SNP Support' and 'SNP Memory Coverage' (RMP table reserved), IOMMU enabled; "
                 "kernel >= 6.11 built with CONFIG_KVM_AMD_SEV, IOMMU not in passthrough (no iommu=pt, "
                 "no amd_iommu=off)")


def run(g: Grader) -> None:
    raw = g.raw

    def vendor() -> Outcome:
        v = cpu.vendor(raw.cpuid(0))
        e = [ev(f"{raw.cpuid_source} leaf 0x00000000 (EBX,EDX,ECX)", v)]
        g.facts["vendor"] = v
        if v == "AuthenticAMD":
            return Outcome("pass", "AuthenticAMD", e)
        return Outcome("fail", f"CPUID Fn0000_0000 vendor is {v}, not AuthenticAMD", e,
                       "SEV, SEV-ES and SEV-SNP need an AMD EPYC processor")
    g.add(Meta("cpu.vendor", "AMD CPU", "SEV", ALL, ref="snphost ok 'AMD CPU'; APM CPUID Fn0000_0000"), vendor)

    def brand() -> Outcome:
        b = cpu.brand(raw.cpuid(0x80000002), raw.cpuid(0x80000003), raw.cpuid(0x80000004))
        g.facts["brand"] = b
        e = [ev(f"{raw.cpuid_source} leaves 0x80000002-0x80000004", b)]
        if "EPYC" in b:
            return Outcome("pass", b, e)
        return Outcome("fail", f"brand string {b!r} does not name an EPYC processor", e,
                       "SEV needs an EPYC part: client Ryzen CPUs advertise the CPUID bits but their PSP "
                       "firmware does not run SEV guests")
    g.add(Meta("cpu.epyc", "EPYC processor (microcode support)", "SEV", SEVS, ("cpu.vendor",),
               "snphost ok 'Microcode support'"), brand)

    def ident() -> Outcome:
        eax1 = raw.cpuid(1)[0]
        sig = cpu.signature(eax1)
        gen = cpu.generation(sig, g.facts.get("brand", ""))
        g.facts["signature"], g.facts["generation"] = sig, gen
        e = [ev(f"{raw.cpuid_source} leaf 0x00000001 EAX", f"0x{eax1:08x}"), ev("decoded", str(sig))]
        if gen:
            return Outcome("pass", f"{gen} ({sig})", e)
        return Outcome("warn", f"unrecognised AMD generation ({sig})", e,
                       "known EPYC generations: Naples, Rome, Milan, Genoa, Bergamo/Siena, Turin")
    g.add(Meta("cpu.generation", "CPU family/model/stepping and generation", "SEV", (), ("cpu.vendor",),
               "APM CPUID Fn0000_0001 EAX"), ident)

    def leaf() -> Outcome:
        maxext = raw.cpuid(0x80000000)[0]
        e = [ev(f"{raw.cpuid_source} leaf 0x80000000 EAX", f"0x{maxext:08x}")]
        if maxext < LEAF_MEM:
            return Outcome("fail", f"CPUID Fn8000_0000 EAX max extended leaf 0x{maxext:08x} < 0x8000001f", e,
                           "this CPU has no memory-encryption leaf: it cannot run SEV")
        regs = raw.cpuid(LEAF_MEM)
        g.facts["mem_encrypt"] = cpu.MemEncryptInfo(*regs)
        return Outcome("pass", cpu.regs_text(LEAF_MEM, regs),
                       [*e, ev(f"{raw.cpuid_source} leaf 0x8000001f", cpu.regs_text(LEAF_MEM, regs))])
    g.add(Meta("cpuid.leaf_8000001f", "CPUID memory-encryption leaf present", "SEV", ALL, ("cpu.vendor",),
               "APM CPUID Fn8000_001F"), leaf)

    def me() -> cpu.MemEncryptInfo:
        info: cpu.MemEncryptInfo = g.facts["mem_encrypt"]
        return info

    def bit_check(name: str, bit: int, hint: str) -> Outcome:
        m = me()
        e = [ev(f"{F_SRC} EAX", f"0x{m.eax:08x}"), ev(f"{F_SRC} EAX bit {bit}", int(m.bit(bit)))]
        if m.bit(bit):
            return Outcome("pass", f"{F_SRC} EAX bit {bit} ({name}) is 1", e)
        return Outcome("fail", f"{F_SRC} EAX bit {bit} ({name}) is 0", e, hint)

    g.add(Meta("cpuid.sme", "Secure Memory Encryption (SME) supported", "SME", ("SME",),
               ("cpuid.leaf_8000001f",), "sev-facts §1.1 bit 0; snphost 'Secure Memory Encryption (SME)'"),
          lambda: bit_check("SME", 0, "this CPU does not implement SME"))
    g.add(Meta("cpuid.sev", "Secure Encrypted Virtualization (SEV) supported", "SEV", SEVS,
               ("cpuid.leaf_8000001f",), "sev-facts §1.1 bit 1; snphost 'Secure Encrypted Virtualization (SEV)'"),
          lambda: bit_check("SEV", 1, "this CPU does not implement SEV (needs AMD EPYC, Naples or later)"))

    def page_flush() -> Outcome:
        m = me()
        state = "ENABLED" if m.bit(2) else "DISABLED"
        return Outcome("pass", f"{F_SRC} EAX bit 2 (PageFlushMsr) is {int(m.bit(2))} ({state}; informational)",
                       [ev(f"{F_SRC} EAX bit 2", int(m.bit(2)))])
    g.add(Meta("cpuid.page_flush", "Page flush MSR", "SEV", (), ("cpuid.sev",),
               "sev-facts §1.1 bit 2; snphost 'Page flush MSR'"), page_flush)

    g.add(Meta("cpuid.sev_es", "Encrypted State (SEV-ES) supported", "SEV-ES", ("SEV-ES", "SEV-SNP"),
               ("cpuid.sev",), "sev-facts §1.1 bit 3; snphost 'Encrypted State (SEV-ES)'"),
          lambda: bit_check("SEV-ES", 3, "this CPU does not implement SEV-ES (Rome or later)"))
    g.add(Meta("cpuid.sev_snp", "Secure Nested Paging (SEV-SNP) supported", "SEV-SNP", ("SEV-SNP",),
               ("cpuid.sev_es",), "sev-facts §1.1 bit 4; snphost 'Secure Nested Paging (SEV-SNP)'"),
          lambda: bit_check("SEV-SNP", 4, "this CPU does not implement SEV-SNP (Milan or later)"))
    g.add(Meta("cpuid.vmpl", "VM Permission Levels supported", "SEV-SNP", ("SEV-SNP",), ("cpuid.sev_snp",),
               "sev-facts §1.1 bit 5; snphost 'VM Permission Levels'"),
          lambda: bit_check("VMPL", 5, "this CPU does not implement VMPLs"))

    def num_vmpl() -> Outcome:
        n = me().num_vmpl
        e = [ev(f"{F_SRC} EBX[15:12]", n)]
        if n == 4:
            return Outcome("pass", f"{n} VMPLs", e)
        return Outcome("warn", f"{n} VMPLs (expected 4)", e, "SNP parts report 4 VMPLs; check the BIOS/microcode")
    g.add(Meta("cpuid.num_vmpl", "Number of VMPLs", "SEV-SNP", (), ("cpuid.vmpl",),
               "sev-facts §1.2 EBX[15:12]; snphost 'Number of VMPLs'"), num_vmpl)

    def eax_features() -> Outcome:
        m = me()
        names = m.eax_features()
        return Outcome("pass", "EAX features: " + (", ".join(names) or "none"),
                       [ev(f"{F_SRC} EAX", f"0x{m.eax:08x}"), ev("decoded (sev-facts §1.1)", names),
                        ev(f"{F_SRC} EBX bit 31 COHERENCY_SFW_NO", int(m.ebx >> 31 & 1))])
    g.add(Meta("cpuid.features", "Every documented Fn8000_001F EAX bit", "SEV", (), ("cpuid.sev",),
               "sev-facts §1.1 table"), eax_features)

    def cbit() -> Outcome:
        c = me().cbitpos
        e = [ev(f"{F_SRC} EBX[5:0]", c)]
        if 32 <= c <= 63:
            return Outcome("pass", f"C-bit position {c}", e)
        return Outcome("fail", f"C-bit position {c} is not a valid physical-address bit", e,
                       "CPUID reports no usable C-bit: update BIOS/microcode")
    g.add(Meta("cpuid.cbit", "C-bit location", "SEV", SEVS, ("cpuid.sev",),
               "sev-facts §1.2 EBX[5:0]; snphost 'C-bit location'"), cbit)

    g.add(Meta("cpuid.phys_addr_reduction", "Physical address bit reduction", "SEV", (), ("cpuid.sev",),
               "sev-facts §1.2 EBX[11:6]; snphost 'Physical address bit reduction'"),
          lambda: Outcome("pass", f"{me().phys_addr_reduction} bits",
                          [ev(f"{F_SRC} EBX[11:6]", me().phys_addr_reduction)]))

    def max_guests() -> Outcome:
        n = me().max_guests
        e = [ev(f"{F_SRC} ECX", n)]
        if n > 0:
            return Outcome("pass", f"{n} encrypted guests supported simultaneously", e)
        return Outcome("fail", f"{F_SRC} ECX (number of encrypted guests) is 0", e,
                       "BIOS: enable SEV and set 'SEV ASID Count' / 'SEV-ES ASID Space Limit'; enable SMEE")
    g.add(Meta("cpuid.max_guests", "Number of encrypted guests supported simultaneously", "SEV", SEVS,
               ("cpuid.sev",), "sev-facts §1.2 ECX; snphost"), max_guests)

    def min_asid() -> Outcome:
        m = me()
        e = [ev(f"{F_SRC} EDX (min SEV-only ASID)", m.min_sev_asid), ev(f"{F_SRC} ECX (max ASID)", m.max_guests)]
        es = max(0, m.min_sev_asid - 1)
        sev_only = max(0, m.max_guests - m.min_sev_asid + 1) if m.min_sev_asid else m.max_guests
        g.facts["asid_budget"] = {"SEV": sev_only, "SEV-ES": es}
        msg = f"min SEV ASID {m.min_sev_asid}: {es} SEV-ES/SNP ASIDs (1-{es}), {sev_only} SEV-only ASIDs"
        if es == 0:
            return Outcome("fail", f"{F_SRC} EDX (min SEV ASID) is {m.min_sev_asid}: no ASIDs left for SEV-ES/SEV-SNP",
                           e, "BIOS: raise 'SEV-ES ASID Space Limit' (minimum SEV non-ES ASID) above 1 so "
                              "ASIDs 1..limit-1 go to SEV-ES/SEV-SNP guests")
        if sev_only == 0:
            return Outcome("warn", msg + " (no plain-SEV ASIDs)", e,
                           "BIOS: lower 'SEV-ES ASID Space Limit' to leave ASIDs for plain SEV guests")
        return Outcome("pass", msg, e)
    g.add(Meta("cpuid.min_sev_asid", "Minimum ASID value for SEV-enabled, SEV-ES disabled guest", "SEV-ES",
               ("SEV-ES", "SEV-SNP"), ("cpuid.sev_es",), "sev-facts §1.2 EDX; AMDSEV#84"), min_asid)

    # -- MSRs -------------------------------------------------------------------------------
    def syscfg_bit(bit: int, name: str, hint: str) -> Outcome:
        val = raw.msr(SYSCFG)
        g.facts["syscfg"] = val
        e = [ev("/dev/cpu/0/msr MSR 0xc0010010 (SYSCFG)", f"0x{val:x}"),
             ev(f"SYSCFG bit {bit} ({name})", val >> bit & 1)]
        if val >> bit & 1:
            return Outcome("pass", f"SYSCFG bit {bit} ({name}) is 1", e)
        return Outcome("fail", f"SYSCFG MSR 0xC0010010 bit {bit} ({name}) is 0", e, hint)

    g.add(Meta("msr.syscfg.smee", "SME/SEV enabled in SYSCFG (MemEncryptionModEn)", "SEV", ALL, ("cpuid.sme",),
               "sev-facts §2.2 bit 23; snphost 'SME'"),
          lambda: syscfg_bit(23, "MemEncryptionModEn", HINT_SMEE))
    g.add(Meta("msr.syscfg.snpen", "SNP enabled in SYSCFG (SNPEn)", "SEV-SNP", ("SEV-SNP",), ("cpuid.sev_snp",),
               "sev-facts §2.2 bit 24; snphost 'SEV-SNP'"),
          lambda: syscfg_bit(24, "SNPEn", HINT_SNP_BIOS))

    def rmp() -> Outcome:
        base, end = raw.msr(RMP_BASE), raw.msr(RMP_END)
        e = [ev("/dev/cpu/0/msr MSR 0xc0010132 (RMP_BASE)", f"0x{base:x}"),
             ev("/dev/cpu/0/msr MSR 0xc0010133 (RMP_END)", f"0x{end:x}")]
        if base and end > base:
            g.facts["rmp"] = (base, end)
            return Outcome("pass", f"RMP table 0x{base:x} - 0x{end:x} ({(end - base + 1) >> 20} MiB)", e)
        return Outcome("fail", f"RMP base/end MSRs are 0x{base:x} / 0x{end:x}: no RMP table reserved", e,
                       "BIOS: enable 'SEV-SNP Support' and set 'SNP Memory Coverage' so the RMP table is reserved")
    g.add(Meta("msr.rmp", "RMP table reserved (RMP_BASE/RMP_END)", "SEV-SNP", ("SEV-SNP",), ("cpuid.sev_snp",),
               "sev-facts §2.1; snphost 'Read RMP tables'"), rmp)

    def rmp_cover() -> Outcome:
        base, end = g.facts["rmp"]
        iomem = raw.section("iomem")
        ram_end = iomem.get("system_ram_end")
        e = [ev("RMP MSRs", f"0x{base:x} - 0x{end:x}"), ev("/proc/iomem highest System RAM address", ram_end)]
        if not ram_end:
            if raw.euid not in (0, None) or "error" in iomem:
                return Outcome("error", "/proc/iomem gives no RAM addresses (needs root)", e, "run the probe as root")
            return Outcome("error", "no System RAM ranges in /proc/iomem", e, "check /proc/iomem")
        # 16-byte RMP entry per 4 KiB page after a 16 KiB header (sev-facts §3.4 coverage message).
        covered = ((end - base + 1 - 0x4000) // 16) * 4096
        e.append(ev("RAM addressable by this RMP (bytes)", covered))
        if covered > ram_end:
            return Outcome("pass", f"RMP covers 0x{covered:x} bytes >= RAM end 0x{ram_end:x}", e)
        return Outcome("fail", f"RMP covers 0x{covered:x} bytes, RAM ends at 0x{ram_end:x}", e,
                       "BIOS: set 'SNP Memory Coverage' to cover all system memory (not Custom/partial)")
    g.add(Meta("msr.rmp_coverage", "RMP covers installed memory", "SEV-SNP", (), ("msr.rmp",),
               "sev-facts §3.4; AMDSEV#226"), rmp_cover)
