"""Append one measured row to a benchmark's CSV under ``benchmarks/results/`` (header written once)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence


def append_row(path: Path, header: Sequence[str], row: Sequence[Any]) -> None:
    """Add ``row`` to the CSV at ``path``, writing ``header`` first when the file is new."""
    if len(header) != len(row):
        raise ValueError(f"{len(row)} values for {len(header)} columns")
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(header)
        w.writerow(row)
