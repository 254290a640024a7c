"""Student and teacher notebooks from one source (``python -m tipkit classroom``, ``make classroom``).

The source is a book notebook (the walkthrough) whose exercise cells carry tags:

- ``solution``: a solution, in MyST ``{solution-start}`` … ``{solution-end}`` markdown cells around code
  cells, or a ``{solution}`` markdown cell. The teacher notebook keeps them; the student notebook drops the
  markdown and replaces each solution code cell by a stub: ``name = ...`` for every name the cell assigns
  that a later ``check`` cell reads (or a bare ``...`` when none is), so the checks fail, saying what is
  missing, until the student fills them in.
- ``check``: a cell that runs a ``tipkit.teach.check_*`` on the student's answer; kept in both.

Both notebooks turn the book's MyST directives into plain Markdown for Jupyter: an ``{exercise}`` becomes
a numbered heading, a dropdown ``{admonition}`` (the quick checks) a ``<details>`` block that opens on a
click, a ``{doc}`` link its text. Outputs are cleared; the files are written atomically.
"""

from __future__ import annotations

import ast
import copy
import logging
import re
from pathlib import Path

import nbformat

from tipkit import paths
from tipkit.errors import TipkitError
from tipkit.io import write_text

log = logging.getLogger(__name__)

SOURCES = ("walkthrough",)  # the book notebooks with exercises
_FENCE = re.compile(r"```\{(?P<name>[a-z-]+)\}[ \t]*(?P<arg>[^\n]*)\n(?P<body>.*?)```", re.S)


def _options(body: str) -> tuple[dict[str, str], str]:
    """A directive's ``:key: value`` lines and the rest of its body."""
    opts, lines = {}, body.splitlines()
    while lines and re.match(r":[\w-]+:", lines[0]):
        key, _, value = lines.pop(0)[1:].partition(":")
        opts[key] = value.strip()
    return opts, "\n".join(lines).strip()


def to_jupyter_markdown(source: str, counter: list[int]) -> str:
    """The book's MyST directives in one markdown cell as plain Jupyter Markdown (``counter``: exercises so far)."""

    def repl(m: re.Match) -> str:
        name, arg = m["name"], m["arg"].strip()
        opts, body = _options(m["body"])
        if name == "exercise":
            counter[0] += 1
            return f"### Exercise {counter[0]}: {arg}\n\n{body}"
        if name in ("solution", "solution-start"):
            return f"**Solution.**\n\n{body}".rstrip()
        if name == "solution-end":
            return ""
        if name == "admonition" and "dropdown" in opts.get("class", ""):
            return f"<details><summary><b>{arg}</b> (click)</summary>\n\n{body}\n\n</details>"
        return m[0]

    out = _FENCE.sub(repl, source)
    return re.sub(r"\{doc\}`([^`<]*?)\s*<[^>]*>`", r"\1", out).strip()


def _assigned(source: str) -> list[ast.stmt]:
    return [n for n in ast.parse(source).body if isinstance(n, (ast.Assign, ast.AnnAssign))]


def _loaded(source: str) -> set[str]:
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def stub(solution: str, checked: set[str]) -> str:
    """The student's cell for a solution code cell: ``name = ...`` for each assigned name a check reads."""
    lines, seen = [], set()
    for node in _assigned(solution):
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target]):
            names = [e.id for e in target.elts] if isinstance(target, ast.Tuple) else (
                [target.id] if isinstance(target, ast.Name) else [])
            if names and set(names) & checked and not set(names) <= seen:
                seen |= set(names)
                lines.append(f"{', '.join(names)} = {', '.join(['...'] * len(names))}")
    head = "# Your code here: replace each ... (then run the check below)." if lines else "# Your code here."
    return "\n".join([head, *lines] if lines else [head, "..."])


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return list(cell.metadata.get("tags", []))


def split_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    """``(student, teacher)`` notebooks from one tagged source notebook."""
    checks = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code" and "check" in _tags(c)]
    if not any("solution" in _tags(c) for c in nb.cells):
        raise TipkitError("the notebook has no cell tagged 'solution': nothing to split into student and teacher")
    student, teacher = copy.deepcopy(nb), copy.deepcopy(nb)
    student.cells, teacher.cells = [], []
    counters = {"student": [0], "teacher": [0]}
    for i, cell in enumerate(nb.cells):
        is_solution = "solution" in _tags(cell)
        for who, out in (("student", student), ("teacher", teacher)):
            c = copy.deepcopy(cell)
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
                if is_solution and who == "student":
                    read = set().union(*(_loaded(x.source) for j, x in checks if j > i))
                    c.source = stub(cell.source, read)
                    c.metadata["tags"] = [t for t in _tags(c) if t != "solution"] + ["exercise"]
            elif c.cell_type == "markdown":
                if is_solution and who == "student":
                    continue
                c.source = to_jupyter_markdown(c.source, counters[who])
                if not c.source:
                    continue
            out.cells.append(c)
    return student, teacher


def build_classroom(out_dir: "str | Path | None" = None, names: tuple[str, ...] = SOURCES) -> dict[str, list[Path]]:
    """Write ``<out_dir>/student/<name>.ipynb`` and ``<out_dir>/teacher/<name>.ipynb`` for each source
    notebook (default ``_build/classroom``). Returns the paths written, by audience."""
    out = Path(out_dir) if out_dir is not None else paths.REPO / "_build" / "classroom"
    written: dict[str, list[Path]] = {"student": [], "teacher": []}
    for name in names:
        src = paths.NOTEBOOKS / f"{name}.ipynb"
        if not src.exists():
            raise TipkitError(f"no notebook {name!r} in {paths.NOTEBOOKS}; expected one of {list(SOURCES)}")
        student, teacher = split_notebook(nbformat.read(src, as_version=4))
        for who, nb in (("student", student), ("teacher", teacher)):
            target = out / who / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_text(target, nbformat.writes(nb))
            written[who].append(target)
    log.info("classroom: %d student and %d teacher notebooks in %s", len(written["student"]),
             len(written["teacher"]), out)
    return written
