"""Time tipkit's α/β search against the official double loop and against tipkit's previous search, in one run.

Three implementations on the same random CLIP-shaped features (unit rows; keys grouped by class):

- ``official``: the official double loop — for every (β, α) the affinity matmul, ``exp`` and the dense
  ``[N, K] × [K, C]`` product again, then the accuracy (gaopengcuhk/Tip-Adapter ``search_hp``);
- ``previous``: tipkit's search before the scale work — the affinity once, one ``exp`` pass and one dense
  product per β, every α of a β scored on a materialised ``[a, N, C]`` logit tensor;
- ``grid_search``: today's (:mod:`tipkit.core.search`): per β one multiply per element, a per-class sum,
  and the α axis scored only where predictions change.

The official loop is timed on a reduced grid (``--official-steps``, default 2 × 2 points) and reported per
grid point; the previous search on ``--previous-betas`` β (all α) and reported per β; tipkit's on the full
grid. Each is also checked against the others on the points they share. Shapes: ``--shape fashion`` (the
demo: N=2000, K=160, C=10, D=512) or ``--shape imagenet`` (N=4000 under ``clean``, K=16,000, C=1,000,
D=1,024); ``--n`` overrides N (e.g. 50,000 for the ``paper`` protocol). Results are appended to
``benchmarks/results/grid_search.csv`` with the machine's description.

    python benchmarks/bench_grid_search.py --shape imagenet
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from results_csv import append_row

from tipkit.core.cache import build_cache
from tipkit.core.search import grid_search, paper_grid

SHAPES = {"fashion": dict(n=2000, k=160, c=10, d=512), "imagenet": dict(n=4000, k=16000, c=1000, d=1024)}
OUT = Path(__file__).resolve().parent / "results" / "grid_search.csv"


def official_point(q, y, W, keys, values, beta, alpha):
    """One point of the official loop: everything recomputed (accuracy in %)."""
    affinity = q @ keys.T
    logits = 100.0 * q @ W.T + torch.exp(-beta * (1.0 - affinity)) @ values * alpha
    return float((logits.argmax(-1) == y).float().mean() * 100)


def previous_search(q, y, W, keys, values, betas, alphas, budget=2 ** 26):
    """tipkit's search before the scale work (kept here as the reference it is measured against)."""
    zs, affinity = 100.0 * q @ W.T, q @ keys.T
    n, c = zs.shape
    step = max(1, budget // (n * c))
    grid = torch.empty(len(betas), len(alphas), dtype=torch.float64)
    a = torch.as_tensor(alphas, dtype=zs.dtype)
    for i, beta in enumerate(betas):
        cache = torch.exp(-beta * (1.0 - affinity)) @ values
        for s in range(0, len(a), step):
            logits = zs.unsqueeze(0) + a[s:s + step, None, None] * cache.unsqueeze(0)
            grid[i, s:s + step] = (logits.argmax(-1) == y).sum(-1).double() * 100.0 / n
    return grid


def problem(n, k, c, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    means = unit(torch.randn(c, d, generator=g))
    y = torch.randint(c, (n,), generator=g)
    q = unit(means[y] + 0.9 * torch.randn(n, d, generator=g) / d ** 0.5 * 2)
    shots = max(1, k // c)
    labels = torch.arange(c).repeat_interleave(shots)
    views = means[labels] + 0.9 * torch.randn(2, len(labels), d, generator=g) / d ** 0.5 * 2
    W = unit(means + 1.2 * torch.randn(c, d, generator=g) / d ** 0.5 * 2)
    keys, values = build_cache(views, labels, c)
    return q, y, W, keys, values


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="fashion")
    ap.add_argument("--n", type=int, help="validation queries (default: the shape's)")
    ap.add_argument("--steps", type=int, nargs=2, default=[200, 20], metavar=("BETA", "ALPHA"))
    ap.add_argument("--official-steps", type=int, nargs=2, default=[2, 2], metavar=("BETA", "ALPHA"))
    ap.add_argument("--previous-betas", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape = {**SHAPES[args.shape], **({"n": args.n} if args.n else {})}
    q, y, W, keys, values = problem(**shape)
    betas, alphas = paper_grid((7.0, 3.0), tuple(args.steps))
    t_new, new = timed(grid_search, q, y, W, keys, values, betas, alphas)
    pb = betas[:: max(1, len(betas) // args.previous_betas)][: args.previous_betas]
    t_prev, prev = timed(previous_search, q, y, W, keys, values, pb.tolist(), alphas.tolist())
    ob = pb[: args.official_steps[0]].tolist()
    oa = alphas[:: max(1, len(alphas) // args.official_steps[1])][: args.official_steps[1]].tolist()
    t0 = time.perf_counter()
    off = {(b, a): official_point(q, y, W, keys, values, b, a) for b in ob for a in oa}
    t_off = (time.perf_counter() - t0) / len(off)
    rows = {float(b): i for i, b in enumerate(betas.tolist())}
    cols = {float(a): j for j, a in enumerate(alphas.tolist())}
    diff_prev = max(abs(float(prev[i, j] - new.grid[rows[float(b)], j])) for i, b in enumerate(pb.tolist())
                    for j in range(len(alphas)))
    diff_off = max(abs(acc - float(new.grid[rows[b], cols[a]])) for (b, a), acc in off.items())
    per_beta_new, per_beta_prev = t_new / len(betas), t_prev / len(pb)
    print(f"shape {args.shape}: N={shape['n']} K={keys.shape[0]} C={shape['c']} D={shape['d']}, "
          f"grid {len(betas)} x {len(alphas)}, {args.threads} thread(s)")
    print(f"official double loop: {t_off:9.3f} s per grid point ({len(off)} points timed: a reduced grid)"
          f" -> {t_off * len(betas) * len(alphas):9.1f} s for the full grid")
    print(f"previous tipkit:      {per_beta_prev:9.3f} s per beta ({len(pb)} betas timed)")
    print(f"tipkit grid_search:   {per_beta_new:9.3f} s per beta, {t_new:.1f} s for the full grid")
    print(f"speed-up: {per_beta_prev / per_beta_new:.1f}x over the previous search, "
          f"{t_off * len(alphas) / per_beta_new:.0f}x over the official loop (per beta)")
    print(f"largest accuracy difference (percentage points): vs previous {diff_prev:.4f} "
          f"(one query = {100 / shape['n']:.4f}), vs official {diff_off:.4f}")
    append_row(OUT, ["shape", "n", "k", "c", "d", "betas", "alphas", "threads", "machine", "official_s_per_point",
                        "previous_s_per_beta", "tipkit_s_per_beta", "tipkit_total_s", "speedup_vs_previous",
                        "max_diff_vs_previous_pp", "max_diff_vs_official_pp"],
               [args.shape, shape["n"], keys.shape[0], shape["c"], shape["d"], len(betas), len(alphas),
                    args.threads, f"{platform.machine()} {os.cpu_count()} cpu", f"{t_off:.4f}",
                    f"{per_beta_prev:.4f}", f"{per_beta_new:.4f}", f"{t_new:.2f}",
                    f"{per_beta_prev / per_beta_new:.2f}", f"{diff_prev:.4f}", f"{diff_off:.4f}"])

if __name__ == "__main__":
    main()
