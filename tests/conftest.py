from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Every test gets its own feature cache and results folder."""
    monkeypatch.setenv("TIPKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TIPKIT_RESULTS", str(tmp_path / "results"))
    return tmp_path


def unit_rows(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(n, d, generator=gen)
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture
def problem():
    """Random but structured few-shot problem: C classes, K shots, N queries, D dims."""
    gen = torch.Generator().manual_seed(0)
    c, k, n, d = 5, 4, 60, 16
    centers = unit_rows(c, d, gen)
    labels_k = torch.arange(c).repeat_interleave(k)
    views = centers[labels_k].unsqueeze(0) + 0.6 * torch.randn(3, c * k, d, generator=gen)
    labels_q = torch.randint(c, (n,), generator=gen)
    q = centers[labels_q] + 0.6 * torch.randn(n, d, generator=gen)
    q = q / q.norm(dim=-1, keepdim=True)
    W = unit_rows(c, d, gen) * 0.3 + centers * 0.7
    W = W / W.norm(dim=-1, keepdim=True)
    return {"views": views, "labels_k": labels_k, "queries": q, "labels_q": labels_q, "W": W, "C": c}


@pytest.fixture(scope="module")
def bb():
    """A randomly initialised stand-in backbone (no weights file; for feature-store tests)."""
    from tipkit import models

    return models.load_backbone(pretrained="none", init_seed=0)


@pytest.fixture(scope="module")
def ds():
    """The tiny generated dataset."""
    from tipkit import data

    return data.get_dataset("synthetic")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
