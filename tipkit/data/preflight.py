"""Fail early, report everything: a dataset's problems for a run, found before any feature extraction.

``tipkit data check`` and ``tipkit run`` make the same pass over a ``folder:`` dataset (your own images):

- the tree's problems (:mod:`tipkit.data.folder`: class folders without images, val/test classes without
  train images, class folders whose names read the same, bad lines in ``classnames.txt``/``templates.txt``);
- counts: every class needs training, validation and test images, at least ``shots`` training images and,
  under the clean protocol, ``min(shots, 4)`` validation images;
- files (unless ``skip_corrupt``): every image opens and decodes (:func:`tipkit.data.imagefiles.image_problem`;
  JPEGs at 1/8 scale, so a thousand photos take seconds), the reason named per file.

Every problem is one line naming the class by its name (never by index) or the file by its path; a run
stops with all of them in one error before any model is loaded. The paper's datasets keep their own
checks (their loaders and ``data check``'s comparison with CoOp's split sizes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tipkit.data.folder import PREFIX as FOLDER_PREFIX
from tipkit.data.imagefiles import SKIP_HINT, image_note, image_problem
from tipkit.data.registry import Dataset, dataset_for, get_dataset
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)
SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test"}
_DECODED: set[tuple[str, ...]] = set()  # folder datasets whose every file decoded (name + split fingerprints)


def _names(ds: Dataset, classes: "np.ndarray | list[int]") -> str:
    return ", ".join(repr(ds.classnames[int(c)]) for c in classes)


def count_problems(ds: Dataset, shots: "int | None" = None, protocol: str = "clean") -> list[str]:
    """Classes (by name) without images in a split (but with images elsewhere: a class without any image is the
    tree's problem), with fewer than ``shots`` training images, or (clean protocol) fewer than ``min(shots, 4)``
    validation images; one line per kind of shortfall."""
    out = []
    counts = {k: np.bincount(ds.splits[k].labels, minlength=ds.num_classes) for k in SPLIT_WORDS if k in ds.splits}
    none = sum(counts.values()) == 0  # classes without any image: reported once, as an empty class folder
    for split, c in counts.items():
        empty = np.flatnonzero((c == 0) & ~none)
        if len(empty):
            more = " (add images, or lower the val/test fractions of folder:PATH?val=F&test=F)" if split != "train" else ""
            out.append(f"{len(empty)} class{'es' * (len(empty) != 1)} without {SPLIT_WORDS[split]} images: "
                       f"{_names(ds, empty)}{more}")
    if shots and "train" in counts:
        short = np.flatnonzero((counts["train"] > 0) & (counts["train"] < shots))
        if len(short):
            held = ", ".join(f"{ds.classnames[int(c)]!r} {int(counts['train'][c])}" for c in short)
            out.append(f"shots={shots} is more than {len(short)} class{'es' * (len(short) != 1)} hold{'s' * (len(short) == 1)} "
                       f"({held} training images); use --shots {int(counts['train'][counts['train'] > 0].min())} "
                       "or fewer, or add images")
    if shots and protocol == "clean" and "val" in counts:
        k = min(int(shots), 4)
        short = np.flatnonzero((counts["val"] > 0) & (counts["val"] < k))
        if len(short):
            held = ", ".join(f"{ds.classnames[int(c)]!r} {int(counts['val'][c])}" for c in short)
            out.append(f"the clean protocol chooses on min(shots, 4) = {k} validation images per class, but "
                       f"{len(short)} class{'es' * (len(short) != 1)} hold fewer ({held}); use --shots {int(counts['val'][counts['val'] > 0].min())} or "
                       "fewer, --protocol paper, or more validation images")
    return out


def file_problems(ds: Dataset, base: Path) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of every image file of ``ds`` under ``base``: unreadable files with the reason;
    notes for files read in a particular way (animated images: first frame)."""
    ids = sorted({i for s in ds.splits.values() for i in s.ids})
    log.info("%s: checking %d image files under %s", ds.name, len(ids), base)
    problems, notes = [], []
    for rel in ids:
        why = image_problem(base / rel)
        if why == "missing":
            problems.append(f"missing image {base / rel}")
        elif why is not None:
            problems.append(f"unreadable image {base / rel} {why.removeprefix('unreadable ')}")
        elif rel.lower().endswith((".gif", ".png", ".webp")) and (note := image_note(base / rel)):
            notes.append(f"{base / rel}: {note}")
    return problems, notes


def folder_problems(ds: Dataset, shots: "int | None" = None, protocol: str = "clean",
                    images: bool = True) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of folder dataset ``ds`` built with ``strict=False``: the tree's, the counts',
    and (``images``) the files'."""
    problems = list(getattr(ds, "report", {}).get("problems", [])) + count_problems(ds, shots, protocol)
    notes: list[str] = []
    if images:
        bad, notes = file_problems(ds, Path(ds.info["path"]))
        problems += bad
    return problems, notes


def preflight(cfg: object) -> Dataset:
    """The dataset a run config names, after the cheap pass above (folder datasets); raises one error listing
    every problem (naming ``--skip-corrupt`` when files do not decode) before any feature extraction."""
    name = cfg.dataset  # type: ignore[attr-defined]
    if not (isinstance(name, str) and name.startswith(FOLDER_PREFIX)):
        return dataset_for(cfg)
    skip = bool(getattr(cfg, "skip_corrupt", False))
    ds = get_dataset(name, root=cfg.data_root, download=False, skip_corrupt=skip, strict=False)  # type: ignore[attr-defined]
    key = (ds.name, *(s.fingerprint() for s in ds.splits.values()))
    problems, _ = folder_problems(ds, cfg.shots, getattr(cfg, "protocol", "clean"),  # type: ignore[attr-defined]
                                  images=not skip and key not in _DECODED)
    if problems:
        files = any(p.startswith(("unreadable image", "missing image")) for p in problems)
        head = (f"{name}: {len(problems)} problem{'s' * (len(problems) != 1)} found before any work"
                f"{'; ' + SKIP_HINT if files else ''} (`tipkit data check --dataset {name}` shows the whole report)")
        raise TipkitError(head + ":\n" + "\n".join(f"  - {p}" for p in problems) if len(problems) > 1 or files
                          else f"{name}: {problems[0]}")
    if not skip:
        _DECODED.add(key)
    return ds
