"""Every path tipkit reads or writes, in one place (showyourwork's rule).

Override the writable roots with environment variables:
``TIPKIT_CACHE`` (feature cache, downloads) and ``TIPKIT_RESULTS`` (records,
executed notebooks, aggregated tables).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # meaningful in a source checkout (editable install)

STANDIN_DIR = PACKAGE / "models" / "standin"
STANDIN_CONFIG = STANDIN_DIR / "tipkit-standin-mini.json"  # open_clip model config
STANDIN_CHECKPOINT = STANDIN_DIR / "tipkit-standin-mini.safetensors"  # committed weights (byte-reproducible)
STANDIN_CARD_DATA = STANDIN_DIR / "model_card.json"  # measured numbers for the model card

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

NOTEBOOKS = REPO / "notebooks"
CONFIGS = REPO / "configs"  # sweeps as data; configs/paper/<dataset>.yaml: the official per-dataset settings
BOOK = REPO / "book"
BOOK_DATA = BOOK / "_data"  # small aggregated tables the book reads (committed when no GPU is at hand)
BENCH_RESULTS = REPO / "benchmarks" / "results"  # the scale benchmark's CSVs, one per machine kind (committed)


def cache_dir() -> Path:
    """Root of tipkit's on-disk cache (features, downloaded datasets)."""
    return Path(os.environ.get("TIPKIT_CACHE", REPO / ".cache" / "tipkit"))


def feature_cache_dir() -> Path:
    return cache_dir() / "features"


def data_dir() -> Path:
    """Where datasets that tipkit downloads are stored."""
    return cache_dir() / "data"


def results_dir() -> Path:
    """Root of run outputs: ``records/`` (JSON per run) and ``executed/`` (papermill notebooks)."""
    return Path(os.environ.get("TIPKIT_RESULTS", REPO / "_results"))


def records_dir() -> Path:
    return results_dir() / "records"


def executed_dir() -> Path:
    return results_dir() / "executed"
