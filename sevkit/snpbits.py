"""Bit tables of the newer SEV-SNP interfaces, each with its upstream source. Pure data + decoders.

* SNP guest policy (64 bits): AMD SEV-SNP Firmware ABI spec (56860) "Guest Policy", as transcribed by
  virtee/sev ``GuestPolicy`` and google/go-sev-guest ``abi.SnpPolicy``; the kernel's names are
  ``SNP_POLICY_MASK_*`` in include/linux/psp-sev.h (moved there with the KVM_X86_SNP_POLICY_BITS series).
* VMSA SEV_FEATURES: arch/x86/include/asm/svm.h ``SVM_SEV_FEAT_*`` (QEMU target/i386/sev.h uses the same
  values: SNP_ACTIVE 0, DEBUG_SWAP 5, SECURE_TSC 9, SECURE_AVIC 16).
* SEV_STATUS MSR (guest): arch/x86/include/asm/msr-index.h ``MSR_AMD64_*_BIT`` and the names the guest
  kernel prints in its ``SEV: Status:`` line (arch/x86/coco/sev/core.c ``sev_status_feat_names``).
  For SNP features SEV_STATUS bit n+2 reflects SEV_FEATURES bit n (DebugSwap 5 -> 7, SecureTSC 9 -> 11,
  SecureAVIC 16 -> 18, IBPBOnEntry 21 -> 23), which both tables above show.
* struct sev_user_data_snp_status flags word: include/uapi/linux/psp-sev.h.
* SNP_FEATURE_INFO ECX/EBX: include/linux/psp-sev.h (kernel-internal: not exported to user space).
"""

from __future__ import annotations

from .vocab import GuestKind

# bit -> name. Bits 0-15 are ABI_MINOR/ABI_MAJOR; 17 is reserved and must be one.
SNP_POLICY_BITS: dict[int, str] = {
    16: "SMT", 17: "RESERVED_MBO", 18: "MIGRATE_MA", 19: "DEBUG", 20: "SINGLE_SOCKET",
    21: "CXL_ALLOW", 22: "MEM_AES_256_XTS", 23: "RAPL_DIS", 24: "CIPHERTEXT_HIDING", 25: "PAGE_SWAP_DISABLE",
}
SNP_POLICY_RESERVED_ONE = 1 << 17
SNP_POLICY_ABI_MASK = 0xFFFF
# The bits a launch may toggle one at a time (bit 17 is mandatory, the ABI fields are versions).
SNP_POLICY_FLAG_BITS: tuple[int, ...] = tuple(b for b in SNP_POLICY_BITS if b != 17)

VMSA_FEATURES: dict[int, str] = {
    0: "SNPActive", 1: "vTOM", 2: "ReflectVC", 3: "RestrictedInjection", 4: "AlternateInjection",
    5: "DebugSwap", 6: "PreventHostIBS", 7: "BTBIsolation", 8: "VmplSSS", 9: "SecureTSC",
    10: "VmgexitParameter", 12: "IbsVirtualization", 14: "VmsaRegProt", 15: "SmtProtection",
    16: "SecureAVIC", 21: "IBPBOnEntry",
}
VMSA_SECURE_TSC = 9
VMSA_DEBUG_SWAP = 5

# SEV_STATUS (MSR 0xC0010131) bit -> the token the guest kernel prints in "SEV: Status:".
SEV_STATUS_NAMES: dict[int, str] = {
    0: "SEV", 1: "SEV-ES", 2: "SEV-SNP", 3: "vTom", 4: "ReflectVC", 5: "RI", 6: "AI", 7: "DebugSwap",
    8: "NoHostIBS", 9: "BTBIsol", 10: "VmplSSS", 11: "SecureTSC", 12: "VMGExitParam", 14: "IBSVirt",
    16: "VMSARegProt", 17: "SMTProt", 18: "SecureAVIC", 23: "IBPBOnEntry",
}

# struct sev_user_data_snp_status, the u32 after build_id (byte offset 8).
SNP_STATUS_FLAGS: dict[int, str] = {
    0: "mask_chip_id", 1: "mask_chip_key", 2: "vlek_en", 3: "feature_info", 4: "rapl_dis",
    5: "ciphertext_hiding_cap", 6: "ciphertext_hiding_en",
}

# SNP_FEATURE_INFO (include/linux/psp-sev.h): ECX and EBX bits the kernel tests.
FEATURE_INFO_ECX: dict[int, str] = {
    1: "X86_SHUTDOWN", 2: "RAPL_DISABLE", 3: "CIPHER_TEXT_HIDING", 4: "AES_256_XTS_POLICY",
    5: "CXL_ALLOW_POLICY", 13: "VERIFY_MITIGATION",
}
FEATURE_INFO_EBX: dict[int, str] = {1: "SEV_TIO"}

# KVM VM types, arch/x86/include/uapi/asm/kvm.h (KVM_CAP_VM_TYPES returns 1 << type for each).
KVM_VM_TYPES: dict[int, str] = {0: "default", 1: "sw-protected", 2: "sev", 3: "sev-es", 4: "sev-snp", 5: "tdx"}
VM_TYPE_OF_KIND: dict[str, int] = {GuestKind.SEV: 2, GuestKind.SEV_ES: 3, GuestKind.SEV_SNP: 4}


def names(value: int, table: dict[int, str]) -> list[str]:
    """Names of the set bits; unknown set bits appear as ``bit<N>`` so nothing is dropped."""
    return [table.get(b, f"bit{b}") for b in range(64) if value >> b & 1]


def policy_names(policy: int) -> list[str]:
    return names(policy & ~SNP_POLICY_ABI_MASK, SNP_POLICY_BITS)


def sev_status_for_vmsa(features: int) -> int:
    """The SEV_STATUS bits an SNP guest launched with VMSA ``features`` should see (SEV, ES, SNP + n+2)."""
    status = 0b111
    for bit in range(1, 62):
        if features >> bit & 1:
            status |= 1 << (bit + 2)
    return status
