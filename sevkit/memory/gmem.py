"""Does this QEMU keep the guest's private memory in guest_memfd? Asked of the process itself.

A guest_memfd is a file KVM creates for a VM's private memory (KVM_CREATE_GUEST_MEMFD); QEMU keeps
its descriptor open and never maps it, so no host view of QEMU's memory (procmem, dump-guest-memory,
pmemsave) contains the private pages. The kernel names the file "[kvm-gmem]": virt/kvm/guest_memfd.c
__kvm_gmem_create() calls anon_inode_create_getfile("[kvm-gmem]", &kvm_gmem_fops, ...), which shows in
/proc/<pid>/fd as the link "anon_inode:[kvm-gmem]"; later kernels that allocate the inode on their own
pseudo mount (kvm_gmem_inode_create_getfile()) keep the name "[kvm-gmem]", so the name is matched,
not the prefix. Deciding from the process works for every kernel that has guest_memfd (6.8+, distro
backports), where a kernel-version rule would guess.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DumpError

GMEM_NAME = "[kvm-gmem]"


def guest_memfds(pid: int, proc: Path = Path("/proc")) -> list[str]:
    """The process's guest_memfd descriptors as "fd -> link" (empty when it has none)."""
    fd_dir = proc / str(pid) / "fd"
    try:
        names = sorted(os.listdir(fd_dir), key=lambda n: int(n) if n.isdigit() else -1)
    except OSError as exc:
        raise DumpError(f"cannot list {fd_dir}: {exc.strerror} (root or ptrace rights over QEMU needed)",
                        evidence={"pid": pid}) from None
    out = []
    for name in names:
        try:
            link = os.readlink(fd_dir / name)
        except OSError:
            continue    # closed since the listing
        if GMEM_NAME in link:
            out.append(f"{name} -> {link}")
    return out


def private_memory_view(kind: str, pid: int, proc: Path = Path("/proc")) -> tuple[bool, str]:
    """Can the host's views of QEMU's memory contain the guest's private pages at all?

    SEV/SEV-ES: yes, as ciphertext in QEMU's own mapping. SEV-SNP with guest_memfd descriptors in the
    QEMU process: no, only the shared view is readable. SEV-SNP without one: the private pages are in
    QEMU's mapping (pre-guest_memfd SNP hosts).
    """
    gmem = guest_memfds(pid, proc)
    if gmem:
        return False, (f"QEMU (pid {pid}) holds guest_memfd descriptors ({', '.join(gmem[:4])}): private pages "
                       "live there, unmapped by QEMU; only the shared view was read")
    if kind == "sev-snp":
        return True, f"QEMU (pid {pid}) has no guest_memfd descriptor: private pages are in its own mapping"
    return True, ""
