"""The recipe hash: stable for the same recipe, different for anything that changes the image."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sevkit.errors import UsageError
from sevkit.image import DEFAULT_SUITE, Recipe
from sevkit.image.recipe import BUILD_PARAMS, PACKAGES, guest_files

REPO = Path(__file__).resolve().parents[2]


def test_hash_is_stable_within_and_across_processes() -> None:
    recipe = Recipe()
    assert recipe.hash == Recipe().hash
    assert len(recipe.hash) == 64 and recipe.name == f"{DEFAULT_SUITE}-{recipe.hash[:16]}"
    code = "from sevkit.image import Recipe; print(Recipe().hash)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"}, cwd=str(REPO))
    assert other.stdout.strip() == recipe.hash


def test_hash_ignores_order_and_a_trailing_slash() -> None:
    base = Recipe()
    assert Recipe(packages=tuple(reversed(PACKAGES))).hash == base.hash
    assert Recipe(mirror=base.mirror + "/").hash == base.hash
    assert Recipe(params=dict(reversed(list(BUILD_PARAMS.items())))).hash == base.hash


@pytest.mark.parametrize("change", [
    {"suite": "bookworm"},
    {"mirror": "http://ftp.de.debian.org/debian"},
    {"packages": (*PACKAGES, "strace")},
    {"packages": tuple(p for p in PACKAGES if p != "msr-tools")},
    {"params": {**BUILD_PARAMS, "fs_headroom_mib": 2048}},
    {"params": {**BUILD_PARAMS, "append": "root=LABEL=sevroot ro console=ttyS0,115200 quiet"}},
])
def test_hash_changes_with_the_recipe(change: dict[str, object]) -> None:
    assert replace(Recipe(), **change).hash != Recipe().hash  # type: ignore[arg-type]


def test_hash_covers_every_guest_file() -> None:
    files = guest_files()
    assert {"configure.sh", "sevkit-credentials", "sevkit-credentials.service"} <= set(files)
    for name in files:
        edited = {**files, name: files[name] + "\n# one more line\n"}
        assert Recipe(files=edited).hash != Recipe().hash, name


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"suite": "Trixie; rm -rf /"}, "not a Debian suite name"),
    ({"suite": ""}, "not a Debian suite name"),
    ({"mirror": "ftp://deb.debian.org/debian"}, "not an http"),
    ({"mirror": "http://deb.debian.org/debian --include=evil"}, "not an http"),
])
def test_bad_suite_or_mirror_is_a_usage_error(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Recipe(**kwargs)


def test_guest_scripts_are_valid_shell() -> None:
    files = guest_files()
    for name in ("configure.sh", "sevkit-credentials"):
        result = subprocess.run(["sh", "-n"], input=files[name], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_credentials_unit_runs_before_login_and_sshd() -> None:
    unit = guest_files()["sevkit-credentials.service"]
    before = next(line for line in unit.splitlines() if line.startswith("Before="))
    for target in ("serial-getty@ttyS0.service", "ssh.service"):
        assert target in before
    configure = guest_files()["configure.sh"]
    for needle in ("PermitRootLogin prohibit-password", "PasswordAuthentication no", "UseDNS no",
                   "rm -f /etc/ssh/ssh_host_", "usermod -p '!' root", "MODULES=list", "qemu_fw_cfg"):
        assert needle in configure, needle
