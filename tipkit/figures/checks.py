"""Checks for the walkthrough's exercises: each compares a student's answer with tipkit's own math and,
when it is wrong, says *what* is wrong (not filled in, shape, a missing normalisation, the sign of β, a
missing α ...) in one :class:`ExerciseError` line. A right answer returns a short "correct" message.

Reached as ``tipkit.teach.check_*`` (the walkthrough's public face); the student notebooks written by
``python -m tipkit classroom`` keep these calls while the solutions are removed.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from tipkit.core.cache import l2_normalize
from tipkit.core.finetune import finetune
from tipkit.core.fusion import CLIP_SCALE, cache_logits, clip_logits
from tipkit.errors import TipkitError

TOL = 1e-4


class ExerciseError(TipkitError, AssertionError):
    """A wrong or missing exercise answer; the message says what to fix."""


def _tensor(name: str, answer: Any) -> torch.Tensor:
    """The answer as a float tensor, or an ExerciseError when it is not filled in or not numeric."""
    if answer is Ellipsis or answer is None:
        raise ExerciseError(f"`{name}` is not filled in yet: replace the `...` with your code and run the cell again")
    try:
        t = torch.as_tensor(np.asarray(answer.detach() if isinstance(answer, torch.Tensor) else answer))
    except (TypeError, ValueError, RuntimeError) as e:
        raise ExerciseError(f"`{name}` must be a tensor or array of numbers, got {type(answer).__name__}") from e
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise ExerciseError(f"`{name}` must hold numbers, got dtype {t.dtype}")
    return t.double()


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.double(), b.double(), rtol=rtol, atol=TOL))


class Correct(str):
    """A passed check's message; shown as plain text (no quotes) as a cell's result."""

    def __repr__(self) -> str:
        return str(self)


def _ok(what: str) -> Correct:
    return Correct(f"correct: {what}")


def check_cache_logits(answer: Any, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       beta: float) -> str:
    """Exercise: the cache logits ``exp(−β(1 − f Kᵀ)) V`` of one ``query [D]`` (answer ``[C]`` or ``[1, C]``)."""
    a = _tensor("answer", answer)
    q = query.reshape(1, -1).double()
    k, v = keys.double(), values.double()
    want = cache_logits(q, k, v, beta)[0]
    c, n_keys = v.shape[1], k.shape[0]
    if a.dim() == 2 and a.shape[0] == 1:
        a = a[0]
    if a.shape == (n_keys,) and n_keys != c:
        raise ExerciseError(f"answer has one entry per cached image ({n_keys}), not per class ({c}): "
                            "multiply the weights by the values V to sum them per class")
    if a.shape != want.shape:
        raise ExerciseError(f"answer has shape {tuple(a.shape)}, expected ({c},) — one logit per class")
    if _close(a, want):
        return _ok(f"the cache logits of this query at β = {beta:g}")
    aff = q @ k.T
    wrong = {
        "the sign of β is flipped: the weights are exp(−β(1 − cos)), which shrink as the cosine falls":
            torch.exp(beta * (1 - aff)) @ v,
        "the `1 −` is missing: use the distance 1 − cos, i.e. exp(−β(1 − f Kᵀ)), not exp(−β f Kᵀ)":
            torch.exp(-beta * aff) @ v,
        "the exponential is missing: the weights are exp(−β(1 − f Kᵀ)), not −β(1 − f Kᵀ)": (-beta * (1 - aff)) @ v,
        "β is missing or wrong: the weights are exp(−β(1 − f Kᵀ)) with the β given":
            torch.exp(-(1 - aff)) @ v,
    }
    for msg, guess in wrong.items():
        if _close(a, guess.reshape(want.shape)):
            raise ExerciseError(msg)
    raise ExerciseError(f"answer differs from the cache logits (largest gap {float((a - want).abs().max()):.4g}); "
                        f"expected {np.round(want.numpy(), 3).tolist()}")


def check_tip_logits(answer: Any, features: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.Tensor,
                     values: torch.Tensor, alpha: float, beta: float) -> str:
    """Exercise: Tip-Adapter's logits ``100 f Wᵀ + α · cache`` for ``features [N, D]`` (answer ``[N, C]``)."""
    a = _tensor("logits", answer)
    f, w, k, v = (t.double() for t in (features, class_embeddings, keys, values))
    zs, cache = clip_logits(f, w), cache_logits(f, k, v, beta)
    want = zs + alpha * cache
    if a.shape != want.shape:
        raise ExerciseError(f"logits have shape {tuple(a.shape)}, expected {tuple(want.shape)} "
                            "(one row per test image, one column per class)")
    if _close(a, want):
        return _ok(f"Tip-Adapter's logits at α = {alpha:g}, β = {beta:g}")
    wrong = {
        "α is missing: the cache logits are weighed by α (logits = zero-shot + α · cache)": zs + cache,
        "α weighs the wrong term: it multiplies the cache logits, not the zero-shot ones": alpha * zs + cache,
        "the zero-shot logits lack CLIP's scale: they are 100 · f Wᵀ": zs / CLIP_SCALE + alpha * cache,
        "the zero-shot logits are missing: add 100 · f Wᵀ to α · cache": alpha * cache,
        "the cache logits are missing: this is zero-shot CLIP alone": zs,
        "the cache term is subtracted: logits = zero-shot + α · cache": zs - alpha * cache,
    }
    for msg, guess in wrong.items():
        if _close(a, guess):
            raise ExerciseError(msg)
    raise ExerciseError(f"logits differ from Tip-Adapter's (largest gap {float((a - want).abs().max()):.4g})")


def check_small_cache(keys: Any, values: Any, classes: Any, view_features: torch.Tensor,
                      labels: "torch.Tensor | np.ndarray", classnames: Sequence[str], shots: int = 1) -> str:
    """Exercise: a ``shots``-shot cache on the chosen ``classes`` only.

    ``keys [S·shots, D]`` must be view-averaged, L2-normalised features of few-shot images (columns of
    ``view_features [A, K, D]``, whose classes are ``labels [K]``); ``values [S·shots, S]`` one-hot over the
    S chosen classes, in the order of ``classes``, each class ``shots`` times, each key under its own class.
    """
    if classes is Ellipsis or classes is None:
        raise ExerciseError("`my_classes` is not filled in yet: choose three class indices, e.g. [0, 4, 7]")
    k, v = _tensor("keys3", keys), _tensor("values3", values)
    classes = [int(c) for c in classes]
    s, labels = len(classes), np.asarray(labels)
    if len(set(classes)) != s:
        raise ExerciseError(f"the chosen classes {classes} repeat a class: choose {s} different ones")
    if v.dim() != 2 or v.shape[1] != s:
        raise ExerciseError(f"values have shape {tuple(v.shape)}: they need {s} columns, one per chosen class "
                            f"(relabel the classes {classes} as 0..{s - 1}), not one per class of the dataset")
    if k.dim() != 2 or k.shape[0] != v.shape[0]:
        raise ExerciseError(f"keys {tuple(k.shape)} and values {tuple(v.shape)} need one row per cached image each")
    if k.shape[0] != s * shots:
        raise ExerciseError(f"the cache holds {k.shape[0]} images; a {shots}-shot cache on {s} classes holds {s * shots}")
    if not (((v == 0) | (v == 1)).all() and (v.sum(1) == 1).all()):
        raise ExerciseError("values must be one-hot rows (a single 1 per row): use tipkit.build_cache or tipkit.one_hot")
    counts = v.sum(0).long().tolist()
    if counts != [shots] * s:
        raise ExerciseError(f"each chosen class needs {shots} cached image(s); the values count {counts}")
    norms = k.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ExerciseError(f"keys are not L2-normalised (row norms {np.round(norms.numpy(), 3).tolist()}): "
                            "average the views, then normalise (tipkit.build_cache does both)")
    candidates = l2_normalize(view_features.double().mean(0))  # [K, D]
    for i, row in enumerate(k):
        cos = candidates @ row
        j = int(cos.argmax())
        if float(cos[j]) < 1 - 1e-4:
            raise ExerciseError(f"key {i} is not the view-averaged feature of any few-shot image: average over all "
                                "augmented views (dim 0 of the view features) before normalising")
        want = classes[int(v[i].argmax())]
        if int(labels[j]) != want:
            raise ExerciseError(f"key {i} is an image of {classnames[int(labels[j])]!r} but its value says "
                                f"{classnames[want]!r}: keys and values must stay in the same order")
    return _ok(f"a {shots}-shot cache on {', '.join(classnames[c] for c in classes)}")


def check_finetune_epoch(new_keys: Any, keys: torch.Tensor, view_features: torch.Tensor, labels: torch.Tensor,
                         class_embeddings: torch.Tensor, values: torch.Tensor, alpha: float, beta: float,
                         lr: float = 1e-3) -> str:
    """Exercise: the keys after one epoch of Tip-Adapter-F (epoch 1: view 0, one full batch, AdamW(lr, eps 1e-4)).

    ``new_keys [K, D]``; compared with :func:`tipkit.finetune` run for one epoch on the same inputs.
    """
    nk = _tensor("new_keys", new_keys)
    if nk.shape != keys.shape:
        raise ExerciseError(f"new_keys have shape {tuple(nk.shape)}, expected {tuple(keys.shape)} (the cache keys)")
    f0 = l2_normalize(view_features[0].double())
    w, v, y = class_embeddings.double(), values.double(), torch.as_tensor(labels).long()

    def loss(k: torch.Tensor) -> float:
        logits = clip_logits(f0, w) + alpha * torch.exp(-beta * (1 - f0 @ k.T)) @ v
        return float(torch.nn.functional.cross_entropy(logits, y))

    if torch.equal(nk, keys.double()):
        raise ExerciseError("new_keys equal the initial keys: the optimiser never stepped (call loss.backward() and "
                            "opt.step()), or the keys were not the parameter it trains")
    before, after = loss(keys.double()), loss(nk)
    if after > before:
        raise ExerciseError(f"the loss went up ({before:.4f} -> {after:.4f}): the step goes uphill — minimise the "
                            "cross-entropy (do not negate it), and step the keys, not a copy")
    ref = finetune(view_features, y, f0.float(), y, class_embeddings, keys, values, alpha, beta, epochs=1, lr=lr,
                   batch_size=max(256, len(y)))
    if _close(nk, ref.keys, rtol=1e-3):
        return _ok(f"one epoch of Tip-Adapter-F (loss {before:.4f} -> {after:.4f})")
    raise ExerciseError(f"the loss fell ({before:.4f} -> {after:.4f}) but the keys are not Tip-Adapter-F's after one "
                        f"epoch (largest gap {float((nk - ref.keys.double()).abs().max()):.2e}): use view 0 "
                        f"L2-normalised, AdamW(lr={lr:g}, eps=1e-4), α and β as given, one step on all images")
