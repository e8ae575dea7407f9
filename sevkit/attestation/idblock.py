"""SNP ID block + ID authentication for a launch, with keys generated per run (sev-snp-measure's id_block).

The ID block (96 bytes: launch digest, family/image IDs, version, guest SVN, policy) is signed with the
ID key; the ID authentication structure (4096 bytes) carries that signature, the ID public key, the
author key's signature over it and the author public key (AMD SEV-SNP ABI 56860 SNP_LAUNCH_FINISH).
The firmware checks it at SNP_LAUNCH_FINISH and refuses a launch whose digest or signature does not match.
The report then carries ID_KEY_DIGEST and AUTHOR_KEY_DIGEST (SHA-384 of the public keys).

sevsnpmeasure.id_block writes policy 0x30000 into the block (its DefaultPolicy): launch with that policy.
Private keys are written to ``workdir`` (0600) only because sev-snp-measure reads PEM files; they
never belong in a report folder.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import AttestationError

ID_BLOCK_POLICY = 0x30000   # sevsnpmeasure.id_block.DefaultPolicy
LAUNCH_DIGEST_SIZE = 48


@dataclass(frozen=True)
class IdBlock:
    id_block: bytes           # 96 bytes -> sev-snp-guest,id-block=
    id_auth: bytes            # 4096 bytes -> sev-snp-guest,id-auth=
    id_key_digest: bytes      # expected report ID_KEY_DIGEST
    author_key_digest: bytes  # expected report AUTHOR_KEY_DIGEST (with author-key-enabled=on)
    policy: int = ID_BLOCK_POLICY

    def tampered(self) -> IdBlock:
        """The same block with one launch-digest bit flipped: its signature no longer verifies."""
        b = bytearray(self.id_block)
        b[0] ^= 0x01
        return IdBlock(bytes(b), self.id_auth, self.id_key_digest, self.author_key_digest, self.policy)


def _write_key(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def make_id_block(launch_digest: bytes, workdir: Path) -> IdBlock:
    """Fresh P-384 ID and author keys in ``workdir``, and the ID block/auth for ``launch_digest``."""
    from sevsnpmeasure.id_block import snp_calc_id_block

    if len(launch_digest) != LAUNCH_DIGEST_SIZE:
        raise AttestationError(f"a launch digest is {LAUNCH_DIGEST_SIZE} bytes, not {len(launch_digest)}")
    workdir.mkdir(parents=True, exist_ok=True)
    id_key, author_key = workdir / "id_key.pem", workdir / "author_key.pem"
    for p in (id_key, author_key):
        p.unlink(missing_ok=True)
        _write_key(p)
    text = snp_calc_id_block(launch_digest, str(id_key), str(author_key))
    # "id-block=<b64>,id-auth=<b64>\nid_key_hash: <b64>\nauthor_key: <b64>"
    lines = text.strip().splitlines()
    try:
        blobs = dict(kv.split("=", 1) for kv in lines[0].split(","))
        fields = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        out = IdBlock(base64.b64decode(blobs["id-block"]), base64.b64decode(blobs["id-auth"]),
                      base64.b64decode(fields["id_key_hash"]), base64.b64decode(fields["author_key"]))
    except (KeyError, ValueError, IndexError) as exc:
        raise AttestationError(f"sev-snp-measure's id block output not understood: {exc}",
                               evidence={"output": text[:200]}) from None
    if len(out.id_block) != 96 or len(out.id_auth) != 4096:
        raise AttestationError(f"id block/auth sizes {len(out.id_block)}/{len(out.id_auth)}, expected 96/4096")
    return out
