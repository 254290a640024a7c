"""Synthetic CLIP-shaped features at the shapes of the paper's datasets, for the scale benchmark.

A :class:`Shape` is what a run of the paper would hold in memory for one dataset: ``C`` classes, a cache of
``K = shots · C`` few-shot images under ``views`` augmented views, ``D``-wide features (1024: RN50 CLIP), the
validation images a protocol searches on (``clean``: CoOp's ``min(shots, 4)`` per class; ``paper``: the whole
split, as the official code) and the test images. Split sizes come from :data:`tipkit.data.check.EXPECTED`
(CoOp's splits; ImageNet's val is its test set) and, for Fashion-MNIST, from tipkit's own split.

The features (:func:`make_features`) behave like CLIP's on a hard dataset, so that searches and fine-tuning
do the work they do on real data (on features a method classifies perfectly, a search finds its best point
at once and a fine-tuning run never improves after its first epoch), and a method's accuracy stays a sanity
check:

- class means ``μ_c``: random unit vectors in ``R^D``;
- every image (few-shot, validation, test): ``μ_y + IMAGE_NOISE · g / √D`` with ``g ~ N(0, I)``, so the noise
  has norm ≈ ``IMAGE_NOISE``; each augmented view adds ``VIEW_NOISE · g' / √D`` to its image;
- the text classifier rows: ``μ_c + TEXT_NOISE · h / √D``, L2-normalised (a close copy of the means), the
  single-prompt classifier likewise with ``SINGLE_PROMPT_NOISE``.

Images far from their class mean and a text classifier close to it make the few-shot images a weak addition
to the text, as on ImageNet with RN50 CLIP: zero-shot about 58 % at ImageNet's shape (C = 1000, D = 1024),
Tip-Adapter a few points above it, and one shot a worse classifier than the text (a single image is farther
from its class mean than the text row is). Everything is deterministic in ``seed``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from tipkit.core.cache import l2_normalize
from tipkit.data.check import EXPECTED
from tipkit.data.fashion_mnist import PER_CLASS as FMNIST_PER_CLASS
from tipkit.errors import TipkitError, choose
from tipkit.methods import FewShotData

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

IMAGE_NOISE = 6.5  # norm of an image's deviation from its class mean
VIEW_NOISE = 0.5  # norm of an augmented view's deviation from its image
TEXT_NOISE = 1.0  # norm of a text row's deviation from its class mean (template ensemble)
SINGLE_PROMPT_NOISE = 1.05  # the same for the single-prompt classifier
FAMILY = "clip_like"  # the feature family above, stamped on every benchmark row (rows without it: "separable")
PROTOCOLS = ("clean", "paper")
FMNIST_TEST = 10_000  # Fashion-MNIST's test set


@dataclass(frozen=True)
class Shape:
    """The sizes of one benchmark problem (the inputs of one run at ``shots`` shots)."""

    name: str  # the shape's name (a dataset's registry name for the paper's shapes)
    dataset: str  # the registry dataset whose run settings apply (tipkit.make_config(dataset=...))
    classes: int
    val_paper: int  # the whole validation split (the ``paper`` protocol searches on it)
    test: int
    shots: int = 16
    dim: int = 1024  # RN50 CLIP's embedding width
    views: int = 10  # the paper's augmented views of each cache image

    @property
    def cache_size(self) -> int:
        """``K``: cache entries (few-shot images)."""
        return self.shots * self.classes

    def val_size(self, protocol: str) -> int:
        """Validation images a run chooses on: ``min(shots, 4)`` per class (clean) or the whole split (paper)."""
        choose("protocol", protocol, list(PROTOCOLS))
        return min(self.shots, 4) * self.classes if protocol == "clean" else self.val_paper

    def row(self, protocol: str) -> dict:
        """The shape's sizes as CSV columns."""
        d = asdict(self)
        return {"shape": d.pop("name"), "dataset": d.pop("dataset"), "classes": self.classes, "shots": self.shots,
                "cache_size": self.cache_size, "dim": self.dim, "views": self.views,
                "val_size": self.val_size(protocol), "test_size": self.test}


def _paper_shapes() -> dict[str, Shape]:
    out = {"fashion-mnist": Shape("fashion-mnist", "fashion-mnist", 10, 10 * FMNIST_PER_CLASS["val"], FMNIST_TEST)}
    for name, exp in EXPECTED.items():
        if "train" in exp["sizes"]:  # the few-shot datasets (not the test-only ImageNet shifts)
            out[name] = Shape(name, name, exp["classes"], exp["sizes"]["val"], exp["sizes"]["test"])
    return dict(sorted(out.items(), key=lambda kv: (kv[1].cache_size, kv[1].val_paper + kv[1].test)))


SHAPES: dict[str, Shape] = _paper_shapes()  # by size: fashion-mnist ... sun397, imagenet
QUICK_SHAPES: dict[str, Shape] = {  # small, for tests and smoke runs (seconds per method)
    "tiny": Shape("tiny", "synthetic", 10, 200, 500, shots=4, dim=256, views=2),
    "small": Shape("small", "synthetic", 40, 400, 1000, shots=4, dim=256, views=2),
}


def shapes_table(shapes: "dict[str, Shape] | None" = None) -> "pd.DataFrame":
    """The shapes as a table: classes, cache size, feature width, views, validation sizes per protocol, test."""
    import pandas as pd

    return pd.DataFrame([{"shape": s.name, "classes": s.classes, "cache K": s.cache_size, "width D": s.dim,
                          "views": s.views, "val (clean)": s.val_size("clean"), "val (paper)": s.val_paper,
                          "test": s.test} for s in (shapes or SHAPES).values()])


def get_shape(name: str) -> Shape:
    """A shape by name (the paper's or a quick one)."""
    known = {**SHAPES, **QUICK_SHAPES}
    return known[choose("shape", name, list(known))]


def _noise(n: "int | tuple[int, ...]", dim: int, norm: float, gen: torch.Generator) -> torch.Tensor:
    shape = (n, dim) if isinstance(n, int) else (*n, dim)
    return torch.randn(shape, generator=gen, device=gen.device).mul_(norm / math.sqrt(dim))


def balanced_labels(n: int, classes: int) -> torch.Tensor:
    """``[n]`` labels cycling through the classes (every class within one image of ``n / classes``)."""
    return torch.arange(n) % classes


def make_features(shape: Shape, protocol: str = "clean", seed: int = 1, device: str = "cpu",
                  generate_on: str = "cpu") -> tuple[FewShotData, torch.Tensor, torch.Tensor]:
    """``(FewShotData, test features [N, D] L2-normalised, test labels [N])`` of ``shape`` (see the module doc).

    ``FewShotData.views`` is ``[views, K, D]`` raw (unnormalised) features, ``val`` ``[Nv, D]`` with ``Nv`` from
    the protocol; every tensor is returned float32 on the CPU (methods move what they need to ``device``).
    ``generate_on``: where the random numbers are drawn (``cuda`` is seconds faster at ImageNet's shape; each
    device has its own stream, so the numbers, not their distribution, differ from the CPU's).
    """
    if seed < 0:
        raise TipkitError(f"seed must be >= 0, got {seed}")
    nv = shape.val_size(protocol)
    gen = torch.Generator(device=generate_on).manual_seed(seed * 1_000_003 + shape.cache_size)
    means = l2_normalize(torch.randn(shape.classes, shape.dim, generator=gen, device=gen.device))  # [C, D]
    text = l2_normalize(means + _noise(shape.classes, shape.dim, TEXT_NOISE, gen))
    single = l2_normalize(means + _noise(shape.classes, shape.dim, SINGLE_PROMPT_NOISE, gen))
    labels = torch.arange(shape.classes, device=gen.device).repeat_interleave(shape.shots)  # [K], by class
    images = means[labels] + _noise(len(labels), shape.dim, IMAGE_NOISE, gen)  # [K, D]
    views = images.unsqueeze(0) + _noise((shape.views, len(labels)), shape.dim, VIEW_NOISE, gen)  # [A, K, D]
    del images

    def queries(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = balanced_labels(n, shape.classes).to(gen.device)
        return l2_normalize(means[y] + _noise(n, shape.dim, IMAGE_NOISE, gen)).cpu(), y.cpu()

    val, val_labels = queries(nv)
    test, test_labels = queries(shape.test)
    data = FewShotData(views=views.cpu(), labels=labels.cpu(), val=val, val_labels=val_labels,
                       class_embeddings=text.cpu(), single_prompt_embeddings=single.cpu(), seed=seed, device=device)
    return data, test, test_labels
