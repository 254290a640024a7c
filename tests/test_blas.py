"""tipkit.core.blas: which library multiplies, that both give the same products, and that Tip-Adapter-F's
written-out gradient equals autograd's."""

import pytest
import torch
import torch.nn.functional as F

from tipkit.core import blas
from tipkit.core.cache import OneHot, build_cache
from tipkit.core.finetune import _keys_step, finetune, fused_logits
from tipkit.errors import TipkitError
from tipkit.methods import get_method
from tipkit.methods.base import FewShotData


@pytest.fixture
def via_numpy(monkeypatch):
    """Every float32 CPU product that may go through NumPy does (backend numpy, no size floor)."""
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "numpy")
    monkeypatch.setattr(blas, "MIN_FLOPS", 0)


def test_a_bad_backend_setting_names_the_value_and_the_choices():
    with pytest.raises(TipkitError, match=r"TIPKIT_MATMUL='mkl'.*\['auto', 'numpy', 'torch'\]"):
        blas.cpu_backend("mkl")
    assert blas.cpu_backend("torch") == "torch" and blas.cpu_backend("NumPy") == "numpy"


def test_small_autograd_or_non_float32_products_stay_with_torch(monkeypatch):
    monkeypatch.setattr(blas, "cpu_backend", lambda setting=None: "numpy")
    assert not blas.routes_to_numpy(10, 64, 160)  # the demo's size: far below MIN_FLOPS
    assert blas.routes_to_numpy(256, 1024, 16000)
    assert not blas.routes_to_numpy(256, 1024, 16000, dtype=torch.float64)
    assert not blas.routes_to_numpy(256, 1024, 16000, device="meta")
    monkeypatch.setattr(blas, "MIN_FLOPS", 0)
    a = torch.randn(4, 3, requires_grad=True)
    out = blas.matmul(a, torch.randn(3, 2))
    assert out.requires_grad  # went through torch, so autograd still sees it


def test_numpy_products_equal_torch_products_on_views_and_into_out(via_numpy):
    gen = torch.Generator().manual_seed(0)
    a, k = torch.randn(37, 64, generator=gen), torch.randn(50, 64, generator=gen)
    for x, y in ((a, k.T), (k.T.T, a.T), (a.T.contiguous().T, k.T)):
        torch.testing.assert_close(blas.matmul(x, y), x @ y, rtol=1e-5, atol=1e-5)
    out = torch.full((37, 50), float("nan"))
    assert blas.matmul(a, k.T, out=out) is out
    torch.testing.assert_close(out, a @ k.T, rtol=1e-5, atol=1e-5)
    with pytest.raises(TipkitError, match=r"out must be a contiguous float32 \[37, 50\], got torch.float32 \(50, 37\)"):
        blas.matmul(a, k.T, out=torch.empty(50, 37))


def test_torch_threads_restores_the_thread_count_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with blas.torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with blas.torch_threads(None):
        assert torch.get_num_threads() == before


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
    import copy

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
