import math

import pytest
import torch

from tipkit.core.cache import build_cache, one_hot
from tipkit.core.fusion import cache_logits, clip_logits, tip_logits
from tipkit.errors import TipkitError


def test_alpha_zero_is_zero_shot(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, W = problem["queries"], problem["W"]
    assert torch.equal(tip_logits(q, W, keys, values, alpha=0.0, beta=5.0), clip_logits(q, W))


def test_clip_logits_is_scaled_cosine(problem):
    q, W = problem["queries"], problem["W"]
    assert torch.allclose(clip_logits(q, W), 100 * q @ W.T)
    assert torch.allclose(clip_logits(q, W, scale=1.0), q @ W.T)
    assert clip_logits(q, W).shape == (len(q), problem["C"])


def test_cache_logits_matches_paper_formula_elementwise(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, beta = problem["queries"][:3], 3.7
    got = cache_logits(q, keys, values, beta)
    for i in range(3):
        for c in range(problem["C"]):
            want = sum(math.exp(-beta * (1 - float(q[i] @ keys[j]))) * float(values[j, c]) for j in range(len(keys)))
            assert got[i, c].item() == pytest.approx(want, rel=1e-5)


def test_tip_logits_is_sum_of_parts(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, W = problem["queries"], problem["W"]
    want = clip_logits(q, W) + 2.5 * cache_logits(q, keys, values, 4.0)
    assert torch.allclose(tip_logits(q, W, keys, values, 2.5, 4.0), want)


def test_query_equal_to_key_with_huge_beta_returns_its_label(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    j = 7
    logits = cache_logits(keys[j:j + 1], keys, values, beta=1e4)
    assert int(logits.argmax()) == int(problem["labels_k"][j])
    assert torch.allclose(logits, values[j:j + 1], atol=1e-6)  # every other key's weight underflows to 0


def test_keys_are_unit_norm_mean_of_views_and_values_one_hot(problem):
    views, labels = problem["views"], problem["labels_k"]
    keys, values = build_cache(views, labels, problem["C"])
    assert torch.allclose(keys.norm(dim=-1), torch.ones(len(keys)), atol=1e-6)
    mean = views.mean(0)
    assert torch.allclose(keys, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)  # official: mean, then normalise
    assert values.shape == (len(labels), problem["C"])
    assert torch.equal(values.sum(-1), torch.ones(len(labels)))
    assert torch.equal(values.argmax(-1), labels)
    assert set(values.unique().tolist()) == {0.0, 1.0}


def test_single_view_accepted_and_bad_shapes_rejected(problem):
    keys, _ = build_cache(problem["views"][0], problem["labels_k"], problem["C"])
    assert keys.shape == problem["views"][0].shape
    with pytest.raises(TipkitError, match="labels"):
        build_cache(problem["views"], problem["labels_k"][:-1], problem["C"])
    with pytest.raises(TipkitError, match=r"\[0, 2\]"):
        one_hot(torch.tensor([0, 3]), 3)
