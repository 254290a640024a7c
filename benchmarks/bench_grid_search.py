"""Time tipkit's grid_search against the official double loop, on the same random features, in one run.

The official loop recomputes the affinity matmul for every (beta, alpha) point; tipkit computes it once,
does one exp pass per beta and scores all alphas of a beta at once. The floor is one exp pass over the
affinities per beta, which this script also times, so the report is three times and two ratios.

    python benchmarks/bench_grid_search.py [--n 2000 --k 160 --c 10 --d 512 --steps 200 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from tipkit.core.cache import build_cache
from tipkit.core.search import grid_search, paper_grid


def official(q, y, W, keys, values, betas, alphas):
    best = (0.0, 0.0, 0.0)
    clip = 100.0 * q @ W.T
    for b in betas.tolist():
        for a in alphas.tolist():
            affinity = q @ keys.T  # recomputed per grid point, as in the official search_hp
            logits = clip + a * torch.exp(-b * (1 - affinity)) @ values
            acc = float((logits.argmax(-1) == y).float().mean() * 100)
            if acc > best[0]:
                best = (acc, b, a)
    return best


def floor(q, keys, betas):
    affinity = q @ keys.T
    for b in betas.tolist():
        torch.exp(-b * (1 - affinity))


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="validation queries")
    ap.add_argument("--k", type=int, default=160, help="cache entries (shots x classes)")
    ap.add_argument("--c", type=int, default=10, help="classes")
    ap.add_argument("--d", type=int, default=512, help="feature dimension")
    ap.add_argument("--steps", type=int, nargs=2, default=[200, 20], metavar=("BETA", "ALPHA"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    norm = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    q, W = norm(torch.randn(args.n, args.d, generator=g)), norm(torch.randn(args.c, args.d, generator=g))
    y = torch.randint(args.c, (args.n,), generator=g)
    labels = torch.arange(args.c).repeat_interleave(max(1, args.k // args.c))
    keys, values = build_cache(torch.randn(2, len(labels), args.d, generator=g), labels, args.c)
    betas, alphas = paper_grid((7.0, 3.0), tuple(args.steps))
    t_ref, ref = timed(official, q, y, W, keys, values, betas, alphas)
    t_new, new = timed(grid_search, q, y, W, keys, values, betas, alphas)
    t_floor, _ = timed(floor, q, keys, betas)
    print(f"grid {len(betas)} x {len(alphas)}, N={args.n} K={len(labels)} C={args.c} D={args.d}, "
          f"{args.threads} thread(s)")
    print(f"official double loop: {t_ref:8.3f} s  best acc {ref[0]:.2f} at beta {ref[1]:.4f} alpha {ref[2]:.4f}")
    print(f"tipkit grid_search:   {t_new:8.3f} s  best acc {new.best_acc:.2f} at beta {new.best_beta:.4f} "
          f"alpha {new.best_alpha:.4f}")
    print(f"floor (exp per beta): {t_floor:8.3f} s")
    print(f"speed-up over the official loop: {t_ref / t_new:.1f}x; grid_search / floor: {t_new / t_floor:.1f}x")
    same = (abs(ref[0] - new.best_acc) < 1e-3 and abs(ref[1] - new.best_beta) < 1e-9
            and abs(ref[2] - new.best_alpha) < 1e-9)
    print("same best point:", same)


if __name__ == "__main__":
    main()
