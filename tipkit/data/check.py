"""``tipkit data check``: compare a paper dataset on disk with CoOp's numbers, one line per problem; for
``folder:PATH`` (your own images) report the classes, images per split, ignored files and notes, then every
problem :mod:`tipkit.data.preflight` finds, in one pass (the same pass ``tipkit run`` makes first).

Checks, in order: the dataset builds (split files and image folders in place — otherwise the
loader's one-line error is the only finding), the number of classes, the size of every split, classes
without images, exact per-class counts where CoOp's split rule fixes them, and (``images=True``) that
every listed image file exists, verifies and decodes. The image pass reads every file — minutes for
the small datasets, hours for ImageNet's 1.3M files; ``images=False`` skips it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from tipkit.data import paper as datasets_paper
from tipkit.data.folder import PREFIX as FOLDER_PREFIX
from tipkit.data.imagefiles import image_problem
from tipkit.data.preflight import folder_problems
from tipkit.data.registry import Dataset, get_dataset
from tipkit.errors import TipkitError, choose

log = logging.getLogger(__name__)

# Split sizes of CoOp's fixed splits (CoOp paper, dataset statistics table; Tip-Adapter uses the same
# splits); ImageNet: the ILSVRC2012 train/val sets (val doubles as val and test), ImageNet-V2
# matched-frequency and ImageNet-Sketch as released. "per_class": counts CoOp's split rule fixes for
# every class (DTD: 120 images/class split 50/20/30 %; Food-101: 1000/class likewise; SUN397: 50
# train + 50 test per class from partition 01, 20 % of train to val; ImageNet val: 50/class;
# ImageNet-V2: 10/class).
EXPECTED: dict[str, dict[str, Any]] = {
    "caltech101": {"classes": 100, "sizes": {"train": 4128, "val": 1649, "test": 2465}},
    "dtd": {"classes": 47, "sizes": {"train": 2820, "val": 1128, "test": 1692},
            "per_class": {"train": 60, "val": 24, "test": 36}},
    "eurosat": {"classes": 10, "sizes": {"train": 13500, "val": 5400, "test": 8100}},
    "fgvc_aircraft": {"classes": 100, "sizes": {"train": 3334, "val": 3333, "test": 3333}},
    "flowers102": {"classes": 102, "sizes": {"train": 4093, "val": 1633, "test": 2463}},
    "food101": {"classes": 101, "sizes": {"train": 50500, "val": 20200, "test": 30300},
                "per_class": {"train": 500, "val": 200, "test": 300}},
    "oxford_pets": {"classes": 37, "sizes": {"train": 2944, "val": 736, "test": 3669}},
    "stanford_cars": {"classes": 196, "sizes": {"train": 6509, "val": 1635, "test": 8041}},
    "sun397": {"classes": 397, "sizes": {"train": 15880, "val": 3970, "test": 19850},
               "per_class": {"train": 40, "val": 10, "test": 50}},
    "ucf101": {"classes": 101, "sizes": {"train": 7639, "val": 1898, "test": 3783}},
    "imagenet": {"classes": 1000, "sizes": {"train": 1281167, "val": 50000, "test": 50000},
                 "per_class": {"val": 50, "test": 50}},
    "imagenet_v2": {"classes": 1000, "sizes": {"test": 10000}, "per_class": {"test": 10}},
    "imagenet_sketch": {"classes": 1000, "sizes": {"test": 50889}},
}
# Datasets held in arrays (no image files): Fashion-MNIST with tipkit's partition, and its shifted test sets.
ARRAYS: dict[str, dict[str, Any]] = {
    "fashion-mnist": {"classes": 10, "sizes": {"pretrain": 50000, "val": 2000, "train": 8000, "test": 10000},
                      "per_class": {"pretrain": 5000, "val": 200, "train": 800, "test": 1000}},
    "fashion-mnist-v2": {"classes": 10, "sizes": {"test": 10000}, "per_class": {"test": 1000}},
    "fashion-mnist-sketch": {"classes": 10, "sizes": {"test": 10000}, "per_class": {"test": 1000}},
}
MAX_FILE_LINES = 20  # per kind (missing / unreadable); the rest are counted in one line


def _split_lines(name: str, ds: Dataset, exp: dict[str, Any]) -> list[str]:
    out = []
    for split, n in exp["sizes"].items():
        if split not in ds.splits:
            out.append(f"{name}: no {split!r} split (has: {', '.join(ds.splits)})")
            continue
        s = ds.splits[split]
        if len(s) != n:
            out.append(f"{name} {split}: {len(s)} images; CoOp's split has {n}")
        counts = np.bincount(s.labels, minlength=ds.num_classes)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            out.append(f"{name} {split}: {len(empty)} of {ds.num_classes} classes have no image "
                       f"(first: label {empty[0]}, {ds.classnames[empty[0]]!r})")
        want = exp.get("per_class", {}).get(split)
        off = np.flatnonzero((counts != want) & (counts > 0)) if want is not None else []
        if len(off):
            c = off[0]
            out.append(f"{name} {split}: {len(off)} classes do not hold {want} images each "
                       f"(first: {ds.classnames[c]!r} holds {counts[c]})")
    return out


def _file_lines(name: str, base: Path, ds: Dataset) -> list[str]:
    ids = sorted({i for s in ds.splits.values() for i in s.ids})
    log.info("%s: checking %d image files under %s", name, len(ids), base)
    found: dict[str, list[str]] = {"missing": [], "unreadable": []}
    for rel in ids:
        why = image_problem(base / rel)
        if why == "missing":
            found["missing"].append(f"{name}: missing image {base / rel}")
        elif why is not None:
            found["unreadable"].append(f"{name}: unreadable image {base / rel} {why.removeprefix('unreadable ')}")
    out = []
    for kind, lines in found.items():
        out += lines[:MAX_FILE_LINES]
        if len(lines) > MAX_FILE_LINES:
            out.append(f"{name}: ... and {len(lines) - MAX_FILE_LINES} more {kind} images")
    return out


def check_dataset(name: str, root: "str | Path | None" = None, *, images: bool = True) -> list[str]:
    """Problems found in paper dataset ``name`` under data folder ``root``, one line each; [] when clean.
    Fashion-MNIST and its shifted test sets (arrays, no files) are checked for sizes and, with ``images``,
    that every image is made."""
    if name in ARRAYS:
        return _array_lines(name, root, images)
    choose("dataset", name, list(EXPECTED) + list(ARRAYS))
    try:
        ds = get_dataset(name, root=root, download=False)
    except TipkitError as e:
        return [str(e)]
    exp = EXPECTED[name]
    out = []
    if ds.num_classes != exp["classes"]:
        out.append(f"{name}: {ds.num_classes} classes; expected {exp['classes']}")
    out += _split_lines(name, ds, exp)
    if images:
        out += _file_lines(name, datasets_paper.dataset_folder(name, root), ds)
    return out


def _array_lines(name: str, root: "str | Path | None", images: bool) -> list[str]:
    try:
        ds = get_dataset(name, root=root, download=False)
    except TipkitError as e:
        return [str(e)]
    exp = ARRAYS[name]
    out = [f"{name}: {ds.num_classes} classes; expected {exp['classes']}"] if ds.num_classes != exp["classes"] else []
    out += _split_lines(name, ds, exp)
    if images:
        for split in ds.splits.values():
            bad = [i for i in range(len(split)) if split.image(i).size != (28, 28)]
            if bad:
                out.append(f"{name} {split.name}: {len(bad)} images are not 28×28 (first: index {bad[0]})")
    return out


def folder_report(name: str, root: "str | Path | None" = None, *, images: bool = True, shots: "int | None" = None,
                  protocol: str = "clean", verbose: bool = False) -> tuple[list[str], list[str]]:
    """``(report lines, problems)`` of folder dataset ``name`` (``folder:PATH``) in one pass: layout and split
    rule, images per class and split, the largest shot count it allows, ignored files (each listed with
    ``verbose``, else counted), notes (animated images); problems: every one :mod:`tipkit.data.preflight`
    finds (the tree's, the counts' for ``shots``/``protocol``, and with ``images`` every file that does not
    decode), or the builder's error when the folder cannot be read as a dataset at all."""
    try:
        ds = get_dataset(name, root=root, download=False, strict=False)
    except TipkitError as e:
        return [], [str(e)]
    info, order = ds.info, [k for k in ("train", "val", "test") if k in ds.splits]
    rule = ", ".join(f"{k} {v:g}" for k, v in info["fractions"].items())
    out = [f"{ds.name}: {ds.num_classes} classes; {info['layout']}" + (f" ({rule}, seed {info['seed']})" if rule else "")]
    counts = {k: np.bincount(ds.splits[k].labels, minlength=ds.num_classes) for k in order}
    width = max(12, *(len(c) for c in ds.classnames))
    out.append(f"  {'class':<{width}}" + "".join(f"{k:>8}" for k in order))
    for c, cname in enumerate(ds.classnames):
        out.append(f"  {cname:<{width}}" + "".join(f"{int(counts[k][c]):>8}" for k in order))
    out.append(f"  {'total':<{width}}" + "".join(f"{len(ds.splits[k]):>8}" for k in order))
    out.append(f"  shots up to {int(counts['train'].min())} (the fewest training images of a class)")
    ignored = sorted(ds.report["ignored"])  # type: ignore[attr-defined]
    n = len(ignored)
    if verbose:
        out.append(f"  ignored: {n} non-image file{'s' * (n != 1)}" + (":" if n else ""))
        out += [f"    {f}" for f in ignored]
    else:
        out.append(f"  ignored: {n} non-image file{'s' * (n != 1)}"
                   + (f" (first: {ignored[0]}; -v lists them all)" if n else ""))
    problems, notes = folder_problems(ds, shots, protocol, images=images)
    out += [f"  note: {line}" for line in notes]
    return out, problems


def main_check(dataset: str, root: "str | Path | None" = None, images: bool = True, shots: "int | None" = None,
               protocol: str = "clean", verbose: bool = False) -> int:
    """Print :func:`check_dataset`'s lines (or one OK line); return 0 when clean, else 1. For ``folder:PATH``
    print :func:`folder_report`'s report, then every problem (``shots``, ``protocol``: the run to check for)."""
    if dataset.startswith(FOLDER_PREFIX):
        lines, problems = folder_report(dataset, root, images=images, shots=shots, protocol=protocol, verbose=verbose)
        for line in lines:
            print(line)
        if problems:
            print(f"{dataset}: {len(problems)} problem{'s' * (len(problems) != 1)}:")
            for line in problems:
                print(f"  - {line}")
        else:
            print(f"{dataset}: OK{' (every image decodes)' if images else ''}")
        return 1 if problems else 0
    problems = check_dataset(dataset, root, images=images)
    for line in problems:
        print(line)
    if not problems and dataset in ARRAYS:
        print(f"{dataset}: OK (split sizes as expected{' and every image made' if images else ''})")
    elif not problems:
        print(f"{dataset}: OK ({datasets_paper.dataset_folder(dataset, root)} matches CoOp's split sizes"
              f"{' and every image decodes' if images else ''})")
    return 1 if problems else 0
