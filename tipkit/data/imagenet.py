"""ImageNet and its distribution-shift test sets, in CoOp's folder layout.

- ``imagenet``: ``<root>/imagenet/images/train/<wnid>/`` (the few-shot pool) and
  ``<root>/imagenet/images/val/<wnid>/``. As in CoOp and Tip-Adapter, ImageNet's val set is the test
  set *and* the val split (Tip-Adapter's ``main_imagenet.py`` searches α/β on it): ``splits["val"]``
  and ``splits["test"]`` hold the same 50,000 images.
- ``imagenet_v2``: ``<root>/imagenetv2/imagenetv2-matched-frequency-format-val/<0..999>/`` — folder
  name = label. Test only.
- ``imagenet_sketch``: ``<root>/imagenet-sketch/images/<wnid>/``. Test only.

Labels are positions in the sorted list of the 1000 WordNet ids (torchvision's ImageFolder order,
which Tip-Adapter's ImageNet loader uses), class names the curated list of
:func:`tipkit.data.classnames.imagenet_classnames` (CoOp's ``classnames.txt`` is not needed). Images are
listed per class in sorted file-name order, so the official sampler's draw is reproduced. A tree
with fewer than 1000 class folders still loads (labels keep their ImageNet positions) with a warning;
:func:`tipkit.data.check.check_dataset` reports the missing classes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tipkit.data.classnames import TEMPLATES, imagenet_classnames, imagenet_wnids
from tipkit.data.imagefiles import IMG_EXTENSIONS, RawSplit, data_root, finish, list_class_dirs, list_images
from tipkit.data.registry import Dataset, Split, register
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

IMAGENET_SOURCE = ("ImageNet cannot be downloaded automatically: get the ILSVRC2012 train and val sets from "
                   "https://image-net.org and arrange them as images/train/<wnid>/ and images/val/<wnid>/ "
                   "(https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md#imagenet)")
V2_DIR = "imagenetv2-matched-frequency-format-val"
V2_SOURCE = ("download https://s3-us-west-2.amazonaws.com/imagenetv2public/imagenetv2-matched-frequency.tar.gz "
             "(github.com/modestyachts/ImageNetV2) and extract it there")
SKETCH_SOURCE = ("download ImageNet-Sketch from https://github.com/HaohanWang/ImageNet-Sketch and put its "
                 "<wnid>/ folders there")
TEST_ONLY = ("imagenet_sketch", "imagenet_v2")


class TestOnlyDataset(Dataset):
    """A dataset with only a ``test`` split (distribution-shift evaluation); asking for another split
    says so instead of listing the known splits."""

    __test__ = False  # not a pytest test class

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise TipkitError(f"{self.name} is a test-only dataset (distribution shift): it has no {name!r} split "
                              f"to draw shots from or tune on; build the cache and search α/β on 'imagenet' and "
                              f"evaluate on {self.name}'s 'test' split")
        return self.splits[name]


def _need_dir(name: str, path: Path, how: str) -> None:
    if not path.is_dir():
        raise TipkitError(f"{name}: missing folder {path}; {how}")


def _wnid_split(name: str, base: Path, rel: str) -> RawSplit:
    """``(ids, labels)`` of ``base/rel/<wnid>/<file>``, classes and files sorted."""
    index = {w: i for i, w in enumerate(imagenet_wnids())}
    folder = base / rel
    dirs = list_class_dirs(folder)
    unknown = [d for d in dirs if d not in index]
    if unknown:
        raise TipkitError(f"{name}: folder {folder / unknown[0]} is not an ImageNet-1k class; class folders must "
                          "be WordNet ids like n01440764")
    if not dirs:
        loose = any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.iterdir())
        raise TipkitError(f"{name}: {folder} has no <wnid>/ class folders" + (
            " (its images lie flat: sort them into one folder per class, e.g. with torchvision.datasets.ImageNet's "
            "devkit step or the usual valprep.sh)" if loose else ""))
    if len(dirs) < 1000:
        log.warning("%s: only %d of 1000 class folders in %s; labels keep their ImageNet positions", name,
                    len(dirs), folder)
    ids, labels = [], []
    for d in dirs:
        files = list_images(folder / d)
        ids += [f"{rel}/{d}/{f}" for f in files]
        labels += [index[d]] * len(files)
    return ids, labels


@register("imagenet")
def imagenet(root: "str | Path | None" = None, download: bool = False, skip_corrupt: bool = False) -> Dataset:
    """ImageNet-1k: ``train`` (few-shot pool), ``test`` = ``val`` = ImageNet's val set (the official protocol).

    ``download`` is accepted for a uniform signature; ImageNet is never downloaded.
    """
    base = data_root(root) / "imagenet"
    for part in ("train", "val"):
        _need_dir("imagenet", base / "images" / part, IMAGENET_SOURCE)
    raw = {"train": _wnid_split("imagenet", base, "images/train"),
           "test": _wnid_split("imagenet", base, "images/val")}
    return finish("imagenet", base, list(imagenet_classnames()), TEMPLATES["imagenet"], raw,
                  skip_corrupt=skip_corrupt, aliases={"val": "test"})


@register("imagenet_v2")
def imagenet_v2(root: "str | Path | None" = None, download: bool = False, skip_corrupt: bool = False) -> Dataset:
    """ImageNet-V2 matched-frequency (10,000 images), test only; folder ``<label>/`` holds class ``label``."""
    base = data_root(root) / "imagenetv2"
    folder = base / V2_DIR
    _need_dir("imagenet_v2", folder, V2_SOURCE)
    dirs = list_class_dirs(folder)
    bad = [d for d in dirs if not (d.isdigit() and 0 <= int(d) < 1000)]
    if bad or not dirs:
        where = folder / bad[0] if bad else folder
        raise TipkitError(f"imagenet_v2: {where} is not a class folder; {V2_DIR}/ must hold folders 0..999")
    ids, labels = [], []
    for d in sorted(dirs, key=int):
        files = list_images(folder / d)
        ids += [f"{V2_DIR}/{d}/{f}" for f in files]
        labels += [int(d)] * len(files)
    return finish("imagenet_v2", base, list(imagenet_classnames()), TEMPLATES["imagenet_v2"],
                  {"test": (ids, labels)}, skip_corrupt=skip_corrupt, cls=TestOnlyDataset)


@register("imagenet_sketch")
def imagenet_sketch(root: "str | Path | None" = None, download: bool = False, skip_corrupt: bool = False) -> Dataset:
    """ImageNet-Sketch (50,889 images), test only: ``<root>/imagenet-sketch/images/<wnid>/``."""
    base = data_root(root) / "imagenet-sketch"
    _need_dir("imagenet_sketch", base / "images", SKETCH_SOURCE)
    raw = {"test": _wnid_split("imagenet_sketch", base, "images")}
    return finish("imagenet_sketch", base, list(imagenet_classnames()), TEMPLATES["imagenet_sketch"], raw,
                  skip_corrupt=skip_corrupt, cls=TestOnlyDataset)
