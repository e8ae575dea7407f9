"""``sevkit image build|find``: the guest image the suite boots."""

from __future__ import annotations

import argparse
import sys
import time

from ..image import DEFAULT_MIRROR, DEFAULT_SUITE, GuestImage, Recipe, default_store, ensure_image, find_image, prune
from ..image.recipe import KNOWN_SUITES
from ..signals import sigterm_as_interrupt
from ..userfiles import shown


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("image", help="build or find the Debian guest image (cached by recipe hash)")
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION")
    sub.required = True
    for name, helptext in (("build", "build the image unless the cache already has it; print its manifest path"),
                           ("find", "print the cached image's manifest path; exit 1 if it is not built")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--suite", default=DEFAULT_SUITE,
                       help=f"Debian suite (default {DEFAULT_SUITE}: kernel 6.12; known: {', '.join(KNOWN_SUITES)})")
        p.add_argument("--mirror", default=DEFAULT_MIRROR, help=f"Debian mirror (default {DEFAULT_MIRROR})")
        p.add_argument("--out", metavar="DIR", default=None,
                       help=f"image store (default $SEVKIT_CACHE_DIR/images or {default_store()})")
        p.set_defaults(func=_build if name == "build" else _find)
    p = sub.add_parser("prune", help="remove cached images of older recipes and dead build folders")
    p.add_argument("--out", metavar="DIR", default=None, help="image store (default as for build)")
    p.set_defaults(func=_prune)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _describe(image: GuestImage) -> None:
    print(image.manifest)
    sizes = image.extra.get("sizes", {})
    mib = {k: f"{v / 2**20:.1f} MiB" for k, v in sizes.items()} if isinstance(sizes, dict) else {}
    print(f"  suite {image.suite}, kernel {image.kernel_version}, recipe {image.recipe_hash[:16]}", file=sys.stderr)
    for key in ("disk", "kernel", "initrd"):
        print(f"  {key:6} {getattr(image, key)} ({mib.get(key, '?')})", file=sys.stderr)
    print(f"  append {image.append}", file=sys.stderr)




def _build(args: argparse.Namespace) -> int:
    recipe = Recipe(suite=args.suite, mirror=args.mirror)    # UsageError (exit 2) on a bad name or URL
    started = time.monotonic()
    cached = find_image(recipe=recipe, cache_dir=args.out)
    if cached is None:
        with sigterm_as_interrupt():
            image = ensure_image(recipe=recipe, cache_dir=args.out, progress=_progress)
    else:
        image = cached
    state = "cached" if cached else f"built in {time.monotonic() - started:.0f}s"
    print(f"sevkit: guest image {recipe.name} {state}", file=sys.stderr)
    _describe(image)
    return 0


def _find(args: argparse.Namespace) -> int:
    recipe = Recipe(suite=args.suite, mirror=args.mirror)
    image = find_image(recipe=recipe, cache_dir=args.out)
    if image is None:
        print(f"sevkit: no built image {recipe.name} in {shown(args.out or default_store())} "
              f"(run: sevkit image build --suite {recipe.suite})", file=sys.stderr)
        return 1
    _describe(image)
    return 0


def _prune(args: argparse.Namespace) -> int:
    removed = prune(args.out, progress=_progress)    # --out "" is refused, never the default store
    print(f"sevkit: removed {len(removed)} folder(s) from {shown(args.out or default_store())}", file=sys.stderr)
    return 0
