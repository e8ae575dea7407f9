"""Version-tolerant regular expressions for the kernel lines sevkit reads (sev-facts.md §3).

The patterns match the message text only, never a prefix, so any timestamp style works
(`[   5.7]`, `dmesg -T` wall clock, journalctl, no stamp at all). Older and newer kernel
formats live side by side in one pattern where they share a meaning.
"""

from __future__ import annotations

import re

HEX = r"(?:0x[0-9a-fA-F]+|\d+)"   # %#x prints 0 as "0"; some branches use 0x%x

# One cheap search per line before the real patterns: a full dmesg is tens of thousands of lines
# and only a few dozen can matter. Every pattern below contains one of these words.
HOST_WORDS = re.compile(r"SEV|sev|ASIDs|psp|PSP|AMD-Vi|RMP|Memory Encryption|ccp|smpboot: CPU0")
GUEST_WORDS = re.compile(r"SEV|sev|#VC|Wrong/unhandled|confidential|Memory Encryption")

# --- host: KVM (arch/x86/kvm/svm/sev.c, §3.2) -------------------------------------------
# 6.5+: "SEV enabled (ASIDs 100 - 1006)", "SEV-ES disabled (ASIDs 0 - 0)", "unusable".
KVM_RANGE = re.compile(
    r"\bSEV(?P<kind>-ES|-SNP)? (?P<state>enabled|disabled|unusable) "
    r"\(ASIDs (?P<lo>\d+) - (?P<hi>\d+)\)")
# 4.16-5.10 "SEV supported"; 5.11-6.4 "SEV supported: 509 ASIDs", "SEV-ES supported: 99 ASIDs";
# AMD out-of-tree SNP hosts: "SEV-ES and SEV-SNP supported: 99 ASIDs".
KVM_SUPPORTED = re.compile(
    r"(?:^|[\s:\]])SEV(?P<kind>-ES and SEV-SNP|-ES|-SNP)? supported(?:: (?P<n>\d+) ASIDs)?\s*$")
KVM_PARAM_CAT = re.compile(r"cat\s+\S*/sys/module/kvm_amd/parameters/(?P<name>sev(?:[-_]es|[-_]snp)?)\s*$")
KVM_PARAM_GREP = re.compile(
    r"/sys/module/kvm_amd/parameters/(?P<name>sev(?:[-_]es|[-_]snp)?):\s*(?P<val>[YN01])\s*$")
PARAM_VALUE = re.compile(r"^\s*(?P<val>[YN01])\s*$")

# --- host: ccp / PSP (drivers/crypto/ccp, §3.3) -------------------------------------------
CCP_DEVICE = re.compile(r"\bccp (?P<dev>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]): ")
CCP_SEV_ENABLED = re.compile(r"\bccp \S+: sev enabled\b")
CCP_API = re.compile(r"\bSEV(?P<snp>-SNP)? API:(?P<maj>\d+)\.(?P<min>\d+) build:(?P<build>\d+)")
# Every INIT failure format of §3.3:
#   SEV: failed to INIT error 0x1, rc -5     SEV: failed to INIT error 0x13
#   SEV-SNP: failed to INIT error 0x3        SEV-SNP: failed to INIT rc -5, error 0x14
#   SEV-SNP: SNP_INIT_EX failed rc -5, error 0x3      SEV: INIT_EX failed 0x3, rc -5
INIT_FAIL = re.compile(
    r"\b(?P<which>SEV-SNP|SEV): (?:"
    rf"failed to INIT(?: rc (?P<rc1>-?\d+),)? error (?P<e1>{HEX})(?:, rc (?P<rc2>-?\d+))?"
    rf"|(?P<cmd>SNP_INIT_EX|SNP_INIT|INIT_EX|INIT) failed(?: rc (?P<rc3>-?\d+), error (?P<e3>{HEX})"
    rf"|:? (?:error )?(?P<e4>{HEX})(?:, rc (?P<rc4>-?\d+))?))")
PSP_STATUS_FAIL = re.compile(rf"\bSEV: failed to get status\. Error: (?P<err>{HEX})")
PSP_CMD_TIMEOUT = re.compile(r"\bsev command (?P<cmd>0x[0-9a-fA-F]+) timed out, disabling PSP")
PSP_INIT_FAIL = re.compile(r"\bpsp initialization failed\b")
CCP_INIT_FAIL = re.compile(r"\bccp initialization failed\b")
SNP_FW_TOO_OLD = re.compile(r"\bSEV-SNP support requires firmware version >= (?P<maj>\d+)[:.](?P<min>\d+)")
BIOS_NO_MEM_ENCRYPT = re.compile(r"\bmemory encryption not enabled by BIOS\b")
FW_UPDATE_FAIL = re.compile(rf"\bFailed to update SEV firmware: (?P<err>{HEX})")

# "smpboot: CPU0: AMD EPYC 7313 16-Core Processor (family: 0x19, model: 0x1, stepping: 0x1)"
CPU0 = re.compile(r"\bsmpboot: CPU0: (?P<cpu>.+?) \(family: 0x(?P<fam>[0-9a-fA-F]+), "
                  r"model: 0x(?P<model>[0-9a-fA-F]+), stepping: 0x(?P<step>[0-9a-fA-F]+)\)")

# --- host: RMP (§3.4) and IOMMU (§3.5) ----------------------------------------------------
RMP_RANGE = re.compile(
    r"\bSEV-SNP: RMP table physical (?:range|address) \[?0x(?P<lo>[0-9a-fA-F]+) - 0x(?P<hi>[0-9a-fA-F]+)\]?")
RMP_FATAL = re.compile(
    r"\bSEV-SNP: (?:Memory for the RMP table has not been reserved by BIOS"
    r"|RMP configuration not valid\b.*"
    r"|Memory reserved for the RMP table does not cover full system RAM\b.*"
    r"|Failed to map RMP table\b.*)")
RMP_RUNTIME_FAIL = re.compile(r"\bSEV-SNP: RMPUPDATE failed\b.*")
IOMMU_SNP_ON = re.compile(r"\bAMD-Vi: IOMMU SNP support enabled\b")
IOMMU_SNP_OFF = re.compile(r"\bAMD-Vi: SNP: .*SNP cannot be supported\b\.?")

# --- both: the memory-encryption banner (§3.1; on a host it only ever lists SME) --------------
MEM_ENCRYPT_NEW = re.compile(r"(?<!AMD )Memory Encryption Features active: AMD(?P<tok>(?: [A-Za-z-]+)*)\s*$")
MEM_ENCRYPT_OLD = re.compile(r"\bAMD Memory Encryption Features active:(?P<tok>(?: [A-Za-z-]+)*)\s*$")
MEM_ENCRYPT_OLDEST = re.compile(
    r"\bAMD (?:Secure Encrypted Virtualization \((?P<sev>SEV)\)|Secure Memory Encryption \((?P<sme>SME)\)) active")

# --- guest (§3.1) --------------------------------------------------------------------------
GUEST_STATUS = re.compile(r"\bSEV: Status:(?P<tok>(?: [A-Za-z0-9_-]+)*)\s*$")
GUEST_DRIVER = re.compile(
    r"\bsev-guest sev-guest: Initialized SEV guest driver \(using (?:vmpck_id |VMPCK)(?P<id>\d+)")
GUEST_VMPL = re.compile(r"\bSEV: SNP running at VMPL(?P<vmpl>\d+)\.?")
GUEST_CPUID_TABLE = re.compile(r"\bSEV: Using SNP CPUID table, (?P<n>\d+) entries present")
GUEST_PLATFORM_DEV = re.compile(r"\bSEV: SNP guest platform devices? initialized")
GUEST_VC_FAIL = re.compile(r"\bSEV: .*#VC exception\b.*|\bWrong/unhandled opcode bytes:.*")
GUEST_VMPCK_DISABLED = re.compile(r"\bsev-guest sev-guest: Disabling VMPCK\d+ communication key\b.*")
GUEST_GHCB = re.compile(r"\bSEV: (?:Hypervisor GHCB protocol version support|Using GHCB protocol version)\b")
GUEST_SYSTEMD_CVM = re.compile(r"\bDetected confidential virtualization (?P<kind>sev-snp|sev-es|sev)\b")
