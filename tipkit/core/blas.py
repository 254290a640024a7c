"""Large float32 matrix products on the CPU, through the faster of the two BLAS libraries at hand.

PyTorch's x86 wheels multiply with Intel's MKL, which on AMD CPUs runs a slower code path; NumPy's wheels
ship OpenBLAS. On the 2-core AMD EPYC machines this project runs on, OpenBLAS was faster at every product
of a run at ImageNet's shape that was measured, by 1.1× to 2× (``benchmarks/bench_blas.py`` ->
``benchmarks/results/blas.csv``; e.g. Tip-Adapter-F's training step ``[256, 1,024] × [1,024, 16,000]``). So a
product goes through NumPy when

- it is on the CPU, in float32, and needs no autograd (the callers write their own backward),
- it is large: at least :data:`MIN_FLOPS` (about 0.27 GFLOP). Small products stay with PyTorch, so the
  demo's runs (the stand-in's 32–64-wide features: at most ~0.2 GFLOP a product) keep their exact results, and
- the backend is ``numpy``: ``TIPKIT_MATMUL=numpy|torch`` chooses; unset (``auto``) it is ``numpy`` where
  PyTorch multiplies with MKL, NumPy with OpenBLAS and the CPU is not Intel's, else ``torch``.

The choice is fixed per process (the same inputs give the same bits); the two libraries' results differ by
float rounding (a few ulp), as any two BLAS builds do. On other devices (CUDA) everything stays with PyTorch.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import Iterator

import torch

from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

MIN_FLOPS = 1 << 28  # 2·m·k·n from which a CPU product may go through NumPy (below it the gain is ~1.1×)
BACKENDS = ("auto", "numpy", "torch")  # TIPKIT_MATMUL's accepted values


def _cpu_vendor() -> str:
    """The CPU's vendor id (``GenuineIntel``, ``AuthenticAMD``, ...) or ``""`` where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _numpy_blas() -> str:
    """The name of the BLAS NumPy was built with (``scipy-openblas``, ``mkl``, ...), lower case; ``""`` if unknown."""
    import numpy as np

    try:
        info = np.show_config(mode="dicts")
        return str(info["Build Dependencies"]["blas"]["name"]).lower()
    except Exception:  # noqa: BLE001 — an older or unusual NumPy build: fall back to PyTorch's BLAS
        return ""


@functools.lru_cache(maxsize=None)
def cpu_backend(setting: "str | None" = None) -> str:
    """``"numpy"`` or ``"torch"``: which library multiplies large float32 products on the CPU.

    ``setting`` (default: the ``TIPKIT_MATMUL`` environment variable, else ``auto``) is one of :data:`BACKENDS`.
    """
    setting = (os.environ.get("TIPKIT_MATMUL", "auto") if setting is None else setting).strip().lower() or "auto"
    if setting not in BACKENDS:
        raise TipkitError(f"TIPKIT_MATMUL={setting!r} is not a matrix-product backend; expected one of {list(BACKENDS)}")
    if setting != "auto":
        return setting
    mkl = torch.backends.mkl.is_available()
    openblas = "openblas" in _numpy_blas()
    backend = "numpy" if mkl and openblas and _cpu_vendor() not in ("GenuineIntel", "") else "torch"
    log.debug("large CPU products: %s (torch MKL %s, numpy OpenBLAS %s)", backend, mkl, openblas)
    return backend


def routes_to_numpy(m: int, k: int, n: int, device: "str | torch.device" = "cpu",
                    dtype: torch.dtype = torch.float32) -> bool:
    """Whether a ``[m, k] × [k, n]`` product of ``dtype`` on ``device`` goes through NumPy (see the module's docstring)."""
    return (torch.device(device).type == "cpu" and dtype == torch.float32 and 2 * m * k * n >= MIN_FLOPS
            and cpu_backend() == "numpy")


def matmul(a: torch.Tensor, b: torch.Tensor, out: "torch.Tensor | None" = None) -> torch.Tensor:
    """``a @ b``; for 2-D ``a [m, k]`` and ``b [k, n]`` written into ``out`` (C-contiguous ``[m, n]``) when given.

    ``a`` and ``b`` may be transposed views (``keys.T``): neither is copied. Large float32 CPU products that need
    no autograd (no input requires grad, or grad mode is off) go through NumPy's BLAS (see the module's
    docstring); everything else is PyTorch's ``@``.
    """
    numpy = (a.dim() == b.dim() == 2 and a.shape[1] == b.shape[0] and a.dtype == b.dtype
             and a.device == b.device and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
             and routes_to_numpy(a.shape[0], a.shape[1], b.shape[1], a.device, a.dtype))
    if not numpy:
        return torch.matmul(a, b) if out is None else torch.mm(a, b, out=out)
    import numpy as np

    if out is None:
        out = torch.empty((a.shape[0], b.shape[1]), dtype=torch.float32)
    elif not out.is_contiguous() or tuple(out.shape) != (a.shape[0], b.shape[1]) or out.dtype != torch.float32:
        raise TipkitError(f"matmul: out must be a contiguous float32 [{a.shape[0]}, {b.shape[1]}], "
                          f"got {out.dtype} {tuple(out.shape)}")
    np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.numpy())
    return out


@contextlib.contextmanager
def torch_threads(threads: "int | None") -> Iterator[None]:
    """PyTorch's thread count set to ``threads`` while inside (``None``: unchanged), restored after.

    For a loop that alternates NumPy products with PyTorch's elementwise work (``threads=1``): after each product
    OpenBLAS's worker threads spin for a while, and PyTorch's own workers spin after each operation; on two cores
    the two pools then share a core. With PyTorch on the calling thread alone during training, a two-epoch
    Tip-Adapter-F fit at ImageNet's shape on 2 cores was faster (``benchmarks/bench_blas.py``: ``kind=fit``
    rows of ``blas.csv``).
    """
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
