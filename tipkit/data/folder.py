"""Your own images as a dataset: ``folder:PATH``, an image tree in torchvision's ``ImageFolder`` convention.

Two layouts are read:

- ``PATH/<class>/<image>``: the pool; a deterministic stratified split carves it into ``train`` (the
  few-shot pool), ``val`` and ``test`` (fractions ``val`` and ``test``, default 0.2 each, shuffled per
  class with ``seed``, default 0);
- ``PATH/train|val|test/<class>/<image>``: the split folders as they are; with ``train`` and ``test``
  only, ``val`` is carved from ``train`` (fraction ``val``, stratified, deterministic).

The rule is part of the name: ``folder:PATH?val=0.1&test=0.3&seed=2`` (a relative ``PATH`` is read under
``root`` when one is given). Class names are the folder names with ``_`` and ``-`` read as spaces, or
come from an optional ``PATH/classnames.txt`` (lines ``<folder> <class name>``, CoOp's ImageNet format);
prompts from an optional ``PATH/templates.txt`` (one per line, each with one ``{}``), else ``a photo of a
{}.``; both text files are UTF-8, with or without a BOM, any line ending (:mod:`tipkit.data.textfiles`).
Images are found by extension (:data:`VIEWER_EXTENSIONS`, in sub-folders of a class folder too) and read
as a viewer shows them (EXIF orientation applied, 16-bit scaled, transparency on white, GIFs' first
frame: :func:`tipkit.data.imagefiles.open_image`); other files are ignored and counted. Unreadable images
follow the corrupt-image policy of :mod:`tipkit.data.imagefiles` (``skip_corrupt``).

Problems of the tree (a class folder without images, a val/test class without train images, class folders
whose names read the same, bad lines in the text files) are gathered, not stopped at: the builder raises
one error listing all of them, or with ``strict=False`` (``tipkit data check``) records them in
``Dataset.report["problems"]`` (beside ``report["ignored"]``, every ignored file) and builds what it can.

The split rule, the read mode and every file's size and mtime are in each split's
:meth:`~tipkit.data.Split.fingerprint` (so an edited folder never reuses stale features), and the layout,
rule and counts in ``Dataset.info`` (so in the run record).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from tipkit.data.imagefiles import VIEWER_EXTENSIONS, RawSplit, finish
from tipkit.data.registry import Dataset, register_prefix
from tipkit.data.textfiles import read_lines
from tipkit.errors import TipkitError

log = logging.getLogger(__name__)

PREFIX = "folder:"
SPLIT_DIRS = ("train", "val", "test")
CLASSNAMES_FILE, TEMPLATES_FILE = "classnames.txt", "templates.txt"
DEFAULT_TEMPLATE = "a photo of a {}."
DEFAULTS: dict[str, float] = {"val": 0.2, "test": 0.2, "seed": 0}
READ = "viewer"  # how images are read (tipkit.data.imagefiles.open_image); in every split's fingerprint


@dataclass
class Tree:
    """One folder of class folders: ``images[class folder]`` = image ids (``/``-separated, relative to the
    dataset folder, in walk order), the ignored (non-image) files, and ``stamps[id]`` = ``size:mtime_ns``."""

    images: dict[str, list[str]] = field(default_factory=dict)
    ignored: list[str] = field(default_factory=list)
    stamps: dict[str, str] = field(default_factory=dict)


def is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(VIEWER_EXTENSIONS)


def walk(folder: Path, base: Path, tree: Tree, into: "list[str] | None") -> None:
    """Add the files under ``folder`` (recursively; sorted; hidden folders skipped) to ``tree``: images into
    ``into`` (ignored too when None), every other file into ``tree.ignored``. Ids are relative to ``base``."""
    for top, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(top) / name
            rel = path.relative_to(base).as_posix()
            if into is not None and is_image(name):
                st = path.stat()
                into.append(rel)
                tree.stamps[rel] = f"{st.st_size}:{st.st_mtime_ns}"
            else:
                tree.ignored.append(rel)


def scan(folder: Path, base: Path, tree: "Tree | None" = None) -> Tree:
    """The class folders directly under ``folder`` and their images (see :class:`Tree`); files lying
    directly in ``folder`` are ignored (``classnames.txt``/``templates.txt`` at the top are not counted)."""
    tree = tree or Tree()
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        if e.is_dir() and not e.name.startswith("."):
            walk(Path(e.path), base, tree, tree.images.setdefault(e.name, []))
        elif e.is_file() and not (folder == base and e.name in (CLASSNAMES_FILE, TEMPLATES_FILE)):
            tree.ignored.append(Path(e.path).relative_to(base).as_posix())
    return tree


def parse_spec(spec: str, root: "str | Path | None" = None) -> tuple[Path, dict[str, float], set[str]]:
    """``PATH[?val=F&test=F&seed=N]`` -> (absolute folder, the rule with defaults filled in, keys given)."""
    path_text, _, query = spec.partition("?")
    if not path_text:
        raise TipkitError(f"dataset {PREFIX}{spec!r} names no folder; write {PREFIX}PATH, e.g. {PREFIX}photos/")
    path = Path(path_text).expanduser()
    if root is not None and not path.is_absolute():
        path = Path(root).expanduser() / path
    rule, given = dict(DEFAULTS), set()
    for key, text in parse_qsl(query, keep_blank_values=True):
        if key not in DEFAULTS:
            raise TipkitError(f"unknown option {key!r} in {PREFIX}{spec}; known: {', '.join(DEFAULTS)}")
        try:
            value = int(text) if key == "seed" else float(text)
        except ValueError:
            raise TipkitError(f"option {key}={text!r} in {PREFIX}{spec} must be "
                              f"{'an integer' if key == 'seed' else 'a fraction in (0, 1)'}") from None
        if key != "seed" and not 0 < value < 1:
            raise TipkitError(f"option {key}={text} in {PREFIX}{spec} must be a fraction in (0, 1)")
        rule[key], given = value, given | {key}
    if rule["val"] + rule["test"] >= 1:
        raise TipkitError(f"{PREFIX}{spec}: val + test = {rule['val'] + rule['test']:g} leaves no training "
                          "images; keep val + test < 1")
    return path.resolve(), rule, given


def display_name(folder: str) -> str:
    """A class folder's name as a class name: ``_`` and ``-`` read as spaces, runs of spaces as one."""
    return " ".join(folder.replace("_", " ").replace("-", " ").split()) or folder


def read_classnames(path: Path, folders: list[str], problems: "list[str] | None" = None) -> list[str]:
    """Display names ``[C]`` for the class ``folders``: :func:`display_name`, or ``classnames.txt``. A bad line
    is appended to ``problems`` (raised when None) and the folder keeps its default name."""
    names = {f: display_name(f) for f in folders}
    file = path / CLASSNAMES_FILE
    if file.is_file():
        for n, line in enumerate(read_lines(file), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            folder, _, name = line.strip().partition(" ")
            if folder not in names or not name.strip():
                msg = (f"{file}:{n}: {line.strip()!r} must be '<class folder> <class name>' with a class folder of "
                       f"{path} ({', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''})")
                if problems is None:
                    raise TipkitError(msg)
                problems.append(msg)
                continue
            names[folder] = name.strip()
    return [names[f] for f in folders]


def name_collisions(folders: list[str], names: list[str]) -> list[str]:
    """One problem line per class name (compared without case) that more than one class folder reads as."""
    groups: dict[str, list[str]] = {}
    for f, n in zip(folders, names, strict=True):
        groups.setdefault(n.casefold(), []).append(f)
    return [f"class folders {', '.join(repr(f) for f in fs)} all read as class name {names[folders.index(fs[0])]!r}; "
            f"merge or rename them, or give each its own name in {CLASSNAMES_FILE}"
            for fs in groups.values() if len(fs) > 1]


def read_templates(path: Path, problems: "list[str] | None" = None) -> list[str]:
    """Prompt templates from ``templates.txt`` (one per line, one ``{}`` each), else the default one. A bad
    line is appended to ``problems`` (raised when None) and left out."""
    file = path / TEMPLATES_FILE
    if not file.is_file():
        return [DEFAULT_TEMPLATE]
    out, bad = [], []
    for n, line in enumerate(read_lines(file), 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        if t.count("{}") != 1:
            bad.append(f"{file}:{n}: template {t!r} must hold exactly one '{{}}' (where the class name goes)")
            continue
        out.append(t)
    if not out and not bad:
        bad.append(f"{file} holds no template; write one per line, e.g. {DEFAULT_TEMPLATE!r}, or delete it")
    if bad and problems is None:
        raise TipkitError(bad[0])
    (problems if problems is not None else []).extend(bad)
    return out or [DEFAULT_TEMPLATE]


def carve(per_class: list[list[str]], fractions: dict[str, float], seed: int, folders: list[str],
          rest: str = "train") -> dict[str, list[tuple[str, int]]]:
    """Split each class's ids into ``fractions`` (e.g. ``{"val": .2, "test": .2}``) and ``rest``, stratified:
    per class ``round(f · n)`` images, at least one left in ``rest``; shuffled with a generator seeded by
    ``seed`` and the class folder's name (adding images to one class leaves the others' split as it was).
    Returns ``{split: [(id, label), ...]}`` in walk order."""
    out: dict[str, list[tuple[str, int]]] = {k: [] for k in (*fractions, rest)}
    for label, (ids, folder) in enumerate(zip(per_class, folders, strict=True)):
        n = len(ids)
        want = {k: int(np.floor(f * n + 0.5)) for k, f in fractions.items()}
        while sum(want.values()) > n - 1 and any(want.values()):
            biggest = max(want, key=lambda k: want[k])
            want[biggest] -= 1
        salt = int(hashlib.sha256(folder.encode()).hexdigest()[:8], 16)
        order = np.random.default_rng([int(seed), salt]).permutation(n)
        start, owner = 0, np.full(n, rest, dtype=object)
        for k, m in want.items():
            owner[order[start:start + m]] = k
            start += m
        for i, rel in enumerate(ids):
            out[owner[i]].append((rel, label))
    return out


def _raw(pairs: list[tuple[str, int]]) -> RawSplit:
    return [p for p, _ in pairs], [y for _, y in pairs]


def _check_classes(path: Path, pool: Tree, pool_name: str, problems: list[str]) -> list[str]:
    """The class folders of ``pool``; fewer than 2 is an error, each class folder without images a problem."""
    folders = sorted(pool.images)
    if len(folders) < 2:
        found = f" ({', '.join(folders)})" if folders else ""
        raise TipkitError(f"folder dataset {path}: {len(folders)} class folder{'s' * (len(folders) != 1)}{found} "
                          f"in {pool_name}; a classifier needs at least 2 (layout: {pool_name}/<class>/<image>)")
    for f in folders:
        if not pool.images[f]:
            junk = sum(1 for r in pool.ignored if f"/{f}/" in f"/{r}")
            problems.append(f"class folder {pool_name}/{f} holds no images"
                            f"{f' ({junk} non-image files ignored)' if junk else ''}; add images "
                            f"({', '.join(VIEWER_EXTENSIONS)}) or remove the folder")
    return folders


def _problems_error(path: Path, problems: list[str]) -> TipkitError:
    if len(problems) == 1:
        return TipkitError(f"folder dataset {path}: {problems[0]}")
    return TipkitError(f"folder dataset {path} has {len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems))


def folder_dataset(spec: str, root: "str | Path | None" = None, download: bool = False,
                   skip_corrupt: bool = False, strict: bool = True) -> Dataset:
    """The dataset ``folder:<spec>`` (see the module docstring); ``download`` is ignored. The tree's problems
    are one error listing them all, or (``strict=False``) in ``report["problems"]``."""
    path, rule, given = parse_spec(spec, root)
    problems: list[str] = []
    if not path.is_dir():
        raise TipkitError(f"folder dataset {path}: {'no such folder' if not path.exists() else 'not a folder'}; "
                          f"pass {PREFIX}PATH with PATH/<class>/<image> or PATH/train|test/<class>/<image>")
    present = [d for d in SPLIT_DIRS if (path / d).is_dir()]
    tree = Tree()
    if present:
        if "train" not in present or "test" not in present:
            raise TipkitError(f"folder dataset {path}: has split folder(s) {', '.join(present)} but split folders "
                              "need at least train/ and test/ (val/ is optional)")
        moot = sorted(given & ({"test", "val"} if "val" in present else {"test"}))
        if moot:
            raise TipkitError(f"option {moot[0]}= does not apply to {path}: its {moot[0]}/ folder is the "
                              f"{moot[0]} split")
        parts = {d: scan(path / d, path) for d in present}
        for d in present:
            tree.ignored += parts[d].ignored
            tree.stamps.update(parts[d].stamps)
        for f in sorted(path.iterdir()):
            if f.is_file() and f.name not in (CLASSNAMES_FILE, TEMPLATES_FILE):
                tree.ignored.append(f.name)
        folders = _check_classes(path, parts["train"], "train", problems)
        for d in present:
            for extra in sorted(set(parts[d].images) - set(folders)):
                problems.append(f"class folder {d}/{extra} has no train/{extra}; every class needs training "
                                "images")
        lab = {f: i for i, f in enumerate(folders)}
        splits = {d: [(r, lab[f]) for f in folders for r in parts[d].images.get(f, [])]
                  for d in present if d != "train"}
        if "val" in present:
            splits["train"] = [(r, lab[f]) for f in folders for r in parts["train"].images[f]]
            applied, layout = {}, "train/val/test folders"
        else:
            splits.update(carve([parts["train"].images[f] for f in folders], {"val": rule["val"]}, int(rule["seed"]),
                                folders))
            applied, layout = {"val": rule["val"]}, "train/test folders, val carved from train"
    else:
        tree = scan(path, path)
        folders = _check_classes(path, tree, str(path), problems)
        applied, layout = {"val": rule["val"], "test": rule["test"]}, "one pool, split by fractions"
        splits = carve([tree.images[f] for f in folders], applied, int(rule["seed"]), folders)
    raw = {k: _raw(splits[k]) for k in SPLIT_DIRS}
    names = read_classnames(path, folders, problems)
    problems += name_collisions(folders, names)
    templates = read_templates(path, problems)
    if problems and strict:
        raise _problems_error(path, problems)
    ds = finish(f"{PREFIX}{path}", path, names, templates, raw, skip_corrupt=skip_corrupt, read=READ)
    how = {"layout": layout, "fractions": applied, "seed": int(rule["seed"]), "read": READ}
    for s in ds.splits.values():
        stamps = hashlib.sha256("\n".join(tree.stamps.get(i, "?") for i in s.ids).encode()).hexdigest()
        s.salt = json.dumps({**how, "files": stamps}, sort_keys=True)
    if tree.ignored:
        log.info("%s: ignored %d non-image files (first: %s)", path, len(tree.ignored), tree.ignored[0])
    ds.info = {"kind": "folder", "path": str(path), **how, "class_folders": folders,
               "sizes": {k: len(s) for k, s in ds.splits.items()}, "ignored_files": len(tree.ignored),
               "ignored": tree.ignored[:20], "fingerprints": {k: s.fingerprint() for k, s in ds.splits.items()}}
    ds.report = {"problems": problems, "ignored": tree.ignored}  # for data check (strict=False); not in records
    return ds


register_prefix(PREFIX)(folder_dataset)
