"""Fake paper-dataset trees for the ``test_datasets_*`` tests: the real folder layouts and split-file
formats (CoOp's ``split_zhou_*.json``, FGVC-Aircraft's lists, ImageNet's ``<wnid>/`` folders) with a
few tiny images per class. Nothing here downloads.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tipkit.data import paper as dp

JSON_DATASETS = tuple(sorted(dp.LAYOUTS.keys() - {"fgvc_aircraft"}))
SIZES = {"train": 5, "val": 2, "test": 3}
# Names with underscores, as in the real split files (UCF101, Food-101); labels are given out of
# order of first appearance on purpose (class 2 comes first in every list).
CLASSNAMES = ["Apply_Eye_Makeup", "apple_pie", "Band Marching"]
ORDER = [2, 0, 1]


def jpeg_bytes(seed: int = 0, size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def write_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg_bytes(seed))
    return path


def write_json_tree(root: Path, name: str, sizes: "dict[str, int] | None" = None,
                    classnames: "list[str] | None" = None, images: bool = True) -> dict:
    """A fake ``<root>/<folder>/`` for a split-file dataset; returns the split dict written."""
    lay = dp.LAYOUTS[name]
    folder = root / lay.folder
    sizes = sizes or SIZES
    names = classnames or CLASSNAMES
    split: dict[str, list] = {}
    n = 0
    for k, per_class in sizes.items():
        rows = []
        for i in range(per_class):
            for c in [c for c in ORDER if c < len(names)] + list(range(len(ORDER), len(names))):
                if name == "stanford_cars":
                    rel = f"{'cars_test' if k == 'test' else 'cars_train'}/{n:05d}.jpg"
                else:
                    rel = f"{names[c].replace(' ', '_')}/{k}_{i}.jpg"
                rows.append([rel, c, names[c]])
                n += 1
        split[k] = rows
    folder.mkdir(parents=True, exist_ok=True)
    (folder / lay.split_file).write_text(json.dumps(split))
    for d in lay.image_dirs:
        (folder / d).mkdir(parents=True, exist_ok=True)
    if images:
        base = folder / lay.prefix if lay.prefix else folder
        for j, (rel, _, _) in enumerate(e for v in split.values() for e in v):
            write_image(base / rel, seed=j)
    return split


FGVC_VARIANTS = ["707-320", "A300B4", "F/A-18"]


def write_fgvc_tree(root: Path, per_class: int = 2) -> Path:
    folder = root / "fgvc_aircraft"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "variants.txt").write_text("\n".join(FGVC_VARIANTS) + "\n")
    n = 1000000
    for k in ("train", "val", "test"):
        lines = []
        for _ in range(per_class):
            for c in ORDER:
                lines.append(f"{n} {FGVC_VARIANTS[c]}")
                write_image(folder / "images" / f"{n}.jpg", seed=n)
                n += 1
        (folder / f"images_variant_{k}.txt").write_text("\n".join(lines) + "\n")
    return folder


IMAGENET_LABELS = [0, 5, 999]  # positions in the sorted 1000 WordNet ids


def write_imagenet_tree(root: Path, train: int = 3, val: int = 2) -> Path:
    from tipkit.data.classnames import imagenet_wnids

    base = root / "imagenet" / "images"
    for y in IMAGENET_LABELS:
        w = imagenet_wnids()[y]
        for i in range(train):
            write_image(base / "train" / w / f"{w}_{100 - i}.JPEG", seed=y * 10 + i)
        for i in range(val):
            write_image(base / "val" / w / f"ILSVRC2012_val_{y:04d}{i}.JPEG", seed=y * 10 + i)
    return root / "imagenet"


def write_v2_tree(root: Path, per_class: int = 2) -> Path:
    folder = root / "imagenetv2" / "imagenetv2-matched-frequency-format-val"
    for y in IMAGENET_LABELS:
        for i in range(per_class):
            write_image(folder / str(y) / f"{i}abc.jpeg", seed=y + i)
    return folder


def write_sketch_tree(root: Path, per_class: int = 2) -> Path:
    from tipkit.data.classnames import imagenet_wnids

    folder = root / "imagenet-sketch" / "images"
    for y in IMAGENET_LABELS:
        for i in range(per_class):
            write_image(folder / imagenet_wnids()[y] / f"sketch_{i}.JPEG", seed=y + i)
    return folder
