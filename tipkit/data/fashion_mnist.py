"""Fashion-MNIST (Xiao et al. 2017): the embedded default dataset, with tipkit's fixed partition of the
60,000 training images into the stand-in's pretraining images, a validation split and the few-shot pool."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from tipkit import paths
from tipkit.data.registry import Dataset, Split, register
from tipkit.errors import TipkitError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# Fixed partition of the 60k training images, per class: 5000 pretrain / 200 val / 800 few-shot pool.
PARTITION_SEED = 0  # never the run seed: the partition is part of the dataset's definition
PER_CLASS = {"pretrain": 5000, "val": 200, "train": 800}


def read_idx(path: Path) -> np.ndarray:
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


def array_split(name: str, images: np.ndarray, labels: np.ndarray, prefix: str, idx: np.ndarray) -> Split:
    imgs, labs = images[idx], labels[idx].astype(np.int64)
    return Split(name, labs, lambda i: Image.fromarray(imgs[i], mode="L"), [f"{prefix}/{int(j)}" for j in idx])


@register("fashion-mnist")
def fashion_mnist(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017) with tipkit's fixed partition of the training images."""
    r = _find_fashion_root(root, download)
    tr_x, tr_y = (read_idx(r / f) for f in FASHION_FILES["train"])
    te_x, te_y = (read_idx(r / f) for f in FASHION_FILES["test"])
    part = fashion_partition(tr_y)
    splits = {k: array_split(k, tr_x, tr_y, "train", v) for k, v in part.items()}
    splits["test"] = array_split("test", te_x, te_y, "test", np.arange(len(te_y)))
    names = [c.lower() for c in FASHION_CLASSES]
    return Dataset("fashion-mnist", names, ["a photo of a {}."], splits)
