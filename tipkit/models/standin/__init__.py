"""Part of stage 1 (models): the stand-in mini-CLIP, a small CLIP-architecture model tipkit trains itself.

It is **not CLIP**. It exists because no real CLIP weights can be installed
offline; it is registered with open_clip as ``tipkit-standin-mini`` and loaded
with ``open_clip.create_model_and_transforms(name, pretrained=<path>)``, the same
code path a real checkpoint takes. See ``MODEL_CARD.md`` beside this file.
"""

from __future__ import annotations

from tipkit import paths

NAME = "tipkit-standin-mini"
LABEL = "stand-in mini-CLIP (not CLIP)"
_registered = False


def register() -> str:
    """Register the stand-in's architecture with open_clip (idempotent); return its name."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(paths.STANDIN_CONFIG)
        _registered = True
    return NAME
