import json

import pytest

from tipkit import cli, paths
from tipkit.errors import TipkitError
from tipkit.experiments import report
from tipkit.experiments.sweep import load_sweep, run_sweep

SMOKE = {"dataset": "synthetic", "pretrained": "none", "epochs": 1, "augment_views": 1}


def write_sweep(tmp_path, grid, fixed=SMOKE, executor=None, name="s.yaml", notebook="notebooks/tip_adapter.ipynb"):
    spec = {"fixed": fixed, "studies": [{"notebook": notebook, "grid": grid}]}
    if executor:
        spec["executor"] = executor
    p = tmp_path / name
    p.write_text(json.dumps(spec))  # JSON is YAML
    return p


@pytest.mark.parametrize("spec, message", [
    ({"studies": [{"notebook": "notebooks/tip_adapter.ipynb", "grid": {"shotz": [1]}}]},
     "unknown key 'shotz' in"),
    ({"studies": [{"notebook": "notebooks/tip_adapter.ipynb", "grid": {"shots": ["two"]}}]},
     "config key 'shots' must be int, got 'two'"),
    ({"studies": [{"notebook": "notebooks/tip_adapter.ipynb", "grid": {"shots": []}}]},
     "grid key 'shots' must be a non-empty list"),
    ({"studies": []}, "'studies' must be a non-empty list"),
    ({"studies": [{"notebook": "notebooks/nope.ipynb"}]}, "notebook not found"),
    ({"stuides": []}, "unknown key 'stuides'"),
    ({"studies": [{"notebook": "notebooks/tip_adapter.ipynb"}], "executor": {"kind": "pbs"}},
     "unknown executor 'pbs'; known: local, slurm, submitit-local"),
])
def test_bad_sweep_files_name_the_key_and_run_nothing(tmp_path, capsys, spec, message):
    p = tmp_path / "bad.yaml"
    p.write_text(json.dumps(spec))
    with pytest.raises(TipkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_sweep(p)
    assert cli.main(["sweep", str(p)]) == 2
    assert message in capsys.readouterr().err
    assert not paths.results_dir().exists()


def test_code_hash_changes_with_the_library_source(tmp_path, monkeypatch):
    import tipkit.experiments.sweep as sweep_mod

    (tmp_path / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(paths, "PACKAGE", tmp_path)
    h = sweep_mod.code_hash()
    (tmp_path / "a.py").write_text("x = 2\n")
    assert sweep_mod.code_hash() != h


@pytest.mark.slow
def test_sweep_runs_skips_and_resumes(tmp_path, monkeypatch):
    import tipkit.experiments.sweep as sweep_mod

    monkeypatch.setattr(sweep_mod, "code_hash", lambda: "pinned")  # the source tree may be edited meanwhile
    sweep = load_sweep(write_sweep(tmp_path, {"shots": [1, 2], "seed": [1]}, executor={"jobs": 2}))
    assert run_sweep(sweep) == []
    recs = sorted(paths.records_dir().glob("tip_adapter/*.json"))
    assert [json.loads(r.read_text())["config"]["shots"] for r in recs] == [1, 2]
    executed = sorted(paths.executed_dir().glob("tip_adapter/*.ipynb"))
    assert len(executed) == 2
    nb = json.loads(executed[0].read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
    mtimes = [p.stat().st_mtime_ns for p in recs]
    # nothing changed: nothing recomputed
    assert run_sweep(load_sweep(write_sweep(tmp_path, {"shots": [1, 2], "seed": [1]}))) == []
    assert [p.stat().st_mtime_ns for p in recs] == mtimes
    # a grown grid runs only the new cell; a changed input re-runs its cell
    changed = {**SMOKE, "epochs": 2}
    sweep = load_sweep(write_sweep(tmp_path, {"shots": [1], "seed": [1]}, fixed=changed))
    assert run_sweep(sweep) == []
    assert json.loads(recs[0].read_text())["config"]["epochs"] == 2
    assert recs[1].stat().st_mtime_ns == mtimes[1]
    tables = report.aggregate(out_dir=tmp_path / "tables")
    assert [p.name for p in tables] == ["runs.csv", "summary.csv", "shift.csv", "histories.csv", "provenance.csv",
                                         "executions.csv"]
    import pandas as pd

    ex = pd.read_csv(tmp_path / "tables" / "executions.csv")
    assert len(ex) == 2 and set(ex.status) == {"ok"} and (ex.seconds > 0).all()
    # every table and figure function the book calls works on what the report wrote
    from tipkit.figures import plots

    summary = plots.load_summary(tmp_path / "tables" / "summary.csv")
    table = plots.results_table(summary)
    assert table.shape[0] == 3 and list(table.columns) == ["1-shot", "2-shot"]
    runs = pd.read_csv(tmp_path / "tables" / "runs.csv").query("split == 'test'")
    assert plots.few_shot_curves(runs).axes
    cmp = plots.paper_comparison(summary, plots.load_reported(), shots=16)
    assert len(cmp) == 11 and cmp.drop(columns="dataset").map(lambda v: v.endswith("· not run here")).all().all()
    assert len(plots.provenance_table(tmp_path / "tables" / "provenance.csv")) == 2
    assert "torch" in plots.versions_table(tmp_path / "tables" / "provenance.csv").index


@pytest.mark.slow
def test_failed_cells_are_listed_and_exit_non_zero(tmp_path, capsys):
    p = write_sweep(tmp_path, {"shots": [1, 99]})
    assert cli.main(["sweep", str(p)]) == 1
    err = capsys.readouterr().err
    assert "1 of 2 cells failed" in err and "99shot" in err and ".ipynb" in err
    failed_nb = next(paths.executed_dir().glob("tip_adapter/*99shot*.ipynb"))
    outputs = [o for c in json.loads(failed_nb.read_text())["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert outputs and "shots=99 is more than class 'horizontal stripes' holds" in outputs[0]["evalue"]  # failed before any work
    assert not list(paths.records_dir().glob("tip_adapter/*99shot*"))


@pytest.mark.slow
def test_submitit_local_executor(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"shots": [1]}), {"kind": "submitit-local"})
    assert run_sweep(sweep) == []
    assert sweep.cells[0].record.exists()
    assert list((paths.results_dir() / "submitit").rglob("*_log.out"))
