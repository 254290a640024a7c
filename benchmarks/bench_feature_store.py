"""Cost of the lock-free sharded feature store beside the single-file store it replaced, at ImageNet's test
shape (50,000 x 1,024 float32, synthetic tensors), measured in one run.

Single file (tipkit <= store format 2): one ``torch.save``'d ``{indices, features}`` per key; a writer took an
fcntl lock, re-read the file, appended its rows and rewrote the whole file (reproduced here as it was).
Shards (format 3, :mod:`tipkit.models.store`): a writer adds a shard (temp file + rename, no lock); a reader
takes the union and checks each shard's layout, rows, width and CRC-32.

Scenarios (median of ``--repeat`` runs; files are in the page cache, so these are CPU + memory costs):
  write all     one extraction writes all N rows
  read all      a run reads the N rows back: from 1 shard, and from P shards (P writers, or an
                extraction long enough to write a shard every 10,000 rows)
  extend        the N rows arrive in P pieces (P runs each adding N/P rows, one after another)
  compact       P shards merged into one (shards only)

    python benchmarks/bench_feature_store.py [--n 50000 --d 1024 --pieces 8 --repeat 3 --dir /tmp]

Writes ``benchmarks/results/feature_store.csv`` and ``feature_store.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tipkit.io import torch_save
from tipkit.models.store import FeatureStore

RESULTS = Path(__file__).resolve().parent / "results"


# -- the single-file store, as tipkit.models.features had it (store format 2) --------------------------
@contextlib.contextmanager
def _locked(path: Path):
    with open(path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _load_single(path: Path) -> dict:
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    return {"indices": torch.empty(0, dtype=torch.long), "features": torch.empty(0)}


def single_extend(path: Path, idx: np.ndarray, new: torch.Tensor) -> None:
    with _locked(path):
        store = _load_single(path)
        known = set(store["indices"].tolist())
        keep = [r for r, j in enumerate(idx.tolist()) if j not in known]
        store = {"indices": torch.cat([store["indices"], torch.as_tensor(idx[keep])]),
                 "features": torch.cat([store["features"].reshape(-1, new.shape[1]), new[keep]])}
        torch_save(path, store)


def single_read(path: Path) -> torch.Tensor:
    store = _load_single(path)
    have = {int(j): r for r, j in enumerate(store["indices"].tolist())}
    return store["features"][torch.as_tensor([have[j] for j in range(len(have))])]


def shards_read(root: Path, d: int, n: int) -> torch.Tensor:
    _, idx, feats = FeatureStore(root, dim=d, size=n).read()
    have = {int(j): r for r, j in enumerate(idx.tolist())}
    return feats[torch.as_tensor([have[j] for j in range(len(have))])]


# -- measurements -----------------------------------------------------------------------------------------
def timed(fn, repeat: int, setup=None) -> float:
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="rows (ImageNet's test split: 50,000)")
    ap.add_argument("--d", type=int, default=1024, help="feature width (RN50: 1,024)")
    ap.add_argument("--pieces", type=int, default=8, help="writers / runs extending the store")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to write the stores (default: a temp folder)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for feature_store.csv and .md")
    args = ap.parse_args()
    n, d, p = args.n, args.d, args.pieces
    feats = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    idx = np.arange(n, dtype=np.int64)
    pieces = np.array_split(np.random.default_rng(0).permutation(n), p)
    work = Path(tempfile.mkdtemp(prefix="tipkit-bench-store-", dir=args.dir))
    single, sharded = work / "single.pt", work / "store"

    def reset_single() -> None:
        single.unlink(missing_ok=True)

    def reset_shards() -> None:
        shutil.rmtree(sharded, ignore_errors=True)

    rows = []
    try:
        old = timed(lambda: single_extend(single, idx, feats), args.repeat, reset_single)
        new = timed(lambda: FeatureStore(sharded, d, n).add(idx, feats), args.repeat, reset_shards)
        rows.append(("write all", old, new))
        old = timed(lambda: single_read(single), args.repeat)
        new = timed(lambda: shards_read(sharded, d, n), args.repeat)
        assert torch.equal(single_read(single), shards_read(sharded, d, n))
        rows.append(("read all (1 shard)", old, new))

        def extend_single() -> None:
            for part in pieces:
                single_extend(single, part, feats[part])

        def extend_shards() -> None:
            for part in pieces:
                FeatureStore(sharded, d, n).add(part, feats[part])

        rows.append((f"extend in {p} pieces", timed(extend_single, args.repeat, reset_single),
                     timed(extend_shards, args.repeat, reset_shards)))
        assert len(FeatureStore(sharded).shards()) == p and torch.equal(single_read(single), shards_read(sharded, d, n))
        rows.append((f"read all ({p} shards)", timed(lambda: single_read(single), args.repeat),
                     timed(lambda: shards_read(sharded, d, n), args.repeat)))

        def fresh_shards() -> None:
            reset_shards()
            extend_shards()

        rows.append((f"compact {p} shards", float("nan"),
                     timed(lambda: FeatureStore(sharded, d, n).compact(), args.repeat, fresh_shards)))
        mb = {"single file": single.stat().st_size / 2**20,
              "shards": sum(f.stat().st_size for f in FeatureStore(sharded).shards()) / 2**20}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["scenario,single_file_s,shards_s,shards_over_single"]
    for name, o, s in rows:
        lines.append(f"{name},{o:.3f},{s:.3f},{s / o:.2f}" if o == o else f"{name},,{s:.3f},")
    (out / "feature_store.csv").write_text("\n".join(lines) + "\n")
    head = (f"Feature store at {n:,} x {d:,} float32 ({n * d * 4 / 2**20:.0f} MiB), {p} pieces, median of "
            f"{args.repeat}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
            f"{torch.__version__}. Files in the page cache. On disk after compaction: shards "
            f"{mb['shards']:.1f} MiB, single file {mb['single file']:.1f} MiB.")
    md = [head, "", "| scenario | single file (s) | shards (s) | shards / single |", "|---|---:|---:|---:|"]
    md += [f"| {name} | {o:.3f} | {s:.3f} | {s / o:.2f} |" if o == o else f"| {name} | - | {s:.3f} | - |"
           for name, o, s in rows]
    (out / "feature_store.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
