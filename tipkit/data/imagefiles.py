"""Image files on disk: lazy loading, health checks, and assembling splits of file-backed datasets.

Every file-backed split keeps only relative ids (``str`` paths under the dataset folder, ``/``
separated) and opens ``<dataset folder>/<id>`` when image ``i`` is asked for, so building a split of a
million images reads no image. A file that is missing or does not decode raises a one-line
:class:`TipkitError` naming it; with ``skip_corrupt=True`` the builders check every file first
(:func:`image_problem`) and leave the bad ones out, recording them in ``Dataset.skipped``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from tipkit import paths
from tipkit.data.registry import Dataset, Split
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

# torchvision's ImageFolder extensions (the loader Tip-Adapter's ImageNet class goes through).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

RawSplit = tuple[list[str], list[int]]  # (ids relative to the dataset folder, labels)


def data_root(root: "str | Path | None") -> Path:
    """The parent data folder (CoOp's ``$DATA``): ``root``, or tipkit's download folder when None."""
    return Path(root).expanduser() if root is not None else paths.data_dir()


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def open_image(path: Path) -> Image.Image:
    """Open ``path`` as an RGB PIL image; a missing or undecodable file is a one-line TipkitError."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise TipkitError(f"image file missing: {path}") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... for bad files
        raise TipkitError(f"cannot read image {path} ({_reason(e)}); pass skip_corrupt=True to leave "
                          "unreadable files out, or replace the file") from None


def image_problem(path: Path) -> "str | None":
    """None when ``path`` opens, verifies and decodes (JPEGs at 1/8 scale, which still reads every
    byte, so truncation shows); otherwise a short reason (``missing`` or the decoder's error)."""
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            im.draft("RGB", (1, 1))
            im.load()
    except Exception as e:
        return f"unreadable ({_reason(e)})"
    return None


def list_images(folder: Path) -> list[str]:
    """Sorted names of the visible image files directly in ``folder``."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and not e.name.startswith(".")
                      and e.name.lower().endswith(IMG_EXTENSIONS))


def list_class_dirs(folder: Path) -> list[str]:
    """Sorted names of the visible sub-folders of ``folder``."""
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_dir() and not e.name.startswith("."))


def make_split(name: str, base: Path, ids: list[str], labels: "list[int] | np.ndarray") -> Split:
    """A lazy split: ``labels [N]`` int64 and ``load(i)`` opening ``base / ids[i]``."""
    ids = list(ids)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(ids) != len(lab):
        raise TipkitError(f"split {name!r}: {len(ids)} ids but {len(lab)} labels")

    def load(i: int) -> Image.Image:
        return open_image(base / ids[i])

    return Split(name, lab, load, ids)


def drop_unreadable(base: Path, raw: dict[str, RawSplit]) -> tuple[dict[str, RawSplit], list[str]]:
    """Check every file once (:func:`image_problem`); return the splits without bad files and the
    sorted full paths of the files left out."""
    ids = sorted({i for rel, _ in raw.values() for i in rel})
    log.info("checking %d image files under %s (skip_corrupt=True)", len(ids), base)
    bad = {}
    for rel in ids:
        why = image_problem(base / rel)
        if why is not None:
            bad[rel] = why
    if bad:
        first = next(iter(bad))
        log.warning("skipping %d unreadable image files under %s (first: %s, %s)", len(bad), base, first, bad[first])
    kept = {k: ([i for i in rel if i not in bad], [y for i, y in zip(rel, lab, strict=True) if i not in bad])
            for k, (rel, lab) in raw.items()}
    return kept, [str(base / rel) for rel in bad]


def finish(name: str, base: Path, classnames: list[str], templates: list[str], raw: dict[str, RawSplit], *,
           skip_corrupt: bool, aliases: "dict[str, str] | None" = None,
           cls: Callable[..., Dataset] = Dataset) -> Dataset:
    """Build the :class:`Dataset`: one lazy split per entry of ``raw`` (optionally without unreadable
    files), ``aliases`` naming extra splits that share another's Split (ImageNet: val -> test).

    The returned dataset carries ``skipped: list[str]``, the full paths left out (empty unless
    ``skip_corrupt``).
    """
    skipped: list[str] = []
    if skip_corrupt:
        raw, skipped = drop_unreadable(base, raw)
    splits = {k: make_split(k, base, rel, lab) for k, (rel, lab) in raw.items()}
    for alias, target in (aliases or {}).items():
        s = splits[target]
        splits[alias] = Split(alias, s.labels, s.load, s.ids)
    for k, s in splits.items():
        if len(s) == 0:
            raise TipkitError(f"{name}: split {k!r} under {base} holds no images")
    ds = cls(name, list(classnames), list(templates), splits)
    ds.skipped = skipped  # see the module docstring; a declared field of Dataset when tipkit.data has one
    return ds
