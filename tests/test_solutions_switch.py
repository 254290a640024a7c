"""The book's switch that leaves the exercises' solutions out (tipkit.sphinx_solutions): on a tiny Sphinx
project, a plain {solution} and a gated {solution-start}…{solution-end} region both vanish with
TIPKIT_HIDE_SOLUTIONS=1, the exercise stays, and without the switch the solutions are there (folded)."""

import os
import subprocess
import sys

import pytest

PAGE = """# Page

```{exercise} Add two numbers
:label: ex-add
What is 1 + 1? EXERCISE-TEXT
```

```{solution-start} ex-add
:class: dropdown
```
GATED-SOLUTION-TEXT
```{solution-end}
```

```{solution} ex-add
:class: dropdown
PLAIN-SOLUTION-TEXT
```

AFTER-TEXT
"""


def _build(tmp_path, hide):
    src, out = tmp_path / "src", tmp_path / f"out-{hide}"
    src.mkdir(exist_ok=True)
    (src / "conf.py").write_text("extensions = ['myst_parser', 'tipkit.sphinx_solutions']\n")
    (src / "index.md").write_text(PAGE)
    env = {**os.environ, "TIPKIT_HIDE_SOLUTIONS": hide}
    r = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "-n", str(src), str(out)],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return (out / "index.html").read_text()


@pytest.mark.parametrize("hide, shown", [("", True), ("1", False)])
def test_switch_removes_every_solution(tmp_path, hide, shown):
    html = _build(tmp_path, hide)
    assert "EXERCISE-TEXT" in html and "AFTER-TEXT" in html
    for text in ("GATED-SOLUTION-TEXT", "PLAIN-SOLUTION-TEXT"):
        assert (text in html) is shown
    if shown:
        assert 'class="solution dropdown' in html
