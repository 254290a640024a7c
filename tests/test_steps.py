"""The training steps written out instead of taped (Tip-Adapter-F's keys, APE-T, CLIP-Adapter): bit for bit
autograd's gradients with PyTorch's products, and the same training with NumPy's products."""

import copy

import pytest
import torch
import torch.nn.functional as F

from tipkit.core import blas
from tipkit.core.cache import OneHot, build_cache
from tipkit.core.finetune import _keys_step, finetune, fused_logits
from tipkit.methods import get_method
from tipkit.methods.base import FewShotData


@pytest.fixture
def via_numpy(monkeypatch):
    """Every float32 CPU product that may go through NumPy does (backend numpy, no size floor)."""
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "numpy")
    monkeypatch.setattr(blas, "MIN_FLOPS", 0)


def _problem(c=6, s=5, d=16, n=12, grouped=True, seed=0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(c).repeat_interleave(s)
    if not grouped:
        labels = labels[torch.randperm(len(labels), generator=gen)]
    views = torch.randn(3, c * s, d, generator=gen)
    keys, values = build_cache(views, labels, c)
    W = F.normalize(torch.randn(c, d, generator=gen), dim=1)
    f = F.normalize(torch.randn(n, d, generator=gen), dim=1)
    y = torch.randint(0, c, (n,), generator=gen)
    return views, labels, keys, values, W, f, y


@pytest.mark.parametrize("grouped", [True, False])
def test_the_written_out_key_gradient_is_autograds_bit_for_bit(grouped):
    views, labels, keys, values, W, f, y = _problem(grouped=grouped)
    lin = torch.nn.Linear(keys.shape[1], keys.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(keys)
    onehot = OneHot(labels, W.shape[0])
    loss = F.cross_entropy(fused_logits(f, W, lin, onehot, 1.7, 5.5), y)
    loss.backward()
    param = torch.nn.Parameter(keys.clone())
    buf, grad = torch.empty(len(f), len(keys)), torch.empty_like(keys)
    got, logits = _keys_step(f, y, W, param, onehot, 1.7, 5.5, buf, grad)
    assert torch.equal(got, loss.detach()) and torch.equal(param.grad, lin.weight.grad)
    assert torch.equal(logits, fused_logits(f, W, lin, onehot, 1.7, 5.5).detach())


def test_finetune_through_numpy_products_matches_torch_products(via_numpy):
    views, labels, keys, values, W, f, y = _problem(c=8, s=8, d=32, n=40)
    args = (views, labels, f, y, W, keys, values, 1.0, 3.0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blas, "cpu_backend", lambda setting=None: "torch")
        ref = finetune(*args, epochs=4, lr=1e-2, batch_size=16, seed=2)
    got = finetune(*args, epochs=4, lr=1e-2, batch_size=16, seed=2)
    torch.testing.assert_close(got.keys, ref.keys, rtol=1e-4, atol=1e-5)
    assert got.best_epoch == ref.best_epoch
    assert [h["val_acc"] for h in got.history] == [h["val_acc"] for h in ref.history]
    assert not torch.equal(got.keys, keys)  # trained


def test_ape_t_through_numpy_products_matches_torch_products(via_numpy):
    views, labels, keys, values, W, f, y = _problem(c=8, s=8, d=32, n=40, seed=3)
    data = FewShotData(views=views, labels=labels, class_embeddings=W, val=f, val_labels=y, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(blas, "cpu_backend", lambda setting=None: "torch")
        ref = get_method("ape_t", epochs=3, batch_size=16, search_step=[4, 4]).fit(data)
    got = get_method("ape_t", epochs=3, batch_size=16, search_step=[4, 4]).fit(data)
    assert got.hyper == ref.hyper
    torch.testing.assert_close(got.predict(f), ref.predict(f), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("grouped", [True, False])
def test_ape_t_written_out_step_is_autograds_bit_for_bit(grouped):
    from tipkit.methods.ape_t import _apet_step, _apet_train_logits, _Residual

    views, labels, keys, values, W, f, y = _problem(grouped=grouped)
    idx = torch.tensor([0, 3, 5, 7, 9, 12])
    onehot = OneHot(labels, W.shape[0])
    gen = torch.Generator().manual_seed(5)
    ref = _Residual(W.shape[0], len(idx), len(keys))
    with torch.no_grad():  # away from the zero/one initialisation, so every term of the gradient counts
        ref.res.copy_(0.1 * torch.randn(ref.res.shape, generator=gen))
        ref.value_weights.copy_(0.5 + torch.rand(ref.value_weights.shape, generator=gen))
    mod = copy.deepcopy(ref)
    loss = F.cross_entropy(_apet_train_logits(f, ref, keys, W, onehot, labels, idx, 2.0, 1.5), y)
    loss.backward()
    bufs = tuple(torch.empty(len(f), len(keys)) for _ in range(3))
    got = _apet_step(f, y, mod, keys, W, onehot, labels, idx, 2.0, 1.5, bufs)
    assert torch.equal(got, loss.detach())
    assert torch.equal(mod.res.grad, ref.res.grad) and torch.equal(mod.value_weights.grad, ref.value_weights.grad)


@pytest.mark.parametrize("ratio", [0.2, 1.0])
def test_clip_adapter_written_out_step_is_autograds_bit_for_bit(ratio):
    from tipkit.methods.clip_adapter import Adapter, _step

    gen = torch.Generator().manual_seed(7)
    f = F.normalize(torch.randn(12, 16, generator=gen), dim=1)
    f[3] = 0.0  # a zero feature: its norm is clamped, and the norm's backward masks it
    W = F.normalize(torch.randn(6, 16, generator=gen), dim=1)
    y = torch.randint(0, 6, (12,), generator=gen)
    ref = Adapter(16, 4, ratio, gen)
    mod = copy.deepcopy(ref)
    logits = 100.0 * (lambda x: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12))(ref(f)) @ W.T
    loss = F.cross_entropy(logits, y)
    loss.backward()
    got, got_logits = _step(mod, f, y, W)
    assert torch.equal(got, loss.detach()) and torch.equal(got_logits, logits.detach())
    assert torch.equal(mod.fc1.weight.grad, ref.fc1.weight.grad)
    assert torch.equal(mod.fc2.weight.grad, ref.fc2.weight.grad)


@pytest.mark.parametrize("weight_decay", [5e-4, 0.0])
def test_clip_adapter_sgd_step_is_torch_sgds_bit_for_bit(weight_decay):
    from tipkit.methods.clip_adapter import _sgd_step

    gen = torch.Generator().manual_seed(11)
    ref = [torch.nn.Parameter(torch.randn(5, 7, generator=gen)), torch.nn.Parameter(torch.randn(3, 5, generator=gen))]
    mine = [torch.nn.Parameter(p.detach().clone()) for p in ref]
    opt = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=weight_decay)
    bufs = [None, None]
    for lr in (1e-5, 0.01, 0.0073):  # Dassl's warm-up, then the cosine: the rate changes between steps
        grads = [torch.randn(p.shape, generator=gen) for p in ref]
        for p, q, g in zip(ref, mine, grads):
            p.grad, q.grad = g.clone(), g.clone()
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()
        _sgd_step(mine, bufs, lr, 0.9, weight_decay)
        assert all(torch.equal(p, q) for p, q in zip(ref, mine))
