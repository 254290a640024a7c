"""Tip-Adapter-F's training cost at a shape: the official recipe's forward (dense ``[B, K] × [K, C]`` values
product) against tipkit's (one-hot values as a per-class sum), one epoch each, in one run.

Both train the same keys with AdamW on the same batches (batch 256, the paper's), so the ratio is the cost of
the values product alone; the full fit is ``epochs`` such epochs plus one validation pass per epoch.

    python benchmarks/bench_tip_f.py --shape imagenet     # C=1000, K=16,000, D=1,024
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from results_csv import append_row

from tipkit.core.cache import OneHot, l2_normalize
from tipkit.core.finetune import fused_logits

SHAPES = {"fashion": dict(c=10, shots=16, d=512), "imagenet": dict(c=1000, shots=16, d=1024)}
OUT = Path(__file__).resolve().parent / "results" / "tip_f.csv"


def epoch(feats, labels, W, keys, values, batch=256, seed=0):
    adapter = torch.nn.Linear(keys.shape[1], keys.shape[0], bias=False)
    with torch.no_grad():
        adapter.weight.copy_(keys)
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-3, eps=1e-4)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    t = time.perf_counter()
    for s in range(0, len(order), batch):
        b = order[s:s + batch]
        loss = F.cross_entropy(fused_logits(feats[b], W, adapter, values, 1.0, 1.0), labels[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t, adapter.weight.detach()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="fashion")
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the full fit (the paper's 20)")
    args = ap.parse_args()
    s = SHAPES[args.shape]
    g = torch.Generator().manual_seed(0)
    c, k, d = s["c"], s["c"] * s["shots"], s["d"]
    labels = torch.arange(c).repeat_interleave(s["shots"])
    means = l2_normalize(torch.randn(c, d, generator=g))
    feats = l2_normalize(means[labels] + 0.05 * torch.randn(k, d, generator=g))
    W, keys = l2_normalize(means + 0.05 * torch.randn(c, d, generator=g)), feats.clone()
    onehot = OneHot(labels, c)
    t_dense, k_dense = epoch(feats, labels, W, keys, onehot.dense())
    t_onehot, k_onehot = epoch(feats, labels, W, keys, onehot)
    drift = float((k_dense - k_onehot).abs().max())
    print(f"Tip-Adapter-F one epoch at {args.shape} (C={c}, K={k}, D={d}, batch 256, {torch.get_num_threads()} threads)")
    print(f"official recipe (dense values product): {t_dense:8.2f} s/epoch -> {t_dense * args.epochs:8.1f} s for "
          f"{args.epochs} epochs")
    print(f"tipkit (one-hot per-class sum):         {t_onehot:8.2f} s/epoch -> {t_onehot * args.epochs:8.1f} s "
          f"({t_dense / t_onehot:.2f}x); largest key difference after one epoch {drift:.2e}")
    append_row(OUT, ["shape", "c", "k", "d", "threads", "machine", "official_s_per_epoch", "tipkit_s_per_epoch",
                        "speedup", "epochs", "max_key_diff"],
               [args.shape, c, k, d, torch.get_num_threads(), f"{platform.machine()} {os.cpu_count()} cpu",
                    f"{t_dense:.3f}", f"{t_onehot:.3f}", f"{t_dense / t_onehot:.2f}", args.epochs, f"{drift:.2e}"])

if __name__ == "__main__":
    main()
