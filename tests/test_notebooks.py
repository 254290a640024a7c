import ast
import json

import nbformat
import pytest

from tipkit import paths, report
from tipkit.notebooks import execute_runs

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


@pytest.mark.slow
def test_papermill_smoke_run_on_random_init_model():
    nb = paths.NOTEBOOKS / "tip_adapter.ipynb"
    params = {"dataset": "synthetic", "pretrained": "none", "epochs": "1"}
    failed = execute_runs(nb, shots=[1, 2], seeds=[1], extra=params)
    assert failed == []
    recs = report.load_records()
    assert sorted(r["config"]["shots"] for r in recs) == [1, 2]
    executed = sorted(paths.executed_dir().glob("*.ipynb"))
    assert len(executed) == 2
    out = json.loads(executed[0].read_text())
    injected = [c for c in out["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert injected and "synthetic" in "".join(injected[0]["source"])
    # a second call skips both runs (records exist) and rewrites nothing
    mtimes = [p.stat().st_mtime_ns for p in executed]
    assert execute_runs(nb, shots=[1, 2], seeds=[1], extra=params) == []
    assert [p.stat().st_mtime_ns for p in executed] == mtimes
    # the aggregation step turns the records into the book's tables
    written = report.aggregate(out_dir=paths.results_dir() / "tables")
    assert [p.name for p in written] == ["runs.csv", "summary.csv", "provenance.csv"]


@pytest.mark.slow
def test_rejected_parameter_fails_before_any_work():
    nb = paths.NOTEBOOKS / "tip_adapter.ipynb"
    failed = execute_runs(nb, shots=[99], seeds=[1], extra={"dataset": "synthetic", "pretrained": "none"})
    assert len(failed) == 1 and failed[0].exists()
    out = json.loads(failed[0].read_text())
    errors = [o for c in out["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and "shots=99 is more than class 0 holds" in errors[0]["evalue"]
    assert not paths.records_dir().exists() and not paths.feature_cache_dir().exists()
