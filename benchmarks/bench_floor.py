"""How close Tip-Adapter-F's and APE-T's training sit to their floor: the matrix products with the keys.

At ImageNet's shape (C = 1,000, K = 16,000, D = 1,024, batch 256, the benchmark's CLIP-like features) one run
times, in one process:

- one epoch of each method as ``fit`` runs it (``epochs=1``: the epoch's steps, its validation pass and a
  one-point α/β search), and
- the matrix products with the ``[K, D]`` keys that such an epoch cannot avoid, alone: per training step
  Tip-Adapter-F's forward ``f Kᵀ`` and its key gradient ``gᵀ f`` (two products), APE-T's ``f Kᵀ`` (one: its
  keys are fixed, only the ``[C, Q]`` residual and the value weights train); then one validation pass ``f_val Kᵀ``.

``share`` is the products' time over the epoch's: what is left (the softmax, the exp, the per-class sums, the
optimiser) is what an epoch spends beyond its floor. The same run records the machine's single-precision matrix
product rate (``gflops``, the fastest of ten calls at the training step's shape, through the library ``fit`` uses:
:func:`tipkit.core.blas.matmul`), so the chapter can price a whole run's products.

    python benchmarks/bench_floor.py            # -> benchmarks/results/floor.csv (a row per method, appended)
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from results_csv import append_row

from tipkit.bench.features import SHAPES, make_features
from tipkit.core import blas
from tipkit.methods import get_method

OUT = Path(__file__).resolve().parent / "results" / "floor.csv"
HEADER = ["method", "classes", "cache_size", "dim", "val_size", "batch", "steps", "products_per_step",
          "epoch_s", "products_s", "share", "gflops", "threads", "load_1m", "created"]
PRODUCTS = {"tip_adapter_f": 2, "ape_t": 1}  # products with the [K, D] keys per training step
BATCH = 256


def _timed(fn, repeat: int = 10) -> float:
    """The fastest of ``repeat`` calls (after a warm-up): a floor is what the machine can do, not its average."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    shape = SHAPES["imagenet"]
    data, _, _ = make_features(shape, "clean")
    keys, val = data.keys.contiguous(), data.val.float()
    k, d = keys.shape
    f = data.normalized_views[0, :BATCH].contiguous()
    g = torch.randn(BATCH, k)
    forward = _timed(lambda: blas.matmul(f, keys.T))  # through the library fit uses (tipkit.core.blas)
    backward = _timed(lambda: blas.matmul(g.T, f))
    val_pass = _timed(lambda: blas.matmul(val, keys.T), repeat=2)
    gflops = 2 * BATCH * d * k / forward / 1e9
    steps = -(-k // BATCH)
    load = float(open("/proc/loadavg").read().split()[0]) if os.path.exists("/proc/loadavg") else float("nan")
    for name, per_step in PRODUCTS.items():
        m = get_method(name, epochs=1, search_step=[1, 1])
        t = time.perf_counter()
        m.fit(data)
        epoch_s = time.perf_counter() - t
        products_s = steps * (forward + (backward if per_step == 2 else 0.0)) + val_pass
        row = [name, shape.classes, k, d, len(data.val_labels), BATCH, steps, per_step, f"{epoch_s:.2f}",
               f"{products_s:.2f}", f"{products_s / epoch_s:.3f}", f"{gflops:.1f}", torch.get_num_threads(),
               f"{load:.2f}", datetime.now(timezone.utc).isoformat(timespec="seconds")]
        print(dict(zip(HEADER, row)), flush=True)
        append_row(OUT, HEADER, row)


if __name__ == "__main__":
    main()
