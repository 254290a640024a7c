"""Distribution shift in miniature: two shifted copies of the Fashion-MNIST test set, test only, same 10
classes, as ImageNet-Sketch and ImageNet-V2 are for ImageNet (the paper's Table 5).

- ``fashion-mnist-sketch``: every test image redrawn as its edge map (Sobel gradient magnitude, scaled per
  image and sharpened into strokes): the outline stays, the fill, shading and texture go — what a sketch
  keeps of a photo, as ImageNet-Sketch's drawings keep the shape of ImageNet's classes and drop their
  texture and colour. A strong shift.
- ``fashion-mnist-v2``: every test image "re-collected": a deterministic mild change of acquisition drawn
  per image from a fixed seed (re-framed: scale 0.85-1.0, rotation up to ±8°, shift up to ±2 px; exposure:
  gamma 0.7-1.4; a slightly softer lens: Gaussian blur 0.5 px), as ImageNet-V2 re-collected ImageNet's
  classes by the same recipe and lost a few points. A mild shift.

Both are functions of the official test images only (never the training images the stand-in saw), fixed
by their definition: the same image comes out of every build, so features are cached like any split's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from tipkit.data.fashion_mnist import fashion_mnist
from tipkit.data.imagenet import TestOnlyDataset
from tipkit.data.registry import Dataset, Split, register

V2_SEED = 2019  # the re-collection's fixed seed (part of the dataset's definition, never a run seed)
V2_SCALE = (0.85, 1.0)  # re-framing: zoom range
V2_ROTATE = 8.0  # degrees, either way
V2_SHIFT = 2.0  # pixels, either way, along each axis
V2_GAMMA = (0.7, 1.4)  # exposure: gamma range (log-uniform)
V2_BLUR = 0.5  # a slightly softer lens: Gaussian blur radius, pixels
SHIFTS = ("fashion-mnist-sketch", "fashion-mnist-v2")


def sketch(img: np.ndarray) -> np.ndarray:
    """Edge map of a ``[H, W]`` uint8 image: Sobel magnitude scaled to its 99th percentile, strokes
    sharpened by a square root; uint8 ``[H, W]`` (light strokes on dark, Fashion-MNIST's polarity)."""
    x = np.pad(img.astype(np.float32) / 255.0, 1, mode="edge")
    gx = (x[:-2, 2:] + 2 * x[1:-1, 2:] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[1:-1, :-2] + x[2:, :-2])
    gy = (x[2:, :-2] + 2 * x[2:, 1:-1] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:])
    mag = np.hypot(gx, gy)
    top = float(np.percentile(mag, 99)) or 1.0
    return (np.sqrt(np.clip(mag / top, 0.0, 1.0)) * 255.0 + 0.5).astype(np.uint8)


def recollect(img: np.ndarray, index: int, seed: int = V2_SEED) -> np.ndarray:
    """A mild, deterministic change of acquisition of test image ``index`` (``[H, W]`` uint8 -> same):
    scale, rotation and shift about the centre, then gamma, then a slight blur; drawn from ``(seed, index)``."""
    rng = np.random.default_rng([seed, index])
    scale, angle = rng.uniform(*V2_SCALE), np.deg2rad(rng.uniform(-V2_ROTATE, V2_ROTATE))
    tx, ty = rng.uniform(-V2_SHIFT, V2_SHIFT, size=2)
    gamma = float(np.exp(rng.uniform(np.log(V2_GAMMA[0]), np.log(V2_GAMMA[1]))))
    h, w = img.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale  # output -> input (inverse map)
    a, b = cos, sin
    d, e = -sin, cos
    c = cx - a * (cx + tx) - b * (cy + ty)
    f = cy - d * (cx + tx) - e * (cy + ty)
    out = Image.fromarray(img, mode="L").transform((w, h), Image.Transform.AFFINE, (a, b, c, d, e, f),
                                                   resample=Image.Resampling.BILINEAR)
    arr = 255.0 * (np.asarray(out, dtype=np.float32) / 255.0) ** gamma
    out = Image.fromarray((arr + 0.5).astype(np.uint8), mode="L").filter(ImageFilter.GaussianBlur(V2_BLUR))
    return np.asarray(out)


def describe() -> dict[str, str]:
    """Each shifted set's recipe in words, from the constants above (for the book)."""
    return {"fashion-mnist-v2": (f"re-framed (scale {V2_SCALE[0]:g}–{V2_SCALE[1]:g}, rotation up to ±{V2_ROTATE:g}°, "
                                 f"shift up to ±{V2_SHIFT:g} px), exposed differently (gamma {V2_GAMMA[0]:g}–"
                                 f"{V2_GAMMA[1]:g}) and through a slightly softer lens (Gaussian blur {V2_BLUR:g} px), "
                                 f"drawn per image from seed {V2_SEED}"),
            "fashion-mnist-sketch": "the Sobel gradient magnitude, scaled to its 99th percentile per image and "
                                    "sharpened into strokes by a square root"}


def _shifted(name: str, base: Dataset, make: "callable") -> Dataset:
    test = base.split("test")
    raw = test.load

    def load(i: int) -> Image.Image:
        return Image.fromarray(make(np.asarray(raw(i)), i), mode="L")

    split = Split("test", test.labels, load, [f"{name}/{j}" for j in test.ids])
    return TestOnlyDataset(name, base.classnames, base.templates, {"test": split},
                           info={"shift_of": "fashion-mnist", "shift": name.rsplit("-", 1)[-1]})


@register("fashion-mnist-sketch")
def fashion_mnist_sketch(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """Fashion-MNIST's test set as edge-map sketches (test only; shift from ``fashion-mnist``)."""
    return _shifted("fashion-mnist-sketch", fashion_mnist(root, download), lambda x, i: sketch(x))


@register("fashion-mnist-v2")
def fashion_mnist_v2(root: "str | Path | None" = None, download: bool = True) -> Dataset:
    """Fashion-MNIST's test set re-collected: a mild per-image change of acquisition (test only)."""
    return _shifted("fashion-mnist-v2", fashion_mnist(root, download), recollect)
