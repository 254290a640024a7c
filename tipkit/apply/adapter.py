"""A fitted adapter as one portable file, and prediction with it on new images.

The file is safetensors: tensors ``class_embeddings [C, D]`` (the text classifier W) and, for the cache
methods, ``keys [K, D]`` and ``values [K, C]``; the header's metadata holds ``format`` (``tipkit-adapter``),
``format_version`` and ``tipkit``, a JSON object with the method, α and β, class names (and class folders
of a ``folder:`` dataset), prompts, the backbone (open_clip name, pretrained tag or path, the weights'
identity: ``sha256:...`` of a checkpoint file or ``tag:...``, precision), its preprocessing, tipkit's
version and the run it came from (record id, dataset, shots, seed, protocol, batch size). It loads
without the training images; :meth:`Adapter.predict` encodes images with the backbone the adapter names,
refusing weights whose identity differs, and applies the same logits as the fitted method:

    zero-shot: 100 · f Wᵀ        Tip-Adapter(-F): 100 · f Wᵀ + α · exp(−β (1 − f Kᵀ)) V
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from tipkit.core.cache import OneHot, as_one_hot, l2_normalize
from tipkit.core.fusion import clip_logits, tip_logits
from tipkit.data.imagefiles import open_image, to_rgb
from tipkit.errors import TipkitError
from tipkit.io import save_safetensors
from tipkit.methods import Method
from tipkit.models.backbone import Backbone, autocast, load_backbone
from tipkit.version import __version__

log = logging.getLogger(__name__)
MAGIC = "tipkit-adapter"
ADAPTER_FORMAT = 1  # bump when the file's layout changes; a reader refuses newer formats
SAVABLE = ("tip_adapter_f", "tip_adapter", "zero_shot", "zero_shot_single")  # preference order for the default
CACHE_METHODS = ("tip_adapter", "tip_adapter_f")


def choose_method(cfg: Any, method: "str | None" = None) -> str:
    """The method a run saves: ``method``, else the first of :data:`SAVABLE` the run fits. Under the
    ``paper`` protocol Tip-Adapter-F selects its epoch on test, so it cannot be saved."""
    fitted = [m for m in cfg.methods if not (cfg.protocol == "paper" and m == "tip_adapter_f")]
    if method is None:
        method = next((m for m in SAVABLE if m in fitted), None)
        if method is None:
            raise TipkitError(f"--save-adapter needs one of {', '.join(SAVABLE)} among the run's methods "
                              f"({', '.join(cfg.methods)})")
    if method not in SAVABLE:
        raise TipkitError(f"cannot save method {method!r} as an adapter; savable: {', '.join(SAVABLE)}")
    if method not in fitted:
        why = " (under protocol paper it selects on test)" if method == "tip_adapter_f" and method in cfg.methods \
            else f" (the run's methods: {', '.join(cfg.methods)})"
        raise TipkitError(f"cannot save {method}: the run does not fit it{why}")
    return method


def check_target(path: "str | Path") -> Path:
    """``path`` can take an adapter file: its folder exists and it is not itself a folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise TipkitError(f"--save-adapter {path} is a folder; name a file, e.g. {path / 'adapter.safetensors'}")
    if not path.parent.is_dir():
        raise TipkitError(f"--save-adapter {path}: folder {path.parent} does not exist; create it first")
    return path


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_names(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v)


# header key -> (check, what it must be); optional keys may be missing or null
HEADER_KEYS: dict[str, tuple[Any, str, bool]] = {
    "method": (lambda v: isinstance(v, str), "a method name", True),
    "alpha": (_is_number, "a number", True),
    "beta": (lambda v: v is None or _is_number(v), "a number or null", True),
    "classnames": (_is_names, "a non-empty list of strings", True),
    "templates": (lambda v: _is_names(v) and all("{}" in t for t in v), "a non-empty list of strings with '{}'", True),
    "backbone": (lambda v: isinstance(v, dict) and all(isinstance(v.get(k), str) for k in
                                                       ("name", "pretrained", "weights", "precision")),
                 "an object of strings name, pretrained, weights, precision", True),
    "class_folders": (lambda v: v is None or _is_names(v), "a list of strings or null", False),
    "batch_size": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
                   "a positive integer or null", False),
    "preprocess": (lambda v: isinstance(v, str), "a string", False),
}


def _check_header(info: Any) -> None:
    """The header's JSON has every key of :data:`HEADER_KEYS` with the right type (ValueError otherwise)."""
    if not isinstance(info, dict):
        raise ValueError(f"its header must be a JSON object, got {type(info).__name__}")
    for key, (ok, want, required) in HEADER_KEYS.items():
        if key not in info:
            if required:
                raise ValueError(f"header key {key!r} is missing")
            continue
        if not ok(info[key]):
            raise ValueError(f"header key {key!r} must be {want}, got {json.dumps(info[key])[:60]}")


@dataclass
class Prediction:
    """Predictions for ``N`` images: ``probs [N, C]`` (softmax of the logits) over ``classnames``."""

    classnames: list[str]
    probs: np.ndarray
    logits: torch.Tensor = field(repr=False)

    @property
    def indices(self) -> np.ndarray:
        """``[N]`` predicted class indices."""
        return self.probs.argmax(axis=1)

    @property
    def labels(self) -> list[str]:
        """``[N]`` predicted class names."""
        return [self.classnames[int(i)] for i in self.indices]

    def top(self, k: int = 3) -> list[list[tuple[str, float]]]:
        """Per image, the ``min(k, classes)`` most probable ``(class name, probability)``, most probable first
        (the default 3 gives both classes of a two-class adapter)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise TipkitError(f"top-k must be a positive integer, got {k!r}")
        k = min(int(k), len(self.classnames))
        order = np.argsort(-self.probs, axis=1, kind="stable")[:, :k]
        return [[(self.classnames[int(j)], float(p[j])) for j in row] for p, row in zip(self.probs, order)]


@dataclass
class Adapter:
    """A fitted zero-shot / Tip-Adapter / Tip-Adapter-F classifier: ``class_embeddings [C, D]``, and for
    the cache methods ``keys [K, D]``, ``values [K, C]``, ``alpha``, ``beta``."""

    method: str
    class_embeddings: torch.Tensor
    keys: "torch.Tensor | None"
    values: "torch.Tensor | None"
    alpha: float
    beta: "float | None"
    classnames: list[str]
    templates: list[str]
    backbone: dict[str, str]  # name, pretrained, weights, precision
    meta: dict[str, Any] = field(default_factory=dict)  # class_folders, preprocess, tipkit, run
    source: str = field(default="(in memory)", repr=False)

    @property
    def num_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    @classmethod
    def from_method(cls, method: Method, bb: Backbone, classnames: list[str], templates: list[str],
                    **meta: Any) -> "Adapter":
        """The adapter of a fitted method (one of :data:`SAVABLE`) on backbone ``bb``."""
        if method.name not in SAVABLE:
            raise TipkitError(f"cannot save method {method.name!r} as an adapter; savable: {', '.join(SAVABLE)}")
        W = method.W.detach().float().cpu()  # type: ignore[attr-defined]
        tip = method.name in CACHE_METHODS
        keys = method.keys.detach().float().cpu() if tip else None  # type: ignore[attr-defined]
        values = method.values if tip else None  # type: ignore[attr-defined]
        if isinstance(values, OneHot):  # the methods keep one-hot values as labels; the file holds [K, C]
            values = values.dense()
        values = values.detach().float().cpu() if values is not None else None
        alpha, beta = (float(method.alpha), float(method.beta)) if tip else (0.0, None)  # type: ignore[attr-defined]
        backbone = {"name": bb.name, "pretrained": bb.pretrained, "weights": bb.weights_id, "precision": bb.precision}
        meta = {"preprocess": repr(bb.preprocess), "image_size": bb.image_size, "tipkit": __version__,
                "hyper": method.hyper, **meta}
        return cls(method.name, W, keys, values, alpha, beta, list(classnames), list(templates), backbone, meta)

    # ------------------------------------------------------------------------------------------- file
    def save(self, path: "str | Path") -> Path:
        """Write the adapter to ``path`` atomically (one safetensors file); returns the path."""
        path = check_target(path)
        tensors = {"class_embeddings": self.class_embeddings.contiguous()}
        if self.keys is not None:
            tensors.update(keys=self.keys.contiguous(), values=self.values.contiguous())  # type: ignore[union-attr]
        info = {"method": self.method, "alpha": self.alpha, "beta": self.beta, "classnames": self.classnames,
                "templates": self.templates, "backbone": self.backbone, **self.meta}
        save_safetensors(path, tensors, metadata={"format": MAGIC, "format_version": str(ADAPTER_FORMAT),
                                                   "tipkit": json.dumps(info, sort_keys=True, default=str)})
        log.info("wrote adapter %s (%s, %d classes)", path, self.method, self.num_classes)
        return path

    @classmethod
    def load(cls, path: "str | Path") -> "Adapter":
        """Read an adapter file written by :meth:`save` (or ``tipkit run --save-adapter``)."""
        from safetensors import safe_open

        path = Path(path).expanduser()
        if not path.is_file():
            raise TipkitError(f"adapter file not found: {path}")
        try:
            with safe_open(str(path), "pt") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:
            raise TipkitError(f"{path} is not a tipkit adapter (not a safetensors file: "
                              f"{(str(e).splitlines() or [type(e).__name__])[0]})") from None
        if header.get("format") != MAGIC:
            raise TipkitError(f"{path} is not a tipkit adapter (a safetensors file without tipkit's adapter "
                              "metadata); write one with `tipkit run ... --save-adapter FILE`")
        version = header.get("format_version", "?")
        if not version.isdigit() or int(version) > ADAPTER_FORMAT:
            raise TipkitError(f"{path} is adapter format {version}, newer than this tipkit ({__version__}) reads "
                              f"(format {ADAPTER_FORMAT}); upgrade tipkit")
        try:
            info = json.loads(header["tipkit"])
            _check_header(info)
            a = cls(info.pop("method"), tensors["class_embeddings"].float(), tensors.get("keys"), tensors.get("values"),
                    float(info.pop("alpha")), info.pop("beta"), list(info.pop("classnames")),
                    list(info.pop("templates")), dict(info.pop("backbone")), info, str(path))
            a._check()
        except (KeyError, TypeError, ValueError, AttributeError, json.JSONDecodeError) as e:
            raise TipkitError(f"{path} is a damaged tipkit adapter ({type(e).__name__}: {e})") from None
        return a

    def _check(self) -> None:
        c, d = self.class_embeddings.shape
        if self.method not in SAVABLE or len(self.classnames) != c:
            raise ValueError(f"method {self.method!r} with {len(self.classnames)} class names for {c} classes")
        if self.method in CACHE_METHODS:
            if self.keys is None or self.values is None or self.keys.shape[1] != d or \
                    tuple(self.values.shape) != (self.keys.shape[0], c) or self.beta is None:
                raise ValueError("cache tensors keys [K, D] and values [K, C] (and beta) do not fit the classifier")

    # ------------------------------------------------------------------------------------- predict
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, C]`` for L2-normalised image features ``[N, D]`` (exactly the fitted method's)."""
        f = features.float().cpu()
        if f.dim() != 2 or f.shape[1] != self.class_embeddings.shape[1]:
            raise TipkitError(f"features must be [N, {self.class_embeddings.shape[1]}], got {tuple(f.shape)}")
        if self.keys is None:
            return clip_logits(f, self.class_embeddings)
        values = as_one_hot(self.values) or self.values  # one-hot: per-class sums, as the run computed them
        return tip_logits(f, self.class_embeddings, self.keys, values, self.alpha, self.beta)  # type: ignore[arg-type]

    def load_backbone(self, pretrained: "str | None" = None, device: "str | torch.device" = "cpu") -> Backbone:
        """The backbone the adapter names (``pretrained`` overrides where its weights are); refuses weights
        whose identity (sha256 of the file, or tag) is not the one the adapter was fitted with."""
        b = self.backbone
        want = b["weights"]
        seed = int(want.split(":")[1]) if want.startswith("random-init:") else 0
        bb = load_backbone(b["name"], pretrained or b["pretrained"], device=device, precision=b["precision"],
                           init_seed=seed)
        if bb.weights_id != want:
            raise TipkitError(f"adapter {self.source} was fitted on {b['name']} weights {want} but "
                              f"{pretrained or b['pretrained']} has {bb.weights_id}; pass the checkpoint it was "
                              "fitted with (--pretrained PATH)")
        if repr(bb.preprocess) != self.meta.get("preprocess", repr(bb.preprocess)):
            log.warning("%s: the backbone's preprocessing differs from the one the adapter was fitted with",
                        self.source)
        return bb

    def predict(self, images: "Sequence[Image.Image | str | Path] | Image.Image | str | Path",
                backbone: "Backbone | None" = None, batch_size: "int | None" = None,
                device: "str | torch.device" = "cpu") -> Prediction:
        """Classify PIL images or image files (one, or a sequence): ``Prediction`` with ``labels``,
        ``indices [N]``, ``probs [N, C]``. Images are read as a viewer shows them (EXIF orientation applied;
        :func:`tipkit.data.imagefiles.open_image`) and encoded in batches of ``batch_size`` (default: the
        run's) with a progress bar."""
        if isinstance(images, (str, Path, Image.Image)):
            images = [images]
        if len(images) == 0:
            raise TipkitError("no images to predict")
        bb = backbone or self.load_backbone(device=device)
        logits = self.logits(l2_normalize(encode(bb, images, batch_size or int(self.meta.get("batch_size", 256)))))
        return Prediction(list(self.classnames), torch.softmax(logits, dim=1).numpy(), logits)


def _image(item: "Image.Image | str | Path") -> Image.Image:
    """An image as a viewer shows it: a file through :func:`open_image`, a PIL image with its EXIF orientation
    applied and its mode converted the same way."""
    if isinstance(item, Image.Image):
        return to_rgb(ImageOps.exif_transpose(item))
    return open_image(Path(item))


@torch.no_grad()
def encode(bb: Backbone, images: Sequence["Image.Image | str | Path"], batch_size: int = 256) -> torch.Tensor:
    """Raw image features ``[N, D]`` (float32, CPU) under the backbone's test preprocessing, in batches
    (as :func:`tipkit.models.image_features` computes them, so the same batches give the same numbers)."""
    if batch_size < 1:
        raise TipkitError(f"batch size must be >= 1, got {batch_size}")
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="predict", unit="batch", leave=False):
        x = torch.stack([bb.preprocess(_image(im)) for im in images[start:start + batch_size]])
        with autocast(bb):
            out.append(bb.model.encode_image(x.to(bb.device)).float().cpu())
    return torch.cat(out)
