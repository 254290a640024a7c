"""The common interface of every few-shot method: :class:`FewShotData` in, logits out.

All methods work on ONE feature cache, so comparisons are fair and cheap:

- :class:`FewShotData` holds everything a method may use to fit and tune — the raw features of the K
  few-shot images under A augmented views, their labels, the validation split and the text
  classifier(s). The test split is never part of it.
- :class:`Method` is fitted with :meth:`Method.fit` (which may tune on ``data.val`` only) and maps
  L2-normalised features ``[N, D]`` to logits ``[N, C]`` with :meth:`Method.predict`.
- :data:`METHODS` is the registry (name -> class), :func:`get_method` builds one by name with
  hyperparameter overrides checked against :mod:`tipkit.methods.hparams`.
"""

from __future__ import annotations

import importlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from tipkit.core.cache import l2_normalize, one_hot
from tipkit.core.fusion import clip_logits
from tipkit.core.grid import row_chunks
from tipkit.core.metrics import accuracy
from tipkit.core.search import MEMORY_BUDGET
from tipkit.errors import TipkitError
from tipkit.methods import hparams

if TYPE_CHECKING:  # pragma: no cover
    from tipkit.models.backbone import Backbone


@dataclass
class FewShotData:
    """Everything a method may use to fit and tune (never the test set).

    Attributes:
        views: ``[A, K, D]`` RAW image features of the K few-shot images under A augmented views.
        labels: ``[K]`` int64 class indices.
        val: ``[Nv, D]`` L2-normalised validation features; val_labels ``[Nv]``.
        class_embeddings: ``[C, D]`` text classifier (template ensemble, L2-normalised rows).
        single_prompt_embeddings: ``[C, D]`` single-prompt classifier, if available.
        seed: seeds every random choice a method makes (shuffles, initialisations).
        device: torch device every method computes on.
        backbone: the loaded open_clip model (only CoOp needs its text encoder).
        classnames: class names (only CoOp needs them).
        raw_class_embeddings: ``[C, D]`` the text classifier BEFORE normalisation (mean of the raw template
            embeddings; CLAP's prototypes start there), if available.
        logit_scale: the model's ``exp(logit_scale)`` (100 for CLIP; CLAP scales its logits by it).

    Tensors are stored as float32 (labels int64) on the CPU and treated as read-only; every method
    moves what it needs to ``device``.
    """

    views: torch.Tensor
    labels: torch.Tensor
    val: torch.Tensor
    val_labels: torch.Tensor
    class_embeddings: torch.Tensor
    single_prompt_embeddings: "torch.Tensor | None" = None
    seed: int = 1
    device: str = "cpu"
    backbone: "Backbone | None" = field(default=None, repr=False)
    classnames: "list[str] | None" = None
    raw_class_embeddings: "torch.Tensor | None" = None
    logit_scale: float = 100.0

    def __post_init__(self) -> None:
        for name in ("views", "val", "class_embeddings", "single_prompt_embeddings", "raw_class_embeddings"):  # canonical: float32, CPU
            t = getattr(self, name)
            if t is not None:
                setattr(self, name, torch.as_tensor(t).detach().float().cpu())
        if self.views.dim() == 2:
            self.views = self.views.unsqueeze(0)
        if self.views.dim() != 3:
            raise TipkitError(f"views must be [A, K, D], got shape {tuple(self.views.shape)}")
        _, k, d = self.views.shape
        self.labels = torch.as_tensor(self.labels, dtype=torch.long).cpu()
        self.val_labels = torch.as_tensor(self.val_labels, dtype=torch.long).cpu()
        checks = [("labels", self.labels, (k,)), ("val", self.val, (None, d)),
                  ("val_labels", self.val_labels, (self.val.shape[0],)),
                  ("class_embeddings", self.class_embeddings, (None, d))]
        if self.single_prompt_embeddings is not None:
            checks.append(("single_prompt_embeddings", self.single_prompt_embeddings, tuple(self.class_embeddings.shape)))
        if self.raw_class_embeddings is not None:
            checks.append(("raw_class_embeddings", self.raw_class_embeddings, tuple(self.class_embeddings.shape)))
        for name, t, shape in checks:
            if t.dim() != len(shape) or any(s is not None and s != n for s, n in zip(shape, t.shape)):
                want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
                raise TipkitError(f"{name} must have shape {want}, got {tuple(t.shape)}")
        if k == 0 or self.val.shape[0] == 0:
            raise TipkitError("FewShotData needs at least one few-shot image and one validation image")
        one_hot(self.labels, self.num_classes)  # raises on out-of-range labels
        one_hot(self.val_labels, self.num_classes)
        if self.classnames is not None and len(self.classnames) != self.num_classes:
            raise TipkitError(f"{len(self.classnames)} class names for {self.num_classes} classes")
        torch.device(self.device)  # raises on a malformed device string
        if not (isinstance(self.logit_scale, (int, float)) and math.isfinite(self.logit_scale) and self.logit_scale > 0):
            raise TipkitError(f"logit_scale must be a positive number, got {self.logit_scale!r}")

    @property
    def num_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    @property
    def dim(self) -> int:
        return int(self.views.shape[-1])

    @cached_property
    def keys(self) -> torch.Tensor:
        """Cache keys ``[K, D]``: the view-mean of the raw features, L2-normalised (Tip-Adapter)."""
        return l2_normalize(self.views.float().mean(dim=0))

    @cached_property
    def values(self) -> torch.Tensor:
        """Cache values ``[K, C]``: one-hot labels."""
        return one_hot(self.labels, self.num_classes)

    @cached_property
    def normalized_views(self) -> torch.Tensor:
        """``[A, K, D]``: every augmented view L2-normalised on its own."""
        return l2_normalize(self.views.float())


# ----------------------------------------------------------------------------------------------------- registry
METHODS: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator: add ``cls`` to :data:`METHODS` under ``cls.name``."""
    if cls.name in METHODS:
        raise RuntimeError(f"method {cls.name!r} registered twice")
    if cls.name not in hparams.HPARAMS:
        raise RuntimeError(f"method {cls.name!r} has no entry in tipkit.methods.hparams.HPARAMS")
    METHODS[cls.name] = cls
    return cls


def list_methods() -> list[str]:
    importlib.import_module("tipkit.methods")  # registers every method
    return sorted(METHODS)


def get_method(name: str, **overrides: Any) -> "Method":
    """A new, unfitted method by registry name; ``overrides`` replace its default hyperparameters."""
    known = list_methods()
    if name not in METHODS:
        raise TipkitError(f"unknown method {name!r}; known: {', '.join(known)}")
    return METHODS[name](**overrides)


FIXED_LENGTH = ("search_scale", "search_step", "w")  # list hyperparameters with one value per grid axis or term


def _check_value(method: str, key: str, value: Any, default: Any) -> None:
    if default is None or value is None:
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        if ok and key in FIXED_LENGTH and len(value) != len(default):
            raise TipkitError(f"hyperparameter {key!r} of {method} must have {len(default)} values, got {list(value)!r}")
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise TipkitError(f"hyperparameter {key!r} of {method} must be {type(default).__name__}, got {value!r}")


class Method(ABC):
    """A few-shot method on cached features.

    Subclasses set ``name`` (registry key, also the key of their :data:`hparams.HPARAMS` entry) and
    implement :meth:`_fit` and :meth:`_predict`. After fitting, ``hyper`` holds the chosen
    hyperparameters (JSON-serialisable) and ``history`` the per-epoch log of trained methods.
    """

    name: ClassVar[str]

    def __init__(self, **overrides: Any) -> None:
        defaults = hparams.defaults(self.name)
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise TipkitError(f"unknown hyperparameter {unknown[0]!r} for method {self.name!r}; "
                              f"known: {', '.join(sorted(defaults)) or '(none)'}")
        for key, value in overrides.items():
            _check_value(self.name, key, value, defaults[key])
        self.params: dict[str, Any] = {**defaults, **overrides}
        self.hyper: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.device = torch.device("cpu")
        self._dim: "int | None" = None
        self._classes = 0
        self.memory_budget = MEMORY_BUDGET  # bytes of working set predict() may use beyond its input and output

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"

    def fit(self, data: FewShotData) -> "Method":
        """Fit on ``data`` (tuning on ``data.val`` only); returns ``self``."""
        self.device = torch.device(data.device)
        self.hyper, self.history = {}, []
        self._dim, self._classes = data.dim, data.num_classes
        self._fit(data)
        return self

    @torch.no_grad()
    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C]`` (float32, CPU) for L2-normalised ``features [N, D]``.

        Queries are streamed in chunks so that the working set beyond the input and the output stays under
        ``self.memory_budget`` bytes whatever N is (each method states its bytes per query).
        """
        if self._dim is None:
            raise TipkitError(f"{self.name}: call fit() before predict()")
        if features.dim() != 2 or features.shape[1] != self._dim:
            raise TipkitError(f"{self.name}: features must be [N, {self._dim}], got {tuple(features.shape)}")
        n = features.shape[0]
        out = torch.empty(n, self._classes, dtype=torch.float32)
        chunks = row_chunks(n, self._query_bytes(), self.memory_budget)
        for s in chunks:
            chunk = features[s:s + chunks.step].float().to(self.device)
            out[s:s + len(chunk)] = self._predict(chunk).float().cpu()
        return out

    def _query_bytes(self) -> int:
        """Working-set bytes per query of :meth:`_predict` (a few ``[C]`` and ``[D]`` rows by default)."""
        return 4 * 8 * (self._classes + (self._dim or 0))

    @abstractmethod
    def _fit(self, data: FewShotData) -> None: ...

    @abstractmethod
    def _predict(self, features: torch.Tensor) -> torch.Tensor: ...


# ------------------------------------------------------------------------------------------ shared helpers
def zero_shot_logits(features: torch.Tensor, class_embeddings: torch.Tensor) -> torch.Tensor:
    """``100 · f Wᵀ``: ``[N, D] × [C, D] -> [N, C]``."""
    return clip_logits(features, class_embeddings)


def val_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return accuracy(logits, labels.to(logits.device))


def linear_grid(scale: float, steps: int, start: float) -> list[float]:
    """The official repos' grids: ``start + i·(scale − start)/steps`` for ``i in range(steps)``."""
    if int(steps) != steps or steps < 1:
        raise TipkitError(f"search steps must be a positive integer, got {steps!r}")
    return [start + i * (scale - start) / steps for i in range(int(steps))]


def grid_or(explicit: "list[float] | None", scale: float, steps: int, start: float) -> list[float]:
    """``explicit`` when given (non-empty), else :func:`linear_grid`."""
    if explicit is not None:
        if not isinstance(explicit, (list, tuple)) or len(explicit) == 0 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in explicit):
            raise TipkitError(f"an explicit search grid must be a non-empty list of numbers, got {explicit!r}")
        return [float(v) for v in explicit]
    return linear_grid(scale, steps, start)


def count_correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[..., N, C]`` logits -> ``[...]`` number of correct top-1 predictions."""
    return (logits.argmax(dim=-1) == labels).sum(dim=-1)


def dassl_lr(epoch: int, base_lr: float, max_epoch: int, warmup_epochs: int = 1, warmup_lr: float = 1e-5) -> float:
    """Learning rate of 0-based ``epoch`` under Dassl's per-epoch cosine with constant warm-up.

    CoOp, CLIP-Adapter and CLAP train through Dassl: ``warmup_lr`` for the first ``warmup_epochs``,
    then ``base_lr · (1 + cos(π (epoch − warmup_epochs) / max_epoch)) / 2``.
    """
    if epoch < warmup_epochs:
        return warmup_lr
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / max_epoch))


def epoch_batches(n: int, batch_size: int, gen: torch.Generator, drop_last: bool = True) -> list[torch.Tensor]:
    """Shuffled index batches of ``range(n)``; like Dassl, the last partial batch is dropped when ``n >= batch_size``."""
    order = torch.randperm(n, generator=gen)
    stop = (n // batch_size) * batch_size if (drop_last and n >= batch_size) else n
    return [order[s:min(s + batch_size, stop)] for s in range(0, stop, batch_size)]


def require_positive(method: str, **values: "int | float") -> None:
    for key, v in values.items():
        if v is None or v <= 0:
            raise TipkitError(f"{method}: {key} must be > 0, got {v!r}")
