"""Per-run credentials: key formats, file modes, nothing plaintext handed to the guest."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import paramiko
import pytest

from sevkit.errors import ImageError
from sevkit.image import credentials as creds_mod
from sevkit.image.credentials import FW_CFG_PREFIX, make_credentials


def test_files_are_private_and_named_for_fw_cfg(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path / "run" / "creds")
    folder = tmp_path / "run" / "creds"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    names = [name for name, _ in creds.fw_cfg]
    assert names == [FW_CFG_PREFIX + n for n in ("authorized_keys", "root_password_hash", "ssh_host_ed25519_key")]
    assert all(name.startswith("opt/") and len(name) <= 55 for name in names)   # QEMU's fw_cfg name limit
    for _name, path in creds.fw_cfg:
        assert path.is_absolute() and path.is_file()


def test_keys_are_ed25519_and_match(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path)
    client = paramiko.Ed25519Key.from_private_key_file(str(creds.private_key_path))
    kind, b64, comment = creds.public_key_line.split()
    assert kind == "ssh-ed25519" and comment == "sevkit-run"
    assert client.get_base64() == b64
    files = dict(creds.fw_cfg)
    assert files[FW_CFG_PREFIX + "authorized_keys"].read_text().strip() == creds.public_key_line
    host = paramiko.Ed25519Key.from_private_key_file(str(files[FW_CFG_PREFIX + "ssh_host_ed25519_key"]))
    assert creds.known_host_key == f"ssh-ed25519 {host.get_base64()}"
    # the pinned key is a usable paramiko host key
    pinned = paramiko.Ed25519Key(data=base64.b64decode(creds.known_host_key.split()[1]))
    assert pinned == host
    assert creds.known_hosts_line("127.0.0.1", 2222) == f"[127.0.0.1]:2222 {creds.known_host_key}"
    assert creds.known_hosts_line("guest") == f"guest {creds.known_host_key}"


def test_password_goes_in_only_as_a_sha512_crypt_hash(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path)
    hashed = dict(creds.fw_cfg)[FW_CFG_PREFIX + "root_password_hash"].read_text().strip()
    assert hashed.startswith("$6$")
    salt = hashed.split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=creds.root_password,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert again == hashed                       # the hash really is of this run's password
    assert len(creds.root_password) >= 20
    for path in tmp_path.iterdir():              # never written anywhere in plaintext
        assert creds.root_password.encode() not in path.read_bytes(), path
    assert creds.root_password not in repr(creds)


def test_every_run_is_different(tmp_path: Path) -> None:
    a, b = make_credentials(tmp_path / "a"), make_credentials(tmp_path / "b")
    assert a.public_key_line != b.public_key_line
    assert a.known_host_key != b.known_host_key
    assert a.root_password != b.root_password


def test_fw_cfg_args_escape_commas(tmp_path: Path) -> None:
    creds = make_credentials(tmp_path / "odd,dir")
    args = creds.fw_cfg_args()
    assert args[0::2] == ["-fw_cfg"] * 3
    assert all(",file=" in a and "odd,,dir" in a for a in args[1::2])


def test_missing_openssl_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(*_a: object, **_k: object) -> None:
        raise FileNotFoundError("openssl")
    monkeypatch.setattr(creds_mod.subprocess, "run", missing)
    with pytest.raises(ImageError, match="openssl not found"):
        make_credentials(tmp_path)
