"""Synthetic few-shot problems with a known answer, for tests/test_methods*.py (not a test module).

Image features are Gaussian clusters around C random unit centres. The text classifier points at the
centres, except that two pairs of classes share (almost) one text embedding, so zero-shot CLIP
confuses them (accuracy well below 100 %) while the few-shot images separate every class: a method
that learns from them must reach about 100 %.
"""

from __future__ import annotations

import pytest
import torch

from tipkit.core.cache import l2_normalize
from tipkit.methods import FewShotData

# Small search grids so every method fits in well under a second on one CPU core.
FAST: dict[str, dict] = {
    "zero_shot": {}, "zero_shot_single": {},
    "linear_probe": {"search_steps": 3},
    "clip_adapter": {"epochs": 30, "lr": 0.05, "batch_size": 8},
    "tip_adapter": {"search_scale": [10.0, 10.0], "search_step": [10, 10]},
    "tip_adapter_f": {"search_scale": [10.0, 10.0], "search_step": [10, 10], "epochs": 4, "lr": 1e-2, "batch_size": 8},
    "tip_x": {"search_scale": [10.0, 10.0, 10.0], "search_step": [10, 5, 5]},
    "ape": {"search_scale": [10.0, 10.0, 1.0], "search_step": [10, 10, 3]},
    "ape_t": {"search_scale": [10.0, 10.0], "search_step": [10, 10], "epochs": 5, "lr": 1e-2, "batch_size": 8},
    "gda": {},
    "clap": {"epochs": 40, "batch_size": 16},
    "lp_plus_plus": {"epochs": 60},
}


def make_problem(seed: int = 0, c: int = 5, d: int = 32, shots: int = 4, views: int = 3, n_val: int = 100,
                 n_test: int = 300, noise: float = 0.1, device: str = "cpu") -> tuple[FewShotData, torch.Tensor, torch.Tensor]:
    """``(FewShotData, test features [Nt, D] (L2-normalised), test labels [Nt])``."""
    gen = torch.Generator().manual_seed(seed)
    centres = l2_normalize(torch.randn(c, d, generator=gen))
    text = centres.clone()
    for i, j in ((0, 1), (2, 3)):  # two confused pairs
        shared = centres[i] + centres[j]
        text[i] = l2_normalize(shared + 0.05 * torch.randn(d, generator=gen))
        text[j] = l2_normalize(shared + 0.05 * torch.randn(d, generator=gen))
    single = l2_normalize(text + 0.3 * torch.randn(c, d, generator=gen))

    def sample(labels: torch.Tensor) -> torch.Tensor:
        return centres[labels] + noise * torch.randn(len(labels), d, generator=gen)

    labels = torch.arange(c).repeat_interleave(shots)
    images = sample(labels)
    raw_views = 3.0 * (images.unsqueeze(0) + 0.5 * noise * torch.randn(views, len(labels), d, generator=gen))
    yv = torch.randint(c, (n_val,), generator=gen)
    yt = torch.randint(c, (n_test,), generator=gen)
    data = FewShotData(views=raw_views, labels=labels, val=l2_normalize(sample(yv)), val_labels=yv,
                       class_embeddings=text, single_prompt_embeddings=single, seed=1, device=device)
    return data, l2_normalize(sample(yt)), yt


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster than two on a shared CPU (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
