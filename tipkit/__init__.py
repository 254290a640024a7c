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
``tipkit.plots``, ``tipkit.ablation_plots``, ``tipkit.scale_plots``, ``tipkit.teach`` and ``tipkit.own_images``.
"""

from __future__ import annotations

from tipkit.config import RunConfig, load_yaml, make_config
from tipkit.core import (
                         FinetuneResult,
                         SearchResult,
                         accuracy,
                         affinity_to_cache,
                         build_cache,
                         cache_logits,
                         clip_logits,
                         finetune,
                         grid_search,
                         l2_normalize,
                         one_hot,
                         paper_grid,
                         tip_logits,
)
from tipkit.data import Dataset, Split, get_dataset, list_datasets, sample_few_shot
from tipkit.data.digits import write_digits_folder
from tipkit.errors import TipkitError
from tipkit.apply.adapter import Adapter, Prediction
from tipkit.bench import features as scale_data
from tipkit.bench.plan import fill_plan, paper_plan, sweep_plan
from tipkit.bench.runner import run_bench
from tipkit.experiments.pipeline import evaluate, fit, method_overrides, run, validate
from tipkit.experiments.report import Stopwatch, aggregate, load_records, record_table, write_record, write_study
from tipkit.figures import ablation_plots, own_images, plots, scale_plots, teach
from tipkit.methods import HPARAMS, PAPERS, FewShotData, Method, get_method, list_methods
from tipkit.models import Backbone, class_embeddings, image_features, list_backbones, load_backbone, view_features
from tipkit.studies import ablations, efficiency
from tipkit.version import __version__

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
    "ablation_plots", "own_images", "plots", "scale_plots", "teach",
    # helpers
    "TipkitError", "__version__",
]
