"""Launch inputs the self-tests share: this host's combined OVMF, the built guest image, an SNP GuestSpec."""

from __future__ import annotations

import pytest

from sevkit.qemu.firmware import find_bios
from sevkit.qemu.spec import Firmware, GuestSpec


def bios() -> Firmware:
    fw = find_bios()
    if fw is None or fw.image is None:
        pytest.fail("no combined OVMF image on this host (scripts/host-deps.sh installs ovmf)")
    return fw


def built_image_and_pflash():  # type: ignore[no-untyped-def]
    """(the current recipe's guest image, an OVMF pflash pair) for self-tests that boot; a missing one FAILS:
    `make test` builds the image and installs OVMF first, so their absence is a broken set-up, not a skip."""
    from sevkit.image import find_image
    from sevkit.qemu.firmware import find_pflash
    image = find_image()
    if image is None:
        pytest.fail("the guest image is not built: run `make image` (make test builds it first)")
    fw = find_pflash()
    if fw is None:
        pytest.fail("no OVMF pflash pair installed (scripts/host-deps.sh installs ovmf)")
    return image, fw


def guest_image():  # type: ignore[no-untyped-def]
    """The current recipe's image, else any complete sevkit image in the store (same kind of files)."""
    from sevkit.errors import InputError
    from sevkit.image import default_store, find_image, load_image_spec
    img = find_image()
    if img is None and default_store().is_dir():
        for d in sorted(default_store().iterdir()):
            if d.name.startswith(".") or not (d / "image.json").is_file():
                continue
            try:
                img = load_image_spec(d)
            except InputError:
                continue
            if img.kernel.is_file() and img.initrd.is_file():
                break
            img = None
    if img is None:
        pytest.skip("no guest image built yet (make image); the launcher's kernel/initrd are needed")
    return img


def snp_spec(**kw: object) -> GuestSpec:
    img = guest_image()
    args: dict[str, object] = dict(kind="sev-snp", accel="kvm", qemu_version=(9, 1, 0), cpu="EPYC-v4", vcpus=2,
                                   firmware=bios(), kernel=img.kernel, initrd=img.initrd, append=img.append,
                                   disk=img.disk, cbitpos=51, reduced_phys_bits=1, kernel_hashes=True)
    args.update(kw)
    return GuestSpec(**args)  # type: ignore[arg-type]
