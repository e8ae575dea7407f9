"""Version-tolerant regular expressions for the kernel lines sevkit reads (sev-facts.md §3).

The patterns match the message text only, never a prefix, so any timestamp style works
(`[   5.7]`, `dmesg -T` wall clock, journalctl, no stamp at all). Older and newer kernel
formats live side by side in one pattern where they share a meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEX = r"(?:0x[0-9a-fA-F]+|\d+)"   # %#x prints 0 as "0"; some branches use 0x%x

# One cheap search per line before the real patterns: a full dmesg is tens of thousands of lines
# and only a few dozen can matter. Every pattern below contains one of these words.
HOST_WORDS = re.compile(r"SEV|sev|ASIDs|psp|PSP|AMD-Vi|RMP|Memory Encryption|ccp|smpboot: CPU0|SVM|KVM")
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
# Segmented RMP (Turin, Linux >= 6.14; arch/x86/virt/svm/sev.c probe_segmented_rmptable_info() and
# setup_segmented_rmptable()): "Segmented RMP base table physical range [0x.. - 0x..]",
# "Segmented RMP using %lluGB segments", "RMP segment %u physical address [..] covering [0x.. - 0x..]".
RMP_SEG_BASE = re.compile(
    r"\bSEV-SNP: Segmented RMP base table physical range \[0x(?P<lo>[0-9a-fA-F]+) - 0x(?P<hi>[0-9a-fA-F]+)\]")
RMP_SEG_SIZE = re.compile(r"\bSEV-SNP: Segmented RMP using (?P<gb>\d+)GB segments")
RMP_SEGMENT = re.compile(
    r"\bSEV-SNP: RMP segment (?P<idx>\d+) physical address \[0x(?P<plo>[0-9a-fA-F]+) - 0x(?P<phi>[0-9a-fA-F]+)\]"
    r" covering \[0x(?P<lo>[0-9a-fA-F]+) - 0x(?P<hi>[0-9a-fA-F]+)\]")
RMP_FATAL = re.compile(
    r"\bSEV-SNP: (?:Memory for the RMP table has not been reserved by BIOS"
    r"|RMP configuration not valid\b.*"
    r"|Memory reserved for the RMP table does not cover full system RAM\b.*"
    r"|Segmented RMP does not cover full system RAM\b.*"
    r"|RMP segment size \(\d+\) is not within advertised bounds\b.*"
    r"|Invalid RMP size 0x[0-9a-fA-F]+ for configured segment size\b.*"
    r"|Invalid RMP segment base address\b.*"
    r"|RMP segment descriptor already exists\b.*"
    r"|Failed to map RMP segment\b.*"
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


# --- the kernel's own SEV / PSP / kvm_amd messages, as a table (issue 9 item 14) ---------------
# Every printk the SEV, PSP and kvm_amd code emits about success or failure, kernels 5.10 to 6.18,
# with the source file and the format string as written there. Read from torvalds/linux (stored
# versions of each file and the patches that changed the messages). ``scope`` says what a
# failure takes down:
#   psp      the PSP cannot be reached or initialized: nothing firmware-backed is usable
#   sev      SEV firmware (INIT) is unusable: SEV and SEV-ES
#   sev-es   SEV-ES (and SEV-SNP, which builds on it)
#   sev-snp  SEV-SNP only (RMP, SNP_INIT, IOMMU)
#   kvm      kvm_amd itself will not run: no guest of any kind
#   runtime  an error at run time or shutdown: recorded, decides no feature
# ``outcome``: "ok" (success), "fail", "info" (neither). Patterns are anchored on the message
# text with bounded repetitions only, so a hostile line stays linear.
@dataclass(frozen=True)
class KernelMessage:
    id: str
    source: str
    fmt: str                 # the printk format as the source writes it (pr_fmt prefix included)
    outcome: str
    scope: str
    pattern: re.Pattern[str]


_N = r"-?\d{1,20}"
_X = r"(?:0x)?[0-9a-fA-F]{1,16}"
_CCP = r"\bccp [0-9a-fA-F:.]{1,20}: "   # dev_*() prefix of the ccp (SP/PSP) PCI device


def _m(id: str, source: str, fmt: str, outcome: str, scope: str, pattern: str | re.Pattern[str]) -> KernelMessage:
    return KernelMessage(id, source, fmt, outcome, scope,
                         pattern if isinstance(pattern, re.Pattern) else re.compile(pattern))


SP_PCI = "drivers/crypto/ccp/sp-pci.c"
PSP_DEV = "drivers/crypto/ccp/psp-dev.c"
SEV_DEV = "drivers/crypto/ccp/sev-dev.c"
CCP_DEV = "drivers/crypto/ccp/ccp-dev.c"
KVM_SEV = "arch/x86/kvm/svm/sev.c"
KVM_SVM = "arch/x86/kvm/svm/svm.c"
VIRT_SEV = "arch/x86/virt/svm/sev.c"
MEM_ENCRYPT = "arch/x86/mm/mem_encrypt.c"
COCO_SEV = "arch/x86/coco/sev (arch/x86/kernel/sev*.c before the move)"

HOST_MESSAGES: tuple[KernelMessage, ...] = (
    # sp-pci.c: the Secure Processor PCI function (CCP and PSP share it)
    _m("sp_init_failed", SP_PCI, "initialization failed\n", "fail", "psp", _CCP + r"initialization failed\s*$"),
    _m("sp_dma_mask", SP_PCI, "dma_set_mask_and_coherent failed (%d)\n", "fail", "psp",
       _CCP + rf"dma_set_mask_and_coherent failed \({_N}\)"),
    # psp-dev.c
    _m("psp_enabled", PSP_DEV, "psp enabled\n", "ok", "psp", r"\bpsp enabled\b"),
    _m("psp_init_failed", PSP_DEV, "psp initialization failed\n", "fail", "psp", PSP_INIT_FAIL),
    _m("psp_unreachable", PSP_DEV, "psp: unable to access the device: you might be running a broken BIOS.\n",
       "fail", "psp", r"\bpsp: unable to access the device: you might be running a broken BIOS\b"),
    _m("psp_irq", PSP_DEV, "psp: unable to allocate an IRQ\n", "fail", "psp", r"\bpsp: unable to allocate an IRQ\b"),
    # ccp-dev.c: the crypto queues, not the PSP (an EPYC prints the failure harmlessly on 5.4)
    _m("ccp_enabled", CCP_DEV, "ccp enabled\n", "ok", "runtime", r"\bccp enabled\b"),
    _m("ccp_init_failed", CCP_DEV, "ccp initialization failed\n", "info", "runtime", CCP_INIT_FAIL),
    # sev-dev.c (psp-dev.c before 5.7): probe, status, firmware update, INIT, SNP_INIT
    _m("sev_enabled", SEV_DEV, "sev enabled\n", "ok", "sev", r"\bsev enabled\b"),
    # sev_dev_init() failing fails psp_init(): no /dev/sev, no firmware at all
    _m("sev_dev_init_failed", SEV_DEV, "sev initialization failed\n", "fail", "psp",
       r"\bsev initialization failed\b"),
    _m("sev_missing_data", SEV_DEV, "sev: missing driver data\n", "fail", "psp", r"\bsev: missing driver data\b"),
    _m("bios_off", SEV_DEV, "SEV: memory encryption not enabled by BIOS\n", "fail", "sev", BIOS_NO_MEM_ENCRYPT),
    _m("status_failed", SEV_DEV, "SEV: failed to get status. Error: %#x\n", "fail", "psp", PSP_STATUS_FAIL),
    _m("cmd_timeout", SEV_DEV, "sev command %#x timed out, disabling PSP\n", "fail", "psp", PSP_CMD_TIMEOUT),
    _m("api", SEV_DEV, "SEV%s API:%d.%d build:%d\n", "ok", "sev", CCP_API),
    _m("fw_updated", SEV_DEV, "SEV firmware updated from %d.%d.%d to %d.%d.%d\n", "ok", "sev",
       r"\bSEV firmware updated from \d{1,3}\.\d{1,3}\.\d{1,5} to \d{1,3}\.\d{1,3}\.\d{1,5}"),
    _m("fw_update_ok", SEV_DEV, "SEV firmware update successful\n", "ok", "sev",
       r"\bSEV firmware update successful\b"),
    _m("fw_update_failed", SEV_DEV, "Failed to update SEV firmware: %#x\n", "info", "runtime", FW_UPDATE_FAIL),
    _m("init_failed", SEV_DEV, "SEV: failed to INIT error %#x, rc %d\n", "fail", "sev", INIT_FAIL),
    _m("init_ex_failed", SEV_DEV, "SEV: %s failed %#x, rc %d\n", "fail", "sev", INIT_FAIL),
    _m("snp_init_failed", SEV_DEV, "SEV-SNP: failed to INIT rc %d, error %#x\n", "fail", "sev-snp", INIT_FAIL),
    _m("snp_fw_too_old", SEV_DEV, "SEV-SNP support requires firmware version >= %d:%d\n", "fail", "sev-snp",
       SNP_FW_TOO_OLD),
    _m("retry_init", SEV_DEV, "SEV: retrying INIT command because of SECURE_DATA_INVALID error. Retrying once "
       "to reset PSP SEV state.", "info", "sev", r"\bSEV: retrying INIT command because of SECURE_DATA_INVALID"),
    _m("tmr_failed", SEV_DEV, "SEV: TMR allocation failed, SEV-ES support unavailable\n", "fail", "sev-es",
       r"\bSEV: TMR allocation failed, SEV-ES support unavailable\b"),
    _m("init_ex_nv_alloc", SEV_DEV, "SEV: INIT_EX NV memory allocation failed\n", "fail", "sev",
       r"\bSEV: INIT_EX NV memory allocation failed\b"),
    _m("init_ex_nv_state", SEV_DEV, "SEV: INIT_EX NV memory page state change failed.\n", "fail", "sev",
       r"\bSEV: INIT_EX NV memory page state change failed\b"),
    _m("init_ex_read", SEV_DEV, "SEV: could not open %s for read, error %d\n", "fail", "sev",
       rf"\bSEV: could not open \S{{1,255}} for read, error {_N}"),
    _m("init_ex_write_open", SEV_DEV, "SEV: could not open file for write, error %d\n", "fail", "runtime",
       rf"\bSEV: could not open file for write, error {_N}"),
    _m("init_ex_write", SEV_DEV, "SEV: failed to write %u bytes to non volatile memory area, ret %ld\n", "fail",
       "runtime", rf"\bSEV: failed to write \d{{1,10}} bytes to non volatile memory area, ret {_N}"),
    _m("init_ex_short_read", SEV_DEV, "SEV: could not read %u bytes to non volatile memory area, ret %ld\n",
       "info", "sev", rf"\bSEV: could not read \d{{1,10}} bytes to non volatile memory area, ret {_N}"),
    _m("init_ex_new_file", SEV_DEV, "SEV: %s does not exist and will be created later.\n", "info", "sev",
       r"\bSEV: \S{1,255} does not exist and will be created later\b"),
    _m("snp_range_alloc", SEV_DEV, "SEV: SNP_INIT_EX range list memory allocation failed\n", "fail", "sev-snp",
       r"\bSEV: SNP_INIT_EX range list memory allocation failed\b"),
    _m("snp_range_walk", SEV_DEV, "SEV: SNP_INIT_EX walk_iomem_res_desc failed rc = %d\n", "fail", "sev-snp",
       rf"\bSEV: SNP_INIT_EX walk_iomem_res_desc failed rc = {_N}"),
    _m("legacy_prep", SEV_DEV, "SEV: failed to prepare buffer for legacy command 0x%x. Error: %d\n", "fail",
       "runtime", rf"\bSEV: failed to prepare buffer for legacy command {_X}\. Error: {_N}"),
    _m("legacy_reclaim", SEV_DEV, "SEV: failed to reclaim buffer for legacy command %#x. Error: %d\n", "fail",
       "runtime", rf"\bSEV: failed to reclaim buffer for legacy command {_X}\. Error: {_N}"),
    _m("cmd_buffers", SEV_DEV, "SEV: too many firmware commands in progress, no command buffers available.\n",
       "fail", "runtime", r"\bSEV: too many firmware commands in progress\b"),
    _m("bounce_alloc", SEV_DEV, "Failed to allocate bounce buffer for SEV legacy command.\n", "fail", "runtime",
       r"\bFailed to allocate bounce buffer for SEV legacy command\b"),
    _m("bounce_fw_state", SEV_DEV, "Error moving pages to firmware-owned state for SEV legacy command.\n", "fail",
       "runtime", r"\bError moving pages to firmware-owned state for SEV legacy command\b"),
    _m("bounce_reclaim", SEV_DEV, "Failed to reclaim firmware-owned pages while issuing SEV legacy command.\n",
       "fail", "runtime", r"\bFailed to reclaim firmware-owned pages while issuing SEV legacy command\b"),
    _m("snp_df_flush", SEV_DEV, "SEV-SNP DF_FLUSH failed\n", "fail", "runtime", r"\bSEV-SNP DF_FLUSH failed\b"),
    _m("snp_shutdown", SEV_DEV, "SEV-SNP firmware shutdown failed\n", "fail", "runtime",
       r"\bSEV-SNP firmware shutdown failed\b"),
    _m("snp_iommu_shutdown", SEV_DEV, "SNP IOMMU shutdown failed\n", "fail", "runtime",
       r"\bSNP IOMMU shutdown failed\b"),
    # arch/x86/kvm/svm/sev.c: kvm_amd's verdict per feature
    _m("kvm_range", KVM_SEV, "SEV%s %s (ASIDs %u - %u)\n", "ok", "kvm", KVM_RANGE),
    _m("kvm_supported", KVM_SEV, "SEV supported: %u ASIDs\n", "ok", "kvm", KVM_SUPPORTED),
    # arch/x86/kvm/svm/svm.c: kvm_amd will not load at all
    _m("svm_bios_off", KVM_SVM, "SVM disabled (by BIOS) in MSR_VM_CR on CPU %d\n", "fail", "kvm",
       r"\bSVM disabled \(by BIOS\) in MSR_VM_CR\b"),
    _m("svm_unsupported", KVM_SVM, "SVM not supported by CPU %d\n", "fail", "kvm",
       r"\bSVM not supported(?: by CPU \d{1,5}|, )"),
    _m("kvm_in_sev_guest", KVM_SVM, "KVM is unsupported when running as an SEV guest\n", "fail", "kvm",
       r"\bKVM is unsupported when running as an SEV guest\b"),
    # arch/x86/virt/svm/sev.c (pr_fmt "SEV-SNP: "): the RMP
    _m("rmp_range", VIRT_SEV, "SEV-SNP: RMP table physical range [0x%016llx - 0x%016llx]\n", "ok", "sev-snp",
       RMP_RANGE),
    _m("rmp_not_reserved", VIRT_SEV, "SEV-SNP: Memory for the RMP table has not been reserved by BIOS\n", "fail",
       "sev-snp", RMP_FATAL),
    _m("rmp_invalid", VIRT_SEV, "SEV-SNP: RMP configuration not valid: base=%#llx, end=%#llx\n", "fail",
       "sev-snp", RMP_FATAL),
    _m("rmp_too_small", VIRT_SEV, "SEV-SNP: Memory reserved for the RMP table does not cover full system RAM "
       "(expected 0x%llx got 0x%llx)\n", "fail", "sev-snp", RMP_FATAL),
    _m("rmp_map", VIRT_SEV, "SEV-SNP: Failed to map RMP table 0x%llx-0x%llx\n", "fail", "sev-snp", RMP_FATAL),
    _m("rmp_segment_bounds", VIRT_SEV, "SEV-SNP: RMP segment size (%u) is not within advertised bounds "
       "(min=%u, max=%u)\n", "fail", "sev-snp",
       r"\bSEV-SNP: RMP segment size \(\d{1,5}\) is not within advertised bounds\b"),
    _m("rmpupdate_failed", VIRT_SEV, "SEV-SNP: RMPUPDATE failed for PFN %llx, pg_level: %d, ret: %d\n", "fail",
       "runtime", RMP_RUNTIME_FAIL),
    # arch/x86/mm/mem_encrypt.c: the boot banner (a host lists SME only)
    _m("mem_encrypt_banner", MEM_ENCRYPT, "Memory Encryption Features active: AMD SME\n", "ok", "sme",
       MEM_ENCRYPT_NEW),
    _m("mem_encrypt_banner_old", MEM_ENCRYPT, "AMD Memory Encryption Features active: SME\n", "ok", "sme",
       MEM_ENCRYPT_OLD),
)

GUEST_MESSAGES: tuple[KernelMessage, ...] = (
    _m("guest_status", COCO_SEV, "SEV: Status: SEV SEV-ES SEV-SNP\n", "ok", "guest", GUEST_STATUS),
    _m("guest_vmpl", COCO_SEV, "SEV: SNP running at VMPL%u.\n", "ok", "guest", GUEST_VMPL),
    _m("guest_cpuid", COCO_SEV, "SEV: Using SNP CPUID table, %d entries present.\n", "ok", "guest",
       GUEST_CPUID_TABLE),
    _m("guest_platform_dev", COCO_SEV, "SEV: SNP guest platform device initialized.\n", "ok", "guest",
       GUEST_PLATFORM_DEV),
    _m("guest_banner", MEM_ENCRYPT, "Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP\n", "ok", "guest",
       MEM_ENCRYPT_NEW),
)

HOST_FAILURES = tuple(m for m in HOST_MESSAGES if m.outcome == "fail")
