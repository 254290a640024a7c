"""``python -m tipkit cache info|verify|compact|prune``: what the feature cache holds, whether every store
reads back, merging shards, and removing what no current input can reuse.

``prune`` recomputes each store's key from what its ``meta.json`` recorded (model, pretrained weights,
precision, dataset, split, view) with today's code, weights and images; a store whose key that no longer
gives (another tipkit version or store format, changed or missing weights, changed images or transform),
one without a readable ``meta.json``, a single-file store of the old format, a shard moved aside as damaged
and a temp file left by a writer that stopped over an hour ago can go, and with ``older_than`` every store
last written before that date. It lists by default and removes only with ``apply=True``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tipkit import paths
from tipkit.errors import TipkitError
from tipkit.models.features import META, STORE_FORMAT, hash_parts, key_parts
from tipkit.models.store import CORRUPT, FeatureStore
from tipkit.version import __version__

log = logging.getLogger(__name__)
STALE_TEMP_S = 3600  # a temp file this old belongs to a writer that stopped


@dataclass
class StoreDir:
    """One store folder as found on disk."""

    path: Path
    meta: "dict[str, Any] | None"
    shards: list[Path] = field(default_factory=list)
    corrupt: list[Path] = field(default_factory=list)

    @property
    def parts(self) -> dict[str, Any]:
        return (self.meta or {}).get("parts") or {}

    def store(self) -> FeatureStore:
        m = self.meta or {}
        return FeatureStore(self.path, dim=m.get("dim"), size=m.get("rows_in_split"))

    def last_write(self) -> float:
        files = self.shards or [self.path / META]
        return max((f.stat().st_mtime for f in files if f.exists()), default=self.path.stat().st_mtime)


def _meta(folder: Path) -> "dict[str, Any] | None":
    try:
        meta = json.loads((folder / META).read_text())
        return meta if isinstance(meta, dict) and isinstance(meta.get("parts"), dict) else None
    except (OSError, ValueError):
        return None


def store_dirs(root: "Path | None" = None) -> list[StoreDir]:
    root = root or paths.feature_cache_dir()
    if not root.is_dir():
        return []
    return [StoreDir(d, _meta(d), FeatureStore(d).shards(), sorted(d.glob(f"*{CORRUPT}")))
            for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def _mb(files: "list[Path]") -> float:
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def info(root: "Path | None" = None) -> list[dict[str, Any]]:
    """One row per store: key, model, weights, dataset, split, view, rows, shards, damaged, MB, last write."""
    rows = []
    for s in store_dirs(root):
        idx, bad = [], 0
        for shard in s.shards:
            try:
                idx.append(torch.load(shard, map_location="cpu", weights_only=True, mmap=True)["indices"])
            except Exception:  # noqa: BLE001 - counted; `cache verify` says why
                bad += 1
        p = s.parts
        rows.append({"store": s.path.name[:12], "model": p.get("model", "?"), "weights": str(p.get("weights", "?"))[:20],
                     "dataset": p.get("dataset", "?"), "split": p.get("split", "?"),
                     "view": "-" if p.get("view") is None else p["view"],
                     "rows": len(torch.unique(torch.cat(idx))) if idx else 0, "shards": len(s.shards),
                     "damaged": bad + len(s.corrupt), "MB": round(_mb(s.shards), 1),
                     "last write": dt.datetime.fromtimestamp(s.last_write()).strftime("%Y-%m-%d %H:%M")})
    return rows


def verify(root: "Path | None" = None) -> list[tuple[Path, str]]:
    """Read every shard of every store (nothing is moved): each damaged shard or meta file and why."""
    bad: list[tuple[Path, str]] = []
    for s in store_dirs(root):
        if s.meta is None:
            bad.append((s.path / META, "missing or unreadable"))
        elif hash_parts(s.parts) != s.path.name:
            bad.append((s.path / META, "describes another key than its folder's"))
        bad += s.store().problems()
    return bad


def compact(root: "Path | None" = None) -> list[Path]:
    """Merge the shards of every store that has several (see :meth:`FeatureStore.compact`)."""
    out = []
    for s in store_dirs(root):
        if len(s.shards) > 1:
            new = s.store().compact()
            if new:
                out.append(new)
    return out


def parse_date(text: str) -> float:
    """``YYYY-MM-DD`` (or an ISO date-time) as a POSIX time."""
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise TipkitError(f"--older-than expects a date like 2025-01-31 (or an ISO date-time), got {text!r}") from None


class _Inputs:
    """Today's backbones and datasets, loaded once each, to recompute keys."""

    def __init__(self, data_root: "str | None"):
        self.data_root, self._bb, self._ds = data_root, {}, {}

    def key(self, meta: dict[str, Any]) -> dict[str, Any]:
        from tipkit.data import get_dataset
        from tipkit.models.backbone import load_backbone

        p = meta["parts"]
        weights = str(p["weights"])
        seed = int(weights.split(":", 1)[1]) if weights.startswith("random-init:") else 0
        bkey = (p["model"], meta.get("pretrained"), p["precision"], seed)
        if bkey not in self._bb:
            self._bb[bkey] = load_backbone(p["model"], meta.get("pretrained"), precision=p["precision"], init_seed=seed)
        if p["dataset"] not in self._ds:
            self._ds[p["dataset"]] = get_dataset(p["dataset"], root=self.data_root, download=False)
        return key_parts(self._bb[bkey], p["dataset"], self._ds[p["dataset"]].split(p["split"]), p["view"],
                         p["aug_seed"] or 0)


def _why_stale(s: StoreDir, inputs: _Inputs, older_than: "float | None") -> "str | None":
    p = s.parts
    if s.meta is None:
        return "no readable meta.json: no input can be matched to it"
    if hash_parts(p) != s.path.name:
        return "its meta.json describes another key"
    if p.get("format") != STORE_FORMAT or p.get("tipkit") != __version__:
        return f"made by tipkit {p.get('tipkit')} (store format {p.get('format')}); this is {__version__} ({STORE_FORMAT})"
    if older_than is not None and s.last_write() < older_than:
        return f"last written {dt.date.fromtimestamp(s.last_write())}, before the given date"
    if not s.shards:
        return "empty (no shards)"
    try:
        now = inputs.key(s.meta)
    except Exception as e:  # noqa: BLE001 - a model or dataset not available here: keep the store
        log.info("kept %s: cannot recompute its key here (%s)", s.path.name, str(e).splitlines()[0] if str(e) else e)
        return None
    if hash_parts(now) != s.path.name:
        changed = sorted(k for k in now if now[k] != p.get(k))
        return f"today's inputs give another key ({', '.join(changed)} changed)"
    return None


def prune(older_than: "float | None" = None, data_root: "str | None" = None, apply: bool = False,
          root: "Path | None" = None) -> list[tuple[Path, str, float]]:
    """What to remove and why, with sizes in MB: ``(path, reason, MB)``; removed only with ``apply``."""
    root = root or paths.feature_cache_dir()
    if not root.is_dir():
        return []
    inputs, plan = _Inputs(data_root), []
    for f in sorted(root.glob("*.pt")) + sorted(root.glob("*.lock")):
        what = "single-file store" if f.suffix == ".pt" else "lock file of a single-file store"
        plan.append((f, f"{what} of tipkit's old format (2), never read since format 3", _mb([f])))
    for s in store_dirs(root):
        why = _why_stale(s, inputs, older_than)
        if why:
            plan.append((s.path, why, _mb(list(s.path.iterdir()))))
            continue
        plan += [(c, "damaged shard moved aside", _mb([c])) for c in s.corrupt]
    plan += [(t, "temp file of a writer that stopped", _mb([t])) for t in sorted(root.rglob(".*.tmp"))
             if time.time() - t.stat().st_mtime > STALE_TEMP_S]
    if apply:
        for path, _, _ in plan:
            if path.is_dir():  # out of readers' sight in one rename, then deleted
                gone = path.with_name(f".{path.name}.pruning-{secrets.token_hex(4)}")
                os.replace(path, gone)
                shutil.rmtree(gone)
            else:
                path.unlink(missing_ok=True)
    return plan


def command(action: str, older_than: "str | None" = None, data_root: "str | None" = None,
            apply: bool = False) -> tuple[list[str], int]:
    """``tipkit cache ACTION``: the lines to print and the exit code."""
    root = paths.feature_cache_dir()
    if action == "info":
        rows = info()
        head = [f"{what}: {folder} (from {why})" for what, folder, why in paths.where()]
        if not rows:
            return head + [f"no feature stores in {root}"], 0
        cols = list(rows[0])
        width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        lines = ["  ".join(c.ljust(width[c]) for c in cols)]
        lines += ["  ".join(str(r[c]).ljust(width[c]) for c in cols) for r in rows]
        return head + lines + [f"{len(rows)} stores, {sum(r['shards'] for r in rows)} shards, "
                        f"{sum(r['MB'] for r in rows):.1f} MB in {root}"], 0
    if action == "verify":
        bad = verify()
        n = len(store_dirs())
        return ([f"damaged: {p}: {why}" for p, why in bad]
                + [f"{n} stores read back; {len(bad)} damaged files" + (" (a run moves them aside and recomputes "
                                                                         "their rows)" if bad else "")], 1 if bad else 0)
    if action == "compact":
        new = compact()
        return [f"compacted into {p}" for p in new] + [f"{len(new)} stores compacted"], 0
    if action == "prune":
        plan = prune(parse_date(older_than) if older_than else None, data_root, apply)
        verb = "removed" if apply else "would remove"
        lines = [f"{verb}: {p} ({mb:.1f} MB): {why}" for p, why, mb in plan]
        tail = f"{verb} {len(plan)} items, {sum(mb for _, _, mb in plan):.1f} MB"
        return lines + [tail + ("" if apply or not plan else "; run again with --apply to remove them")], 0
    raise TipkitError(f"unknown cache action {action!r}; known: compact, info, prune, verify")
