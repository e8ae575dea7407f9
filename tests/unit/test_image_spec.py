"""GuestImage.from_files, load_image_spec and the manifest: lab images and sevkit's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sevkit.errors import InputError, UsageError
from sevkit.image import GuestImage, kernel_version_of, load_image_spec, version_tuple
from sevkit.image.spec import DEFAULT_APPEND, MANIFEST_NAME, write_manifest


def fake_bzimage(path: Path, release: str = "6.12.117+deb13-amd64") -> Path:
    """The setup header fields kernel_version_of reads: 'HdrS' at 0x202, version pointer at 0x20E."""
    data = bytearray(0x3000)
    data[0x202:0x206] = b"HdrS"
    ptr = 0x1000
    data[0x20E:0x210] = ptr.to_bytes(2, "little")
    text = f"{release} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC".encode()
    data[ptr + 0x200:ptr + 0x200 + len(text)] = text
    path.write_bytes(bytes(data))
    return path


def lab_files(tmp: Path) -> dict[str, Path]:
    disk = tmp / "disk.qcow2"
    disk.write_bytes(b"QFI\xfb" + b"\0" * 60)
    initrd = tmp / "initrd.img"
    initrd.write_bytes(b"\x1f\x8b" + b"\0" * 30)
    return {"disk": disk, "kernel": fake_bzimage(tmp / "vmlinuz"), "initrd": initrd}


def test_from_files_reads_kernel_version_and_disk_format(tmp_path: Path) -> None:
    files = lab_files(tmp_path)
    image = GuestImage.from_files(**files)
    assert image.kernel_version == "6.12.117+deb13-amd64"
    assert image.disk_format == "qcow2"
    assert image.append == DEFAULT_APPEND
    assert image.firmware is None and image.credentials == "fw_cfg"
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * 512)
    assert GuestImage.from_files(**{**files, "disk": raw}).disk_format == "raw"


@pytest.mark.parametrize(("change", "message"), [
    ({"disk": "missing.qcow2"}, "disk .* does not exist"),
    ({"kernel": "missing-vmlinuz"}, "kernel .* does not exist"),
    ({"initrd": ""}, "no initrd given"),
    ({"firmware": "no-OVMF.fd"}, "firmware .* does not exist"),
    ({"append": "  "}, "append .* is empty"),
    ({"append": "root=/dev/vda\nrm -rf"}, "one line"),
    ({"credentials": "password"}, "credentials must be"),
])
def test_from_files_refuses_what_cannot_boot(tmp_path: Path, change: dict[str, str], message: str) -> None:
    files: dict[str, object] = dict(lab_files(tmp_path))
    for key, value in change.items():
        files[key] = (tmp_path / value) if key in ("disk", "kernel", "firmware") else value
    with pytest.raises(InputError, match=message) as info:
        GuestImage.from_files(**files)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UsageError)   # the CLI maps it to exit 2


def test_from_files_refuses_a_non_bzimage_kernel_and_an_empty_initrd(tmp_path: Path) -> None:
    files = lab_files(tmp_path)
    bogus = tmp_path / "not-a-kernel"
    bogus.write_bytes(b"\x7fELF" + b"\0" * 0x400)
    with pytest.raises(InputError, match="not an x86 bzImage"):
        GuestImage.from_files(**{**files, "kernel": bogus})
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"initrd .* is empty"):
        GuestImage.from_files(**{**files, "initrd": empty})
    with pytest.raises(InputError, match=r"disk .* is empty"):
        GuestImage.from_files(**{**files, "disk": empty})


def test_version_tuple() -> None:
    assert version_tuple("6.12.117+deb13-amd64") == (6, 12, 117)
    assert version_tuple("6.1.0-50-amd64") == (6, 1, 0)
    assert version_tuple("6.7-rc1") == (6, 7)
    assert version_tuple("") == ()
    assert version_tuple("6.12.117+deb13-amd64") >= (6, 7) > version_tuple("6.1.0-50-amd64")


def test_kernel_version_of_tolerates_a_missing_version_pointer(tmp_path: Path) -> None:
    k = fake_bzimage(tmp_path / "k")
    data = bytearray(k.read_bytes())
    data[0x20E:0x210] = b"\0\0"
    k.write_bytes(bytes(data))
    assert kernel_version_of(k) == ""


def test_manifest_round_trip(tmp_path: Path) -> None:
    files = lab_files(tmp_path)
    firmware = tmp_path / "OVMF.fd"
    firmware.write_bytes(b"\0" * 64)
    base = GuestImage.from_files(**files, firmware=firmware, suite="trixie")
    image = GuestImage(root=tmp_path, disk=base.disk, kernel=base.kernel, initrd=base.initrd, append=base.append,
                       suite="trixie", kernel_version=base.kernel_version, recipe_hash="ab" * 32,
                       firmware=firmware, host_keys=("ssh-ed25519 AAAAC3Nza key",))
    path = write_manifest(image, tmp_path, build_seconds=61.5, sizes={"disk": 64})
    data = json.loads(path.read_text())
    assert data["disk"] == "disk.qcow2" and data["kernel"] == "vmlinuz"   # relative: the folder can move
    loaded = load_image_spec(path)
    for name in ("disk", "kernel", "initrd", "append", "suite", "kernel_version", "recipe_hash", "firmware",
                 "host_keys", "disk_format", "credentials"):
        assert getattr(loaded, name) == getattr(image, name), name
    assert loaded.manifest == path.resolve()
    assert loaded.extra["build_seconds"] == 61.5 and loaded.extra["sizes"] == {"disk": 64}
    assert load_image_spec(tmp_path) == loaded          # a folder means its image.json


def test_lab_spec_relative_and_absolute_paths(tmp_path: Path) -> None:
    files = lab_files(tmp_path)
    spec_dir = tmp_path / "lab"
    spec_dir.mkdir()
    spec = spec_dir / "guest.json"
    spec.write_text(json.dumps({"disk": "../disk.qcow2", "kernel": str(files["kernel"]), "initrd": "../initrd.img",
                                "append": "root=/dev/vda1 console=ttyS0", "credentials": "none"}))
    image = load_image_spec(spec)
    assert image.disk == files["disk"].resolve()
    assert image.append == "root=/dev/vda1 console=ttyS0"
    assert image.credentials == "none" and image.recipe_hash == ""


@pytest.mark.parametrize(("text", "message"), [
    (None, "no such file"),
    ("{not json", "is not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"disk": "d"}', "missing kernel, initrd"),
    ('{"format": 99, "disk": "d", "kernel": "k", "initrd": "i"}', "format 99 is not supported"),
    ('{"disk": "disk.qcow2", "kernel": "vmlinuz", "initrd": "initrd.img", "host_keys": "x"}', "host_keys"),
])
def test_load_image_spec_errors(tmp_path: Path, text: str | None, message: str) -> None:
    lab_files(tmp_path)
    spec = tmp_path / MANIFEST_NAME
    if text is not None:
        spec.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_image_spec(spec)
    assert "\n" not in str(info.value)
