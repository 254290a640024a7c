"""Student and teacher notebooks from one source (`python -m tipkit classroom`): the teacher notebook runs,
the student one holds no solution, and its checks fail — saying what is missing — until filled in."""

import copy
import re

import nbformat
import pytest

from tipkit import cli
from tipkit.errors import TipkitError
from tipkit.experiments import classroom

# Small and fast: the synthetic data set and a randomly initialised stand-in, two views.
PARAMS = {"dataset": "synthetic", "pretrained": "none", "shots": 2, "augment_views": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("classroom")
    written = classroom.build_classroom(out)
    return {who: nbformat.read(files[0], as_version=4) for who, files in written.items()}


def _tags(cell):
    return cell.metadata.get("tags", [])


def _solution_lines(nb):
    """Every substantial line of the source's solution cells (code and markdown)."""
    lines = set()
    for c in nb.cells:
        if "solution" in _tags(c):
            for line in c.source.splitlines():
                line = line.strip()
                if len(line) > 12 and not line.startswith("```") and not line.startswith(":"):
                    lines.add(line)
    return lines


def test_student_notebook_holds_no_solution_text(built):
    source = nbformat.read(classroom.paths.NOTEBOOKS / "walkthrough.ipynb", as_version=4)
    lines = _solution_lines(source)
    assert len(lines) > 10
    text = "\n".join(c.source for c in built["student"].cells)
    assert not [line for line in lines if line in text]
    assert "**Solution.**" not in text and "solution-start" not in text
    teacher = "\n".join(c.source for c in built["teacher"].cells)
    code_lines = {ln for c in source.cells if "solution" in _tags(c) and c.cell_type == "code"
                  for ln in c.source.splitlines() if ln.strip()}
    assert code_lines <= set(teacher.splitlines())  # the teacher keeps every line of the solutions


def test_checks_kept_and_stubs_in_place_of_solutions(built):
    source = nbformat.read(classroom.paths.NOTEBOOKS / "walkthrough.ipynb", as_version=4)
    checks = [c.source for c in source.cells if "check" in _tags(c)]
    assert len(checks) >= 4
    for who in ("student", "teacher"):
        assert [c.source for c in built[who].cells if "check" in _tags(c)] == checks
    stubs = [c for c in built["student"].cells if "exercise" in _tags(c)]
    assert len(stubs) == sum(1 for c in source.cells if "solution" in _tags(c) and c.cell_type == "code")
    assert all("..." in c.source for c in stubs)
    assert any("answer = ..." in c.source for c in stubs)
    assert any("keys3, values3 = ..., ..." in c.source for c in stubs)


def test_myst_directives_become_jupyter_markdown(built):
    for who in ("student", "teacher"):
        text = "\n".join(c.source for c in built[who].cells if c.cell_type == "markdown")
        assert "```{" not in text and "{doc}" not in text
        headings = re.findall(r"### Exercise (\d+):", text)
        assert headings == [str(i) for i in range(1, len(headings) + 1)] and len(headings) >= 6
        assert text.count("<details>") >= 6  # the quick checks open on a click


def test_stub_names_only_what_the_checks_read():
    src = "import numpy as np\nx = 1\na, b = 2, 3\nc: int = 4\nanswer = x + a"
    assert classroom.stub(src, {"answer", "b"}).splitlines()[1:] == ["a, b = ..., ...", "answer = ..."]
    assert classroom.stub(src, set()).splitlines()[-1] == "..."


def test_a_notebook_without_solutions_is_refused():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(TipkitError, match="no cell tagged 'solution'"):
        classroom.split_notebook(nb)


def test_cli_writes_both(tmp_path, capsys):
    assert cli.main(["classroom", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "student" / "walkthrough.ipynb").exists()
    assert (tmp_path / "teacher" / "walkthrough.ipynb").exists()
    assert "student:" in capsys.readouterr().out


def _execute(nb, allow_errors):
    """Run a notebook with PARAMS injected after its parameters cell, as papermill does."""
    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in _tags(c))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in PARAMS.items())))
    NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=allow_errors).execute()
    return nb


def _errors(nb):
    return {i: o for i, c in enumerate(nb.cells) if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"}


@pytest.mark.slow
def test_teacher_notebook_runs_and_its_checks_pass(built):
    nb = _execute(built["teacher"], allow_errors=False)
    results = ["".join(o.get("data", {}).get("text/plain", "") for o in c.outputs)
               for c in nb.cells if "check" in _tags(c)]
    assert results and all(r.startswith("correct:") for r in results), results


@pytest.mark.slow
def test_student_checks_fail_until_filled_in(built):
    nb = _execute(built["student"], allow_errors=True)
    errors = _errors(nb)
    checks = [i for i, c in enumerate(nb.cells) if "check" in _tags(c)]
    for i in checks:
        assert i in errors, f"check cell {i} passed with nothing filled in"
        assert errors[i].ename == "ExerciseError" and "is not filled in yet" in errors[i].evalue, errors[i].evalue
    assert set(errors) == set(checks)  # everything else in the student notebook runs
