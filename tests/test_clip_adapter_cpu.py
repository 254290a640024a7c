"""CLIP-Adapter's CPU step (tipkit.methods.clip_adapter_cpu) against the exact PyTorch step and SGD: the same
training to float32 rounding, used only where it is enabled (large CPU problems, NumPy's BLAS)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tipkit.core import blas
from tipkit.methods import clip_adapter_cpu, get_method
from tipkit.methods.base import FewShotData
from tipkit.methods.clip_adapter import Adapter, _sgd_step, _step


def _batch(n=12, d=32, c=10, seed=3):
    gen = torch.Generator().manual_seed(seed)
    f = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    W = F.normalize(torch.randn(c, d, generator=gen), dim=1)
    y = torch.randint(0, c, (n,), generator=gen)
    return f, W, y, gen


@pytest.mark.parametrize("momentum,weight_decay", [(0.9, 5e-4), (0.0, 0.0), (0.9, 0.0)])
def test_cpu_steps_train_as_the_exact_step_and_sgd_do(momentum, weight_decay):
    f, W, y, gen = _batch()
    f[4] = 0.0  # a zero feature: its norm is clamped and the norm's backward is 0 there
    ref = Adapter(32, 4, 0.2, gen)
    mine, start = copy.deepcopy(ref), copy.deepcopy(ref)
    params, bufs = list(ref.parameters()), [None, None]
    step = clip_adapter_cpu.CpuStep(mine.fc1.weight, mine.fc2.weight, W, 0.2, momentum, weight_decay)
    for lr in (1e-5, 0.05, 0.03, 0.02):  # warm-up, then the cosine: the rate changes between steps
        loss, logits = _step(ref, f, y, W)
        _sgd_step(params, bufs, lr, momentum, weight_decay)
        got_loss, correct = step(f.clone(), y.numpy(), lr)
        assert got_loss == pytest.approx(loss.item(), rel=1e-5)
        assert correct == int((logits.argmax(-1) == y).sum())
        torch.testing.assert_close(mine.fc1.weight, ref.fc1.weight, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mine.fc2.weight, ref.fc2.weight, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(mine.fc1.weight, start.fc1.weight, rtol=0, atol=1e-6)  # it trained


def test_the_scaled_identity_product_is_an_exact_scaled_transpose():
    f = torch.randn(32, 1024).numpy()
    keep = np.eye(32, dtype=np.float32) * (np.float32(1.0) - np.float32(0.2))
    assert np.array_equal(np.matmul(f.T, keep), f.T * (np.float32(1.0) - np.float32(0.2)))


def test_enabled_only_for_large_cpu_problems_through_numpy(monkeypatch):
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "numpy")
    assert clip_adapter_cpu.enabled(32, 1024, 1000, "cpu")  # ImageNet's shape
    assert not clip_adapter_cpu.enabled(32, 64, 10, "cpu")  # the demo's stand-in: the exact step
    assert not clip_adapter_cpu.enabled(32, 1024, 1000, "cuda")
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "torch")
    assert not clip_adapter_cpu.enabled(32, 1024, 1000, "cpu")


def _data(c=8, shots=6, d=48, seed=1):
    gen = torch.Generator().manual_seed(seed)
    means = F.normalize(torch.randn(c, d, generator=gen), dim=1)
    labels = torch.arange(c).repeat_interleave(shots)
    views = means[labels] + 0.6 * torch.randn(2, c * shots, d, generator=gen)
    yv = torch.arange(c).repeat(4)
    val = F.normalize(means[yv] + 0.6 * torch.randn(len(yv), d, generator=gen), dim=1)
    text = F.normalize(means + 0.3 * torch.randn(c, d, generator=gen), dim=1)
    return FewShotData(views=views, labels=labels, class_embeddings=text, val=val, val_labels=yv, seed=seed)


def test_a_fit_through_the_cpu_step_follows_the_exact_fit(monkeypatch):
    data = _data()
    kwargs = dict(epochs=6, batch_size=8, lr=0.05)
    ref = get_method("clip_adapter", **kwargs).fit(data)
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "numpy")
    monkeypatch.setattr(clip_adapter_cpu, "MIN_FLOPS", 0)
    calls, real = [], clip_adapter_cpu.CpuStep._sgd

    def counted(self, lr):
        calls.append(lr)
        real(self, lr)
    monkeypatch.setattr(clip_adapter_cpu.CpuStep, "_sgd", counted)
    got = get_method("clip_adapter", **kwargs).fit(data)
    assert len(calls) == 6 * (48 // 8)  # every step went through the CPU step, on the same batches
    assert [h["loss"] for h in got.history] == pytest.approx([h["loss"] for h in ref.history], rel=1e-4)
    assert [h["train_acc"] for h in got.history] == [h["train_acc"] for h in ref.history]
    torch.testing.assert_close(got.adapter.fc1.weight, ref.adapter.fc1.weight, rtol=1e-4, atol=1e-5)
