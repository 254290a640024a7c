"""Atomic file writes: a temp file in the target folder, then ``os.replace``.

A full disk (``ENOSPC``) or an exhausted quota (``EDQUOT``) while writing is one :class:`TipkitError`
naming the file; the temp file is removed and whatever ``path`` held before is untouched.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from tipkit.errors import TipkitError

FULL_DISK = (errno.ENOSPC, errno.EDQUOT)


def _full_disk(path: Path, e: BaseException) -> "TipkitError | None":
    if isinstance(e, OSError) and e.errno in FULL_DISK:
        return TipkitError(f"no space left to write {path} ({os.strerror(e.errno)}); nothing was written and "
                           "the file it would replace is unchanged: free space (python -m tipkit cache prune) "
                           "or set TIPKIT_CACHE / TIPKIT_RESULTS to a disk with room")
    return None


@contextmanager
def atomic_path(path: "str | Path") -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it over ``path``, on error delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise (_full_disk(path, e) or e) from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the permissions open() would
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = _full_disk(path, e)
        if full:
            raise full from None
        raise


def write_json(path: "str | Path", obj: Any) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    return Path(path)


def write_text(path: "str | Path", text: str, only_if_changed: bool = False) -> Path:
    """Write ``text`` atomically; with ``only_if_changed`` an identical file is left untouched (its mtime
    too, so builds that depend on it stay cached)."""
    path = Path(path)
    if only_if_changed and path.exists() and path.read_text() == text:
        return path
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def torch_save(path: "str | Path", obj: Any) -> Path:
    """``torch.save`` atomically. Serialised in memory and written through Python, so that a full disk is
    an ``OSError`` (ENOSPC) rather than torch's opaque ``PytorchStreamWriter failed`` RuntimeError."""
    with atomic_path(path) as tmp:
        buf = io.BytesIO()
        torch.save(obj, buf)
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
    return Path(path)


def save_safetensors(path: "str | Path", tensors: dict[str, torch.Tensor],
                     metadata: "dict[str, str] | None" = None) -> Path:
    """A state dict as safetensors (the same tensors always give the same bytes, unlike torch.save);
    ``metadata`` (strings) goes into the file's header."""
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    return Path(path)
