"""Part of stage 1 (models): the stand-in mini-CLIPs, small CLIP-architecture models tipkit trains itself.

They are **not CLIP**. They exist because no real CLIP weights can be installed
offline; each is registered with open_clip by name (``tipkit-standin-mini``, the
default, and the smaller ``tipkit-standin-small`` and ``tipkit-standin-tiny``) and
loaded with ``open_clip.create_model_and_transforms(name, pretrained=<path>)``, the
same code path a real checkpoint takes. Three sizes stand in for the paper's
backbones of different capacity (Table 3). See ``MODEL_CARD.md`` beside this file
(and ``MODEL_CARD_<size>.md`` for the others).
"""

from __future__ import annotations

from pathlib import Path

from tipkit import paths
from tipkit.errors import TipkitError

NAME = "tipkit-standin-mini"  # the default stand-in (size "base")
LABEL = "stand-in mini-CLIP (not CLIP)"
SIZES = {"base": NAME, "small": "tipkit-standin-small", "tiny": "tipkit-standin-tiny"}  # size -> open_clip name
DEFAULT_SIZE = "base"
_registered = False


def size_name(size: str) -> str:
    """The open_clip model name of a stand-in size (``tiny``, ``small``, ``base``)."""
    if size not in SIZES:
        raise TipkitError(f"unknown stand-in size {size!r}; known: {', '.join(SIZES)}")
    return SIZES[size]


def size_of(name: str) -> "str | None":
    """The size of a stand-in model name, or None when ``name`` is not a stand-in."""
    return next((s for s, n in SIZES.items() if n == name), None)


def config_path(name: str = NAME) -> Path:
    """The open_clip model config (JSON) of a stand-in."""
    return paths.STANDIN_DIR / f"{name}.json"


def checkpoint_path(name: str = NAME) -> Path:
    """The committed fp16 weights (safetensors) of a stand-in; the base one is ``paths.STANDIN_CHECKPOINT``."""
    return paths.STANDIN_DIR / f"{name}.safetensors"


def card_data_path(name: str = NAME) -> Path:
    """The measured facts of a stand-in's model card (the base one's is ``paths.STANDIN_CARD_DATA``)."""
    return paths.STANDIN_CARD_DATA if name == NAME else paths.STANDIN_DIR / f"model_card_{size_of(name)}.json"


def card_md_path(name: str = NAME) -> Path:
    """A stand-in's rendered model card."""
    return paths.STANDIN_DIR / ("MODEL_CARD.md" if name == NAME else f"MODEL_CARD_{size_of(name)}.md")


def register() -> str:
    """Register every stand-in's architecture with open_clip (idempotent); return the default's name."""
    global _registered
    if not _registered:
        import open_clip

        for name in SIZES.values():
            open_clip.add_model_config(config_path(name))
        _registered = True
    return NAME
