"""Stage 1 of the paper, the model: open_clip backbones loaded by name with a pretrained tag, a local
checkpoint path, the committed stand-in of that name (``standin``; three sizes:
``tipkit-standin-mini``, ``-small``, ``-tiny``) or random initialisation (``none``), and the text
classifier they give (``W [C, D]``: per class, the mean of L2-normalised prompt embeddings, renormalised).

The stand-in goes through the same ``open_clip.create_model_and_transforms(name, pretrained=<path>)`` call
as a real checkpoint; ``weights_id`` names the weights (sha256 of a file, a hub tag, or random init).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

from tipkit.core.cache import l2_normalize
from tipkit.errors import TipkitError
from tipkit.models import standin

log = logging.getLogger(__name__)
DEFAULT_BACKBONE = standin.NAME
DEFAULT_PRETRAINED = "standin"  # alias for the committed stand-in checkpoint
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


def check_device(device: "str | torch.device") -> torch.device:
    """``device`` as a torch device this machine has; otherwise one TipkitError saying what is available."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise TipkitError(f"unknown device {str(device)!r}; known: cpu, cuda, cuda:N, mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise TipkitError(f"device {str(device)!r}: this machine has no CUDA ({why}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise TipkitError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise TipkitError(f"device {str(device)!r}: MPS is not available on this machine; use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise TipkitError(f"device {str(device)!r} is not supported; known: cpu, cuda, cuda:N, mps")
    return dev


def check_weights(name: str, pretrained: "str | None") -> None:
    """``standin`` names the stand-in's committed checkpoint, which only fits the stand-in backbone; another
    backbone with it is one error naming the tags to pass instead (``none`` and paths are checked on load)."""
    if pretrained != DEFAULT_PRETRAINED or standin.size_of(name) is not None:
        return
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name) if name in open_clip.list_models() else []
    hint = (f"--pretrained {tags[0]}" + (f" (open_clip's tags for {name}: {', '.join(tags)})" if len(tags) > 1 else "")
            if tags else "--pretrained PATH (a checkpoint; open_clip has no tag for it)")
    raise TipkitError(f"--pretrained standin is the stand-in's checkpoint, for the stand-in backbones ({', '.join(standin.SIZES.values())}) only; "
                      f"for {name} pass {hint}, or --pretrained none (random weights, smoke tests)")


def standin_checkpoint(name: str) -> Path:
    """The committed checkpoint ``pretrained="standin"`` names for backbone ``name`` (a stand-in size)."""
    if standin.size_of(name) is None:
        raise TipkitError(f"pretrained 'standin' names a committed stand-in checkpoint, but {name!r} is not a "
                          f"stand-in; stand-ins: {', '.join(standin.SIZES.values())} (or pass a tag or a path)")
    return standin.checkpoint_path(name)


def resolve_pretrained(name: str, pretrained: "str | None") -> tuple["str | None", str]:
    """Map ``pretrained`` (tag, path, ``standin`` or ``none``) to (open_clip argument, weights id)."""
    import open_clip

    if pretrained in (None, "", RANDOM_INIT):
        return None, "random-init"
    check_weights(name, pretrained)
    if pretrained == DEFAULT_PRETRAINED:
        pretrained = str(standin_checkpoint(name))
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
    device = check_device(device)
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


def autocast(bb: Backbone) -> contextlib.AbstractContextManager:
    if bb.device.type == "cuda" and bb.precision != "fp32":
        return torch.autocast("cuda", dtype=torch.float16 if bb.precision == "fp16" else torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def class_embeddings(bb: Backbone, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """Text classifier ``W [C, D]``: per class, the mean of L2-normalised template embeddings, renormalised."""
    rows = []
    for name in classnames:
        tokens = bb.tokenizer([t.format(name.replace("_", " ")) for t in templates]).to(bb.device)
        with autocast(bb):
            emb = bb.model.encode_text(tokens).float()
        rows.append(l2_normalize(l2_normalize(emb).mean(dim=0)))
    return torch.stack(rows).cpu()


@torch.no_grad()
def raw_class_embeddings(bb: Backbone, classnames: list[str], templates: list[str]) -> torch.Tensor:
    """``[C, D]``: per class, the mean of the UNNORMALISED template embeddings (CLAP's base text features)."""
    rows = []
    for name in classnames:
        tokens = bb.tokenizer([t.format(name.replace("_", " ")) for t in templates]).to(bb.device)
        with autocast(bb):
            rows.append(bb.model.encode_text(tokens).float().mean(dim=0))
    return torch.stack(rows).cpu()


@torch.no_grad()
def text_classifier(bb: Backbone, prompts: list[list[str]]) -> torch.Tensor:
    """``W [C, D]`` from whole sentences per class (e.g. CuPL's): the mean of their L2-normalised embeddings,
    renormalised, as :func:`class_embeddings` does for templates."""
    rows = []
    for sentences in prompts:
        tokens = bb.tokenizer(list(sentences)).to(bb.device)
        with autocast(bb):
            emb = bb.model.encode_text(tokens).float()
        rows.append(l2_normalize(l2_normalize(emb).mean(dim=0)))
    return torch.stack(rows).cpu()


def logit_scale(bb: Backbone) -> float:
    """The model's own logit scale ``exp(logit_scale)`` (100 for CLIP); 100 when the model has none."""
    scale = getattr(bb.model, "logit_scale", None)
    return float(scale.detach().float().exp()) if isinstance(scale, torch.Tensor) else 100.0
