"""The on-disk feature store: append-only shards, safe without locks on a shared filesystem.

One store is a folder ``<feature cache>/<key>/`` (the key hashes every input, see
:func:`tipkit.models.features.feature_key`)::

    meta.json                                  what the key was made of (for ``tipkit cache info|prune``)
    <time_ns, 20 digits>-<host>-<pid>-<hex>.pt one shard: {format, indices [n], features [n, D], crc32}
    <shard>.pt.corrupt                         a damaged shard, moved aside (never deleted silently)

A writer never rewrites a file: it adds its rows as a new shard, written to a temp file and renamed into
place, so there is no read-modify-write to lock and nothing a crash or a second writer can lose. A reader
takes the union of the shards; a row present in several shards (two writers computed it at once) is taken
from the shard whose name sorts first (**first writer wins**: names start with the write time), so every
reader that sees the same shards gets the same tensor. :meth:`FeatureStore.compact` merges the shards into
one, named after the first so the union is unchanged at every moment, then deletes the merged shards.

A shard that cannot be read, has the wrong layout, rows that do not match its indices, the wrong width or
a checksum that does not match is moved aside with a ``.corrupt`` suffix (one warning line naming it) and its
rows are treated as missing, so the caller recomputes them.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import socket
import time
import zlib
from pathlib import Path

import numpy as np
import torch

from tipkit.errors import TipkitError
from tipkit.io import torch_save

log = logging.getLogger(__name__)
SHARD_FORMAT = 3
SHARD_GLOB = "[0-9]*.pt"  # temp files start with "." and moved-aside ones end in ".corrupt"
CORRUPT = ".corrupt"


def _checksum(indices: torch.Tensor, features: torch.Tensor) -> int:
    crc = zlib.crc32(memoryview(np.ascontiguousarray(indices.numpy())).cast("B"))
    return zlib.crc32(memoryview(np.ascontiguousarray(features.numpy())).cast("B"), crc)


def _uid() -> str:
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


def shard_problem(obj: object, dim: "int | None" = None, size: "int | None" = None) -> "str | None":
    """Why a loaded shard cannot be used (``None`` when it can): layout, rows vs indices, width, checksum."""
    if not isinstance(obj, dict) or not {"format", "indices", "features", "crc32"} <= set(obj):
        return "wrong layout: not a tipkit feature shard {format, indices, features, crc32}"
    idx, feats = obj["indices"], obj["features"]
    if obj["format"] != SHARD_FORMAT:
        return f"wrong layout: shard format {obj['format']!r}, expected {SHARD_FORMAT}"
    if not isinstance(idx, torch.Tensor) or not isinstance(feats, torch.Tensor) \
            or idx.dtype != torch.int64 or feats.dtype != torch.float32 or idx.dim() != 1 or feats.dim() != 2:
        return "wrong layout: indices must be int64 [n] and features float32 [n, D]"
    if len(idx) != len(feats) or len(idx) == 0:
        return f"rows do not match their indices: {len(feats)} rows for {len(idx)} indices"
    ascending = bool((idx[1:] > idx[:-1]).all())  # writers write sorted indices: unique without a sort
    if (not ascending and len(torch.unique(idx)) != len(idx)) or int(idx.min()) < 0 \
            or (size is not None and int(idx.max()) >= size):
        return f"rows do not match their indices: indices repeat or fall outside 0..{size}"
    if dim is not None and feats.shape[1] != dim:
        return f"wrong width: {feats.shape[1]} features per row, the model gives {dim}"
    if _checksum(idx, feats) != obj["crc32"]:
        return "contents do not match their checksum"
    return None


class FeatureStore:
    """The shards of one feature store (folder ``root``); ``dim`` and ``size`` (rows of the split), when
    given, are checked on every shard read."""

    def __init__(self, root: Path, dim: "int | None" = None, size: "int | None" = None):
        self.root, self.dim, self.size = Path(root), dim, size

    def shards(self) -> list[Path]:
        """The shard files, in first-writer-wins order."""
        return sorted(self.root.glob(SHARD_GLOB), key=lambda p: p.name) if self.root.is_dir() else []

    def _read(self, path: Path, dim: "int | None") -> "tuple[dict | None, str | None]":
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except PermissionError as e:
            raise TipkitError(f"cannot read feature shard {path}: {e.strerror or e}") from None
        except Exception as e:  # truncated zip (RuntimeError, OSError), not a torch file, unpickling refused ...
            return None, f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        problem = shard_problem(obj, dim, self.size)
        return (None, problem) if problem else (obj, None)

    def move_aside(self, path: Path, why: str) -> None:
        """Rename a damaged shard to ``<name>.corrupt`` and log one warning line naming it."""
        try:
            os.replace(path, path.with_name(path.name + CORRUPT))
        except FileNotFoundError:
            return  # another reader moved it aside first
        log.warning("damaged feature shard %s (%s): moved aside to %s%s; its rows will be recomputed",
                    path, why, path.name, CORRUPT)

    def read(self, move_aside: bool = True) -> tuple[list[Path], torch.Tensor, torch.Tensor]:
        """The union ``(shards used, indices [N] sorted, features [N, D])``; damaged shards are moved aside
        (or, with ``move_aside=False``, only skipped). A shard removed meanwhile (compaction) means: list again."""
        for _ in range(10):
            used, parts, dim = [], [], self.dim
            try:
                for p in self.shards():
                    obj, why = self._read(p, dim)
                    if obj is None:
                        if move_aside:
                            self.move_aside(p, str(why))
                        continue
                    used.append(p)
                    parts.append(obj)
                    dim = obj["features"].shape[1]  # without a known width, the first shard's is the rule
            except FileNotFoundError:
                continue
            return (used, *merge([o["indices"] for o in parts], [o["features"] for o in parts], self.dim))
        raise TipkitError(f"feature store {self.root} kept changing while it was read; try again")

    def problems(self) -> list[tuple[Path, str]]:
        """Every damaged shard and why, without moving anything (``tipkit cache verify``)."""
        out = []
        dim = self.dim
        for p in self.shards():
            try:
                obj, why = self._read(p, dim)
            except FileNotFoundError:
                continue
            if why:
                out.append((p, why))
            else:
                dim = obj["features"].shape[1]
        return out

    def add(self, indices: "np.ndarray | torch.Tensor", features: torch.Tensor, order: "str | None" = None) -> Path:
        """Write ``features [n, D]`` of ``indices [n]`` as a new shard (atomic); return its path.
        ``order`` (the sort prefix) is for :meth:`compact`; writers leave it to the clock."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64).contiguous()
        feats = features.detach().to("cpu", torch.float32).contiguous()
        if idx.dim() != 1 or feats.dim() != 2 or len(idx) != len(feats):
            raise ValueError(f"need indices [n] and features [n, D], got {tuple(idx.shape)} and {tuple(feats.shape)}")
        path = self.root / f"{order or f'{time.time_ns():020d}'}-{_uid()}.pt"
        torch_save(path, {"format": SHARD_FORMAT, "indices": idx, "features": feats, "crc32": _checksum(idx, feats)})
        return path

    def compact(self) -> "Path | None":
        """Merge every readable shard into one (atomic write, then the merged shards are deleted); the union
        readers see is the same before, during and after. Returns the new shard, or None with < 2 shards."""
        used, idx, feats = self.read()
        if len(used) < 2:
            return None
        new = self.add(idx, feats, order=used[0].name.split("-", 1)[0])
        for p in used:
            p.unlink(missing_ok=True)
        log.info("compacted %d shards of %s into %s", len(used), self.root, new.name)
        return new


def merge(indices: list[torch.Tensor], features: list[torch.Tensor], dim: "int | None" = None
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Union of shards given in first-writer-wins order: ``(indices [N] sorted, features [N, D])``,
    each index once, its row from the first shard holding it."""
    if not indices:
        return torch.empty(0, dtype=torch.int64), torch.empty(0, dim or 0)
    if len(indices) == 1 and bool((indices[0][1:] > indices[0][:-1]).all()):
        return indices[0], features[0]
    uniq = np.unique(torch.cat(indices).numpy())
    out = torch.empty(len(uniq), features[0].shape[1])
    for idx, feats in zip(reversed(indices), reversed(features)):  # the first shard writes last: it wins
        out[torch.from_numpy(np.searchsorted(uniq, idx.numpy()))] = feats
    return torch.from_numpy(uniq), out
