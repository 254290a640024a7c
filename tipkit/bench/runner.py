"""The scale benchmark (``python -m tipkit bench``): every method fitted at the paper's dataset shapes.

Each (shape, protocol, method) is one task run **in its own process** (multiprocessing ``spawn``), so a
method's peak memory is its own and a method that runs too long is stopped at ``timeout`` seconds and
recorded as ``timeout`` instead of holding up the rest. The child builds the synthetic features of the shape
(:mod:`.features`), fits the method with the settings a run of that dataset would pass
(:func:`tipkit.experiments.pipeline.method_overrides` on ``make_config(dataset=shape.dataset)``: the registry
defaults, with the dataset's α/β grid and Tip-Adapter-F training for Tip-Adapter and Tip-Adapter-F), predicts
the whole test set and reports:

- ``fit_s``: wall time of ``fit`` (the method's search and training on the validation split included);
  ``fit_cpu_s``: the CPU time the process spent in it (all threads), steadier than wall time on a busy machine;
- ``predict_s`` and ``predict_s_per_1k``: one ``predict`` call on the whole test set, per 1,000 images;
- memory: on the CPU the child's peak resident set (``VmHWM``, reset between phases through
  ``/proc/self/clear_refs``; absolute, so the inputs are included: ``inputs_mib`` is the resident set before
  ``fit``); on CUDA ``torch.cuda.max_memory_allocated`` per phase;
- ``test_acc`` (%) and ``chance_acc``, the sanity check;
- ``load_1m``: the machine's 1-minute load average when the task started (on a shared machine, other work
  stretches the times: read them beside it).

Rows go to ``benchmarks/results/scale_<machine kind>.csv`` (:func:`machine_kind`), written atomically after
every task and replaced per (shape, protocol, method, device, precision). Encoder rows (:mod:`.encode`)
join the same file, so a sweep's plan (:mod:`.plan`) can price feature extraction too.
"""

from __future__ import annotations

import logging
import math
import os
import time
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import torch
from tqdm.auto import tqdm

from tipkit import paths
from tipkit.errors import TipkitError, choose
from tipkit.bench.features import FAMILY, PROTOCOLS, QUICK_SHAPES, SHAPES, Shape, get_shape
from tipkit.bench.proc import DEFAULT_TIMEOUT_S, autocast, phase, run_task, status_kib
from tipkit.io import atomic_path
from tipkit.version import __version__

log = logging.getLogger(__name__)
KEY = ["shape", "protocol", "method", "device", "precision"]  # a row is replaced per key
COLUMNS = ["machine", *KEY, "dataset", "classes", "shots", "cache_size", "dim", "views", "val_size", "test_size",
           "status", "error", "fit_s", "fit_cpu_s", "predict_s", "predict_cpu_s", "predict_s_per_1k", "test_acc",
           "chance_acc", "mem_kind", "inputs_mib", "fit_peak_mib", "predict_peak_mib", "threads", "load_1m",
           "timeout_s", "torch", "tipkit", "features", "created"]
EXCLUDED = ("coop",)  # CoOp trains prompts through the text encoder: it needs a backbone, not features
PRECISIONS = ("fp32", "fp16", "bf16")


def bench_dir() -> Path:
    """Where the benchmark's CSVs live (``benchmarks/results``; ``TIPKIT_BENCH`` moves it)."""
    return Path(os.environ.get("TIPKIT_BENCH", paths.BENCH_RESULTS))


def machine_kind(device: str = "cpu") -> str:
    """``cpu-<n>core`` (the cores this process may use) or ``cuda-<gpu model>``, e.g. ``cuda-h200``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev).lower().replace("nvidia", "")
        return "cuda-" + (re.sub(r"[^a-z0-9]+", "-", name).strip("-") or "gpu")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return f"{dev.type}-{cores}core"


def results_path(kind: str, folder: "str | Path | None" = None) -> Path:
    return Path(folder or bench_dir()) / f"scale_{kind}.csv"


def bench_methods() -> list[str]:
    """Every registry method the benchmark can run on features alone (the registry minus CoOp)."""
    from tipkit.methods import list_methods

    return [m for m in list_methods() if m not in EXCLUDED]


@dataclass(frozen=True)
class Task:
    shape: Shape
    protocol: str
    method: str


# ----------------------------------------------------------------------------------------------- the child
def _child(task: Task, device: str, precision: str, conn: Any) -> None:
    """Runs in the spawned process: features, fit, predict; sends dicts through ``conn`` after each phase."""
    try:
        from tipkit.config import make_config
        from tipkit.core.metrics import accuracy
        from tipkit.experiments.pipeline import method_overrides
        from tipkit.bench.features import make_features
        from tipkit.methods import get_method

        dev = torch.device(device)
        data, test, labels = make_features(task.shape, task.protocol, device=device,
                                           generate_on=device if dev.type == "cuda" else "cpu")
        rss = status_kib("VmRSS")
        out: dict[str, Any] = {"inputs_mib": rss / 1024 if rss is not None else float("nan"),
                               "mem_kind": "cuda_allocated" if dev.type == "cuda" else "rss",
                               "threads": torch.get_num_threads()}
        conn.send(dict(out))
        overrides = method_overrides(make_config(dataset=task.shape.dataset), task.method)
        method = get_method(task.method, **overrides)
        with phase(dev, out, "fit"), autocast(dev, precision):
            method.fit(data)
        conn.send(dict(out))
        with phase(dev, out, "predict"), autocast(dev, precision), torch.no_grad():
            logits = method.predict(test)
        out["test_acc"] = accuracy(logits, labels)
        out["status"] = "ok"
        conn.send(out)
    except BaseException as e:  # noqa: BLE001 - reported as the row's error, the parent goes on
        msg = str(e).strip().splitlines()
        kind = "oom" if isinstance(e, (MemoryError, torch.cuda.OutOfMemoryError)) else "error"
        conn.send({"status": kind, "error": f"{type(e).__name__}: {msg[-1] if msg else ''}"[:300]})
    finally:
        conn.close()


def run_one(task: Task, device: str = "cpu", precision: str = "fp32",
            timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """One task in its own process (:func:`tipkit.bench.proc.run_task`): the row's measured part."""
    return run_task(task, device, precision, timeout, target=_child)


# ------------------------------------------------------------------------------------------------- the CSV
def read_results(path: "str | Path") -> pd.DataFrame:
    """One benchmark CSV (empty frame with the columns when missing)."""
    p = Path(path)
    return pd.read_csv(p) if p.exists() else pd.DataFrame(columns=COLUMNS)


def load_results(folder: "str | Path | None" = None) -> pd.DataFrame:
    """Every ``scale_*.csv`` of ``folder`` (default :func:`bench_dir`) in one frame."""
    files = sorted(Path(folder or bench_dir()).glob("scale_*.csv"))
    frames = [read_results(f) for f in files]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def write_rows(path: "str | Path", rows: Sequence[dict[str, Any]]) -> Path:
    """Merge ``rows`` into the CSV at ``path`` (a row replaces the one with its key), atomically."""
    old = read_results(path)
    new = pd.DataFrame(list(rows)).reindex(columns=COLUMNS)
    if len(old):
        keys = set(map(tuple, new[KEY].astype(str).values))
        old = old[[tuple(k) not in keys for k in old[KEY].astype(str).values]]
    both = pd.concat([old.reindex(columns=COLUMNS), new], ignore_index=True) if len(old) else new
    with atomic_path(path) as tmp:
        both.to_csv(tmp, index=False, float_format="%.6g")
    return Path(path)


# --------------------------------------------------------------------------------------------- the driver
def check_args(shapes: Sequence[str], methods: Sequence[str], protocols: Sequence[str], device: str,
               precision: str, timeout: float) -> None:
    """One clear error for any bad argument, before anything runs."""
    for s in shapes:
        get_shape(s)
    known = bench_methods() + ["encode"]
    for m in methods:
        if m in EXCLUDED:
            raise TipkitError(f"method {m!r} cannot run on synthetic features (it needs images and a backbone)")
        choose("method", m, known)
    for p in protocols:
        choose("protocol", p, list(PROTOCOLS))
    choose("precision", precision, list(PRECISIONS))
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise TipkitError(f"unknown device {device!r}; e.g. cpu, cuda, cuda:1") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TipkitError(f"device {device!r} asked for, but torch sees no CUDA device")
    if dev.type == "cpu" and precision != "fp32":
        raise TipkitError(f"precision {precision!r} is autocast on CUDA; the CPU runs fp32 only")
    if not timeout > 0:
        raise TipkitError(f"timeout must be > 0 seconds, got {timeout!r}")


def run_bench(shapes: "Sequence[str] | None" = None, methods: "Sequence[str] | None" = None,
              protocols: Sequence[str] = PROTOCOLS, device: str = "cpu", precision: str = "fp32",
              timeout: float = DEFAULT_TIMEOUT_S, quick: bool = False, folder: "str | Path | None" = None,
              budget: "float | None" = None) -> Path:
    """Run the benchmark; return the CSV it wrote (``folder``/scale_<machine kind>.csv).

    ``shapes``: names from :data:`SHAPES`, run in the order given (default: all, smallest first; ``quick``:
    :data:`QUICK_SHAPES`); ``methods``: registry names and ``encode`` (the image encoders' rows, run first,
    :mod:`.encode`; default: every method, plus ``encode`` unless ``quick``); ``precision`` is autocast
    on CUDA; ``timeout``: seconds per task; ``budget``: seconds for the whole run — no task starts after it,
    and a task it cuts short leaves no row (its timeout row would understate the method).
    """
    shapes = list(shapes or (QUICK_SHAPES if quick else SHAPES))
    methods = list(methods or bench_methods() + ([] if quick else ["encode"]))
    check_args(shapes, methods, protocols, device, precision, timeout)
    if budget is not None and not budget > 0:
        raise TipkitError(f"budget must be > 0 seconds, got {budget!r}")
    kind = machine_kind(device)
    path = results_path(kind, folder)
    fits = [m for m in methods if m != "encode"]
    tasks = [Task(get_shape(s), p, m) for s in shapes for p in protocols for m in fits]
    common = {"machine": kind, "device": torch.device(device).type, "precision": precision, "timeout_s": timeout,
              "torch": torch.__version__, "tipkit": __version__, "features": FAMILY}
    start = time.monotonic()
    log.info("scale benchmark: %d tasks on %s -> %s", len(tasks), kind, path)
    if "encode" in methods:
        from tipkit.bench.encode import encoder_rows

        cap = min(timeout, budget / 4) if budget else timeout  # the encoders get a quarter of a budget at most
        rows = [r for r in encoder_rows(device, precision, cap) if not (r["status"] == "timeout" and cap < timeout)]
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if rows:
            write_rows(path, [{**r, **common, "created": now} for r in rows])
    bar = tqdm(tasks, desc=f"bench {kind} {precision}", unit="task")
    for i, task in enumerate(bar):
        left = math.inf if budget is None else budget - (time.monotonic() - start)
        if left <= 0:
            log.warning("budget of %g s spent: %d tasks not run", budget, len(tasks) - i)
            break
        bar.set_postfix_str(f"{task.shape.name}/{task.protocol}/{task.method}")
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")  # others' work skews the times
        row = run_one(task, device, precision, min(timeout, left))
        if row["status"] == "timeout" and left < timeout:
            log.warning("budget spent during %s %s %s: no row", task.shape.name, task.protocol, task.method)
            continue
        row.update(common, **task.shape.row(task.protocol), protocol=task.protocol, method=task.method,
                   chance_acc=100.0 / task.shape.classes, load_1m=load,
                   created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if "predict_s" in row:
            row["predict_s_per_1k"] = row["predict_s"] * 1000.0 / task.shape.test
        if row["status"] != "ok":
            log.warning("%s %s %s: %s (%s)", task.shape.name, task.protocol, task.method, row["status"],
                        row.get("error", ""))
        write_rows(path, [row])
    bar.close()
    return path
