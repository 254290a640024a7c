"""Stage 0 at paper scale: the 11 datasets of Tip-Adapter's few-shot tables plus ImageNet-V2/-Sketch.

Each loader reads the folder layout of CoOp's DATASETS.md under one parent data folder (``root``;
default :func:`tipkit.paths.data_dir`) and returns a :class:`tipkit.data.Dataset` whose splits are
the fixed CoOp splits, in the split file's order (so :func:`sample_few_shot_official` reproduces the
official few-shot draw):

==============  =========================  ==============================================================
registry name   folder under ``root``      split source
==============  =========================  ==============================================================
caltech101      caltech-101/               split_zhou_Caltech101.json, images in 101_ObjectCategories/
dtd             dtd/                       split_zhou_DescribableTextures.json, images in images/
eurosat         eurosat/                   split_zhou_EuroSAT.json, images in 2750/
fgvc_aircraft   fgvc_aircraft/             images_variant_{train,val,test}.txt + variants.txt, images/
flowers102      oxford_flowers/            split_zhou_OxfordFlowers.json, images in jpg/
food101         food-101/                  split_zhou_Food101.json, images in images/
oxford_pets     oxford_pets/               split_zhou_OxfordPets.json, images in images/
stanford_cars   stanford_cars/             split_zhou_StanfordCars.json, images in cars_train/, cars_test/
sun397          sun397/                    split_zhou_SUN397.json, images in SUN397/
ucf101          ucf101/                    split_zhou_UCF101.json, mid-frames in UCF-101-midframes/
==============  =========================  ==============================================================

``imagenet``, ``imagenet_v2`` and ``imagenet_sketch`` live in :mod:`tipkit.data.imagenet`.

Class names come from the split files (label order), ``_`` turned into spaces; templates are the
paper's (:mod:`tipkit.data.classnames`). Caltech101 leaves out BACKGROUND_Google and Faces_easy (CoOp's
split file already does). Split ``ids`` are image paths relative to the dataset folder.

Builders take ``(root=None, download=False, skip_corrupt=False)``. ``download=True`` lets torchvision
fetch the images it can (:mod:`tipkit.data.download`) — only once the split file is in place,
since no split file can be downloaded. ``skip_corrupt=True`` checks every image first and leaves the
unreadable ones out (listed in ``Dataset.skipped``); without it a bad file raises when it is loaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tipkit.data.classnames import NUM_CLASSES, TEMPLATES, clean
from tipkit.data.download import FETCHABLE, fetch
from tipkit.data.fewshot_official import coop_few_shot, reduce_val_official, sample_few_shot_official  # noqa: F401
from tipkit.data.imagefiles import RawSplit, data_root, finish
from tipkit.data.imagenet import TEST_ONLY
from tipkit.data.registry import Dataset, register
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

COOP_DATASETS_MD = "https://github.com/KaiyangZhou/CoOp/blob/main/DATASETS.md"
SPLITS = ("train", "val", "test")
CALTECH_IGNORED = ("BACKGROUND_Google", "Faces_easy")


@dataclass(frozen=True)
class Layout:
    folder: str  # under the data root
    image_dirs: tuple[str, ...]  # folders under `folder` that must exist
    prefix: str  # what split-file paths are relative to, under `folder` ("" = the folder itself)
    split_file: "str | None"  # CoOp's split file (None: FGVCAircraft's own lists)
    gdrive: "str | None"  # Google-Drive file id of the split file, as linked from CoOp's DATASETS.md
    source: str  # where the images come from


LAYOUTS: dict[str, Layout] = {
    "caltech101": Layout("caltech-101", ("101_ObjectCategories",), "101_ObjectCategories",
                         "split_zhou_Caltech101.json", "1hyarUivQE36mY6jSomru6Fjd-JzwcCzN",
                         "101_ObjectCategories.tar.gz from https://data.caltech.edu/records/mzrjq-6wc02"),
    "dtd": Layout("dtd", ("images",), "images", "split_zhou_DescribableTextures.json",
                  "1u3_QfB467jqHgNXC00UIzbLZRQCg2S7x",
                  "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz"),
    "eurosat": Layout("eurosat", ("2750",), "2750", "split_zhou_EuroSAT.json", "1Ip7yaCWFi0eaOFUGga0lUdVi_DDQth1o",
                      "EuroSAT.zip (RGB) from https://github.com/phelber/eurosat"),
    "fgvc_aircraft": Layout("fgvc_aircraft", ("images",), "images", None, None,
                            "the data/ folder of https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/"
                            "fgvc-aircraft-2013b.tar.gz, renamed to fgvc_aircraft/"),
    "flowers102": Layout("oxford_flowers", ("jpg",), "jpg", "split_zhou_OxfordFlowers.json",
                         "1Pp0sRXzZFZq15zVOzKjKBu4A9i01nozT",
                         "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz"),
    "food101": Layout("food-101", ("images",), "images", "split_zhou_Food101.json",
                      "1QK0tGi096I0Ba6kggatX1ee6dJFIcEJl",
                      "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ (food-101.tar.gz)"),
    "oxford_pets": Layout("oxford_pets", ("images",), "images", "split_zhou_OxfordPets.json",
                          "1501r8Ber4nNKvmlFVQZ8SeUHTcdTTEqs",
                          "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"),
    "stanford_cars": Layout("stanford_cars", ("cars_train", "cars_test"), "", "split_zhou_StanfordCars.json",
                            "1ObCFbaAgVu0I-k_Au-gIUcefirdAuizT",
                            "cars_train.tgz and cars_test.tgz (the original Stanford links are gone; "
                            "see CoOp's DATASETS.md and its issues for mirrors)"),
    "sun397": Layout("sun397", ("SUN397",), "SUN397", "split_zhou_SUN397.json", "1y2RD81BYuiyvebdN-JymPfyWYcd8_MUq",
                     "http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz"),
    "ucf101": Layout("ucf101", ("UCF-101-midframes",), "UCF-101-midframes", "split_zhou_UCF101.json",
                     "1I0S0q91hJfsV9Gf4xDIjgDq4AqBNJb1y",
                     "UCF-101-midframes.zip (CoOp's extracted middle frames) from "
                     "https://drive.google.com/file/d/10Jqome3vtUA2keJkNanAiFpgbyC9Hc2O/view"),
}


def gdrive_url(file_id: str) -> str:
    return f"https://drive.google.com/file/d/{file_id}/view"


def missing_split_message(name: str, root: Path) -> str:
    """One line: which split file is missing, where to get it and where to put it."""
    lay = LAYOUTS[name]
    path = root / lay.folder / lay.split_file
    hint = (f" (root must be the parent data folder, not {root} itself)"
            if (root / lay.split_file).is_file() else "")
    return (f"{name}: missing split file {path}{hint}; download {lay.split_file} from {gdrive_url(lay.gdrive)} "
            f"(CoOp's fixed split, linked from {COOP_DATASETS_MD}) into {path.parent}")


def missing_images_message(name: str, path: Path, download: bool) -> str:
    """One line: which image folder/file is missing and where the images come from."""
    lay = LAYOUTS[name]
    how = "; or pass download=True to let torchvision fetch them" if name in FETCHABLE and not download else ""
    return f"{name}: missing {path}; get the images from {lay.source} (layout: {COOP_DATASETS_MD}){how}"


def _ensure_images(name: str, root: Path, download: bool, extra: tuple[str, ...] = ()) -> Path:
    """The dataset folder, once its image folders (and ``extra`` files) exist; fetches them when allowed."""
    lay = LAYOUTS[name]
    folder = root / lay.folder
    need = [folder / d for d in lay.image_dirs] + [folder / f for f in extra]
    if any(not p.exists() for p in need) and download and name in FETCHABLE:
        fetch(name, folder)
    for p in need:
        if not p.exists():
            raise TipkitError(missing_images_message(name, p, download))
    return folder


def read_coop_split(path: Path) -> dict[str, list[tuple[str, int, str]]]:
    """CoOp's ``split_zhou_*.json``: ``{"train"|"val"|"test": [[relative path, label, class name], ...]}``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TipkitError(f"{path} is not valid JSON ({_first(e)}); download it again") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in SPLITS):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise TipkitError(f"{path} is not a CoOp split file: expected lists under train, val, test; got {got}")
    out: dict[str, list[tuple[str, int, str]]] = {}
    for k in SPLITS:
        rows = []
        for j, e in enumerate(data[k]):
            if not (isinstance(e, (list, tuple)) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[2], str)
                    and isinstance(e[1], int) and not isinstance(e[1], bool) and e[1] >= 0):
                raise TipkitError(f"{path}: {k}[{j}] is {e!r}; expected [relative image path, label >= 0, class name]")
            rows.append((e[0], e[1], e[2]))
        out[k] = rows
    return out


def _first(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def classnames_from_rows(source: Path, rows: "list[tuple[str, int, str]]") -> list[str]:
    """Class names ``[C]`` in label order from ``(path, label, name)`` rows; labels must be 0..C-1."""
    names: dict[int, str] = {}
    for _, y, c in rows:
        if names.setdefault(y, c) != c:
            raise TipkitError(f"{source}: label {y} is named both {names[y]!r} and {c!r}")
    missing = sorted(set(range(max(names, default=-1) + 1)) - set(names))
    if not names or missing:
        raise TipkitError(f"{source}: labels must run 0..C-1 without gaps; label {missing[0] if missing else 0} "
                          "has no image")
    return [clean(names[y]) for y in range(len(names))]


def _json_dataset(name: str, root: "str | Path | None", download: bool, skip_corrupt: bool) -> Dataset:
    lay, r = LAYOUTS[name], data_root(root)
    split_path = r / lay.folder / lay.split_file
    if not split_path.is_file():
        raise TipkitError(missing_split_message(name, r))
    rows = read_coop_split(split_path)
    folder = _ensure_images(name, r, download)
    if name == "caltech101":
        rows = {k: [e for e in v if e[0].split("/")[0] not in CALTECH_IGNORED] for k, v in rows.items()}
    classnames = classnames_from_rows(split_path, [e for k in SPLITS for e in rows[k]])
    pre = f"{lay.prefix}/" if lay.prefix else ""
    raw: dict[str, RawSplit] = {k: ([pre + p for p, _, _ in v], [y for _, y, _ in v]) for k, v in rows.items()}
    return finish(name, folder, classnames, TEMPLATES[name], raw, skip_corrupt=skip_corrupt)


def _json_builder(name: str) -> "Callable[..., Dataset]":
    """The registry builder of one split-file dataset (its folder layout is ``LAYOUTS[name]``)."""

    def build(root: "str | Path | None" = None, download: bool = False, skip_corrupt: bool = False) -> Dataset:
        return _json_dataset(name, root, download, skip_corrupt)

    build.__name__ = name
    build.__doc__ = f"{name} in CoOp's layout: ``<root>/{LAYOUTS[name].folder}/`` with its split_zhou JSON."
    return build


for _name in sorted(set(LAYOUTS) - {"fgvc_aircraft"}):  # the nine datasets read through CoOp's split files
    register(_name)(_json_builder(_name))


@register("fgvc_aircraft")
def fgvc_aircraft(root: "str | Path | None" = None, download: bool = False, skip_corrupt: bool = False) -> Dataset:
    """FGVC-Aircraft variants (100): ``<root>/fgvc_aircraft/`` = the archive's ``data/`` folder, read
    through ``variants.txt`` (label order) and ``images_variant_{train,val,test}.txt``."""
    r = data_root(root)
    lists = ("variants.txt",) + tuple(f"images_variant_{k}.txt" for k in SPLITS)
    folder = _ensure_images("fgvc_aircraft", r, download, extra=lists)
    variants = [ln.strip() for ln in (folder / "variants.txt").read_text(encoding="utf-8").splitlines() if ln.strip()]
    lab = {c: i for i, c in enumerate(variants)}
    raw: dict[str, RawSplit] = {}
    for k in SPLITS:
        path, ids, labels = folder / f"images_variant_{k}.txt", [], []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            image, _, variant = line.strip().partition(" ")
            if variant not in lab:
                raise TipkitError(f"{path}:{n}: variant {variant!r} is not in {folder / 'variants.txt'}")
            ids.append(f"images/{image}.jpg")
            labels.append(lab[variant])
        raw[k] = (ids, labels)
    return finish("fgvc_aircraft", folder, [clean(c) for c in variants], TEMPLATES["fgvc_aircraft"], raw,
                  skip_corrupt=skip_corrupt)


IMAGENET_FOLDERS = {"imagenet": "imagenet", "imagenet_v2": "imagenetv2", "imagenet_sketch": "imagenet-sketch"}


def dataset_folder(name: str, root: "str | Path | None" = None) -> Path:
    """The folder that dataset ``name``'s split ids are relative to: ``<root>/<folder>``."""
    folder = LAYOUTS[name].folder if name in LAYOUTS else IMAGENET_FOLDERS.get(name)
    if folder is None:
        raise TipkitError(f"unknown paper dataset {name!r}; known: {', '.join(sorted(NUM_CLASSES))}")
    return data_root(root) / folder


PAPER_DATASETS: tuple[str, ...] = tuple(sorted(NUM_CLASSES))
FEW_SHOT_DATASETS: tuple[str, ...] = tuple(n for n in PAPER_DATASETS if n not in TEST_ONLY)
__all__ = ["PAPER_DATASETS", "FEW_SHOT_DATASETS", "LAYOUTS", "data_root", "dataset_folder", "sample_few_shot_official",
           "reduce_val_official", "coop_few_shot", "read_coop_split"]
