"""sevkit.memencrypt (CPUID Fn8000_001F) and the vocabulary around it, on the REAL Milan 7313
capture (AMDESE/AMDSEV#197; PROVENANCE.md states what each register means) and on the feature chain."""

from __future__ import annotations

from helpers.hostraw import cpuid_from_capture, realdata

from sevkit.memencrypt import FEATURE_BITS, LEAF, SEV_MODE_MASK, EaxBit, MemEncryptInfo, feature_mask
from sevkit.vocab import FEATURE_CHAIN, Feature, GuestKind, Profile, chain, dependents, prerequisites

MILAN_7313 = "cpuid/amdsev-197_milan-7313_hpe-dl385-gen10plus-v2_cpuid-1-r-l-0x8000001f.txt"


def test_real_milan_leaf_decodes_as_provenance_states() -> None:
    m = MemEncryptInfo(*cpuid_from_capture(realdata(MILAN_7313), LEAF))
    assert m.eax_features()[:6] == ["SME", "SEV", "PageFlushMsr", "SEV-ES", "SEV-SNP", "VMPL"]
    assert all(m.has(f) for f in Feature) and m.bit(EaxBit.VMPL)
    assert (m.cbitpos, m.phys_addr_reduction, m.num_vmpl) == (51, 4, 4)
    assert (m.max_guests, m.min_sev_asid, m.es_asids, m.sev_only_asids) == (253, 15, 14, 239)
    assert m.sev_mode_bits == SEV_MODE_MASK == feature_mask(FEATURE_CHAIN)
    assert m.regs_text() == "CPUID 0x8000001f: eax=0x0101fd3f ebx=0x00004133 ecx=0x000000fd edx=0x0000000f"


def test_feature_bits_and_asid_edges() -> None:
    """SYNTHETIC registers: one bit per feature, and an EDX of 0 (no SEV-ES split)."""
    for f, bit in FEATURE_BITS.items():
        only = MemEncryptInfo(1 << bit, 0, 0, 0)
        assert [g for g in Feature if only.has(g)] == [f]
    none = MemEncryptInfo(0, 0, 509, 0)
    assert (none.es_asids, none.sev_only_asids) == (0, 509)


def test_the_chain_is_written_once() -> None:
    assert FEATURE_CHAIN == (Feature.SEV, Feature.SEV_ES, Feature.SEV_SNP)
    assert chain(Feature.SEV_SNP) == FEATURE_CHAIN and chain(Feature.SME) == (Feature.SME,)
    assert prerequisites(Feature.SEV_ES) == (Feature.SEV,) and dependents(Feature.SEV_ES) == FEATURE_CHAIN[1:]
    assert Profile("sev-es").features == (Feature.SEV, Feature.SEV_ES) and Profile.NONE.features == ()
    assert [k.feature for k in GuestKind] == [None, *FEATURE_CHAIN]
    assert [f.flag for f in Feature] == ["sme", "sev", "sev_es", "sev_snp"]
