"""The guest image: build (debootstrap, cached by recipe hash), find, or take a lab's own.

    from sevkit.image import GuestImage, ensure_image, find_image, load_image_spec
    from sevkit.image.credentials import make_credentials

``ensure_image()`` returns the cached image, building it on a miss; ``find_image()`` never builds.
"""

from ..versions import version_tuple
from .recipe import DEFAULT_MIRROR, DEFAULT_SUITE, MIN_KERNEL_FOR_TSM, Recipe
from .spec import DEFAULT_APPEND, GuestImage, kernel_version_of, load_image_spec
from .store import default_store, ensure_image, find_image, prune

__all__ = [
    "DEFAULT_APPEND", "DEFAULT_MIRROR", "DEFAULT_SUITE", "MIN_KERNEL_FOR_TSM", "GuestImage", "Recipe",
    "default_store", "ensure_image", "find_image", "kernel_version_of", "load_image_spec", "prune", "version_tuple",
]
