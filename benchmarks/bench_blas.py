"""Which BLAS multiplies tipkit's large CPU products faster here: PyTorch's (MKL) or NumPy's (OpenBLAS).

One run measures, in one process, for each shape the products of a run at ImageNet's shape meet:

- ``kind=product``: the median of seven calls of ``torch.mm`` (``baseline_ms``) and of
  :func:`tipkit.core.blas.matmul` forced through NumPy (``tipkit_ms``), on the same ``[m, k] × [k, n]`` operands
  (the second one a transposed view, as ``f Kᵀ`` is);
- ``kind=fit``: a two-epoch Tip-Adapter-F fit at ImageNet's shape (its products through NumPy), with PyTorch on
  all its threads (``baseline_ms``, the whole fit) against on one during training (``tipkit_ms``,
  :func:`tipkit.core.blas.torch_threads`, as ``fit`` runs it);
- ``kind=step``: a two-epoch CLIP-Adapter fit at ImageNet's shape (1,000 steps of batch 32 and two validation
  passes) with the exact PyTorch step and SGD (``baseline_ms``) against with
  :class:`tipkit.methods.clip_adapter_cpu.CpuStep` (``tipkit_ms``, as ``fit`` runs it there).

``ratio`` is ``baseline_ms / tipkit_ms``: above 1, tipkit's way is faster.

    python benchmarks/bench_blas.py     # -> benchmarks/results/blas.csv (rows appended)

This is what :mod:`tipkit.core.blas` cites for its choice of backend and of one PyTorch thread in such loops.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import torch

from results_csv import append_row

from tipkit.bench.features import SHAPES as BENCH_SHAPES, make_features
from tipkit.core import blas
from tipkit.methods import clip_adapter_cpu, get_method

OUT = Path(__file__).resolve().parent / "results" / "blas.csv"
HEADER = ["kind", "m", "k", "n", "gflop", "baseline_ms", "tipkit_ms", "ratio", "threads", "cpu", "load_1m", "created"]
SHAPES = [  # (m, k, n): what a run at ImageNet's shape multiplies (C = 1,000, K = 16,000, D = 1,024)
    (256, 1024, 16000),  # Tip-Adapter-F / APE-T training step: f Kᵀ
    (16000, 256, 1024),  # Tip-Adapter-F key gradient Gᵀ f
    (4000, 1024, 16000),  # a validation pass f_val Kᵀ
    (256, 1024, 1000),  # a training step's zero-shot logits f Wᵀ
    (2000, 1024, 16000),  # a prediction chunk
    (32, 1024, 1000),  # CLIP-Adapter's step: its classifier product (below MIN_FLOPS: PyTorch's, outside CpuStep)
]


def _median_s(fn, repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@contextlib.contextmanager
def _unchanged(threads):
    """A stand-in for :func:`tipkit.core.blas.torch_threads` that leaves PyTorch on all its threads."""
    yield


def _fit_s(data, method: str, **params) -> float:
    """Seconds of one ``fit`` of ``method`` on ``data``."""
    t = time.perf_counter()
    get_method(method, **params).fit(data)
    return time.perf_counter() - t


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    load = float(open("/proc/loadavg").read().split()[0]) if os.path.exists("/proc/loadavg") else float("nan")
    cpu = blas._cpu_vendor() or "unknown"
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    threads = torch.get_num_threads()
    with mock.patch.object(blas, "cpu_backend", lambda setting=None: "numpy"), mock.patch.object(blas, "MIN_FLOPS", 0):
        for m, k, n in SHAPES:
            a = torch.randn(m, k, generator=gen)
            b = torch.randn(n, k, generator=gen).T  # a transposed view, as keys.T
            out = torch.empty(m, n)
            t_torch = _median_s(lambda: torch.mm(a, b, out=out))
            t_numpy = _median_s(lambda: blas.matmul(a, b, out=out))
            row = ["product", m, k, n, f"{2 * m * k * n / 1e9:.3f}", f"{t_torch * 1e3:.2f}", f"{t_numpy * 1e3:.2f}",
                   f"{t_torch / t_numpy:.3f}", threads, cpu, f"{load:.2f}", stamp]
            print(dict(zip(HEADER, row)), flush=True)
            append_row(OUT, HEADER, row)
    data, _, _ = make_features(BENCH_SHAPES["imagenet"], "clean")
    runs: dict[str, list[float]] = {"all": [], "one": []}
    numpy_backend = mock.patch.object(blas, "cpu_backend", lambda setting=None: "numpy")
    with numpy_backend:
        for _ in range(2):  # alternated; the faster of two fits each
            for mode, times in runs.items():
                same = mock.patch.object(blas, "torch_threads", _unchanged) if mode == "all" else contextlib.nullcontext()
                with same:
                    times.append(_fit_s(data, "tip_adapter_f", epochs=2, search_step=[1, 1]))
    t_all, t_one = min(runs["all"]), min(runs["one"])
    flop = 2 * 63 * 2 * 2 * 256 * 1024 * 16000 / 1e9  # the two epochs' training products with the keys
    row = ["fit", 256, 1024, 16000, f"{flop:.3f}", f"{t_all * 1e3:.2f}", f"{t_one * 1e3:.2f}",
           f"{t_all / t_one:.3f}", threads, cpu, f"{load:.2f}", stamp]
    print(dict(zip(HEADER, row)), flush=True)
    append_row(OUT, HEADER, row)
    steps: dict[str, list[float]] = {"exact": [], "cpu": []}
    with numpy_backend:
        for _ in range(2):  # alternated; the faster of two fits each
            for mode, times in steps.items():
                exact = (mock.patch.object(clip_adapter_cpu, "enabled", lambda *a, **k: False) if mode == "exact"
                         else contextlib.nullcontext())
                with exact:
                    times.append(_fit_s(data, "clip_adapter", epochs=2))
    t_exact, t_cpu = min(steps["exact"]), min(steps["cpu"])
    hidden = 1024 // 4
    flop = 2 * 1000 * 32 * 1024 * (2 * 1000 + 5 * hidden) / 1e9  # 1,000 steps: 2 classifier + 5 adapter products
    row = ["step", 32, 1024, 1000, f"{flop:.3f}", f"{t_exact * 1e3:.2f}", f"{t_cpu * 1e3:.2f}",
           f"{t_exact / t_cpu:.3f}", threads, cpu, f"{load:.2f}", stamp]
    print(dict(zip(HEADER, row)), flush=True)
    append_row(OUT, HEADER, row)


if __name__ == "__main__":
    main()
