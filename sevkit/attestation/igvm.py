"""The IGVM launch path's measurement predictor, or precisely what is missing for it (issue 13 §8).

QEMU boots an SNP guest from an IGVM file with ``-object igvm-cfg,id=..,file=..`` and ``-machine
igvm-cfg=..`` (QEMU docs/system/igvm.rst); the argv shape is sevkit.qemu.argv's (golden-tested). The
launch digest of an IGVM file is predicted from its directives by coconut-svsm's ``igvmmeasure``
(igvmmeasure/README.md: "calculates the launch digest and outputs it as a hexadecimal string", platform
sev-snp), a Rust tool that is not on PyPI; the ``igvm`` name on PyPI has no distribution, and
sev-snp-measure (0.0.13) measures OVMF + kernel launches only, not IGVM files. sevkit's image recipe
also builds no IGVM file of the guest (coconut-svsm ``buildigvm`` would). Until both exist, the
IGVM requirement cannot be measured here and says so instead of pretending.
"""

from __future__ import annotations

import shutil

PREDICTOR = "igvmmeasure"


def find_predictor() -> str | None:
    """Path of coconut-svsm's igvmmeasure on PATH, if a lab installed it."""
    return shutil.which(PREDICTOR)


def missing_for_launch() -> str:
    """The reason the IGVM launch cannot be measured on this host (the test's skip reason)."""
    tool = find_predictor()
    if tool is None:
        return ("no IGVM measurement predictor available: coconut-svsm igvmmeasure is not on PATH and no "
                "PyPI package predicts an IGVM file's SNP launch digest (sev-snp-measure covers OVMF/kernel "
                "launches only)")
    return (f"no IGVM build of the guest: sevkit's image recipe builds none (predictor {tool} found, but "
            "there is no IGVM file to boot and measure)")
