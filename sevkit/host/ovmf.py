"""What an OVMF image can do, judged by its content rather than its file name.

The collector ships each image's sha256, its first 64 bytes and its last 64 KiB. The tail holds
the reset-vector GUID table (footer 96b582de-...) and the SEV metadata it points to; sev-snp-measure
parses both (``sevsnpmeasure.ovmf.OVMF``). Offsets in that table are relative to the end of the
file, so the tail parses exactly like the whole image. References: sev-facts.md §8.5.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

FOOTER = "96b582de-1fb2-45f7-baea-a366c55a082d"
SEV_ES_RESET_BLOCK = "00f771de-1a7e-4fcb-890e-68c77e2fb44e"
SEV_HASH_TABLE = "7255371f-3a3b-4b04-927b-1da6efa8d454"
SEV_SECRET_BLOCK = "4c2eb361-7d9b-4cc3-8081-127c90d3d294"
SEV_METADATA = "dc886566-984a-4798-a75e-5585a7bf67cc"
TDX_METADATA = "e47a6535-984a-4798-865e-4685a7bf8ec2"
SVSM_INFO = "a789a612-0597-4c4b-a49f-cbb1fe9d1ddd"
TABLE_GUIDS = {
    SEV_ES_RESET_BLOCK: "SEV-ES reset block", SEV_HASH_TABLE: "SEV hash table", SEV_SECRET_BLOCK: "SEV secret block",
    SEV_METADATA: "SEV metadata", TDX_METADATA: "TDX metadata", SVSM_INFO: "SVSM info",
}
# EFI_FIRMWARE_VOLUME_HEADER.FileSystemGuid at offset 16, signature "_FVH" at offset 40.
NV_STORE_FV = "fff12b8d-7696-4c8b-a985-2747075b4f50"     # EFI_SYSTEM_NV_DATA_FV_GUID: a variable store
FFS2_FV = "8c8ce578-8a3d-4f1c-9935-896185c32dd3"         # EFI_FIRMWARE_FILE_SYSTEM2_GUID: code
SNP_SECTIONS = ("SNP_SEC_MEM", "SNP_SECRETS", "CPUID")   # what QEMU must pre-validate for an SNP launch

# Measured is not enforced. Every OVMF whose MEMFD has PcdSevLaunchSecretBase and PcdQemuHashTableBase
# (edk2 OvmfPkg/Include/Fdf/MemFd.fdf.inc, shared by OvmfPkgX64) gets the SNP_KERNEL_HASHES metadata
# section (OvmfPkg/ResetVector/ResetVector.nasmb), so QEMU's kernel-hashes=on puts the hashes into the
# launch digest. Whether the firmware then REFUSES a kernel that does not match them is decided by the
# BlobVerifierLib linked into QemuKernelLoaderFsDxe: OvmfPkgX64.dsc links BlobVerifierLibNull (accepts
# anything), only OvmfPkg/AmdSev/AmdSevX64.dsc links BlobVerifierLibSevHashes. A library leaves no
# file of its own, so the build is told by the FFS files only AmdSevX64.fdf puts in its volumes
# (edk2 @c5aa7e7d94c0: no other .fdf includes them; FILE_GUIDs from each module's .inf):
AMDSEV_ONLY_FILES = {
    "45260dde-0c3c-4b41-a226-ef3803fac7d4": "SecretPei",    # OvmfPkg/AmdSev/SecretPei/SecretPei.inf
    "6e2b9619-8810-4e9d-a177-d432bb9abeda": "SecretDxe",    # OvmfPkg/AmdSev/SecretDxe/SecretDxe.inf
    "b5ae312c-bc8a-43b1-9c62-ebb826dd5d07": "Grub",         # OvmfPkg/AmdSev/Grub/Grub.inf
}
KERNEL_LOADER = "806040ca-dad9-4978-a3b4-2d2ab0c8a48f"      # OvmfPkg/QemuKernelLoaderFsDxe/QemuKernelLoaderFsDxe.inf


@dataclass(frozen=True)
class OvmfImage:
    """One installed OVMF image and what its content supports.

    ``sev_es``: SEV-ES reset block in the GUID table (QEMU needs it for SEV-ES/SNP APs).
    ``snp``: SEV metadata with the SNP sections (usable for SEV-SNP with ``-bios``).
    ``kernel_hashes``: a SEV hash table with a non-zero GPA (QEMU ``kernel-hashes=on``, SEV/SEV-ES).
    ``snp_kernel_hashes``: an SNP_KERNEL_HASHES metadata section (measured direct boot under SNP).
    ``combined``: starts with its own variable store (one file, no VARS needed); ``role`` is
    "combined", "code" (pflash CODE, needs a VARS copy), "vars" (a variable store template) or "unknown".
    ``hashes_enforced``: the direct-boot kernel loader refuses a kernel, initrd or command line whose
    hash differs from the measured table (an AmdSevX64 build); False: measured only (OvmfPkgX64 and
    the like); None: the firmware volumes could not be read (``ffs_error``).
    """

    path: str
    realpath: str
    size: int
    sha256: str
    role: str
    has_guid_table: bool
    sev_es: bool
    snp: bool
    kernel_hashes: bool
    snp_kernel_hashes: bool
    guids: tuple[str, ...] = ()           # "name guid" for every known GUID in the table
    sections: tuple[str, ...] = ()        # SEV metadata section types, in order
    error: str | None = None              # why the image could not be parsed (None: parsed)
    amdsev_files: tuple[str, ...] = ()    # AmdSevX64-only FFS files found ("SecretDxe 6e2b9619-...")
    kernel_loader: bool | None = None     # QemuKernelLoaderFsDxe in its volumes
    ffs_files: int = 0                    # FFS files read from its volumes
    ffs_error: str | None = None          # why the volumes could not be read

    @property
    def hashes_enforced(self) -> bool | None:
        if self.ffs_error is not None or self.ffs_files == 0:
            return None
        return bool(self.amdsev_files) and bool(self.kernel_loader)

    def enforcement(self) -> str:
        """The finding in words, with its evidence."""
        if self.hashes_enforced is None:
            return f"not determined: firmware volumes not readable ({self.ffs_error or 'no FFS files found'})"
        if self.hashes_enforced:
            return ("enforced: an AmdSevX64 build (" + ", ".join(self.amdsev_files) + " in its volumes), whose "
                    "kernel loader links BlobVerifierLibSevHashes")
        loader = "QemuKernelLoaderFsDxe present" if self.kernel_loader else "no QemuKernelLoaderFsDxe"
        return (f"measured, not enforced: none of the AmdSevX64-only files ({', '.join(AMDSEV_ONLY_FILES.values())}) "
                f"among its {self.ffs_files} FFS files ({loader}): an OvmfPkgX64-style build, whose kernel loader "
                "links BlobVerifierLibNull and boots a kernel that does not match the measured hashes")

    @property
    def combined(self) -> bool:
        return self.role == "combined"

    @property
    def firmware(self) -> bool:
        """Bootable firmware (CODE or combined), not a VARS template."""
        return self.role in ("code", "combined")

    def summary(self) -> str:
        caps = [n for n, v in (("SEV-ES", self.sev_es), ("SNP", self.snp), ("kernel-hashes", self.kernel_hashes),
                               ("SNP-kernel-hashes", self.snp_kernel_hashes)) if v]
        if self.error:
            return f"{self.path}: {self.error}"
        if not self.has_guid_table:
            return f"{self.path} [{self.role}]: no OVMF GUID table"
        if not self.kernel_hashes and any(g.endswith(SEV_HASH_TABLE) for g in self.guids):
            caps.append("SEV hash table entry with GPA 0 (no table)")
        return f"{self.path} [{self.role}]: " + (", ".join(caps) if caps else "no SEV capability in its GUID table")

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "realpath": self.realpath, "size": self.size, "sha256": self.sha256,
                "role": self.role, "combined": self.combined, "has_guid_table": self.has_guid_table,
                "sev_es": self.sev_es, "snp": self.snp, "kernel_hashes": self.kernel_hashes,
                "snp_kernel_hashes": self.snp_kernel_hashes, "guids": list(self.guids),
                "sections": list(self.sections), "error": self.error,
                "amdsev_files": list(self.amdsev_files), "kernel_loader": self.kernel_loader,
                "ffs_files": self.ffs_files, "ffs_error": self.ffs_error,
                "hashes_enforced": self.hashes_enforced}


class ParserUnavailable(Exception):
    """sev-snp-measure is not importable on the controller."""


def _ovmf_class() -> Any:
    try:
        from sevsnpmeasure.ovmf import OVMF
    except ImportError as exc:
        raise ParserUnavailable(f"sev-snp-measure is not installed ({exc}); pip install 'sev-snp-measure'") from exc

    class TailOVMF(OVMF):  # type: ignore[misc]
        """OVMF parsed from bytes: the library's constructor only takes a file name."""

        def __init__(self, data: bytes) -> None:
            self._data = data
            self._parse_footer_table()
            self._parse_sev_metadata()
            self._gpa = 0   # unknown from a tail; nothing here needs it

    return TailOVMF


def _fv_guid(head: bytes) -> str | None:
    if len(head) < 44 or head[40:44] != b"_FVH":
        return None
    return str(uuid.UUID(bytes_le=head[16:32]))


def inspect(entry: dict[str, Any]) -> OvmfImage:
    """One image entry (path, realpath, size, plus its content: sha256, head_b64, tail_b64) -> OvmfImage.
    ParserUnavailable without sev-snp-measure."""
    path, real, size = str(entry.get("path")), str(entry.get("realpath", entry.get("path"))), int(entry.get("size", -1))
    sha = str(entry.get("sha256", ""))

    def broken(why: str, role: str = "unknown") -> OvmfImage:
        return OvmfImage(path, real, size, sha, role, False, False, False, False, False, error=why)

    if "tail_b64" not in entry:
        return broken(str(entry.get("error") or "content not collected (collector older than this sevkit?)"))
    tail = base64.b64decode(entry["tail_b64"])
    fs = _fv_guid(base64.b64decode(entry.get("head_b64", "")))
    try:
        o = _ovmf_class()(tail)
        sections = tuple(s.section_type().name for s in o.metadata_items())
    except (RuntimeError, ValueError, IndexError) as exc:   # bad table entry, metadata beyond the tail
        role = "vars" if fs == NV_STORE_FV else "unknown"
        return broken(f"GUID table not parseable: {exc}", role)
    guids = []
    for guid, name in TABLE_GUIDS.items():
        try:
            o.table_item(guid)
        except KeyError:
            continue
        guids.append(f"{name} {guid}")
    # The library keeps its table private; the footer GUID sits 32 bytes before the end (its own offset).
    footer_at = len(tail) - 32 - 18 + 2
    has_table = footer_at >= 0 and tail[footer_at:footer_at + 16] == uuid.UUID(FOOTER).bytes_le
    store = fs == NV_STORE_FV   # starts with a variable store
    role = ("combined" if store else "code") if has_table else ("vars" if store else "unknown")
    kernel_hashes = bool(has_table and o.is_sev_hashes_table_supported())
    ffs = entry.get("ffs") or {"error": "firmware volumes not collected (collector older than this sevkit?)"}
    files = set(ffs.get("guids", []))
    ffs_error = ffs.get("error") or ("; ".join(ffs["errors"]) if ffs.get("errors") and not files else None)
    return OvmfImage(
        path=path, realpath=real, size=size, sha256=sha, role=role, has_guid_table=has_table,
        sev_es=any(g.endswith(SEV_ES_RESET_BLOCK) for g in guids),
        snp=all(s in sections for s in SNP_SECTIONS), kernel_hashes=kernel_hashes,
        snp_kernel_hashes="SNP_KERNEL_HASHES" in sections, guids=tuple(guids), sections=sections,
        amdsev_files=tuple(f"{name} {g}" for g, name in AMDSEV_ONLY_FILES.items() if g in files),
        kernel_loader=KERNEL_LOADER in files if files else None, ffs_files=len(files), ffs_error=ffs_error)


def inspect_all(section: dict[str, Any]) -> list[OvmfImage]:
    """The collector's ``ovmf`` section -> every image with a size, in the collector's order. Content
    (sha256, head, tail) is stored once per real file, so symlinked variants share it."""
    content = section.get("content", {})
    out = []
    for i in section.get("images", []):
        if int(i.get("size", 0)) > 0:
            out.append(inspect({**content.get(i.get("realpath"), {}), **i}))
    return out
