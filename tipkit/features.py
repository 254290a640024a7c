"""Stage 1 of the paper: CLIP features through open_clip, with an on-disk cache.

Image features are stored **raw** (as the encoder returns them): the cache keys
are the mean of raw view features, L2-normalised afterwards (as the official
code does); query features are normalised with :func:`tipkit.cache.l2_normalize`.
Every cached store is keyed by a hash of all its inputs, so a changed input can
never reuse a stale file; images are stored by index, so the 1-shot and 16-shot
runs of a sweep share the rows they have in common.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torchvision import transforms as T
from tqdm.auto import tqdm

from . import __version__, paths, standin
from .cache import l2_normalize
from .data import Split
from .errors import TipkitError
from .io import torch_save

log = logging.getLogger(__name__)
DEFAULT_BACKBONE = standin.NAME
DEFAULT_PRETRAINED = "standin"  # alias for the committed stand-in checkpoint
STORE_FORMAT = 2  # layout of a feature file ({indices, features}); part of every key
RANDOM_INIT = "none"  # pretrained value meaning: random initialisation (smoke tests only)


@dataclass
class Backbone:
    """A loaded open_clip model plus what is needed to use and identify it."""

    name: str
    pretrained: str
    model: torch.nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    device: torch.device
    precision: str
    weights_id: str  # identifies the weights: sha256 of a checkpoint file, a hub tag, or random init

    @property
    def image_size(self) -> int:
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)


@lru_cache(maxsize=16)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: "str | Path") -> str:
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_mtime_ns, st.st_size)


def list_backbones() -> list[str]:
    import open_clip

    standin.register()
    return open_clip.list_models()


def _looks_like_path(s: str) -> bool:
    return os.sep in s or s.startswith(".") or Path(s).suffix in {".pt", ".pth", ".bin", ".safetensors", ".npz"}


def load_state(path: "str | Path") -> dict[str, torch.Tensor]:
    """A checkpoint's tensors (safetensors or torch.save)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def resolve_pretrained(name: str, pretrained: "str | None") -> tuple["str | None", str]:
    """Map ``pretrained`` (tag, path, ``standin`` or ``none``) to (open_clip argument, weights id)."""
    import open_clip

    if pretrained in (None, "", RANDOM_INIT):
        return None, "random-init"
    if pretrained == DEFAULT_PRETRAINED:
        pretrained = str(paths.STANDIN_CHECKPOINT)
    if Path(pretrained).is_file():
        try:
            if pretrained.endswith(".safetensors"):
                from safetensors.torch import load_file

                load_file(pretrained)
            else:
                torch.load(pretrained, map_location="cpu", weights_only=True)
        except Exception as e:
            raise TipkitError(f"{pretrained} is not a checkpoint torch can load ({type(e).__name__}); "
                              "pass an open_clip checkpoint file or a pretrained tag") from None
        return pretrained, f"sha256:{file_sha256(pretrained)}"
    if _looks_like_path(pretrained):
        raise TipkitError(f"checkpoint not found: {pretrained}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    if pretrained not in tags:
        raise TipkitError(f"unknown pretrained tag {pretrained!r} for {name}; known: "
                          f"{', '.join(tags) or '(none: pass a checkpoint path)'}")
    return pretrained, f"tag:{name}/{pretrained}"


def load_backbone(name: str = DEFAULT_BACKBONE, pretrained: "str | None" = DEFAULT_PRETRAINED,
                  device: "str | torch.device" = "cpu", precision: str = "fp32", init_seed: int = 0) -> Backbone:
    """Load an open_clip model by name with a pretrained tag, a local checkpoint path, or random init.

    ``precision`` is the autocast dtype on CUDA (``fp32``, ``fp16``, ``bf16``); the CPU always runs fp32.
    """
    import open_clip

    if name not in list_backbones():
        raise TipkitError(f"unknown backbone {name!r}; known: {', '.join(list_backbones())}")
    if precision not in ("fp32", "fp16", "bf16"):
        raise TipkitError(f"unknown precision {precision!r}; known: bf16, fp16, fp32")
    device = torch.device(device)
    arg, weights_id = resolve_pretrained(name, pretrained)
    if arg is None:
        torch.manual_seed(init_seed)
        weights_id = f"random-init:{init_seed}"
        log.warning("%s: random initialisation (no pretrained weights): for smoke tests only", name)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=arg, device=device)
    except RuntimeError as e:
        if arg is not None and not Path(arg).is_file():
            raise TipkitError(f"could not fetch pretrained weights {arg!r} for {name} ({e})") from None
        raise
    model.eval()
    return Backbone(name, str(pretrained), model, preprocess, open_clip.get_tokenizer(name), device,
                    precision, weights_id)


def _autocast(bb: Backbone) -> contextlib.AbstractContextManager:
    if bb.device.type == "cuda" and bb.precision != "fp32":
        return torch.autocast("cuda", dtype=torch.float16 if bb.precision == "fp16" else torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def class_embeddings(bb: Backbone, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """Text classifier ``W [C, D]``: per class, the mean of L2-normalised template embeddings, renormalised."""
    rows = []
    for name in classnames:
        tokens = bb.tokenizer([t.format(name.replace("_", " ")) for t in templates]).to(bb.device)
        with _autocast(bb):
            emb = bb.model.encode_text(tokens).float()
        rows.append(l2_normalize(l2_normalize(emb).mean(dim=0)))
    return torch.stack(rows).cpu()


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


def feature_key(bb: Backbone, dataset: str, split: Split, view: "int | None", aug_seed: int) -> str:
    """Hash of every input that determines a feature store (one per model, split and view)."""
    parts = {"tipkit": __version__, "format": STORE_FORMAT, "model": bb.name, "weights": bb.weights_id, "precision": bb.precision,
             "dataset": dataset, "split": split.name, "images": split.fingerprint(),
             "transform": repr(_transform_for(bb, view)), "view": view,
             "aug_seed": aug_seed if view is not None else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock beside ``path`` so concurrent runs extend a store without losing rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_store(path: Path) -> dict[str, torch.Tensor]:
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    return {"indices": torch.empty(0, dtype=torch.long), "features": torch.empty(0)}


@torch.no_grad()
def _encode(bb: Backbone, split: Split, indices: np.ndarray, view: "int | None", aug_seed: int, batch_size: int,
            workers: int, desc: str) -> torch.Tensor:
    seed = None if view is None else aug_seed * 1009 + view
    loader = torch.utils.data.DataLoader(_Images(split, indices, _transform_for(bb, view), seed),
                                         batch_size=batch_size, num_workers=workers)
    out = []
    with torch.random.fork_rng(devices=[]):
        for x in tqdm(loader, desc=desc, unit="batch", leave=False):
            with _autocast(bb):
                out.append(bb.model.encode_image(x.to(bb.device)).float().cpu())
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
    path = paths.feature_cache_dir() / f"{feature_key(bb, dataset, split, view, aug_seed)}.pt"
    store = _load_store(path)
    have = {int(j): r for r, j in enumerate(store["indices"].tolist())}
    missing = np.unique([j for j in indices.tolist() if j not in have])
    if len(missing):
        new = _encode(bb, split, missing, view, aug_seed, batch_size, workers, desc)
        with _locked(path):
            store = _load_store(path)  # another run may have extended it meanwhile
            known = set(store["indices"].tolist())
            keep = [r for r, j in enumerate(missing.tolist()) if j not in known]
            if keep:
                store = {"indices": torch.cat([store["indices"], torch.as_tensor(missing[keep])]),
                         "features": torch.cat([store["features"].reshape(-1, new.shape[1]), new[keep]])}
                torch_save(path, store)
        have = {int(j): r for r, j in enumerate(store["indices"].tolist())}
    return store["features"][torch.as_tensor([have[int(j)] for j in indices])]


def view_features(bb: Backbone, dataset: str, split: Split, indices: np.ndarray, views: int,
                  aug_seed: int = 0, **kw: Any) -> torch.Tensor:
    """Raw features ``[A, K, D]`` of ``split[indices]`` under ``views`` augmented views."""
    if views < 1:
        raise TipkitError(f"augment views must be >= 1, got {views}")
    return torch.stack([image_features(bb, dataset, split, indices, view=v, aug_seed=aug_seed, **kw)
                        for v in tqdm(range(views), desc="augmented views", unit="view", leave=False)])
