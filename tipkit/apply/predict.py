"""``tipkit predict --adapter FILE IMAGE_OR_FOLDER...``: classify image files with a saved adapter.

Each argument is an image file or a folder (searched recursively, hidden files and folders skipped). A folder
in ``ImageFolder`` layout, whose sub-folders are all classes of the adapter (by class folder or class name),
labels its images, and the output ends with an accuracy line over the labelled images. Output: a table
(default), ``--json`` (one object: predictions, accuracy) or ``--csv`` (one row per image; the accuracy
line goes to stderr), to stdout or (``--out FILE``, written atomically) to a file. Images are read as a
viewer shows them (:func:`tipkit.data.imagefiles.open_image`: EXIF orientation, 16-bit, transparency, first
frame). Labelled images also get their accuracy per class. ``--top-k`` defaults to min(3, the classes).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tipkit.core.metrics import accuracy
from tipkit.data.folder import Tree, is_image, walk
from tipkit.data.imagefiles import VIEWER_EXTENSIONS as IMG_EXTENSIONS
from tipkit.data.imagefiles import image_problem
from tipkit.errors import TipkitError
from tipkit.io import write_text
from tipkit.apply.adapter import Adapter, Prediction

log = logging.getLogger(__name__)


@dataclass
class Inputs:
    """The images to classify, with their labels (class index) where a folder's layout gives one."""

    files: list[Path]
    labels: list["int | None"]


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").lower().split())


def class_index(adapter: Adapter) -> dict[str, int]:
    """Sub-folder names that label a class: the class folders (``folder:`` datasets) and class names."""
    out = {_norm(n): i for i, n in enumerate(adapter.classnames)}
    out.update({_norm(f): i for i, f in enumerate(adapter.meta.get("class_folders") or [])})
    return out


def collect(args: list[str], adapter: Adapter) -> Inputs:
    """The image files named by ``args`` (files, or folders searched recursively) and their labels."""
    known, files, labels = class_index(adapter), [], []
    for a in args:
        p = Path(a).expanduser()
        if p.is_file():
            if not is_image(p.name):
                raise TipkitError(f"{p} is not an image file (extensions: {', '.join(IMG_EXTENSIONS)})")
            files.append(p)
            labels.append(None)
            continue
        if not p.is_dir():
            raise TipkitError(f"no such image or folder: {p}")
        subs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        labelled = bool(subs) and all(_norm(d.name) in known for d in subs)
        tree, before = Tree(), len(files)
        for d, y in ([(d, known[_norm(d.name)]) for d in subs] if labelled else [(p, None)]):
            found: list[str] = []
            walk(d, p, tree, found)
            files += [p / r for r in found]
            labels += [y] * len(found)
        if labelled:  # images lying directly in a labelled folder have no class
            loose = sorted(f for f in p.iterdir() if f.is_file() and is_image(f.name))
            files += loose
            labels += [None] * len(loose)
        if len(files) == before:
            raise TipkitError(f"{p} holds no images (looked for {', '.join(IMG_EXTENSIONS)}, in sub-folders too)")
        if tree.ignored:
            log.info("%s: ignored %d non-image files", p, len(tree.ignored))
    return Inputs(files, labels)


def drop_unreadable(inputs: Inputs) -> tuple[Inputs, list[str]]:
    """The inputs without files that do not decode, and those files with the reason."""
    bad = {f: why for f in inputs.files if (why := image_problem(f)) is not None}
    keep = [i for i, f in enumerate(inputs.files) if f not in bad]
    return Inputs([inputs.files[i] for i in keep], [inputs.labels[i] for i in keep]), [f"{f} {w}" for f, w in bad.items()]


def score(pred: Prediction, labels: list["int | None"]) -> "dict[str, Any] | None":
    """Top-1 accuracy (%) over the labelled images, and per class (by name, classes with labelled images
    only: ``{"top1", "images", "correct"}``); None when no image is labelled."""
    idx = [i for i, y in enumerate(labels) if y is not None]
    if not idx:
        return None
    logits = pred.logits if len(idx) == len(labels) else pred.logits[torch.as_tensor(idx)]
    y = torch.as_tensor([labels[i] for i in idx])
    hit = logits.argmax(1) == y
    per_class = {}
    for c in sorted(set(y.tolist())):
        m = y == c
        n, k = int(m.sum()), int(hit[m].sum())
        per_class[pred.classnames[c]] = {"top1": 100.0 * k / n, "images": n, "correct": k}
    return {"top1": accuracy(logits, y), "images": len(idx), "correct": int(hit.sum()), "per_class": per_class}


def _accuracy_lines(acc: "dict[str, Any] | None", method: str) -> list[str]:
    if acc is None:
        return []
    out = [f"top-1 accuracy: {acc['top1']:.2f}% ({acc['correct']} of {acc['images']} labelled images, {method})"]
    width = max(len(c) for c in acc["per_class"])
    out += [f"  {c:<{width}}  {v['top1']:6.2f}% ({v['correct']} of {v['images']})" for c, v in acc["per_class"].items()]
    return out


def render(adapter: Adapter, inputs: Inputs, pred: Prediction, top_k: int, fmt: str) -> tuple[str, str]:
    """``(stdout text, stderr text)`` of the predictions as a table, JSON or CSV."""
    tops = pred.top(top_k)
    acc = score(pred, inputs.labels)
    names = [None if y is None else adapter.classnames[y] for y in inputs.labels]
    line = "\n".join(_accuracy_lines(acc, adapter.method))
    if fmt == "json":
        rows = [{"image": str(f), "label": n, "top": [{"class": c, "probability": p} for c, p in t]}
                for f, n, t in zip(inputs.files, names, tops)]
        doc = {"adapter": adapter.source, "method": adapter.method, "top_k": top_k, "predictions": rows,
               "accuracy": acc}
        return json.dumps(doc, indent=2) + "\n", ""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "label"] + [f"{k}_{i}" for i in range(1, top_k + 1) for k in ("class", "probability")])
        for f, n, t in zip(inputs.files, names, tops):
            w.writerow([str(f), n or ""] + [v for c, p in t for v in (c, f"{p:.6f}")])
        return buf.getvalue(), line + ("\n" if line else "")
    width = min(60, max(len(str(f)) for f in inputs.files))
    head = f"{'image':<{width}}  {'label':<14}" + "".join(f"  {f'top-{i}':<22}" for i in range(1, top_k + 1))
    out = [head]
    for f, n, t in zip(inputs.files, names, tops):
        shown = str(f) if len(str(f)) <= width else "..." + str(f)[-(width - 3):]
        out.append(f"{shown:<{width}}  {(n or '-'):<14}" + "".join(f"  {f'{c} {p:.3f}':<22}" for c, p in t))
    return "\n".join(out + ([line] if line else [])) + "\n", ""


def output_format(fmt: "str | None", out: "str | Path | None") -> str:
    """The format asked for, else the one ``out``'s extension names (``.json``, ``.csv``), else a table."""
    if fmt is not None:
        return fmt
    suffix = Path(out).suffix.lower() if out is not None else ""
    return {".json": "json", ".csv": "csv"}.get(suffix, "table")


def main_predict(adapter_path: str, targets: list[str], top_k: "int | None" = None, fmt: "str | None" = None,
                 pretrained: "str | None" = None, device: str = "cpu", batch_size: "int | None" = None,
                 skip_corrupt: bool = False, out: "str | Path | None" = None) -> int:
    """Load the adapter and its backbone, classify every image of ``targets``, print (or write ``out``
    atomically: nothing is written when anything fails); returns 0. ``top_k``: default min(3, classes)."""
    adapter = Adapter.load(adapter_path)
    if top_k is not None and top_k < 1:
        raise TipkitError(f"--top-k must be at least 1, got {top_k}")
    top_k = min(top_k or 3, adapter.num_classes)
    fmt = output_format(fmt, out)
    if out is not None:
        out = Path(out).expanduser()
        if out.is_dir() or not out.parent.is_dir():
            why = "is a folder; name a file" if out.is_dir() else f"folder {out.parent} does not exist"
            raise TipkitError(f"--out {out}: {why}")
    inputs = collect(targets, adapter)
    inputs, bad = drop_unreadable(inputs)  # every file checked before the model loads: all bad ones named at once
    if bad and not skip_corrupt:
        raise TipkitError(f"{len(bad)} unreadable image{'s' * (len(bad) != 1)}: {'; '.join(bad[:10])}"
                          f"{f'; ... and {len(bad) - 10} more' if len(bad) > 10 else ''}; rerun with --skip-corrupt "
                          "to leave them out, or replace them")
    for b in bad:
        log.warning("skipped unreadable image %s", b)
    if not inputs.files:
        raise TipkitError("no readable images left to predict")
    bb = adapter.load_backbone(pretrained, device=device)
    pred = adapter.predict(inputs.files, backbone=bb, batch_size=batch_size)
    text, err = render(adapter, inputs, pred, top_k, fmt)
    if out is not None:
        write_text(out, text)
        sys.stderr.write(err + f"wrote {out}\n")
    else:
        sys.stdout.write(text)
        sys.stderr.write(err)
    return 0
