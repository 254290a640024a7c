"""Run configuration as data: one dataclass, per-dataset defaults, YAML loading with strict keys."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tipkit import paths
from tipkit.errors import TipkitError, choose

PAPER_CONFIGS = paths.CONFIGS / "paper"  # official per-dataset settings
PAPER_KEYS = ("backbone", "pretrained", "search_scale", "search_step", "init_alpha", "init_beta", "augment_views",
              "lr", "epochs")  # what a dataset's paper config sets by default (not shots or seed)

# Per-dataset defaults. Fashion-MNIST's are tipkit's own choice for the stand-in (the search grid keeps the
# paper's 200 x 20 steps); the paper's datasets read theirs from configs/paper/<dataset>.yaml (below).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"search_scale": [10.0, 10.0], "init_alpha": 1.0, "init_beta": 1.0, "epochs": 20},
    "synthetic": {"search_scale": [10.0, 10.0], "search_step": [10, 5], "init_alpha": 1.0, "init_beta": 1.0,
                  "epochs": 2, "augment_views": 2},
}


def _paper_defaults() -> None:
    for f in sorted(PAPER_CONFIGS.glob("*.yaml")):
        spec = yaml.safe_load(f.read_text()) or {}
        DATASET_DEFAULTS.setdefault(spec.get("dataset", f.stem), {k: spec[k] for k in PAPER_KEYS if k in spec})


_paper_defaults()


DEFAULT_METHODS = ("zero_shot", "tip_adapter", "tip_adapter_f")
PROTOCOLS = ("clean", "paper")


@dataclass
class RunConfig:
    dataset: str = "fashion-mnist"  # a name from tipkit.data.list_datasets()
    backbone: str = "tipkit-standin-mini"  # an open_clip model name
    pretrained: str = "standin"  # open_clip tag, checkpoint path, "standin" (committed stand-in) or "none"
    shots: int = 16  # K images per class in the cache
    seed: int = 1  # few-shot draw, augmentation and Tip-F shuffling
    device: str = "cpu"  # torch device, e.g. "cuda" or "cuda:1"
    precision: str = "fp32"  # autocast on CUDA: fp32, fp16 or bf16
    data_root: str | None = None  # where the dataset's files are (None: the registry's default places)
    augment_views: int = 10  # augmented views averaged into the cache keys (paper: 10)
    sampler: str = "tipkit"  # few-shot draw: "tipkit" (numpy, per class) or "official" (Tip-Adapter/CoOp's random.sample)
    skip_corrupt: bool = False  # skip unreadable images (counted in the record) instead of stopping on the first
    aug_seed: int = 0  # seeds the augmented views (per image), fixed across run seeds so runs share features
    search_scale: list[float] = field(default_factory=lambda: [7.0, 3.0])  # [beta, alpha] grid ranges
    search_step: list[int] = field(default_factory=lambda: [200, 20])  # [beta, alpha] grid sizes (paper)
    init_alpha: float = 1.0  # alpha during Tip-F training (and before the search)
    init_beta: float = 1.0  # beta during Tip-F training (and before the search)
    epochs: int = 20  # Tip-Adapter-F epochs
    lr: float = 1e-3  # Tip-Adapter-F AdamW learning rate
    batch_size: int = 256  # Tip-F batch size and feature-extraction batch size
    workers: int = 0  # DataLoader workers for feature extraction
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))  # names from tipkit.methods
    extra_test: list[str] = field(default_factory=list)  # shifted test sets, same classes, scored unchanged
    protocol: str = "clean"  # "clean": choices on min(K, 4) val images per class; "paper": the official code's
    prompts: str | None = None  # per-class prompt file in CuPL's JSON format (None: the dataset's templates)
    download: bool = False  # let a dataset's loader fetch missing images where torchvision can
    out: str | None = None  # record path (None: <results>/records/<run name>.json)

    def run_name(self) -> str:
        weights = Path(self.pretrained).stem if ("/" in self.pretrained or "." in self.pretrained) else self.pretrained
        return f"{dataset_slug(self.dataset)}__{self.backbone}__{weights}__{self.protocol}__{self.shots}shot__seed{self.seed}"


def dataset_slug(dataset: str) -> str:
    """A dataset name as a file-name part: registry names as they are, ``folder:PATH[?rule]`` as
    ``folder-<last folder name>-<8 hex of the whole name>`` (no ``/``, ``:`` or ``?`` in file names)."""
    if all(ch.isalnum() or ch in "-_." for ch in dataset):
        return dataset
    kind, _, rest = dataset.partition(":")
    parts = [p for p in rest.split("?")[0].replace("\\", "/").split("/") if p not in ("", ".", "..")]
    tail = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in (parts[-1] if parts else "root"))
    return f"{kind}-{tail}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def _check_type(key: str, value: Any, default: Any) -> Any:
    """``value`` coerced to the type of ``default`` (int -> float, tuple -> list), or a one-line error."""
    if value is None or default is None:
        return value
    number = (isinstance(value, (int, float)) and not isinstance(value, bool))
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "bool"
    elif isinstance(default, int):
        ok, want = isinstance(value, int) and not isinstance(value, bool), "int"
    elif isinstance(default, float):
        ok, want, value = number, "float", float(value) if number else value
    elif isinstance(default, list) and not default:  # a list of names that may be empty (extra_test)
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
        want, value = "a list of names", list(value) if ok else value
    elif isinstance(default, list) and isinstance(default[0], str):
        ok = isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, str) for v in value)
        want, value = "a non-empty list of names", list(value) if ok else value
    elif isinstance(default, list):
        ok = isinstance(value, (list, tuple)) and len(value) == len(default) and \
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        want, value = f"list of length {len(default)}", list(value) if ok else value
    else:
        ok, want = isinstance(value, str), "str"
    if not ok:
        raise TipkitError(f"config key {key!r} must be {want}, got {value!r}")
    return value


def make_config(**overrides: Any) -> RunConfig:
    """A RunConfig: dataclass defaults < the dataset's defaults < ``overrides`` (None = not given)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise TipkitError(f"unknown config key {unknown[0]!r}; known: {', '.join(FIELDS)}")
    base = RunConfig()
    dataset = overrides.get("dataset", base.dataset)
    values = {**DATASET_DEFAULTS.get(dataset, {}), **overrides}
    if "sampler" in values:
        choose("sampler", values["sampler"], ["official", "tipkit"])
    if "protocol" in values:
        choose("protocol", values["protocol"], list(PROTOCOLS))
    checked = {k: _check_type(k, v, getattr(base, k) if getattr(base, k) is not None else None)
               for k, v in values.items()}
    cfg = dataclasses.replace(base, **checked)
    return cfg  # method names are checked where methods are built (tipkit.experiments.pipeline.validate)


def load_yaml(path: "str | Path") -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise TipkitError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise TipkitError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise TipkitError(f"{p} must hold a mapping of config keys, got {type(data).__name__}")
    return data
