"""Per-class prompt files in CuPL's JSON format: ``{"class name": ["a sentence", ...], ...}``.

CuPL (Pratt et al., ICCV 2023) and the codes built on it (APE's ``gpt3_prompts/CuPL_prompts_<dataset>.json``,
SuS-X's ``gpt3_prompts/``) give each class its own GPT-written sentences instead of templates. A run given
such a file (config key ``prompts``, flag ``--prompts FILE``) builds its text classifier from them
(:func:`tipkit.models.backbone.text_classifier`).
"""

from __future__ import annotations

import json
from pathlib import Path

from tipkit.errors import TipkitError


def _key(name: str) -> str:
    return " ".join(name.replace("_", " ").split()).lower()


def load_prompt_file(path: "str | Path", classnames: list[str]) -> list[list[str]]:
    """The sentences of every class of ``classnames`` (in that order) from the JSON file at ``path``.

    Class names match the file's keys exactly, else ignoring case, ``_`` versus spaces and repeated
    spaces. A missing file, malformed JSON, a missing class or a class without sentences is one
    :class:`TipkitError` naming it.
    """
    p = Path(path)
    if not p.is_file():
        raise TipkitError(f"prompt file not found: {p}")
    try:
        spec = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TipkitError(f"prompt file {p} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise TipkitError(f"prompt file {p} must map class names to lists of sentences, got {type(spec).__name__}")
    loose = {_key(k): v for k, v in spec.items()}
    out = []
    for name in classnames:
        sentences = spec.get(name, loose.get(_key(name)))
        if sentences is None:
            raise TipkitError(f"prompt file {p} has no sentences for class {name!r}; it holds "
                              f"{len(spec)} classes, e.g. {', '.join(repr(k) for k in list(spec)[:3])}")
        if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) and s.strip()
                                                                       for s in sentences):
            raise TipkitError(f"prompt file {p}: class {name!r} must have a non-empty list of sentences, "
                              f"got {sentences!r}"[:300])
        out.append(sentences)
    return out
