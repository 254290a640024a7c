"""A folder of real images the stand-in never saw: scikit-learn's bundled handwritten digits as an
``ImageFolder`` tree, for the chapter "Tip-Adapter on your own images".

:func:`write_digits_folder` writes the 1,797 8×8 images of ``sklearn.datasets.load_digits`` (UCI's optical
recognition of handwritten digits; white ink on black, 16 grey levels) as PNG files into class folders named
``zero`` ... ``nine``, holding a few images per class out of the tree in a second folder (the "new photos"
a reader would classify with the saved adapter). Files are rewritten only when their bytes change, so a
second call leaves the tree, its mtimes and thus its cached features as they were.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from tipkit.errors import TipkitError
from tipkit.io import atomic_path

log = logging.getLogger(__name__)
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """``(images [1797, 8, 8] uint8 in 0..255, labels [1797] int64)`` from scikit-learn's ``load_digits``."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise TipkitError("the digits folder needs scikit-learn (pip install scikit-learn)") from None
    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return images, d.target.astype(np.int64)


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _write_tree(folder: Path, files: dict[str, bytes]) -> int:
    """Make ``folder`` hold exactly ``files`` (relative path -> bytes) among its PNGs; returns files written."""
    written = 0
    for rel, data in files.items():
        path = folder / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        written += 1
    for stale in folder.rglob("*.png"):
        if stale.relative_to(folder).as_posix() not in files:
            stale.unlink()
    return written


def write_digits_folder(root: "str | Path", new_per_class: int = 2) -> tuple[Path, Path]:
    """Write ``root/digits/<class>/digit_NNNN.png`` (the dataset) and ``root/new/<class>/digit_NNNN.png``
    (the last ``new_per_class`` images of each class, left out of the dataset); returns both folders.
    ``NNNN`` is the image's index in ``load_digits``; class folders are ``zero`` ... ``nine``."""
    if isinstance(new_per_class, bool) or not isinstance(new_per_class, int) or new_per_class < 0:
        raise TipkitError(f"new_per_class must be an integer >= 0, got {new_per_class!r}")
    images, labels = digit_images()
    root = Path(root)
    trees: dict[str, dict[str, bytes]] = {"digits": {}, "new": {}}
    for c, name in enumerate(DIGIT_NAMES):
        idx = np.flatnonzero(labels == c)
        cut = len(idx) - new_per_class
        for k, i in enumerate(idx):
            trees["digits" if k < cut else "new"][f"{name}/digit_{int(i):04d}.png"] = _png(images[i])
    for name, files in trees.items():
        n = _write_tree(root / name, files)
        log.info("%s: %d images (%d written)", root / name, len(files), n)
    return root / "digits", root / "new"
