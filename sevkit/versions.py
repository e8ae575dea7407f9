"""Version strings as comparable tuples (kernel releases, QEMU versions)."""

from __future__ import annotations


def version_tuple(release: str) -> tuple[int, ...]:
    """``6.12.117+deb13-amd64`` -> (6, 12, 117); ``6.11.0-rc1`` -> (6, 11, 0); unparsable parts end
    the tuple, so garbage gives () which compares below every real version."""
    out: list[int] = []
    for part in release.split("-", 1)[0].split("+", 1)[0].split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)
