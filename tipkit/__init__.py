"""tipkit: Tip-Adapter (Zhang et al., ECCV 2022) as a small library behind an executable book.

The package is laid out as the paper's pipeline, one subpackage per stage (each ``__init__`` says what it
does and what it may import; ``lint-imports`` checks the directions declared in ``pyproject.toml``)::

    tipkit.data         stage 0  datasets, few-shot samplers, class names and prompts, `data check`
    tipkit.models       stage 1  open_clip backbones, the feature store, the stand-in mini-CLIP
    tipkit.core         stages 2-5  cache model, logit fusion, α/β search, Tip-Adapter-F, metrics
    tipkit.methods      the baselines and peers on one feature cache (zero-shot ... LP++)
    tipkit.apply        a fitted adapter kept as a file, applied to new images (`tipkit predict`)
    tipkit.experiments  one run, sweeps of runs, records and their aggregation
    tipkit.studies      the paper's ablations and efficiency table on cached features
    tipkit.bench        the scale benchmark at the paper's shapes, and plans priced from it
    tipkit.figures      every figure and table the book and the walkthrough draw
    cli, config, paths, io, errors, labels, version: the top-level helpers

This module is the **public face**: notebooks, book pages and users write ``tipkit.tip_logits(...)``,
``tipkit.run(cfg)`` ... and internal moves never break them. The names below are a contract. Families of
functions are reached through their module: ``tipkit.ablations``, ``tipkit.efficiency``, ``tipkit.scale_data``,
``tipkit.plots``, ``tipkit.ablation_plots``, ``tipkit.scale_plots``, ``tipkit.teach``, ``tipkit.own_images``,
``tipkit.claims`` and ``tipkit.miniature``.

Names are imported lazily (a module-level ``__getattr__``, PEP 562): ``import tipkit`` loads no torch, open_clip
or pandas, so the command line starts fast; ``tipkit.<name>`` imports its stage module on first use and is that
module's object (``tests/test_layout.py`` checks each one).
"""

from __future__ import annotations

import importlib
from typing import Any

from tipkit.errors import TipkitError
from tipkit.version import __version__

# public name -> the module that defines it; a name equal to its module's last part is that module itself.
_CORE = ("FinetuneResult", "SearchResult", "accuracy", "affinity_to_cache", "build_cache", "cache_logits",
         "clip_logits", "finetune", "grid_search", "l2_normalize", "one_hot", "paper_grid", "tip_logits")
_FACE: dict[str, str] = {
    **dict.fromkeys(("RunConfig", "load_yaml", "make_config"), "tipkit.config"),
    **dict.fromkeys(_CORE, "tipkit.core"),
    **dict.fromkeys(("Dataset", "Split", "get_dataset", "list_datasets", "sample_few_shot"), "tipkit.data"),
    "write_digits_folder": "tipkit.data.digits",
    **dict.fromkeys(("Adapter", "Prediction"), "tipkit.apply.adapter"),
    "scale_data": "tipkit.bench.features",
    **dict.fromkeys(("fill_plan", "paper_plan", "sweep_plan"), "tipkit.bench.plan"),
    "run_bench": "tipkit.bench.runner",
    **dict.fromkeys(("evaluate", "fit", "method_overrides", "run", "validate"), "tipkit.experiments.pipeline"),
    **dict.fromkeys(("Stopwatch", "aggregate", "load_records", "record_table", "write_record", "write_study"),
                    "tipkit.experiments.report"),
    **{m: f"tipkit.figures.{m}" for m in ("ablation_plots", "claims", "miniature", "own_images", "plots",
                                          "scale_plots", "teach")},
    **dict.fromkeys(("HPARAMS", "PAPERS", "FewShotData", "Method", "get_method", "list_methods"), "tipkit.methods"),
    **dict.fromkeys(("Backbone", "class_embeddings", "image_features", "list_backbones", "load_backbone",
                     "view_features"), "tipkit.models"),
    **{m: f"tipkit.studies.{m}" for m in ("ablations", "efficiency")},
}


# subpackages and top-level helpers, reached as tipkit.<module> without importing them first
_MODULES = ("apply", "bench", "cli", "config", "core", "data", "experiments", "figures", "io", "labels", "methods",
            "models", "paths", "studies")


def __getattr__(name: str) -> Any:
    """``tipkit.<name>``: import the stage module behind a public name on first use (then cached here)."""
    if name in _MODULES:
        return importlib.import_module(f"tipkit.{name}")  # importing sets the attribute on the package
    where = _FACE.get(name)
    if where is None:
        raise AttributeError(f"module 'tipkit' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if where == "tipkit.bench.features" or where.rsplit(".", 1)[1] == name else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    # stage 0: data
    "Dataset", "Split", "get_dataset", "list_datasets", "sample_few_shot", "write_digits_folder",
    # stage 1: models and features
    "Backbone", "class_embeddings", "image_features", "list_backbones", "load_backbone", "view_features",
    # stages 2-5: the paper's math
    "FinetuneResult", "SearchResult", "accuracy", "affinity_to_cache", "build_cache", "cache_logits", "clip_logits",
    "finetune", "grid_search", "l2_normalize", "one_hot", "paper_grid", "tip_logits",
    # methods
    "HPARAMS", "PAPERS", "FewShotData", "Method", "get_method", "list_methods",
    # experiments: one run, sweeps, records
    "RunConfig", "Stopwatch", "aggregate", "evaluate", "fit", "load_records", "load_yaml", "make_config",
    "method_overrides", "record_table", "run", "validate", "write_record", "write_study",
    # apply: a saved adapter on new images
    "Adapter", "Prediction",
    # studies and the benchmark
    "ablations", "efficiency", "scale_data", "fill_plan", "paper_plan", "run_bench", "sweep_plan",
    # figures
    "ablation_plots", "claims", "miniature", "own_images", "plots", "scale_plots", "teach",
    # helpers
    "TipkitError", "__version__",
]
