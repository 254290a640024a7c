"""Stage 1 of the paper: the frozen CLIP encoders and the features they give.

Modules: :mod:`.backbone` (open_clip models by name and pretrained tag or checkpoint path; the text
classifier), :mod:`.features` (image features of a split, raw, through an on-disk feature store keyed by
every input; augmented views for the cache), :mod:`.store` (that store: append-only shards, no locks,
damaged shards moved aside), :mod:`.cache_admin` (``tipkit cache info|verify|compact|prune``),
:mod:`.standin` (the stand-in mini-CLIP, **not CLIP**: its open_clip config, committed weights, captions,
training recipe and model card, :mod:`.standin.card`).

What it may import: :mod:`tipkit.core`, :mod:`tipkit.data` (for :class:`~tipkit.data.Split`) and the
top-level helpers (errors, paths, io, version); never methods, apply, experiments, studies, the
benchmark or figures.
"""

from __future__ import annotations

from tipkit.models.backbone import (
                                    DEFAULT_BACKBONE,
                                    DEFAULT_PRETRAINED,
                                    Backbone,
                                    autocast,
                                    class_embeddings,
                                    file_sha256,
                                    list_backbones,
                                    load_backbone,
                                    load_state,
                                    resolve_pretrained,
)
from tipkit.models.features import feature_key, image_features, view_features, view_transform

__all__ = ["DEFAULT_BACKBONE", "DEFAULT_PRETRAINED", "Backbone", "autocast", "class_embeddings", "feature_key",
           "file_sha256", "image_features", "list_backbones", "load_backbone", "load_state", "resolve_pretrained",
           "view_features", "view_transform"]
