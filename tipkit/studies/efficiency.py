"""The paper's efficiency table: training time, inference time per image and peak memory per method.

A method is a **factory**: a zero-argument callable that does all of the method's fitting (its run time
is the training time) and returns a **predictor**, ``features [N, D] -> logits [N, C]``. :func:`measure`
takes a registry ``{name: factory}``; :func:`method_factories` makes one from the :mod:`tipkit.methods`
registry (zero-shot, Tip-Adapter, Tip-Adapter-F and the baselines), and any other callable can join it.

Inference time per image = the median over repeats of one batched predictor call on ``batch_size``
features, divided by the batch size, plus (when an image encoder is given) the median encoder forward
time per image on a batch of that size; the paper's batch is 32. On CUDA every timed call is
synchronised. Memory is ``torch.cuda.max_memory_allocated`` on CUDA (absolute peak, resident tensors
included, as the paper's GPU memory) and, on the CPU, the peak anonymous resident memory (resident minus
file-backed pages, so library page-ins do not count) above its value at the start of the measured call,
sampled every millisecond by a thread (``/proc/self/statm``; psutil's RSS elsewhere); the column names
say which.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import pandas as pd
import torch

from tipkit.core.cache import l2_normalize
from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.studies.ablations import AblationData

if TYPE_CHECKING:  # pragma: no cover
    from tipkit.methods import FewShotData

log = logging.getLogger(__name__)
Tensor = torch.Tensor
Predictor = Callable[[Tensor], Tensor]  # features [N, D] (on the device) -> logits [N, C]
MethodFactory = Callable[[], Predictor]  # fits the method; its run time is the training time
MIB = 2.0 ** 20
DEFAULT_METHODS = ("zero_shot", "tip_adapter", "tip_adapter_f")  # the paper's efficiency table, tipkit's rows


def memory_kind(device: "str | torch.device") -> str:
    """The memory measure used on ``device``: ``cuda_allocated`` or ``rss_increase`` (names the columns)."""
    return "cuda_allocated" if torch.device(device).type == "cuda" else "rss_increase"


def _rss_bytes() -> int:
    """Anonymous resident memory (resident − file-backed/shared pages), so library page-ins don't count."""
    try:
        with open("/proc/self/statm") as f:
            fields = f.read().split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil  # not Linux: the whole resident set

        return int(psutil.Process().memory_info().rss)


class _RssPeak:
    """Context manager: peak RSS above the value at entry (bytes), sampled by a background thread."""

    def __init__(self, interval_s: float = 1e-3) -> None:
        self.interval_s, self.peak, self.base = interval_s, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())

    def __enter__(self) -> "_RssPeak":
        self.base = self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def increase_mib(self) -> float:
        return (self.peak - self.base) / MIB


@contextmanager
def peak_memory(device: "str | torch.device") -> Iterator[dict[str, float]]:
    """Measure the peak memory of the enclosed code; the yielded dict gets ``mib`` on exit.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset (absolute). CPU: RSS increase (sampled).
    """
    device = torch.device(device)
    out: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out["mib"] = torch.cuda.max_memory_allocated(device) / MIB
    else:
        with _RssPeak() as rss:
            yield out
        out["mib"] = rss.increase_mib


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def median_time(fn: Callable[[Tensor], Any], x: Tensor, device: "str | torch.device", repeats: int = 20,
                warmup: int = 3) -> float:
    """Median wall time (s, ``time.perf_counter``) of ``fn(x)`` over ``repeats`` calls after ``warmup``."""
    device = torch.device(device)
    for _ in range(warmup):
        fn(x)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(methods: Mapping[str, MethodFactory], features: Tensor, labels: "Tensor | None" = None, *,
            encoder: "Callable[[Tensor], Tensor] | None" = None, images: "Tensor | None" = None,
            batch_size: int = 32, repeats: int = 20, warmup: int = 3, fit_warmup: bool = False,
            threads: "int | None" = None, device: "str | torch.device" = "cpu") -> pd.DataFrame:
    """Time and measure every method of the registry, in order.

    Args:
        methods: name -> factory (see the module docstring), e.g. :func:`method_factories`.
        features: ``[N, D]`` L2-normalised query features (test features); the first ``batch_size`` are
            the timed batch, all N give ``acc`` when ``labels [N]`` are given (else ``acc`` is NaN).
        encoder, images: optional image encoder ``[B, 3, H, W] -> [B, D]`` (e.g. :func:`clip_encoder`) and
            preprocessed images (the first ``batch_size`` are used), both on ``device``.
        fit_warmup: run each factory once, unmeasured, before the measured run, so one-off costs (lazy
            library initialisation, allocator growth) are left out; this trains every method twice.
        threads: torch CPU threads while measuring (restored after); on a shared CPU, 1 avoids timings
            quantised to scheduler slices when a parallel op waits for a busy core.
        device: where features are moved and memory is measured.

    Returns:
        One row per method: ``method, train_s, predict_ms_per_image, encode_ms_per_image,
        inference_ms_per_image, train_peak_<kind>_mib, infer_peak_<kind>_mib, acc, device, batch_size``
        with ``<kind>`` from :func:`memory_kind`. ``train_s`` is one run of the factory (memory sampled
        during it); inference memory is one encoder + predictor call, apart from the timed calls.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise TipkitError(f"need batch_size >= 1, repeats >= 1, warmup >= 0, threads >= 1 or None; got "
                          f"{batch_size}, {repeats}, {warmup}, {threads}")
    if (encoder is None) != (images is None):
        raise TipkitError("pass both encoder and images (to time the image encoder) or neither")
    if threads is None:
        return _measure(methods, features, labels, encoder, images, batch_size, repeats, warmup, fit_warmup,
                        torch.device(device))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _measure(methods, features, labels, encoder, images, batch_size, repeats, warmup, fit_warmup,
                        torch.device(device))
    finally:
        torch.set_num_threads(before)


def _measure(methods: Mapping[str, MethodFactory], features: Tensor, labels: "Tensor | None",
             encoder: "Callable[[Tensor], Tensor] | None", images: "Tensor | None", batch_size: int, repeats: int,
             warmup: int, fit_warmup: bool, device: torch.device) -> pd.DataFrame:
    kind = memory_kind(device)
    feats = features.to(device)
    batch = feats[:batch_size]
    encode_s = 0.0
    if encoder is not None:
        imgs = images[:batch_size].to(device)
        encode_s = median_time(encoder, imgs, device, repeats, warmup) / len(imgs)
    rows = []
    for name, factory in methods.items():
        if fit_warmup:
            factory()
        _sync(device)
        with peak_memory(device) as train_mem:
            t0 = time.perf_counter()
            predict = factory()
            _sync(device)
            train_s = time.perf_counter() - t0
        predict_s = median_time(predict, batch, device, repeats, warmup) / len(batch)
        with peak_memory(device) as infer_mem, torch.no_grad():
            predict(l2_normalize(encoder(imgs).float()) if encoder is not None else batch)
        with torch.no_grad():
            acc = accuracy(predict(feats), labels) if labels is not None else math.nan
        rows.append({"method": name, "train_s": train_s, "predict_ms_per_image": 1e3 * predict_s,
                     "encode_ms_per_image": 1e3 * encode_s, "inference_ms_per_image": 1e3 * (predict_s + encode_s),
                     f"train_peak_{kind}_mib": train_mem["mib"], f"infer_peak_{kind}_mib": infer_mem["mib"],
                     "acc": acc, "device": str(device), "batch_size": len(batch)})
        log.info("%s: train %.3f s, inference %.4f ms/image", name, train_s, rows[-1]["inference_ms_per_image"])
    return pd.DataFrame(rows)


def method_factories(data: "AblationData | FewShotData", names: Sequence[str] = DEFAULT_METHODS,
                     overrides: "Mapping[str, Mapping[str, Any]] | None" = None,
                     seed: int = 1, device: "str | torch.device" = "cpu") -> dict[str, MethodFactory]:
    """Factories for methods of the :mod:`tipkit.methods` registry, fitted on ``data``.

    A factory builds ``get_method(name, **overrides[name])``, fits it (tuning on val only; the test
    features of an :class:`~tipkit.studies.ablations.AblationData` are dropped) and returns its ``predict``
    (logits on the CPU, as every registry method returns them). So Tip-Adapter's training time is its
    cache plus the α/β search (the paper counts it as 0) and Tip-Adapter-F's adds the fine-tuning.
    ``seed`` and ``device`` apply when ``data`` is an AblationData (a FewShotData carries its own).
    Names and overrides are checked here, before anything is measured.
    """
    from tipkit.methods import FewShotData, get_method

    overrides = dict(overrides or {})
    unused = sorted(set(overrides) - set(names))
    if unused:
        raise TipkitError(f"overrides for {unused[0]!r}, which is not among the methods {list(names)}")
    for name in names:
        get_method(name, **overrides.get(name, {}))  # unknown names and hyperparameters fail now
    if isinstance(data, AblationData):
        data = FewShotData(views=data.views, labels=data.labels, val=data.val_features, val_labels=data.val_labels,
                           class_embeddings=data.class_embeddings, seed=seed, device=str(device))

    def factory(name: str) -> MethodFactory:
        return lambda: get_method(name, **overrides.get(name, {})).fit(data).predict

    return {name: factory(name) for name in names}


def clip_encoder(cfg: Any, batch_size: int = 32) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    """The run's image encoder and ``batch_size`` preprocessed test images ``[B, 3, H, W]`` on ``cfg.device``.

    The encoder runs under ``torch.no_grad`` and the config's precision, as feature extraction does.
    """
    from tipkit import data as data_mod
    from tipkit.models.backbone import autocast, load_backbone

    bb = load_backbone(cfg.backbone, cfg.pretrained, device=cfg.device, precision=cfg.precision, init_seed=cfg.seed)
    test = data_mod.dataset_for(cfg).split("test")
    images = torch.stack([bb.preprocess(test.image(i)) for i in range(min(batch_size, len(test)))]).to(bb.device)

    @torch.no_grad()
    def encode(x: Tensor) -> Tensor:
        with autocast(bb):
            return bb.model.encode_image(x)

    return encode, images
