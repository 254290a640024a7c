"""The dataset registry: :class:`Split`, :class:`Dataset` and the name -> builder table.

A dataset is a registry entry (a builder) returning :class:`Dataset`: class names, prompt templates and
named splits (``train`` = the few-shot pool, ``val``, ``test``; Fashion-MNIST also has ``pretrain``, the
images the stand-in model was trained on, disjoint from all the others). Builders live in the modules
that :mod:`tipkit.data` imports explicitly; this module imports none of them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from tipkit.errors import choose


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
