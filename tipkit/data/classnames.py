"""Class names and prompt templates of the paper's datasets, as the official code uses them.

- Prompt templates: one per dataset (CoOp's hand-crafted prompts, which Tip-Adapter's dataset classes
  copy); ImageNet and its shifted versions use the 7-template ensemble of Tip-Adapter's
  ``datasets/imagenet.py`` (CLIP's ensemble selection).
- ImageNet's 1000 class names: the curated list of CLIP's prompt-engineering notebook that
  Tip-Adapter's ``datasets/imagenet.py`` holds as ``imagenet_classes``, stored one per line in
  ``files/imagenet_classnames.txt`` in label order; label ``i`` is the ``i``-th WordNet id in
  sorted order (``files/imagenet_wnids.txt``), the order torchvision's ImageNet/ImageFolder give.
- The other datasets' class names come from their split files (CoOp's ``split_zhou_*.json``, or
  FGVCAircraft's ``variants.txt``), exactly as the official code takes them; :func:`clean` turns
  ``_`` into spaces, as the official ``clip_classifier`` does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tipkit.errors import TipkitError

DATA_FILES = Path(__file__).resolve().parent / "files"
IMAGENET_CLASSNAMES_FILE = DATA_FILES / "imagenet_classnames.txt"
IMAGENET_WNIDS_FILE = DATA_FILES / "imagenet_wnids.txt"

# Tip-Adapter datasets/imagenet.py `imagenet_templates` (7-template ensemble).
IMAGENET_TEMPLATES = [
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
]

# Registry name -> prompt templates (Tip-Adapter datasets/<name>.py `template`, = CoOp's prompts).
TEMPLATES: dict[str, list[str]] = {
    "imagenet": IMAGENET_TEMPLATES,
    "imagenet_v2": IMAGENET_TEMPLATES,
    "imagenet_sketch": IMAGENET_TEMPLATES,
    "caltech101": ["a photo of a {}."],
    "dtd": ["{} texture."],
    "eurosat": ["a centered satellite photo of {}."],
    "fgvc_aircraft": ["a photo of a {}, a type of aircraft."],
    "flowers102": ["a photo of a {}, a type of flower."],
    "food101": ["a photo of {}, a type of food."],
    "oxford_pets": ["a photo of a {}, a type of pet."],
    "stanford_cars": ["a photo of a {}."],
    "sun397": ["a photo of a {}."],
    "ucf101": ["a photo of a person doing {}."],
}

# Number of classes of each dataset (CoOp's Table of dataset statistics; Caltech101 without
# BACKGROUND_Google and Faces_easy).
NUM_CLASSES: dict[str, int] = {
    "imagenet": 1000, "imagenet_v2": 1000, "imagenet_sketch": 1000, "caltech101": 100, "dtd": 47,
    "eurosat": 10, "fgvc_aircraft": 100, "flowers102": 102, "food101": 101, "oxford_pets": 37,
    "stanford_cars": 196, "sun397": 397, "ucf101": 101,
}


def clean(name: str) -> str:
    """A class name as it goes into the prompt: ``_`` becomes a space (official ``clip_classifier``)."""
    return name.replace("_", " ").strip()


def _read_lines(path: Path, expected: int) -> list[str]:
    if not path.is_file():
        raise TipkitError(f"tipkit's data file {path} is missing; reinstall tipkit (it ships with the package)")
    lines = [ln.rstrip("\n") for ln in path.read_text(encoding="utf-8").splitlines()]
    if len(lines) != expected or any(not ln for ln in lines):
        raise TipkitError(f"tipkit's data file {path} is damaged: expected {expected} non-empty lines, "
                          f"found {len(lines)}")
    return lines


@lru_cache(maxsize=None)
def imagenet_classnames() -> tuple[str, ...]:
    """The 1000 curated ImageNet class names ``[1000]``, in label (sorted WordNet id) order."""
    return tuple(_read_lines(IMAGENET_CLASSNAMES_FILE, 1000))


@lru_cache(maxsize=None)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids ``[1000]``, sorted; position = label."""
    wnids = tuple(_read_lines(IMAGENET_WNIDS_FILE, 1000))
    if list(wnids) != sorted(wnids):
        raise TipkitError(f"tipkit's data file {IMAGENET_WNIDS_FILE} is damaged: WordNet ids are not sorted")
    return wnids
