"""Image files on disk: reading them, health checks, and assembling splits of file-backed datasets.

Every file-backed split keeps only relative ids (``str`` paths under the dataset folder, ``/``
separated) and opens ``<dataset folder>/<id>`` when image ``i`` is asked for, so building a split of a
million images reads no image. A file that is missing or does not decode raises a one-line
:class:`TipkitError` naming it; with ``skip_corrupt=True`` the builders check every file first
(:func:`image_problem`) and leave the bad ones out, recording them in ``Dataset.skipped``.

**One reader** (:func:`open_image`) turns every file into the RGB image a model sees, in one of two ways:

- ``"viewer"`` (``folder:`` datasets, ``tipkit predict``, :meth:`Adapter.predict`): the picture as an image
  viewer shows it. The EXIF orientation tag is applied (a portrait phone photo stored sideways is read
  upright); 16-bit grey images (modes ``I;16*`` and ``I``) are scaled to 8 bits (``v // 257``, so 65535 ->
  255), not clipped; palette, grey+alpha and RGBA images are composited on :data:`BACKGROUND` (white, as a
  viewer on a white page shows them); CMYK, YCbCr, LAB, HSV and 1-bit images are converted to RGB; an
  animated image (GIF, APNG, WebP) is read as its first frame.
- ``"official"`` (the paper's datasets: CoOp layout, ImageNet and its shifts): ``Image.open(path).convert("RGB")``
  exactly as the official Tip-Adapter/CoOp loaders read them (no EXIF rotation, PIL's own mode conversion),
  so features and accuracies stay identical to the authors' code (parity).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageOps

from tipkit import paths
from tipkit.data.registry import Dataset, Split
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

# torchvision's ImageFolder extensions (the loader Tip-Adapter's ImageNet class goes through).
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# What ``folder:`` datasets and ``predict`` read: the above and GIF (its first frame).
VIEWER_EXTENSIONS = IMG_EXTENSIONS + (".gif",)
READ_MODES = ("viewer", "official")
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
SKIP_HINT = "rerun with --skip-corrupt (config key skip_corrupt: true) to leave unreadable files out, or replace them"

RawSplit = tuple[list[str], list[int]]  # (ids relative to the dataset folder, labels)


def data_root(root: "str | Path | None") -> Path:
    """The parent data folder (CoOp's ``$DATA``): ``root``, or tipkit's download folder when None."""
    return Path(root).expanduser() if root is not None else paths.data_dir()


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def frames(im: Image.Image) -> int:
    """How many frames ``im`` holds (1 for a still image)."""
    return int(getattr(im, "n_frames", 1) or 1)


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as an 8-bit RGB image, as a viewer shows it (see the module docstring; EXIF not applied here)."""
    if im.mode in SIXTEEN_BIT:
        a = np.asarray(im, dtype=np.int64)
        return Image.fromarray((np.clip(a, 0, 65535) // 257).astype(np.uint8)).convert("RGB")  # 2-D uint8: "L"
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if a.size and np.nanmax(a) <= 1.0 else a  # float images in [0, 1], else read as [0, 255]
        return Image.fromarray(np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)).convert("RGB")
    if (im.mode == "P" and "transparency" in im.info) or im.mode in ("PA", "LA", "La", "RGBA", "RGBa"):
        rgba = im.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(back, rgba).convert("RGB")
    return im.convert("RGB")


def open_image(path: Path, how: str = "viewer") -> Image.Image:
    """Open ``path`` as an RGB PIL image read ``how`` (``"viewer"`` or ``"official"``: the module docstring);
    a missing or undecodable file is a one-line TipkitError naming it."""
    if how not in READ_MODES:
        raise TipkitError(f"unknown image read mode {how!r}; known: {', '.join(READ_MODES)}")
    try:
        with Image.open(path) as im:
            if how == "official":
                return im.convert("RGB")
            if frames(im) > 1:
                im.seek(0)
            return to_rgb(ImageOps.exif_transpose(im))
    except FileNotFoundError:
        raise TipkitError(f"image file missing: {path}") from None
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... for bad files
        raise TipkitError(f"cannot read image {path} ({_reason(e)}); {SKIP_HINT}") from None


def image_note(path: Path) -> "str | None":
    """What the viewer read does beyond decoding, worth telling (``animated, 12 frames: first frame
    read``), or None; for a file that does not open, None (see :func:`image_problem`)."""
    try:
        with Image.open(path) as im:
            n = frames(im)
    except Exception:
        return None
    return f"animated, {n} frames: first frame read" if n > 1 else None


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
            to_rgb(im)
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


def make_split(name: str, base: Path, ids: list[str], labels: "list[int] | np.ndarray",
               read: str = "official") -> Split:
    """A lazy split: ``labels [N]`` int64 and ``load(i)`` opening ``base / ids[i]`` (read ``read``)."""
    ids = list(ids)
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(ids) != len(lab):
        raise TipkitError(f"split {name!r}: {len(ids)} ids but {len(lab)} labels")

    def load(i: int) -> Image.Image:
        return open_image(base / ids[i], read)

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
           cls: Callable[..., Dataset] = Dataset, read: str = "official") -> Dataset:
    """Build the :class:`Dataset`: one lazy split per entry of ``raw`` (optionally without unreadable
    files), ``aliases`` naming extra splits that share another's Split (ImageNet: val -> test); images are
    read ``read`` (:func:`open_image`: ``"official"`` for the paper's datasets, ``"viewer"`` for your own).

    The returned dataset carries ``skipped: list[str]``, the full paths left out (empty unless
    ``skip_corrupt``).
    """
    skipped: list[str] = []
    if skip_corrupt:
        raw, skipped = drop_unreadable(base, raw)
    splits = {k: make_split(k, base, rel, lab, read) for k, (rel, lab) in raw.items()}
    for alias, target in (aliases or {}).items():
        s = splits[target]
        splits[alias] = Split(alias, s.labels, s.load, s.ids)
    for k, s in splits.items():
        if len(s) == 0:
            raise TipkitError(f"{name}: split {k!r} under {base} holds no images")
    ds = cls(name, list(classnames), list(templates), splits)
    ds.skipped = skipped  # see the module docstring; a declared field of Dataset when tipkit.data has one
    return ds
