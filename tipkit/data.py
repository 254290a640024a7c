"""Stage 0: datasets and few-shot sampling.

A dataset is a registry entry (a builder) returning :class:`Dataset`: class
names, prompt templates and named splits (``train`` = the few-shot pool,
``val``, ``test``; the Fashion-MNIST entry also has ``pretrain``, the images the
stand-in model was trained on, disjoint from all the others).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from . import paths
from .errors import TipkitError, choose

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One split: ``labels [N]`` and a way to load image ``i`` as a PIL image."""

    name: str
    labels: np.ndarray
    load: Callable[[int], Image.Image] = field(repr=False)
    ids: list[str] = field(repr=False)  # stable per-image identifiers (for manifests and cache keys)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        return self.load(int(i))

    def fingerprint(self, indices: "np.ndarray | list[int] | None" = None) -> str:
        """Hash of the image ids and labels selected by ``indices`` (all when None)."""
        idx = range(len(self)) if indices is None else [int(i) for i in indices]
        h = hashlib.sha256()
        for i in idx:
            h.update(f"{self.ids[i]}:{int(self.labels[i])};".encode())
        return h.hexdigest()


@dataclass
class Dataset:
    name: str
    classnames: list[str]
    templates: list[str]
    splits: dict[str, Split]
    skipped: list[str] = field(default_factory=list)  # image files the loader left out (skip_corrupt=True)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def split(self, name: str) -> Split:
        return self.splits[choose("split", name, list(self.splits))]


_REGISTRY: dict[str, Callable[..., Dataset]] = {}


def register(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = fn
        return fn
    return deco


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def get_dataset(name: str, root: "str | Path | None" = None, download: bool = True, **options: object) -> Dataset:
    """Build a registered dataset; ``root`` overrides where its files are looked for; ``options`` go to
    the builder (e.g. ``skip_corrupt=True`` for the paper's datasets)."""
    return _REGISTRY[choose("dataset", name, list_datasets())](root=root, download=download, **options)


def dataset_for(cfg: object) -> Dataset:
    """The dataset a run config names (``dataset``, ``data_root``, ``skip_corrupt``)."""
    options = {"skip_corrupt": True} if getattr(cfg, "skip_corrupt", False) else {}
    return get_dataset(cfg.dataset, root=cfg.data_root, download=getattr(cfg, "download", False),
                       **options)  # type: ignore[attr-defined]


def few_shot_for(cfg: object, train: Split, shots: "int | None" = None) -> np.ndarray:
    """The few-shot draw of a run config: tipkit's sampler or the official one (``cfg.sampler``)."""
    k, seed = shots or cfg.shots, cfg.seed  # type: ignore[attr-defined]
    if getattr(cfg, "sampler", "tipkit") == "official":
        from .fewshot_official import sample_few_shot_official

        return sample_few_shot_official(train.labels, k, seed)
    return sample_few_shot(train.labels, k, seed)


# --------------------------------------------------------------------------- Fashion-MNIST
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# Fixed partition of the 60k training images, per class: 5000 pretrain / 200 val / 800 few-shot pool.
PARTITION_SEED = 0  # never the run seed: the partition is part of the dataset's definition
PER_CLASS = {"pretrain": 5000, "val": 200, "train": 800}


def _read_idx(path: Path) -> np.ndarray:
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise TipkitError(f"{path} is not an IDX ubyte file (magic {magic:#x})")
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise TipkitError(f"{path} is truncated: {arr.size} bytes for shape {shape}")
    return arr.reshape(shape)


def _find_fashion_root(root: "str | Path | None", download: bool) -> Path:
    candidates = [Path(root)] if root else [paths.DEBIAN_FASHION_MNIST, paths.data_dir() / "FashionMNIST" / "raw"]
    for c in candidates:
        if all((c / f).exists() for pair in FASHION_FILES.values() for f in pair):
            return c
    where = " or ".join(str(c) for c in candidates)
    if download and root is None:
        try:
            from torchvision.datasets import FashionMNIST

            for train in (True, False):
                FashionMNIST(str(paths.data_dir()), train=train, download=True)
            return paths.data_dir() / "FashionMNIST" / "raw"
        except Exception as e:  # network errors vary by platform
            raise TipkitError(f"Fashion-MNIST not found in {where} and download failed ({type(e).__name__}); "
                              "install the Debian package dataset-fashion-mnist or pass --data-root DIR") from None
    raise TipkitError(f"Fashion-MNIST not found in {where}; install the Debian package "
                      "dataset-fashion-mnist or pass --data-root DIR")


def fashion_partition(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Split the 60k training indices into disjoint pretrain / val / train parts (stratified, fixed)."""
    rng = np.random.default_rng(PARTITION_SEED)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in PER_CLASS}
    for c in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for k, n in PER_CLASS.items():
            parts[k].append(idx[start:start + n])
            start += n
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def _array_split(name: str, images: np.ndarray, labels: np.ndarray, prefix: str, idx: np.ndarray) -> Split:
    imgs, labs = images[idx], labels[idx].astype(np.int64)
    return Split(name, labs, lambda i: Image.fromarray(imgs[i], mode="L"), [f"{prefix}/{int(j)}" for j in idx])


@register("fashion-mnist")
def fashion_mnist(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) with tipkit's fixed partition of the training images."""
    r = _find_fashion_root(root, download)
    tr_x, tr_y = (_read_idx(r / f) for f in FASHION_FILES["train"])
    te_x, te_y = (_read_idx(r / f) for f in FASHION_FILES["test"])
    part = fashion_partition(tr_y)
    splits = {k: _array_split(k, tr_x, tr_y, "train", v) for k, v in part.items()}
    splits["test"] = _array_split("test", te_x, te_y, "test", np.arange(len(te_y)))
    names = [c.lower() for c in FASHION_CLASSES]
    return Dataset("fashion-mnist", names, ["a photo of a {}."], splits)


# --------------------------------------------------------------------------- synthetic (smoke tests)
SYNTH_CLASSES = ["horizontal stripes", "vertical stripes", "checkerboard", "blob"]


def synthetic_images(labels: np.ndarray, seed: int, size: int = 28) -> np.ndarray:
    """Noisy class-specific patterns ``[N, size, size]`` uint8, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = [(yy // 4) % 2, (xx // 4) % 2, ((yy // 4) + (xx // 4)) % 2,
            ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2)]
    out = np.stack([base[int(c)] * 200.0 for c in labels]) + rng.normal(0, 40, (len(labels), size, size))
    return np.clip(out, 0, 255).astype(np.uint8)


@register("synthetic")
def synthetic(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """A tiny generated dataset (4 classes, 28×28) for smoke tests; needs no files."""
    sizes = {"train": 20, "val": 5, "test": 10}
    splits = {}
    for s, (name, n) in enumerate(sizes.items()):
        labels = np.repeat(np.arange(len(SYNTH_CLASSES)), n)
        splits[name] = _array_split(name, synthetic_images(labels, seed=s), labels, name, np.arange(len(labels)))
    return Dataset("synthetic", list(SYNTH_CLASSES), ["a photo of {}."], splits)


# --------------------------------------------------------------------------- few-shot sampling
def sample_few_shot(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Pick ``shots`` indices per class from ``labels [N]``, deterministically in ``seed``.

    Returns indices ``[C·shots]`` grouped by class (class 0 first). Sampling is
    without replacement; a class with fewer than ``shots`` images is an error.
    """
    if isinstance(shots, bool) or int(shots) != shots or shots <= 0:
        raise TipkitError(f"shots must be a positive integer, got {shots!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels):
        pool = np.flatnonzero(labels == c)
        if len(pool) < shots:
            raise TipkitError(f"shots={shots} is more than class {int(c)} holds ({len(pool)} images); "
                              f"use shots <= {min(np.bincount(labels)[np.unique(labels)])}")
        out.append(rng.choice(pool, size=int(shots), replace=False))
    return np.concatenate(out)


def val_for(cfg: object, val: Split) -> np.ndarray:
    """The validation images a run may choose on: all of them under the ``paper`` protocol (Tip-Adapter's
    code), ``min(K, 4)`` per class under ``clean`` (CoOp's), drawn with the run's sampler and seed."""
    if getattr(cfg, "protocol", "clean") == "paper":
        return np.arange(len(val))
    k, seed = min(int(cfg.shots), 4), cfg.seed  # type: ignore[attr-defined]
    if getattr(cfg, "sampler", "tipkit") == "official":
        from .fewshot_official import reduce_val_official

        return reduce_val_official(val.labels, k, seed)
    return np.sort(sample_few_shot(val.labels, k, seed + 7919))  # its own stream: not the train draw's


def manifest(split: Split, indices: np.ndarray) -> list[dict]:
    """The chosen images as ``[{"index", "id", "label"}]``, saved with every run."""
    return [{"index": int(i), "id": split.ids[int(i)], "label": int(split.labels[int(i)])} for i in indices]


from . import datasets_paper  # noqa: E402,F401  (registers the paper's datasets)
