"""The walkthrough's exercise checks: a right answer passes, and each typical mistake is named."""

import pytest
import torch

from tipkit.core.cache import build_cache, l2_normalize
from tipkit.core.fusion import clip_logits, tip_logits
from tipkit.figures import teach

BETA, ALPHA = 5.5, 2.0


@pytest.fixture
def cache(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    return keys, values


def test_cache_logits_right_answer_passes(problem, cache):
    keys, values = cache
    q = problem["queries"][3]
    answer = torch.exp(-BETA * (1 - keys @ q)) @ values
    assert str(teach.check_cache_logits(answer, q, keys, values, BETA)).startswith("correct")
    assert str(teach.check_cache_logits(answer[None].numpy(), q, keys, values, BETA)).startswith("correct")


@pytest.mark.parametrize("mistake, message", [
    (lambda a, v: ..., "not filled in"),
    (lambda a, v: torch.exp(BETA * (1 - a)) @ v, "sign of β"),
    (lambda a, v: torch.exp(-BETA * a) @ v, "`1 −` is missing"),
    (lambda a, v: (-BETA * (1 - a)) @ v, "exponential is missing"),
    (lambda a, v: torch.exp(-(1 - a)) @ v, "β is missing"),
    (lambda a, v: torch.exp(-BETA * (1 - a)), "one entry per cached image"),
    (lambda a, v: (torch.exp(-BETA * (1 - a)) @ v)[:-1], "expected (5,)"),
    (lambda a, v: torch.exp(-BETA * (1 - a)) @ v + 0.5, "differs from the cache logits"),
])
def test_cache_logits_names_the_mistake(problem, cache, mistake, message):
    keys, values = cache
    q = problem["queries"][3]
    with pytest.raises(teach.ExerciseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        teach.check_cache_logits(mistake(keys @ q, values), q, keys, values, BETA)


@pytest.mark.parametrize("build, message", [
    (lambda zs, c: zs + c, "α is missing"),
    (lambda zs, c: ALPHA * zs + c, "wrong term"),
    (lambda zs, c: zs / 100 + ALPHA * c, "CLIP's scale"),
    (lambda zs, c: ALPHA * c, "zero-shot logits are missing"),
    (lambda zs, c: zs, "cache logits are missing"),
    (lambda zs, c: zs - ALPHA * c, "subtracted"),
    (lambda zs, c: (zs + ALPHA * c).T, "expected"),
])
def test_tip_logits_names_the_mistake(problem, cache, build, message):
    keys, values = cache
    f, W = problem["queries"], problem["W"]
    zs = clip_logits(f, W)
    c = (tip_logits(f, W, keys, values, 1.0, BETA) - zs)
    assert str(teach.check_tip_logits(zs + ALPHA * c, f, W, keys, values, ALPHA, BETA)).startswith("correct")
    with pytest.raises(teach.ExerciseError, match=message):
        teach.check_tip_logits(build(zs, c), f, W, keys, values, ALPHA, BETA)


def _small(problem, classes, views=None):
    views = problem["views"] if views is None else views
    first = [int((problem["labels_k"] == c).nonzero()[0]) for c in classes]
    return build_cache(views[:, first], torch.arange(len(classes)), len(classes))


def test_small_cache_right_answer_passes(problem):
    keys3, values3 = _small(problem, [4, 0, 2])
    names = [f"c{i}" for i in range(problem["C"])]
    msg = teach.check_small_cache(keys3, values3, [4, 0, 2], problem["views"], problem["labels_k"], names)
    assert msg == "correct: a 1-shot cache on c4, c0, c2"


@pytest.mark.parametrize("mutate, message", [
    (lambda k, v, cl: (k, v, ...), "`my_classes` is not filled in"),
    (lambda k, v, cl: (..., v, cl), "`keys3` is not filled in"),
    (lambda k, v, cl: (k, v, [4, 4, 2]), "repeat a class"),
    (lambda k, v, cl: (k, torch.cat([v, torch.zeros(3, 2)], 1), cl), "need 3 columns"),
    (lambda k, v, cl: (k * 2, v, cl), "not L2-normalised"),
    (lambda k, v, cl: (k, v[[1, 0, 2]], cl), "its value says"),
    (lambda k, v, cl: (k, v * 2, cl), "one-hot"),
])
def test_small_cache_names_the_mistake(problem, mutate, message):
    keys3, values3 = _small(problem, [4, 0, 2])
    names = [f"c{i}" for i in range(problem["C"])]
    k, v, cl = mutate(keys3, values3, [4, 0, 2])
    with pytest.raises(teach.ExerciseError, match=message):
        teach.check_small_cache(k, v, cl, problem["views"], problem["labels_k"], names)


def test_small_cache_catches_a_single_view(problem):
    names = [f"c{i}" for i in range(problem["C"])]
    one_view, _ = _small(problem, [4, 0, 2], views=problem["views"][:1])
    _, values3 = _small(problem, [4, 0, 2])
    with pytest.raises(teach.ExerciseError, match="average over all augmented views"):
        teach.check_small_cache(one_view, values3, [4, 0, 2], problem["views"], problem["labels_k"], names)


def _epoch(problem, keys, values, sign=1.0, lr=1e-3):
    trainable = keys.clone().requires_grad_(True)
    opt = torch.optim.AdamW([trainable], lr=lr, eps=1e-4)
    f = l2_normalize(problem["views"][0])
    logits = clip_logits(f, problem["W"]) + 1.0 * torch.exp(-BETA * (1 - f @ trainable.T)) @ values
    loss = sign * torch.nn.functional.cross_entropy(logits, problem["labels_k"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return trainable.detach()


def test_finetune_epoch_matches_tipkit_finetune(problem, cache):
    keys, values = cache
    msg = teach.check_finetune_epoch(_epoch(problem, keys, values), keys, problem["views"], problem["labels_k"],
                                     problem["W"], values, alpha=1.0, beta=BETA)
    assert msg.startswith("correct: one epoch")


@pytest.mark.parametrize("make, message", [
    (lambda p, k, v: k.clone(), "never stepped"),
    (lambda p, k, v: _epoch(p, k, v, sign=-1.0), "loss went up"),
    (lambda p, k, v: _epoch(p, k, v, lr=3e-2), "not Tip-Adapter-F's"),
    (lambda p, k, v: k[:-1], "shape"),
])
def test_finetune_epoch_names_the_mistake(problem, cache, make, message):
    keys, values = cache
    with pytest.raises(teach.ExerciseError, match=message):
        teach.check_finetune_epoch(make(problem, keys, values), keys, problem["views"], problem["labels_k"],
                                   problem["W"], values, alpha=1.0, beta=BETA)
