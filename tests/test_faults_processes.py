"""Process faults of a running sweep, with real processes: SIGKILL of the sweep, Ctrl-C (SIGINT), a notebook
cell that raises, damaged records and feature stores between two sweeps. After each, the next sweep and
report give the book numbers of a clean build (the report's CSVs)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import tipkit
from tipkit import paths
from tipkit.experiments import report

psutil = pytest.importorskip("psutil")
pytestmark = pytest.mark.slow
REPO = Path(tipkit.__file__).resolve().parents[1]
SPEC = {"fixed": {"dataset": "synthetic", "pretrained": "none", "epochs": 1, "augment_views": 1},
        "studies": [{"notebook": "notebooks/tip_adapter.ipynb", "grid": {"shots": [1, 2, 4]}}],
        "executor": {"jobs": 2}}
RUNNING = ".*.running.ipynb"  # papermill's output while a cell runs


def sweep_file(folder: Path, spec=SPEC) -> Path:
    p = folder / "sweep.yaml"
    p.write_text(json.dumps(spec))
    return p


def start(spec_file: Path, cache: Path, results: Path, log: Path) -> subprocess.Popen:
    """`python -m tipkit sweep` in its own session, with Ctrl-C's default meaning (as in a terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TIPKIT_CACHE": str(cache), "TIPKIT_RESULTS": str(results)}
    return subprocess.Popen([sys.executable, "-m", "tipkit", "sweep", str(spec_file)], env=env, cwd=REPO,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def sweep(spec_file: Path, cache: Path, results: Path, log: Path) -> int:
    p = start(spec_file, cache, results, log)
    try:
        return p.wait(600)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


def book_numbers(results: Path, out: Path) -> dict:
    """The report's tables, without what differs between two builds by nature (times, commit)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIPKIT_RESULTS", str(results))
        report.aggregate(results / "records", out)
    return {"summary": pd.read_csv(out / "summary.csv"),
            "runs": pd.read_csv(out / "runs.csv").drop(columns=["git_sha", "total_s"])}


def assert_same_numbers(a: dict, b: dict) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean sweep: its folders and its book numbers."""
    d = tmp_path_factory.mktemp("clean")
    assert sweep(sweep_file(d), d / "cache", d / "results", d / "log") == 0, (d / "log").read_text()
    return d, book_numbers(d / "results", d / "tables")


def interrupt(sig: int, group: bool, tmp_path: Path) -> tuple[dict, list, Path]:
    """Start a sweep, send ``sig`` once both workers run a cell; return the records at that moment, the
    processes the sweep had, and the executed-notebook folder."""
    cache, results = Path(os.environ["TIPKIT_CACHE"]), Path(os.environ["TIPKIT_RESULTS"])
    p = start(sweep_file(tmp_path), cache, results, tmp_path / "log1")
    executed = results / "executed" / "tip_adapter"
    deadline = time.monotonic() + 300
    while len(list(executed.glob(RUNNING))) < 2:
        assert p.poll() is None and time.monotonic() < deadline, (tmp_path / "log1").read_text()
        time.sleep(0.2)
    time.sleep(2)
    kids = psutil.Process(p.pid).children(recursive=True)
    records = {f: f.stat().st_mtime_ns for f in results.rglob("*.json")}
    running = {f.name for f in executed.glob(RUNNING)}
    (os.killpg if group else os.kill)(p.pid, sig)
    try:
        p.wait(120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return records, kids, (executed, running, p.returncode)


def gone(procs: list, within: float) -> list:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        alive = [q for q in procs if q.is_running() and q.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return []
        time.sleep(0.5)
    return [" ".join(q.cmdline())[:80] for q in alive]


def assert_nothing_half_written(results: Path, cache: Path, records_before: dict) -> None:
    after = {f: f.stat().st_mtime_ns for f in results.rglob("*.json")}
    assert after == records_before, "a cell wrote its record after the sweep was stopped"
    for f in after:
        assert report.read_record(f)[1] is None, f
    assert not list(results.rglob("*.tmp")) and not list(cache.rglob("*.tmp"))


@pytest.mark.parametrize("group", [True, False], ids=["ctrl-c", "kill-INT-pid"])
def test_sigint_stops_the_cells_and_the_next_start_resumes(clean, tmp_path, group):
    records, kids, (executed, running, rc) = interrupt(signal.SIGINT, group, tmp_path)
    assert rc == 130, (tmp_path / "log1").read_text()
    assert gone(kids, 15) == []  # workers and their kernels stopped
    started = {f".{f.stem}.running.ipynb" for f in executed.glob("*.ipynb")}
    assert started <= running, "a queued cell started after Ctrl-C"
    results, cache = Path(os.environ["TIPKIT_RESULTS"]), Path(os.environ["TIPKIT_CACHE"])
    assert_nothing_half_written(results, cache, records)
    assert "interrupted: stopping the running cells" in (tmp_path / "log1").read_text()
    assert sweep(sweep_file(tmp_path), cache, results, tmp_path / "log2") == 0
    assert_same_numbers(book_numbers(results, tmp_path / "tables"), clean[1])


def test_sigkill_of_the_sweep_stops_its_cells_and_the_next_start_resumes(clean, tmp_path):
    records, kids, (_, _, rc) = interrupt(signal.SIGKILL, False, tmp_path)
    assert rc == -signal.SIGKILL
    assert gone(kids, 15) == []  # no orphaned worker or kernel runs on unseen
    results, cache = Path(os.environ["TIPKIT_RESULTS"]), Path(os.environ["TIPKIT_CACHE"])
    assert_nothing_half_written(results, cache, records)
    assert sweep(sweep_file(tmp_path), cache, results, tmp_path / "log2") == 0
    assert_same_numbers(book_numbers(results, tmp_path / "tables"), clean[1])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    assert subprocess.run([sys.executable, "-m", "tipkit", "cache", "verify"], env=env).returncode == 0


def test_damaged_records_and_stores_are_redone_with_the_clean_numbers(clean, tmp_path):
    d = clean[0]
    results, cache = tmp_path / "results", tmp_path / "cache"
    shutil.copytree(d / "results", results)
    shutil.copytree(d / "cache", cache)
    recs = sorted((results / "records" / "tip_adapter").glob("*.json"))
    recs[0].write_text(recs[0].read_text()[:40])
    rec = json.loads(recs[1].read_text())
    del rec["metrics"]
    recs[1].write_text(json.dumps(rec))
    for shard in cache.rglob("*.pt"):
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert sweep(sweep_file(tmp_path), cache, results, tmp_path / "log") == 0
    log = (tmp_path / "log").read_text()
    for r, why in ((recs[0], "does not parse"), (recs[1], "lacks metrics")):
        assert f"record {r} is damaged ({why}" in log and f"running cell {r.stem} again" in log
    assert "2 to run, 1 done" in log and "Traceback" not in log
    assert list(cache.rglob("*.corrupt"))  # the stores the re-run cells read were moved aside and redone
    assert_same_numbers(book_numbers(results, tmp_path / "tables"), clean[1])


def test_a_cell_that_raises_is_listed_and_the_rest_goes_on(tmp_path):
    spec = {**SPEC, "studies": [{**SPEC["studies"][0], "grid": {"shots": [1, 99]}}]}
    log = tmp_path / "log"
    rc = sweep(sweep_file(tmp_path, spec), Path(os.environ["TIPKIT_CACHE"]), paths.results_dir(), log)
    out = log.read_text()
    assert rc == 1 and "1 of 2 cells failed:" in out
    failed = next(paths.executed_dir().glob("tip_adapter/*99shot*.ipynb"))
    assert "99shot__seed1: TipkitError: shots=99 is more than class 'horizontal stripes' holds (20 images)" in out
    assert f"executed notebook: {failed}" in out
    assert len(list(paths.records_dir().glob("tip_adapter/*1shot*.json"))) == 1
