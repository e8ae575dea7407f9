"""Auto-detection of what a pasted capture is.

Each line votes for at most one kind; the kind with most votes wins (ties: host dmesg,
guest dmesg, cpuid, cpuinfo, kvm_amd parameters, sevctl/snphost ok). A memory-encryption
banner that lists only SME is a host line (a guest lists SEV tokens).
"""

from __future__ import annotations

import re

from ..vocab import FEATURE_CHAIN
from . import patterns as P
from .cpuid import DECODED_BOOL, DECODED_NUM, RAW, REG
from .cpuinfo import FLAGS
from .kvmparams import looks_like_params
from .okreport import OK_LINE, TCB_HEADER

HOST_DMESG, GUEST_DMESG, CPUINFO, CPUID = "host-dmesg", "guest-dmesg", "cpuinfo", "cpuid"
KVM_PARAMS, SNPHOST_OK, TCB = "kvm-amd-params", "snphost-ok", "tcb"
UNKNOWN = "unknown"
MAX_VOTES = 2000
KINDS = (HOST_DMESG, GUEST_DMESG, CPUID, CPUINFO, KVM_PARAMS, SNPHOST_OK, TCB)

_HOST = (P.KVM_RANGE, P.KVM_SUPPORTED, P.CCP_API, P.INIT_FAIL, P.PSP_STATUS_FAIL, P.PSP_CMD_TIMEOUT,
         P.PSP_INIT_FAIL, P.SNP_FW_TOO_OLD, P.BIOS_NO_MEM_ENCRYPT, P.RMP_RANGE, P.RMP_FATAL,
         P.RMP_RUNTIME_FAIL, P.IOMMU_SNP_ON, P.IOMMU_SNP_OFF, P.CCP_SEV_ENABLED,
         re.compile(r"\bccp \S+: (?:psp enabled|SEV firmware update successful)"),
         # the kernel's message table, less lines that say nothing about SEV (the CCP crypto queues) and
         # the one kvm_amd prints inside an SEV guest
         *(m.pattern for m in P.HOST_MESSAGES
           if m.scope != "sme" and m.id not in ("ccp_enabled", "ccp_init_failed", "kvm_in_sev_guest")))
_GUEST = (P.GUEST_STATUS, P.GUEST_DRIVER, P.GUEST_VMPL, P.GUEST_CPUID_TABLE, P.GUEST_PLATFORM_DEV,
          P.GUEST_VMPCK_DISABLED, P.GUEST_GHCB, P.GUEST_SYSTEMD_CVM,
          re.compile(r"\bSEV: .*#VC exception\b"))
_CPUID = (RAW, REG, *DECODED_BOOL.values(), *DECODED_NUM.values())


def _banner_vote(line: str) -> str | None:
    m = P.MEM_ENCRYPT_NEW.search(line) or P.MEM_ENCRYPT_OLD.search(line)
    if m:
        toks = set(m["tok"].split())
        return GUEST_DMESG if toks & set(FEATURE_CHAIN) else HOST_DMESG if toks else None
    m = P.MEM_ENCRYPT_OLDEST.search(line)
    if m:
        return GUEST_DMESG if m["sev"] else HOST_DMESG
    return None


# every line any kind recognizes contains one of these (cheap pre-filter for long logs)
_WORDS = re.compile(r"SEV|sev|ASID|psp|PSP|AMD-Vi|RMP|Memory Encryption|ccp|#VC|confidential|SME|SVM|KVM"
                    r"|lags|(?i:e[a-d]x)|=|PASS|FAIL|SKIP|TCB")


def _vote(line: str) -> str | None:
    if not _WORDS.search(line):
        return None
    if any(rx.search(line) for rx in _CPUID):
        return CPUID
    if FLAGS.match(line):
        return CPUINFO
    if banner := _banner_vote(line):
        return banner
    if any(rx.search(line) for rx in _GUEST):
        return GUEST_DMESG
    if any(rx.search(line) for rx in _HOST):
        return HOST_DMESG
    if OK_LINE.match(line):
        return SNPHOST_OK
    if TCB_HEADER.search(line):
        return TCB
    return None


def detect_kind(text: str) -> str:
    """The kind of capture (one of KINDS), or UNKNOWN when nothing in it is recognized."""
    votes = dict.fromkeys(KINDS, 0)
    cast = 0
    for line in text.splitlines():
        if kind := _vote(line):
            votes[kind] += 1
            cast += 1
            if cast >= MAX_VOTES:    # the kind is clear long before; a 60 MB log need not be read twice
                break
    # the tool's own report wins over the few SEV words its lines contain
    if votes[SNPHOST_OK] >= 3:
        return SNPHOST_OK
    best = max(KINDS, key=lambda k: votes[k])   # max() keeps the first on ties: KINDS is the order
    if votes[best] > 0:
        return best
    if looks_like_params(text):
        return KVM_PARAMS
    return UNKNOWN
