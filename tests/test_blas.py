"""tipkit.core.blas: which library multiplies large CPU products, and that both give the same products."""

import pytest
import torch

from tipkit.core import blas
from tipkit.errors import TipkitError


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
