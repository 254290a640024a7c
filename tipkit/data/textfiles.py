"""The small text files a user writes beside their images (``classnames.txt``, ``templates.txt``).

They are read as UTF-8, with or without a byte-order mark (Windows Notepad writes one) and with any line
ending (``\\n``, ``\\r\\n``, ``\\r``). Anything else (latin-1, UTF-16, a binary file) is one
:class:`TipkitError` naming the file, the line and the byte that is not UTF-8.
"""

from __future__ import annotations

from pathlib import Path

from tipkit.errors import TipkitError


def read_lines(path: Path) -> list[str]:
    """The lines of UTF-8 text file ``path`` (BOM dropped, line endings removed)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TipkitError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise TipkitError(f"{path}:1: the file is UTF-16; save it as UTF-8 (tipkit reads text files as UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise TipkitError(f"{path}:{line}: byte 0x{data[e.start]:02x} at column {column} is not UTF-8; save the "
                          "file as UTF-8 (tipkit reads text files as UTF-8, with or without a BOM)") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise TipkitError(f"{path}:{line}: holds a NUL byte, so it is not a text file; save it as UTF-8 text")
    return text.splitlines()
