"""The local sweep's worker processes: their share of the cores, and how they stop.

Ctrl-C (SIGINT to the whole process group, or to the sweep process alone, which passes it on) or a SIGTERM
stops a worker's running cell once: papermill shuts its kernel down and saves the executed notebook, then the
worker ends instead of taking the next queued cell. A worker whose sweep process died (SIGKILL, out of
memory) does the same, so no cell runs on unseen; the kernels exit with their worker (ipykernel watches its
parent). Records and feature shards are written atomically, so a stopped cell leaves nothing half-written.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
from typing import Any

STOP_GRACE_S = 20.0  # how long a running cell may take to stop before it is killed
IN_WORKER = False  # True in a worker process (set by init)


def _limit_threads(threads: int) -> None:
    """Worker initialiser: each cell (and the kernel it starts) gets its share of the cores, so that
    parallel cells do not oversubscribe them (OpenMP's busy-waiting makes that many times slower)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _stop_once(signum: int, frame: Any) -> None:
    """A worker's SIGINT/SIGTERM: stop the running cell once (papermill shuts its kernel down), ignore repeats."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def _watch_parent(ppid: int) -> None:
    """A worker whose sweep process died (SIGKILL, OOM) stops its cell rather than running on unseen."""
    while os.getppid() == ppid:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(STOP_GRACE_S)
    os._exit(137)


def init(threads: int) -> None:
    """Initialiser of a local worker process: thread share, one-shot stop on SIGINT/SIGTERM, parent watch."""
    global IN_WORKER
    IN_WORKER = True
    _limit_threads(threads)
    signal.signal(signal.SIGINT, _stop_once)
    signal.signal(signal.SIGTERM, _stop_once)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def stop(ex: cf.ProcessPoolExecutor) -> None:
    """Cancel the queued cells, interrupt the running ones, kill any still running after STOP_GRACE_S."""
    ex.shutdown(wait=False, cancel_futures=True)
    procs = [p for p in mp.active_children() if p.is_alive()]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGINT)  # a Ctrl-C reached them already; `kill -INT <sweep>` did not
    deadline = time.monotonic() + STOP_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
