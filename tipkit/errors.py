"""The one exception type tipkit raises for bad user input.

The CLI catches :class:`TipkitError` and prints its message as a single line
(no traceback) before exiting non-zero; everything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class TipkitError(Exception):
    """A user-facing error: bad value, missing file, unknown name."""


def choose(kind: str, value: str, known: "list[str] | tuple[str, ...]") -> str:
    """Return ``value`` if it is in ``known``, else raise a one-line error listing them."""
    if value not in known:
        raise TipkitError(f"unknown {kind} {value!r}; known: {', '.join(sorted(known))}")
    return value
