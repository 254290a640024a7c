"""Why an outside probe and the scale benchmark disagree (issue 19): the same methods, in one process, on three
families of synthetic features at ImageNet's shape (C = 1,000, K = 16,000, D = 1,024, 4,000 validation images):

- ``separable``: the benchmark's former features (image noise 2.0, text noise 3.7): zero-shot ~68 % but every
  cache method near 100 %;
- ``probe``: class means plus noise as the probe describes them (image 3.0, text 2.5): zero-shot ~68 %,
  Tip-Adapter ~82 %;
- ``clip_like``: the benchmark's current features (:mod:`tipkit.bench.features`).

Per family it records zero-shot on the validation split, APE's search per β (a few β of the paper's grid, every
α and γ; the share of (query, γ) rows whose prediction differs between the smallest and largest α, the rows the
scorer must look into: :func:`tipkit.core.grid.line_argmax`) and one Tip-Adapter-F epoch (training and the validation pass). Times are ratios
within one run; ``load_1m`` is the machine's load when the row was measured (the machine may be shared).

    python benchmarks/bench_feature_gap.py            # -> benchmarks/results/feature_gap.csv
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from results_csv import append_row

import tipkit.core.grid as grid_mod
from tipkit.bench import features
from tipkit.core.metrics import accuracy
from tipkit.methods import get_method

OUT = Path(__file__).resolve().parent / "results" / "feature_gap.csv"
FAMILIES = {"separable": (2.0, 3.7, 4.2), "probe": (3.0, 2.5, 2.8),
            "clip_like": (features.IMAGE_NOISE, features.TEXT_NOISE, features.SINGLE_PROMPT_NOISE)}
HEADER = ["family", "image_noise", "text_noise", "classes", "cache_size", "dim", "val_size", "zero_shot_val",
          "ape_betas", "ape_s_per_beta", "ape_unsettled_share", "ape_val_acc", "tip_f_s_per_epoch",
          "tip_f_val_acc", "threads", "load_1m", "created"]


def measure(family: str, betas: int) -> list:
    image, text, single = FAMILIES[family]
    features.IMAGE_NOISE, features.TEXT_NOISE, features.SINGLE_PROMPT_NOISE = image, text, single
    shape = features.SHAPES["imagenet"]
    data, _, _ = features.make_features(shape, "clean")
    load = float(open("/proc/loadavg").read().split()[0]) if os.path.exists("/proc/loadavg") else float("nan")
    zs = accuracy(data.val @ data.class_embeddings.T, data.val_labels)
    unsettled = []
    scorer = grid_mod.line_argmax

    def counting(base, term, weights, scratch=None):
        pred = scorer(base, term, weights, scratch=scratch)  # [N, G, J]
        lo, hi = int(torch.argmin(weights)), int(torch.argmax(weights))
        unsettled.append(float((pred[..., lo] != pred[..., hi]).double().mean()))
        return pred

    ape_mod = importlib.import_module("tipkit.methods.ape")
    ape_mod.line_argmax = counting
    grid = [0.1 + i * (7.0 - 0.1) / 200 for i in range(betas)]  # the first β of the paper's grid
    t = time.perf_counter()
    ape = get_method("ape", betas=grid).fit(data)
    ape_s = (time.perf_counter() - t) / betas
    ape_mod.line_argmax = scorer
    t = time.perf_counter()
    tip_f = get_method("tip_adapter_f", epochs=1, search_step=[1, 1]).fit(data)
    tip_f_s = time.perf_counter() - t
    return [family, image, text, shape.classes, shape.cache_size, shape.dim, len(data.val_labels), f"{zs:.2f}",
            betas, f"{ape_s:.2f}", f"{sum(unsettled) / len(unsettled):.4f}", f"{ape.hyper['val_acc']:.2f}",
            f"{tip_f_s:.2f}", f"{tip_f.history[0]['val_acc']:.2f}", torch.get_num_threads(), f"{load:.2f}",
            datetime.now(timezone.utc).isoformat(timespec="seconds")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--betas", type=int, default=2, help="β of APE's grid timed per family")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    args = ap.parse_args()
    for family in args.families:
        row = measure(family, args.betas)
        print(dict(zip(HEADER, row)), flush=True)
        append_row(OUT, HEADER, row)


if __name__ == "__main__":
    main()
