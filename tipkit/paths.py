"""Every path tipkit reads or writes, in one place (showyourwork's rule).

Override the writable roots with environment variables:
``TIPKIT_CACHE`` (feature cache, downloads) and ``TIPKIT_RESULTS`` (records,
executed notebooks, aggregated tables).

Without them the defaults depend on how tipkit is installed:

- in a source checkout (an editable install, or ``PYTHONPATH``): ``<repo>/.cache/tipkit`` and
  ``<repo>/_results``, as the Makefile, the book and the sweeps expect;
- installed as a package (a wheel in site-packages): the feature cache in the user's cache directory
  (``platformdirs.user_cache_dir("tipkit")``: ``~/.cache/tipkit`` on Linux, ``~/Library/Caches/tipkit`` on
  macOS, ``%LOCALAPPDATA%\\tipkit\\Cache`` on Windows), as pip, torch and Hugging Face keep theirs: it is
  large, shared by every project and safe to delete; the run records in ``./_results`` under the current
  directory, beside the work they describe (a record is a result the user keeps and cites, not a cache).

``tipkit cache info`` prints both, and where each came from.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent  # meaningful in a source checkout (editable install)
CHECKOUT = (REPO / "pyproject.toml").is_file() and (REPO / "tipkit" / "__init__.py").is_file()  # False in site-packages

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
    """Root of tipkit's on-disk cache (features, downloaded datasets): see the module docstring."""
    if os.environ.get("TIPKIT_CACHE"):
        return Path(os.environ["TIPKIT_CACHE"])
    if CHECKOUT:
        return REPO / ".cache" / "tipkit"
    import platformdirs

    return Path(platformdirs.user_cache_dir("tipkit", appauthor=False))


def feature_cache_dir() -> Path:
    return cache_dir() / "features"


def data_dir() -> Path:
    """Where datasets that tipkit downloads are stored."""
    return cache_dir() / "data"


def results_dir() -> Path:
    """Root of run outputs: ``records/`` (JSON per run) and ``executed/`` (papermill notebooks)."""
    if os.environ.get("TIPKIT_RESULTS"):
        return Path(os.environ["TIPKIT_RESULTS"])
    return REPO / "_results" if CHECKOUT else Path.cwd() / "_results"


def where() -> list[tuple[str, Path, str]]:
    """``(what, folder, why there)`` for the feature cache and the run records (``tipkit cache info``)."""
    how = "the source checkout" if CHECKOUT else None
    return [("feature cache", feature_cache_dir(), "TIPKIT_CACHE" if os.environ.get("TIPKIT_CACHE")
             else how or "the user's cache directory"),
            ("run records", records_dir(), "TIPKIT_RESULTS" if os.environ.get("TIPKIT_RESULTS")
             else how or "the current directory")]


def records_dir() -> Path:
    return results_dir() / "records"


def executed_dir() -> Path:
    return results_dir() / "executed"
