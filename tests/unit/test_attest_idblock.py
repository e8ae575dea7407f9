"""ID block + auth generated per run (sevkit.attestation.idblock): sizes, digests, tamper, key hygiene."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from sevkit.attestation.idblock import make_id_block
from sevkit.errors import AttestationError

# ID_AUTH layout (sevsnpmeasure.id_block.IdAuth, AMD SEV-SNP ABI SNP_LAUNCH_FINISH ID_AUTH):
# id_key_algo u32, auth_key_algo u32, 56 reserved, block_sig 512, id_key 1028, 60 reserved,
# id_key_sig 512, author_key 1028, 892 reserved.
ID_KEY_AT, AUTHOR_KEY_AT, KEY_LEN = 0x240, 0x240 + 1028 + 60 + 512, 1028


def test_id_block_binds_the_digest_and_the_fresh_keys(tmp_path: Path) -> None:
    ld = os.urandom(48)   # SYNTHETIC launch digest
    blk = make_id_block(ld, tmp_path)
    assert len(blk.id_block) == 96 and len(blk.id_auth) == 4096
    assert blk.id_block[:48] == ld
    assert int.from_bytes(blk.id_block[88:96], "little") == blk.policy == 0x30000
    assert hashlib.sha384(blk.id_auth[ID_KEY_AT:ID_KEY_AT + KEY_LEN]).digest() == blk.id_key_digest
    assert hashlib.sha384(blk.id_auth[AUTHOR_KEY_AT:AUTHOR_KEY_AT + KEY_LEN]).digest() == blk.author_key_digest
    for key in ("id_key.pem", "author_key.pem"):
        assert stat.S_IMODE((tmp_path / key).stat().st_mode) == 0o600
    again = make_id_block(ld, tmp_path)
    assert again.id_key_digest != blk.id_key_digest   # keys are generated per call (per run)


def test_tampered_block_differs_only_in_the_digest(tmp_path: Path) -> None:
    blk = make_id_block(bytes(48), tmp_path)
    bad = blk.tampered()
    assert bad.id_block != blk.id_block and bad.id_block[1:] == blk.id_block[1:] and bad.id_auth == blk.id_auth


def test_wrong_digest_size_refused(tmp_path: Path) -> None:
    with pytest.raises(AttestationError, match="48 bytes"):
        make_id_block(b"short", tmp_path)
