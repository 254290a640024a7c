"""What a sweep or a run will cost before it runs: images to encode, the feature store on disk, and time.

:func:`paper_plan` sizes the paper profile from the expected split sizes alone. :func:`sweep_plan` (``tipkit
sweep CONFIG --plan``) plans one sweep file: its cells, the images each backbone must encode — once per image
and view across the sweep, as :func:`tipkit.experiments.pipeline.prepare` extracts them (whole val and test
splits, the union of every cell's few-shot draw under every augmented view) — the feature store's size on
disk, and an estimated time per machine kind from the scale benchmark's CSVs (:mod:`.runner`): feature
extraction priced by the ``encode``/``decode`` rows, each run by its methods' ``fit`` and ``predict`` rows at
its dataset's shape. The benchmark runs 16 shots, so smaller cells are over-estimated; a ``timeout`` row
counts as its timeout (the total is then a lower bound, printed with ``≥``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

from tipkit import data as data_mod
from tipkit.config import FIELDS, RunConfig, make_config
from tipkit.data.check import EXPECTED
from tipkit.data.fashion_mnist import PER_CLASS as FMNIST_PER_CLASS
from tipkit.errors import TipkitError
from tipkit.bench.runner import load_results
from tipkit.bench.features import FMNIST_TEST

if TYPE_CHECKING:  # pragma: no cover
    from tipkit.experiments.sweep import Sweep

INDEX_BYTES = 8  # the store keeps an int64 image index beside every feature row
VAL_IS_TEST = {"imagenet"}  # datasets whose val split is their test split (tipkit.data.imagenet): one store
RUN_NOTEBOOK = "tip_adapter"  # the notebook whose cells are one run (fit + evaluate of cfg.methods)


def feature_bytes(images: int, dim: int, dtype_bytes: int = 4) -> int:
    """Bytes of a feature store of ``images`` rows of ``dim`` float32 values."""
    return images * dim * dtype_bytes


def embed_dim(backbone: str) -> "int | None":
    """The backbone's feature width from its open_clip config (None when unknown)."""
    import open_clip

    from tipkit.models import standin

    standin.register()
    cfg = open_clip.get_model_config(backbone)
    return int(cfg["embed_dim"]) if cfg else None


def paper_plan(backbone: str = "RN50", shots: tuple[int, ...] = (1, 2, 4, 8, 16), seeds: tuple[int, ...] = (1, 2, 3),
               views: int = 10) -> pd.DataFrame:
    """Per paper dataset: classes, split sizes, runs in the grid, and the feature cache it fills (MiB).

    The cache holds the val and test features once and, per augmented view, every image any (shots, seed)
    draws; the upper bound ``max(shots) × classes × len(seeds)`` is used for the few-shot images.
    """
    dim = embed_dim(backbone) or 0
    rows = []
    for name, exp in EXPECTED.items():
        sizes = exp["sizes"]
        few = min(sizes.get("train", 0), max(shots) * exp["classes"] * len(seeds)) if "train" in sizes else 0
        stored = sizes.get("val", 0) + sizes.get("test", 0) + few * views
        rows.append({"dataset": name, "classes": exp["classes"], **{f"{k} images": v for k, v in sizes.items()},
                     "runs": len(shots) * len(seeds) if "train" in sizes else 0,
                     "feature cache (MiB)": round(feature_bytes(stored, dim) / 2**20, 1)})
    df = pd.DataFrame(rows).fillna(0)
    return df.astype({c: int for c in df.columns if c.endswith(" images")})


# ------------------------------------------------------------------------------------------ images to encode
def split_sizes(dataset: str) -> "dict[str, int] | None":
    """``{classes, train, val, test}`` of a dataset from its expected sizes (None when tipkit knows none)."""
    if dataset == "fashion-mnist":
        c = 10
        return {"classes": c, "train": c * FMNIST_PER_CLASS["train"], "val": c * FMNIST_PER_CLASS["val"],
                "test": FMNIST_TEST}
    exp = EXPECTED.get(dataset)
    if exp is None or "train" not in exp["sizes"]:
        return None
    return {"classes": exp["classes"], **exp["sizes"]}


def expected_union(pool: float, draws: Iterable[int]) -> float:
    """Expected number of distinct images when independent draws of the given sizes are taken (without
    replacement) from a class of ``pool`` images: ``pool · (1 − Π (1 − k / pool))``."""
    miss = math.prod(max(0.0, 1.0 - k / pool) for k in draws) if pool > 0 else 1.0
    return pool * (1.0 - miss)


def _group_key(c: RunConfig) -> tuple:
    return (c.dataset, c.data_root, c.skip_corrupt, c.backbone, c.pretrained, c.device, c.precision, c.aug_seed)


def encode_needs(cfgs: list[RunConfig]) -> pd.DataFrame:
    """Images each (backbone, dataset) must encode for ``cfgs``, grouped as ``pipeline.prepare`` groups them.

    Columns: ``backbone, pretrained, dataset, val, test, few_shot, views, encodings, store_bytes, counted``
    (``exact`` when the dataset is on disk and the draws were made, ``estimated`` from the expected split sizes
    otherwise). Random-init runs (``pretrained: none``) are left out: each seed is its own model.
    """
    groups: dict[tuple, list[RunConfig]] = {}
    for c in cfgs:
        groups.setdefault(_group_key(c), []).append(c)
    rows = []
    for key, group in groups.items():
        c0 = group[0]
        if c0.pretrained in (None, "", "none"):
            continue
        views = max(c.augment_views for c in group)
        try:
            ds = data_mod.dataset_for(c0)
            train, val, test = ds.split("train"), ds.split("val"), ds.split("test")
            few = len(np.unique(np.concatenate([data_mod.few_shot_for(c, train) for c in group])))
            n_val, n_test, counted = (0 if val is test else len(val)), len(test), "exact"
        except TipkitError:
            sizes = split_sizes(c0.dataset)
            if sizes is None:
                continue  # an evaluation-only or unknown dataset: its runs extract their own features
            pool = sizes["train"] / sizes["classes"]
            draws = sorted({(c.shots, c.seed, c.sampler) for c in group})
            few = round(sizes["classes"] * min(pool, expected_union(pool, [k for k, _, _ in draws])))
            n_val = 0 if c0.dataset in VAL_IS_TEST else sizes["val"]
            n_test, counted = sizes["test"], "estimated (data not on disk)"
        dim = embed_dim(c0.backbone)
        encodings = n_val + n_test + few * views
        rows.append({"backbone": c0.backbone, "pretrained": c0.pretrained, "dataset": c0.dataset, "val": n_val,
                     "test": n_test, "few_shot": few, "views": views, "encodings": encodings,
                     "store_bytes": encodings * ((dim or 0) * 4 + INDEX_BYTES) if dim else None,
                     "counted": counted, "workers": c0.workers, "device": c0.device, "precision": c0.precision})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------- time
@dataclass
class Estimate:
    seconds: float = 0.0
    lower_bound: bool = False  # a timeout row was counted as its timeout
    missing: int = 0  # parts the benchmark has no row for

    def add(self, other: "Estimate") -> "Estimate":
        return Estimate(self.seconds + other.seconds, self.lower_bound or other.lower_bound,
                        self.missing + other.missing)


def _rows(bench: pd.DataFrame, precision: str, **match: Any) -> pd.DataFrame:
    sel = bench
    for k, v in match.items():
        sel = sel[sel[k] == v]
    same = sel[sel["precision"] == precision]
    return same if len(same) else sel[sel["precision"] == "fp32"]


def encode_estimate(need: dict[str, Any], bench: pd.DataFrame) -> Estimate:
    """Seconds to encode one row of :func:`encode_needs` on ``bench``'s machine (forward + JPEG decoding)."""
    parts = {}
    for kind in ("encode", "decode"):
        r = _rows(bench, need["precision"], shape=need["backbone"], method=kind)
        r = r[r["status"] == "ok"]
        parts[kind] = float(r["predict_s_per_1k"].iloc[0]) / 1000 if len(r) else None
    if parts["encode"] is None:
        return Estimate(missing=1)
    per_image = parts["encode"] + (parts["decode"] or 0.0) / max(1, int(need.get("workers") or 0))
    return Estimate(need["encodings"] * per_image, missing=int(parts["decode"] is None))


def run_estimate(cfg: RunConfig, bench: pd.DataFrame) -> Estimate:
    """Seconds of one run's methods (fit on val, predict on test) at its dataset's shape, features excluded."""
    total = Estimate()
    for m in cfg.methods:
        r = _rows(bench, cfg.precision, shape=cfg.dataset, protocol=cfg.protocol, method=m)
        if not len(r):
            total = total.add(Estimate(missing=1))
            continue
        r = r.iloc[0]
        if r["status"] == "ok":
            total = total.add(Estimate(float(r["fit_s"]) + float(r["predict_s"])))
        else:  # timeout / error / out of memory: at least the time it was given
            total = total.add(Estimate(float(r["timeout_s"]), lower_bound=True))
    return total


def machine_benches(bench: "pd.DataFrame | None" = None) -> dict[str, pd.DataFrame]:
    """The benchmark's rows by machine kind (every CSV under ``benchmarks/results``)."""
    bench = load_results() if bench is None else bench
    return {k: g for k, g in bench.groupby("machine")} if len(bench) else {}


def plan_runs(cfgs: list[RunConfig], bench: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """Per machine kind: the estimated seconds of extracting ``cfgs``' features and of their runs."""
    needs = encode_needs(cfgs)
    rows = []
    for kind, b in machine_benches(bench).items():
        feats = Estimate()
        for need in needs.to_dict("records"):
            feats = feats.add(encode_estimate(need, b))
        runs = Estimate()
        for c in cfgs:
            runs = runs.add(run_estimate(c, b))
        rows.append({"machine": kind, "features_s": feats.seconds, "runs_s": runs.seconds,
                     "total_s": feats.seconds + runs.seconds, "lower_bound": feats.lower_bound or runs.lower_bound,
                     "missing": feats.missing + runs.missing, "features_missing": feats.missing,
                     "runs_missing": runs.missing})
    return pd.DataFrame(rows)


def fill_command(dataset: str, methods: Iterable[str], protocol: str, shots: int = 16, device: str = "cuda") -> str:
    """The command that makes the record of one paper dataset's run (then ``python -m tipkit report``)."""
    return (f"python -m tipkit run --config configs/paper/{dataset}.yaml --data-root DATA --device {device} "
            f"--shots {shots} --protocol {protocol} --methods {' '.join(methods)}")


def planned_text(r: dict[str, Any]) -> str:
    """A :func:`plan_runs` row's total as ``≈ 25 min`` (``≥`` where a timeout was counted; ``+ ?`` where a
    part has no benchmark row)."""
    if r["total_s"] == 0 and r["missing"]:
        return "not measured"
    return f"{'≥' if r['lower_bound'] else '≈'} {_human_s(r['total_s'])}" + (" + ?" if r["missing"] else "")


def fill_plan(datasets: Iterable[str], methods: Iterable[str], protocol: str = "paper", shots: int = 16,
              bench: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """Per dataset: the command that makes its missing record (``dataset, command``) and, from the benchmark,
    its planned time (the dataset's features plus its methods at ``shots`` shots, :func:`plan_runs`) on the
    fastest measured machine, a GPU where one was measured (the command's ``--device`` follows): ``machine, total_s,
    lower_bound, missing, planned`` (:func:`planned_text`; "not measured" without a benchmark, machine "-")."""
    methods = list(methods)
    bench = load_results() if bench is None else bench
    rows = []
    for ds in datasets:
        cfg = make_config(dataset=ds, shots=shots, seed=1, protocol=protocol, methods=methods, device="cuda")
        plans = plan_runs([cfg], bench).to_dict("records")
        plans.sort(key=lambda r: (not r["machine"].startswith("cuda"), r["missing"] > 0, r["total_s"]))
        best = plans[0] if plans else {"machine": "-", "total_s": 0.0, "lower_bound": False, "missing": 1}
        device = "cpu" if best["machine"].startswith("cpu") else "cuda"
        rows.append({"dataset": ds, "command": fill_command(ds, methods, protocol, shots, device), **best,
                     "planned": planned_text(best) if plans else "not measured (run `python -m tipkit bench`)"})
    return pd.DataFrame(rows)


def sweep_configs(sweep: "Sweep") -> list[tuple[str, RunConfig]]:
    """(notebook stem, run config) of every cell."""
    return [(c.notebook.stem, make_config(**{k: v for k, v in c.params.items() if k in FIELDS})) for c in sweep.cells]


def _human_s(s: float, lower: bool = False) -> str:
    text = f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min" if s < 5400 else f"{s / 3600:.1f} h"
    return ("≥ " if lower else "") + text


def _part(seconds: float, lower: bool, missing: int, what: str) -> str:
    if missing and not seconds:
        return f"not measured ({missing} {what})"
    return _human_s(seconds, lower) + (f" + {missing} {what}" if missing else "")


def _human_bytes(b: float) -> str:
    return f"{b / 2**20:.1f} MiB" if b < 2**30 else f"{b / 2**30:.2f} GiB"


def sweep_plan(sweep: "Sweep | str | Path", force: bool = False, bench: "pd.DataFrame | None" = None) -> str:
    """The plan of a sweep (or of the sweep file at a path) as text: the cells to run (all with ``force``), the
    images to encode, the feature store's size and the estimated time per measured machine."""
    from tipkit.experiments.sweep import is_done, load_sweep

    if isinstance(sweep, (str, Path)):
        sweep = load_sweep(sweep)

    todo = [c for c in sweep.cells if force or not is_done(c)]
    kind, jobs = sweep.executor.get("kind", "local"), int(sweep.executor.get("jobs", 1))
    lines = [f"sweep {sweep.name}: {len(sweep.cells)} cells, {len(todo)} to run"
             f"{'' if force else f' ({len(sweep.cells) - len(todo)} done)'}; executor {kind}, {jobs} at a time"]
    by_nb: dict[str, int] = {}
    for c in todo:
        by_nb[c.notebook.name] = by_nb.get(c.notebook.name, 0) + 1
    lines += [f"  {nb}: {n} cells" for nb, n in by_nb.items()]
    lines += [f"    {c.name}" for c in todo[:8]] + ([f"    ... and {len(todo) - 8} more"] if len(todo) > 8 else [])
    if not todo:
        return "\n".join(lines + ["nothing to run (--force plans every cell)"])
    cfgs = sweep_configs(type(sweep)(sweep.name, todo, sweep.executor))
    needs = encode_needs([c for _, c in cfgs])
    lines += ["", "images to encode (each image and view once across the sweep; val and test: whole splits):"]
    if len(needs):
        show = needs.assign(store=needs["store_bytes"].map(lambda b: _human_bytes(b) if b == b and b else "?"))
        cols = ["backbone", "dataset", "val", "test", "few_shot", "views", "encodings", "store", "counted"]
        lines += ["  " + s for s in show[cols].to_string(index=False).splitlines()]
        lines.append(f"  total: {int(needs['encodings'].sum()):,} encodings; feature store on disk ≈ "
                     f"{_human_bytes(float(needs['store_bytes'].fillna(0).sum()))}")
    else:
        lines.append("  none (random-init or evaluation-only cells extract their own)")
    runs = [c for nb, c in cfgs if nb == RUN_NOTEBOOK]
    other = len(cfgs) - len(runs)
    plan = plan_runs(runs, bench) if runs or len(needs) else pd.DataFrame()
    lines += ["", "estimated time (from the scale benchmark, benchmarks/results/scale_<machine>.csv: 16 shots and "
                  "RN50's width at each dataset's shape, so smaller cells are over-estimated):"]
    if not len(plan):
        lines.append("  no benchmark results: run `python -m tipkit bench` (and benchmarks/device_check.sh on a GPU)")
    for r in plan.to_dict("records") if len(plan) else []:
        wall = r["features_s"] + r["runs_s"] / (min(jobs, len(runs)) if kind == "slurm" and runs else 1)
        feats = _part(r["features_s"], False, r["features_missing"], "datasets without an encoder row")
        work = _part(r["runs_s"], r["lower_bound"], r["runs_missing"], "method fits without a row")
        lines.append(f"  {r['machine']:<14} features {feats}; runs {work}; with executor {kind} ×{jobs}: "
                     f"{_human_s(wall, r['lower_bound'])}{' + the unmeasured parts' if r['missing'] else ''}")
    if len(plan) and kind != "slurm":
        lines.append(f"  ({kind}: the cells share one machine, so running {jobs} at a time is not counted as faster)")
    if other:
        lines.append(f"  not estimated: {other} cells of other notebooks (ablations, efficiency)")
    return "\n".join(lines)
