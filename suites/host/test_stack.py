"""Host software stack: kernel, memlock, QEMU, OVMF (sev-facts.md §8, §11).

One test per registered probe check (sevkit.host.registry); all read the same probe (once per run).
Each test's outcome is the verdict on its check (HostReport.judge): a missing feature that
--sev-expect demands FAILS with the hint; otherwise it SKIPS with the evidence.
"""
from __future__ import annotations

from fixtures.host import HostCheck


def test_host_kernel(host_check: HostCheck) -> None:
    """Kernel version [generic host].

    Ref: sev-facts §11.1.
    """
    host_check("host.kernel")


def test_host_memlock(host_check: HostCheck) -> None:
    """memlock limit [generic host].

    Ref: snphost 'memlock limit'; sev-facts §11.2.
    """
    host_check("host.memlock")


def test_qemu_present(host_check: HostCheck) -> None:
    """QEMU present [generic host].

    Ref: sev-facts §8.1.
    """
    host_check("qemu.present")


def test_qemu_sev_guest(host_check: HostCheck) -> None:
    """QEMU knows the sev-guest object [SEV].

    Ref: sev-facts §8.1, §8.2.
    """
    host_check("qemu.sev_guest")


def test_qemu_sev_snp_guest(host_check: HostCheck) -> None:
    """QEMU knows the sev-snp-guest object [SEV-SNP].

    Ref: sev-facts §8.1, §8.3.
    """
    host_check("qemu.sev_snp_guest")


def test_ovmf_present(host_check: HostCheck) -> None:
    """OVMF images present [generic host].

    Ref: sev-facts §8.5.
    """
    host_check("ovmf.present")


def test_ovmf_sev_es(host_check: HostCheck) -> None:
    """OVMF with the SEV-ES reset block (GUID table) [SEV-ES].

    Ref: sev-facts §8.5 GUID 00f771de-1a7e-4fcb-890e-68c77e2fb44e.
    """
    host_check("ovmf.sev_es")


def test_ovmf_snp(host_check: HostCheck) -> None:
    """OVMF with SEV-SNP metadata (usable with -bios) [SEV-SNP].

    Ref: sev-facts §8.5 GUID dc886566-984a-4798-a75e-5585a7bf67cc.
    """
    host_check("ovmf.snp")


def test_ovmf_kernel_hashes(host_check: HostCheck) -> None:
    """OVMF with a SEV hash table (measured direct boot, kernel-hashes=on) [SEV].

    Ref: sev-facts §8.5 GUID 7255371f-3a3b-4b04-927b-1da6efa8d454.
    """
    host_check("ovmf.kernel_hashes")
