"""Image folders of our own, built on the fly for the ``folder:`` and adapter tests: procedural pictures
(stripes, rings, checkers, a diagonal) that the project never ships, in PNG and JPEG, RGB and grey, of
different sizes, with junk files mixed in (notes, hidden files, a nested sub-folder of images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("horizontal_stripes", "vertical-stripes", "rings", "checker")
JUNK = ("README.txt", ".DS_Store", "notes.md", "Thumbs.db")


def picture(kind: int, seed: int, size: tuple[int, int] = (36, 30)) -> Image.Image:
    """One noisy picture of class ``kind`` (``size`` = width, height), deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    phase = rng.integers(0, 6)
    base = [((yy + phase) // 5) % 2, ((xx + phase) // 5) % 2,
            (np.hypot(yy - h / 2, xx - w / 2).astype(int) // 4) % 2, (((yy + phase) // 6) + (xx // 6)) % 2][kind]
    grey = np.clip(base * 190.0 + 30 + rng.normal(0, 25, (h, w)), 0, 255).astype(np.uint8)
    if seed % 3 == 0:
        return Image.fromarray(grey, mode="L")
    tint = rng.uniform(0.6, 1.0, 3)
    return Image.fromarray((grey[..., None] * tint).astype(np.uint8), mode="RGB")


def write_pictures(folder: Path, kind: int, n: int, seed0: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        seed = seed0 + i
        ext = ".png" if seed % 2 else ".JPG"
        path = folder / f"img_{i:03d}{ext}"
        picture(kind, seed, size=(36 + seed % 5, 30 + seed % 3)).save(path, format="PNG" if ext == ".png" else "JPEG")
        out.append(path)
    return out


def write_tree(root: Path, per_class: int = 40, classes: "tuple[str, ...]" = CLASSES, junk: bool = True,
               split: "dict[str, int] | None" = None) -> Path:
    """``root/<class>/<image>`` (``split=None``) or ``root/<split>/<class>/<image>`` with ``split[s]`` images
    per class; junk files in the root and in class folders, a nested folder of images in the first class."""
    root.mkdir(parents=True, exist_ok=True)
    parts = split or {"": per_class}
    for s, n in parts.items():
        base = root / s if s else root
        for c, name in enumerate(classes):
            nested = 3 if (junk and c == 0) else 0
            write_pictures(base / name, c, n - nested, seed0=1000 * c + 100 * len(s))
            if nested:
                write_pictures(base / name / "more", c, nested, seed0=1000 * c + 500 + 100 * len(s))
            if junk:
                for j in JUNK[1:]:
                    (base / name / j).write_text("not an image\n")
    if junk:
        (root / JUNK[0]).write_text("my photos\n")
        (root / ".hidden").mkdir(exist_ok=True)
        (root / ".hidden" / "x.png").write_bytes(b"never read")
    return root
