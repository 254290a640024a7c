"""Running one benchmark task in its own process, with a timeout, and the memory probes the child uses.

:func:`run_task` starts ``target(task, device, precision, conn)`` in a fresh process (``forkserver`` where the
platform has it, else ``spawn``), collects the dicts the child sends through ``conn`` and returns them merged,
with ``status`` ``timeout`` (killed after ``timeout`` seconds) or ``died`` (ended without a word: killed for
memory, or crashed) when the child could not say ``ok``/``error`` itself. :func:`phase` times a block and
records its peak memory: ``VmHWM`` (reset through ``/proc/self/clear_refs``) on the CPU,
``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

DEFAULT_TIMEOUT_S = 600.0  # the bound: every method fits in <= 10 minutes
MIB = 2.0 ** 20
EXIT_GRACE_S = 30.0  # a finished child gets this long to exit before it is killed
PRELOAD = ["tipkit.bench.runner", "tipkit.bench.features", "tipkit.methods",
           "tipkit.experiments.pipeline"]  # imported once by the fork server


def status_kib(field: str) -> "int | None":
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``); False where /proc does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@contextlib.contextmanager
def phase(device: torch.device, out: dict[str, float], key: str) -> Iterator[None]:
    """Time the enclosed code (wall ``<key>_s``; the process's CPU time, all threads, ``<key>_cpu_s``: on a
    shared machine it grows far less than the wall time when others take the cores) and record its peak
    memory (``<key>_peak_mib``)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    out[f"{key}_s"] = time.perf_counter() - t0
    out[f"{key}_cpu_s"] = time.process_time() - c0
    if device.type == "cuda":
        out[f"{key}_peak_mib"] = torch.cuda.max_memory_allocated(device) / MIB
    else:
        hwm = status_kib("VmHWM")
        out[f"{key}_peak_mib"] = hwm / 1024 if hwm is not None else float("nan")


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``fp16``/``bf16`` autocast on CUDA; nothing on the CPU or for ``fp32``."""
    if device.type == "cuda" and precision != "fp32":
        return torch.autocast("cuda", dtype=torch.float16 if precision == "fp16" else torch.bfloat16)
    return contextlib.nullcontext()


def _context() -> Any:
    """``forkserver`` where the platform has it: each task is a fresh process forked from a server that has
    imported tipkit and run nothing (no torch threads, no CUDA), so a task starts in milliseconds, not the
    seconds a ``spawn`` takes to import torch again; ``spawn`` elsewhere."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


def run_task(task: Any, device: str, precision: str, timeout: float, target: Callable[..., None]) -> dict[str, Any]:
    """Run ``target(task, device, precision, conn)`` in its own process; the merged dicts it sent (see above)."""
    ctx = _context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, args=(task, device, precision, child), daemon=True)
    row: dict[str, Any] = {}
    start = time.monotonic()
    with _env(TQDM_DISABLE="1"):  # the child's own progress bars (read by tqdm at import) stay quiet
        proc.start()
    child.close()
    try:
        while "status" not in row:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                row.update(status="timeout", error=f"stopped after {timeout:g} s")
            elif parent.poll(min(left, 1.0)):
                try:
                    row.update(parent.recv())
                except EOFError:  # the child died without a word: killed (out of memory?) or crashed
                    proc.join(5)
                    row.update(status="died", error=f"process exit code {proc.exitcode}")
            elif not proc.is_alive() and not parent.poll():
                row.update(status="died", error=f"process exit code {proc.exitcode}")
    finally:
        if row.get("status") in ("ok", "error", "oom"):
            proc.join(EXIT_GRACE_S)  # let it exit by itself (it frees its memory and semaphores)
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
    return row


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
