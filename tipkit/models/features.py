"""Stage 1 of the paper: CLIP features through open_clip, with an on-disk cache.

Image features are stored **raw** (as the encoder returns them): the cache keys
are the mean of raw view features, L2-normalised afterwards (as the official
code does); query features are normalised with :func:`tipkit.core.cache.l2_normalize`.
Every cached store is keyed by a hash of all its inputs, so a changed input can
never reuse a stale file; images are stored by index, so the 1-shot and 16-shot
runs of a sweep share the rows they have in common. The store itself (append-only
shards, no locks, damaged shards moved aside and recomputed) is :mod:`tipkit.models.store`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torchvision import transforms as T
from tqdm.auto import tqdm

from tipkit import paths
from tipkit.data.registry import Split
from tipkit.errors import TipkitError
from tipkit.io import write_json
from tipkit.models.backbone import Backbone, autocast
from tipkit.models.store import SHARD_FORMAT, FeatureStore
from tipkit.version import __version__

log = logging.getLogger(__name__)
STORE_FORMAT = SHARD_FORMAT  # layout of a store (a folder of shards); part of every key
SHARD_ROWS = 10_000  # a long extraction writes a shard about this often, so a killed one keeps its work
META = "meta.json"


def view_transform(image_size: int, mean: tuple, std: tuple) -> T.Compose:
    """The paper's augmentation for cache views: RandomResizedCrop(scale 0.5–1, bicubic) + flip."""
    return T.Compose([T.Lambda(lambda im: im.convert("RGB")),
                      T.RandomResizedCrop(image_size, scale=(0.5, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                      T.RandomHorizontalFlip(p=0.5), T.ToTensor(), T.Normalize(mean, std)])


def _transform_for(bb: Backbone, view: "int | None") -> T.Compose:
    if view is None:
        return bb.preprocess
    norm = next(t for t in bb.preprocess.transforms if isinstance(t, T.Normalize))
    return view_transform(bb.image_size, tuple(norm.mean), tuple(norm.std))


class _Images(torch.utils.data.Dataset):
    def __init__(self, split: Split, indices: np.ndarray, transform: Callable, seed: "int | None"):
        self.split, self.indices, self.transform, self.seed = split, indices, transform, seed

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> torch.Tensor:
        j = int(self.indices[i])
        if self.seed is not None:  # seeded per image: independent of batching, workers and which run asks
            torch.manual_seed(self.seed * 1_000_003 + j)
        return self.transform(self.split.image(j))


def key_parts(bb: Backbone, dataset: str, split: Split, view: "int | None", aug_seed: int) -> dict[str, Any]:
    """Every input that determines a feature store (one per model, split and view)."""
    return {"tipkit": __version__, "format": STORE_FORMAT, "model": bb.name, "weights": bb.weights_id,
            "precision": bb.precision, "dataset": dataset, "split": split.name, "images": split.fingerprint(),
            "transform": repr(_transform_for(bb, view)), "view": view,
            "aug_seed": aug_seed if view is not None else None}


def hash_parts(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def feature_key(bb: Backbone, dataset: str, split: Split, view: "int | None", aug_seed: int) -> str:
    """Hash of every input that determines a feature store (one per model, split and view)."""
    return hash_parts(key_parts(bb, dataset, split, view, aug_seed))


def open_store(bb: Backbone, dataset: str, split: Split, view: "int | None" = None, aug_seed: int = 0) -> FeatureStore:
    """The feature store of (model, dataset, split, view); its ``meta.json`` says what its key was made of."""
    parts = key_parts(bb, dataset, split, view, aug_seed)
    root = paths.feature_cache_dir() / hash_parts(parts)
    dim = getattr(bb.model.visual, "output_dim", None)
    store = FeatureStore(root, dim=dim, size=len(split))
    try:
        ok = json.loads((root / META).read_text()).get("parts") == parts
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:  # written before the first shard, so every store describes itself (rewritten if damaged)
        write_json(root / META, {"parts": parts, "pretrained": bb.pretrained, "rows_in_split": len(split), "dim": dim,
                                 "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return store


@torch.no_grad()
def _encode(bb: Backbone, split: Split, indices: np.ndarray, view: "int | None", aug_seed: int, batch_size: int,
            workers: int, desc: str, store: "FeatureStore | None" = None,
            written: "list[Path] | None" = None) -> torch.Tensor:
    """Features ``[N, D]`` of ``split[indices]``; with a ``store``, every ~SHARD_ROWS rows are added to it
    as a shard (their paths appended to ``written``), so an interrupted extraction keeps what it finished."""
    seed = None if view is None else aug_seed * 1009 + view
    loader = torch.utils.data.DataLoader(_Images(split, indices, _transform_for(bb, view), seed),
                                         batch_size=batch_size, num_workers=workers)
    out: list[torch.Tensor] = []
    pending: list[torch.Tensor] = []  # rows not yet in the store
    saved = 0
    with torch.random.fork_rng(devices=[]):
        for x in tqdm(loader, desc=desc, unit="batch", leave=False):
            with autocast(bb):
                out.append(bb.model.encode_image(x.to(bb.device)).float().cpu())
            pending.append(out[-1])
            n = sum(len(b) for b in pending)
            if store is not None and (n >= SHARD_ROWS or saved + n == len(indices)):
                path = store.add(indices[saved:saved + n], torch.cat(pending))
                if written is not None:
                    written.append(path)
                saved, pending = saved + n, []
    return torch.cat(out)


def image_features(bb: Backbone, dataset: str, split: Split, indices: "np.ndarray | list[int] | None" = None,
                   view: "int | None" = None, aug_seed: int = 0, batch_size: int = 256, workers: int = 0,
                   use_cache: bool = True) -> torch.Tensor:
    """Raw image features ``[N, D]`` (float32, CPU) of ``split[indices]`` (all images when None).

    ``view=None`` uses the model's test preprocessing; ``view=v`` the v-th augmented view, seeded per
    image by ``(aug_seed, v, image index)``. Features live in one on-disk store per (model weights,
    dataset, split, transform, view, aug_seed, tipkit version), keyed by a hash of all of them; a run
    computes only the images the store lacks, so every run that needs an image shares one extraction.
    """
    indices = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise TipkitError(f"no images selected from {dataset}/{split.name}")
    desc = f"{dataset}/{split.name}" + ("" if view is None else f" view {view}")
    if not use_cache:
        return _encode(bb, split, indices, view, aug_seed, batch_size, workers, desc)
    store = open_store(bb, dataset, split, view, aug_seed)
    before, idx, feats = store.read()  # damaged shards are moved aside here: their rows count as missing
    have = {int(j): r for r, j in enumerate(idx.tolist())}
    missing = np.unique([j for j in indices.tolist() if j not in have]).astype(np.int64)
    if len(missing):
        written: list[Path] = []
        new = _encode(bb, split, missing, view, aug_seed, batch_size, workers, desc, store, written)
        if set(store.shards()) == set(before) | set(written):  # nobody else wrote: no duplicate rows
            idx, feats = torch.cat([idx, torch.from_numpy(missing)]), torch.cat([feats.reshape(-1, new.shape[1]), new])
        else:  # another writer added or compacted shards meanwhile: read the union (first writer wins)
            _, idx, feats = store.read()
        have = {int(j): r for r, j in enumerate(idx.tolist())}
    return feats[torch.as_tensor([have[int(j)] for j in indices])]


def view_features(bb: Backbone, dataset: str, split: Split, indices: np.ndarray, views: int,
                  aug_seed: int = 0, **kw: Any) -> torch.Tensor:
    """Raw features ``[A, K, D]`` of ``split[indices]`` under ``views`` augmented views."""
    if views < 1:
        raise TipkitError(f"augment views must be >= 1, got {views}")
    return torch.stack([image_features(bb, dataset, split, indices, view=v, aug_seed=aug_seed, **kw)
                        for v in tqdm(range(views), desc="augmented views", unit="view", leave=False)])
