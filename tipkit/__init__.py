"""tipkit: Tip-Adapter (Zhang et al., ECCV 2022) as a small library behind an executable book."""

from __future__ import annotations

__version__ = "0.1.0"
