"""The scale benchmark's encoder rows: what extracting features costs per 1,000 images, per backbone.

Two rows per backbone, each measured in its own process like every benchmark task:

- ``encode``: the image encoder's forward pass (``encode_image`` under the run's autocast) on a batch of
  random images at the model's input size; speed does not depend on the weights, so RN50 runs randomly
  initialised (``pretrained="none"``: no download) and the stand-in with its committed weights;
- ``decode``: reading one JPEG of ImageNet's typical size (500 × 375) and the model's test preprocessing,
  in one process on the CPU (a DataLoader with ``workers`` processes divides it by about that many).

A sweep's plan (:mod:`tipkit.bench.plan`) prices feature extraction as images × (encode + decode).
"""

from __future__ import annotations

import io
import time
from typing import Any

import torch

from tipkit.bench.proc import autocast, reset_peak, run_task, status_kib

BACKBONES = {"RN50": "none", "tipkit-standin-mini": "standin"}  # name -> pretrained (speed only: weights moot)
JPEG_SIZE = (500, 375)  # ImageNet's typical image


def _median_s(fn: Any, least: int = 3, budget_s: float = 5.0, most: int = 50) -> float:
    """Median wall time of ``fn()`` over at least ``least`` calls, more while under ``budget_s`` (at most ``most``)."""
    times: list[float] = []
    while len(times) < least or (sum(times) < budget_s and len(times) < most):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _encode_child(task: tuple[str, float], device: str, precision: str, conn: Any) -> None:
    name, budget_s = task
    try:
        import numpy as np
        from PIL import Image

        from tipkit.models.backbone import load_backbone

        dev = torch.device(device)
        bb = load_backbone(name, BACKBONES[name], device=device, precision=precision)
        batch = 256 if dev.type == "cuda" else 16
        x = torch.randn(batch, 3, bb.image_size, bb.image_size, device=dev)
        dim = int(bb.model.visual.output_dim) if hasattr(bb.model.visual, "output_dim") else None

        @torch.no_grad()
        def forward() -> None:
            with autocast(dev, precision):
                bb.model.encode_image(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)

        forward()  # warm-up (cuDNN autotuning, allocator)
        reset_peak()
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        fwd = _median_s(forward, budget_s=budget_s) / batch
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else (status_kib("VmHWM") or 0) / 1024
        rng = np.random.default_rng(0)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (JPEG_SIZE[1], JPEG_SIZE[0], 3), dtype=np.uint8)).save(buf, "JPEG",
                                                                                                   quality=90)
        data = buf.getvalue()
        torch.set_num_threads(1)  # one loader process
        dec = _median_s(lambda: bb.preprocess(Image.open(io.BytesIO(data)).convert("RGB")), least=20,
                        budget_s=budget_s / 2)
        conn.send({"status": "ok", "encode_s_per_1k": 1000 * fwd, "decode_s_per_1k": 1000 * dec, "dim": dim,
                   "peak_mib": peak, "batch": batch, "mem_kind": "cuda_allocated" if dev.type == "cuda" else "rss"})
    except BaseException as e:  # noqa: BLE001 - reported in the rows
        conn.send({"status": "error", "error": f"{type(e).__name__}: {str(e).strip()[:250]}"})
    finally:
        conn.close()


def encoder_rows(device: str = "cpu", precision: str = "fp32", timeout: float = 600.0,
                 backbones: "tuple[str, ...] | None" = None, repeat_s: float = 5.0) -> list[dict[str, Any]]:
    """The ``encode`` and ``decode`` rows of each backbone (default: every one of :data:`BACKBONES`), each time
    the median of calls repeated for about ``repeat_s`` seconds (at least 3 forward passes, 20 decodings)."""
    rows = []
    for name in backbones or tuple(BACKBONES):
        r = run_task((name, repeat_s), device, precision, timeout, target=_encode_child)
        base = {"shape": name, "dataset": "-", "protocol": "-", "dim": r.get("dim"), "status": r["status"],
                "error": r.get("error")}
        rows.append({**base, "method": "encode", "predict_s_per_1k": r.get("encode_s_per_1k"),
                     "predict_peak_mib": r.get("peak_mib"), "mem_kind": r.get("mem_kind")})
        rows.append({**base, "method": "decode", "predict_s_per_1k": r.get("decode_s_per_1k"), "threads": 1})
    return rows
