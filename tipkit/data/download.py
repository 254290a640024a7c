"""Fetch the paper's images with torchvision where torchvision can, into CoOp's folder layout.

torchvision (0.19+) downloads DTD, EuroSAT, Flowers102, Food101, Oxford-IIIT Pets, Caltech101,
FGVC-Aircraft and SUN397, MD5-checked, each into its own folder layout; :func:`fetch` lets the
torchvision class download into a staging folder under the data root and moves the image folder to
where CoOp's DATASETS.md puts it. ImageNet, its shifted versions, StanfordCars (torchvision's
download is gone) and UCF101's mid-frames cannot be fetched, nor can any ``split_zhou_*.json``
(CoOp's Google-Drive files): for those the loaders raise an error naming the file and its source.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

STAGING = ".tipkit-download"  # under the data root; removed after a successful fetch


@dataclass(frozen=True)
class Fetch:
    tv_class: str  # torchvision.datasets class name
    moves: tuple[tuple[str, str], ...]  # (path under the staging folder, path under the dataset folder)


# Registry name -> how torchvision fetches it and what to move where (CoOp DATASETS.md layout).
FETCHABLE: dict[str, Fetch] = {
    "caltech101": Fetch("Caltech101", (("caltech101/101_ObjectCategories", "101_ObjectCategories"),)),
    "dtd": Fetch("DTD", (("dtd/dtd/images", "images"),)),
    "eurosat": Fetch("EuroSAT", (("eurosat/2750", "2750"),)),
    "fgvc_aircraft": Fetch("FGVCAircraft", (("fgvc-aircraft-2013b/data", "."),)),
    "flowers102": Fetch("Flowers102", (("flowers-102/jpg", "jpg"), ("flowers-102/imagelabels.mat", "imagelabels.mat"))),
    "food101": Fetch("Food101", (("food-101/images", "images"), ("food-101/meta", "meta"))),
    "oxford_pets": Fetch("OxfordIIITPet", (("oxford-iiit-pet/images", "images"),
                                           ("oxford-iiit-pet/annotations", "annotations"))),
    "sun397": Fetch("SUN397", (("SUN397", "SUN397"),)),
}


def fetch(name: str, dataset_dir: Path) -> None:
    """Download dataset ``name`` with torchvision and arrange it under ``dataset_dir`` (CoOp layout).

    Raises a one-line :class:`TipkitError` when the download fails or the archive's layout is not the
    expected one. Existing files under ``dataset_dir`` are kept (a moved path never overwrites one).
    """
    spec = FETCHABLE.get(name)
    if spec is None:
        raise TipkitError(f"torchvision cannot download {name!r}; it can fetch: {', '.join(sorted(FETCHABLE))}")
    import torchvision.datasets as tvd

    staging = dataset_dir.parent / STAGING / name
    staging.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s with torchvision.datasets.%s into %s (large; MD5-checked)", name, spec.tv_class, staging)
    try:
        getattr(tvd, spec.tv_class)(root=str(staging), download=True)
    except Exception as e:  # network and archive errors vary by platform
        first = (str(e).splitlines() or [""])[0]
        raise TipkitError(f"{name}: torchvision.datasets.{spec.tv_class} download into {staging} failed "
                          f"({type(e).__name__}: {first}); fetch the files by hand as CoOp's DATASETS.md "
                          "describes (github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md)") from None
    for src_rel, dst_rel in spec.moves:
        src = staging / src_rel
        if not src.exists():
            raise TipkitError(f"{name}: torchvision's download has no {src}; the archive layout changed — "
                              "arrange the files by hand as CoOp's DATASETS.md describes")
        dst = dataset_dir / dst_rel
        if dst_rel == ".":  # the whole folder is the dataset folder (FGVC-Aircraft's data/)
            dataset_dir.mkdir(parents=True, exist_ok=True)
            for child in src.iterdir():
                if not (dataset_dir / child.name).exists():
                    shutil.move(str(child), str(dataset_dir / child.name))
        elif not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), str(dst))
    shutil.rmtree(staging, ignore_errors=True)
    log.info("%s images are in %s", name, dataset_dir)
