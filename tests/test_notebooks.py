import ast

import nbformat
import pytest

from tipkit import paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_thin_and_clean(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "needs a papermill parameters cell"
    for c in code:
        assert not c.outputs and c.execution_count is None, "committed notebooks carry no outputs"
        tree = ast.parse(c.source)
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))], \
            "notebooks hold no def/class: logic lives in tipkit"


def _tipkit_uses(source: str) -> tuple[list[str], list[str]]:
    """``(imports of tipkit, top-level names used as tipkit.<name>)`` in a cell or page's code."""
    tree = ast.parse(source)
    imports = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               and any(a.name.startswith("tipkit") for a in n.names) or (isinstance(n, ast.ImportFrom)
                                                                        and (n.module or "").startswith("tipkit"))]
    names = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
             and n.value.id == "tipkit"]
    return imports, names


def _book_code(page) -> str:
    import re

    return "\n".join(re.findall(r"```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*(.*?)```", page.read_text(), flags=re.S))


@pytest.mark.parametrize("path", NOTEBOOKS + sorted(paths.BOOK.glob("*.md")), ids=lambda p: p.name)
def test_notebooks_and_pages_use_the_public_face(path):
    """Notebooks and book pages write ``import tipkit`` and ``tipkit.<public name>`` only."""
    import tipkit

    if path.suffix == ".ipynb":
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    else:
        source = _book_code(path)
    imports, names = _tipkit_uses(source)
    assert all(i == "import tipkit" for i in imports), imports
    assert set(names) <= set(tipkit.__all__) | {"paths"}, sorted(set(names) - set(tipkit.__all__))
