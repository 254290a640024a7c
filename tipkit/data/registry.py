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

from tipkit.errors import TipkitError, choose


@dataclass
class Split:
    """One split: ``labels [N]`` and a way to load image ``i`` as a PIL image."""

    name: str
    labels: np.ndarray
    load: Callable[[int], Image.Image] = field(repr=False)
    ids: list[str] = field(repr=False)  # stable per-image identifiers (for manifests and cache keys)
    salt: str = field(default="", repr=False)  # what else defines the images (folder datasets: split rule, file stamps)

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        return self.load(int(i))

    def fingerprint(self, indices: "np.ndarray | list[int] | None" = None) -> str:
        """Hash of the image ids and labels selected by ``indices`` (all when None), and of ``salt``
        when the split has one (a folder dataset's split rule and file sizes/mtimes)."""
        idx = range(len(self)) if indices is None else [int(i) for i in indices]
        h = hashlib.sha256()
        if self.salt:
            h.update(f"salt:{self.salt};".encode())
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
    info: dict = field(default_factory=dict)  # how it was built, for the run record (folder datasets: layout, split)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def split(self, name: str) -> Split:
        return self.splits[choose("split", name, list(self.splits))]


_REGISTRY: dict[str, Callable[..., Dataset]] = {}
_PREFIXES: dict[str, Callable[..., Dataset]] = {}  # "folder:" -> builder(spec, root=..., ...)


def register(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = fn
        return fn
    return deco


def register_prefix(prefix: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Register a builder for every name ``<prefix><spec>`` (``folder:PATH``); it is called with ``spec``."""
    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _PREFIXES[prefix] = fn
        return fn
    return deco


def list_datasets() -> list[str]:
    """The registered names (datasets named by a prefix, ``folder:PATH``, are not listed)."""
    return sorted(_REGISTRY)


def get_dataset(name: str, root: "str | Path | None" = None, download: bool = True, **options: object) -> Dataset:
    """Build a registered dataset, or one named by a prefix (``folder:PATH``: an image folder of your own);
    ``root`` overrides where its files are looked for; ``options`` go to the builder (e.g.
    ``skip_corrupt=True`` for the paper's and folder datasets)."""
    if not isinstance(name, str):
        raise TipkitError(f"a dataset name must be a string, got {name!r}")
    for prefix, build in _PREFIXES.items():
        if name.startswith(prefix):
            return build(name[len(prefix):], root=root, download=download, **options)
    if name not in _REGISTRY:
        also = "".join(f", or {p}PATH" for p in sorted(_PREFIXES))
        raise TipkitError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}{also}")
    return _REGISTRY[name](root=root, download=download, **options)


def dataset_for(cfg: object) -> Dataset:
    """The dataset a run config names (``dataset``, ``data_root``, ``skip_corrupt``)."""
    options = {"skip_corrupt": True} if getattr(cfg, "skip_corrupt", False) else {}
    return get_dataset(cfg.dataset, root=cfg.data_root, download=getattr(cfg, "download", False),
                       **options)  # type: ignore[attr-defined]
