"""The extended-report certificate table (GHCB spec 56421 §4.1.8.1; sev-facts §5.3): what
SNP_GET_EXT_REPORT's certs buffer and configfs-tsm's ``auxblob`` hold when the host supplies
certificates. Entries ``{guid[16], u32 offset, u32 length}``, offsets from the table start,
terminated by an all-zero entry; certificates are DER.
"""

from __future__ import annotations

import uuid

from ..errors import AttestationError

GUIDS = {
    "c0b406a4-a803-4952-9743-3fb6014cd0ae": "ARK",
    "4ab7b379-bbac-4fe4-a02f-05aef327c782": "ASK",    # or the ASVK when the VLEK signs
    "63da758d-e664-4564-adc5-f4b93be8accd": "VCEK",
    "a8074bc2-a25a-483e-aae6-39c045a0b8a1": "VLEK",
    "92f81bc3-5811-4d3d-97ff-d19f88dc67ea": "CRL",
}
_BY_NAME = {v: k for k, v in GUIDS.items()}
ENTRY_SIZE = 24


def parse_cert_table(blob: bytes) -> dict[str, bytes]:
    """Name (ARK, ASK, VCEK, VLEK, CRL, or the GUID if unknown) -> bytes. Empty blob -> {}."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos + ENTRY_SIZE <= len(blob):
        entry = blob[pos:pos + ENTRY_SIZE]
        if not any(entry):
            return out
        guid = str(uuid.UUID(bytes_le=entry[:16]))
        off = int.from_bytes(entry[16:20], "little")
        length = int.from_bytes(entry[20:24], "little")
        if off + length > len(blob) or length == 0:
            raise AttestationError(f"certificate table entry {guid}: offset {off} + length {length} "
                                   f"outside the {len(blob)}-byte table", evidence={"guid": guid})
        out[GUIDS.get(guid, guid)] = blob[off:off + length]
        pos += ENTRY_SIZE
    if any(blob):
        raise AttestationError("certificate table has no all-zero terminator",
                               evidence={"length": len(blob)})
    return out


def build_cert_table(certs: dict[str, bytes]) -> bytes:
    """The inverse, e.g. for a QEMU/KVM certs blob (``launch-qemu.sh -certs``)."""
    header_len = ENTRY_SIZE * (len(certs) + 1)
    header, body = b"", b""
    for name, data in certs.items():
        guid = uuid.UUID(_BY_NAME.get(name, name))
        header += guid.bytes_le + (header_len + len(body)).to_bytes(4, "little") + len(data).to_bytes(4, "little")
        body += data
    return header + bytes(ENTRY_SIZE) + body
