"""Sweeps: a grid of notebook executions described as data (YAML), run locally or on Slurm.

A sweep file names studies (a notebook and a grid of its parameters) and fixed parameters; every grid
cell is one papermill execution writing one executed notebook and one JSON record. A cell is skipped
when its record exists, reads back whole and its inputs (notebook, parameters, tipkit's code, the weights
file) are unchanged, so a crashed or interrupted sweep resumes without recomputing anything, and a damaged
record is re-made. Features are extracted once per (backbone, dataset, split, view) before the cells fan
out, and shared by all. A cell that fails is listed with its error line and executed notebook while the
others go on; Ctrl-C (or the sweep process dying) stops the running cells, and nothing is half-written.
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import hashlib
import itertools
import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from tipkit import paths
from tipkit.config import FIELDS, load_yaml, make_config
from tipkit.errors import TipkitError
from tipkit.experiments import workers
from tipkit.experiments.pipeline import check_methods
from tipkit.experiments.report import read_record
from tipkit.io import write_text

log = logging.getLogger(__name__)
TOP_KEYS = {"name", "fixed", "studies", "executor"}
STUDY_KEYS = {"notebook", "grid", "fixed"}
EXECUTOR_KEYS = {"kind", "jobs", "partition", "gpus", "time_min", "cpus", "mem_gb"}
EXECUTORS = ("local", "slurm", "submitit-local")


@dataclass
class Cell:
    notebook: Path
    params: dict[str, Any]
    record: Path
    executed: Path
    inputs: str  # hash of everything the result depends on
    error: str = ""  # why it failed (the notebook's error line), once run

    @property
    def name(self) -> str:
        return self.record.stem


@dataclass
class Sweep:
    name: str
    cells: list[Cell]
    executor: dict[str, Any] = field(default_factory=dict)


def notebook_parameters(notebook: Path) -> dict[str, Any]:
    """The notebook's ``parameters`` cell as {name: default value}."""
    import papermill as pm

    if not notebook.is_file():
        raise TipkitError(f"notebook not found: {notebook}")
    out = {}
    for name, p in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            out[name] = None
    return out


def _check_keys(where: str, got: dict, allowed: "set[str] | dict") -> None:
    if not isinstance(got, dict):
        raise TipkitError(f"{where} must be a mapping, got {type(got).__name__}")
    for k in got:
        if k not in allowed:
            raise TipkitError(f"unknown key {k!r} in {where}; known: {', '.join(sorted(allowed))}")


def check_params(notebook: Path, params: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Every parameter must be one of the notebook's, of the right type; RunConfig keys are checked fully."""
    _check_keys(f"the parameters of {notebook.name}", params, defaults)
    run_keys = {k: v for k, v in params.items() if k in FIELDS}
    check_methods(make_config(**run_keys))  # raises a TipkitError naming a badly typed key or unknown method
    for k, v in params.items():
        d = defaults[k]
        if k not in FIELDS and d is not None and v is not None and type(v) is not type(d) \
                and not (isinstance(d, float) and isinstance(v, int)):
            raise TipkitError(f"parameter {k!r} of {notebook.name} must be {type(d).__name__}, got {v!r}")


def code_hash() -> str:
    """Hash of tipkit's own source: a change to the library invalidates every cell."""
    h = hashlib.sha256()
    for p in sorted(paths.PACKAGE.rglob("*.py")):
        h.update(p.relative_to(paths.PACKAGE).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def _slug(value: Any) -> str:
    """A parameter value as a file-name part: lists joined with '-'."""
    if isinstance(value, (list, tuple)):
        return "-".join(_slug(v) for v in value)
    return str(value).replace("/", "_").replace(" ", "")


def _weights_hash(params: dict[str, Any]) -> str:
    from tipkit.models.backbone import file_sha256

    from tipkit.models import standin

    pre = params.get("pretrained", "standin")
    name = str(params.get("backbone", standin.NAME))
    path = (standin.checkpoint_path(name) if standin.size_of(name) else paths.STANDIN_CHECKPOINT) \
        if pre == "standin" else Path(str(pre))
    return file_sha256(path) if path.is_file() else str(pre)


def load_sweep(path: "str | Path", overrides: "dict[str, Any] | None" = None,
               set_params: "dict[str, Any] | None" = None) -> Sweep:
    """Parse and validate a sweep file: unknown keys, wrong types and empty grids are errors.

    ``overrides`` replace executor settings; ``set_params`` replace fixed notebook parameters of every cell.
    """
    spec = load_yaml(path)
    _check_keys(str(path), spec, TOP_KEYS)
    fixed = spec.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise TipkitError(f"{path}: 'fixed' must be a mapping of notebook parameters")
    studies = spec.get("studies")
    if not studies or not isinstance(studies, list):
        raise TipkitError(f"{path}: 'studies' must be a non-empty list of {{notebook, grid}}")
    executor = {**(spec.get("executor") or {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    _check_keys(f"{path}: executor", executor, EXECUTOR_KEYS)
    if executor.get("kind", "local") not in EXECUTORS:
        raise TipkitError(f"unknown executor {executor['kind']!r}; known: {', '.join(EXECUTORS)}")
    code = code_hash()
    cells: list[Cell] = []
    for i, study in enumerate(studies):
        _check_keys(f"{path}: studies[{i}]", study, STUDY_KEYS)
        if "notebook" not in study:
            raise TipkitError(f"{path}: studies[{i}] needs a 'notebook'")
        nb = (paths.REPO / study["notebook"]).resolve() if not Path(study["notebook"]).is_absolute() \
            else Path(study["notebook"])
        defaults = notebook_parameters(nb)
        grid = study.get("grid") or {}
        _check_keys(f"{path}: studies[{i}].grid", grid, defaults)
        for k, v in grid.items():
            if not isinstance(v, list) or not v:
                raise TipkitError(f"{path}: grid key {k!r} must be a non-empty list, got {v!r}")
        nb_sha = hashlib.sha256(nb.read_bytes()).hexdigest()
        for combo in itertools.product(*grid.values()) if grid else [()]:
            params = {**fixed, **(study.get("fixed") or {}), **dict(zip(grid, combo)), **(set_params or {})}
            check_params(nb, params, defaults)
            cfg = make_config(**{k: v for k, v in params.items() if k in FIELDS})
            extra = "".join(f"__{k}-{_slug(params[k])}" for k in sorted(params) if k not in FIELDS)
            run = f"{cfg.run_name()}{extra}"
            inputs = hashlib.sha256(json.dumps({"nb": nb_sha, "params": params, "code": code,
                                                "weights": _weights_hash(params)}, sort_keys=True,
                                               default=str).encode()).hexdigest()
            cells.append(Cell(nb, params, paths.records_dir() / nb.stem / f"{run}.json",
                              paths.executed_dir() / nb.stem / f"{run}.ipynb", inputs))
    if not cells:
        raise TipkitError(f"{path}: the grid is empty")
    return Sweep(str(spec.get("name") or Path(path).stem), cells, executor)


def is_done(cell: Cell) -> bool:
    """The cell's record exists, was made from today's inputs and reads back whole (else: run it again)."""
    sidecar = cell.record.with_suffix(".inputs")
    if not (cell.record.exists() and sidecar.exists() and sidecar.read_text().strip() == cell.inputs):
        return False
    _, why = read_record(cell.record)
    if why:
        log.warning("record %s is damaged (%s): running cell %s again", cell.record, why, cell.name)
    return why is None


def run_cell(notebook: str, params: dict[str, Any], record: str, executed: str) -> str:
    """Execute one cell (picklable: runs in a worker process or a Slurm job). Returns the record path."""
    from tipkit.experiments.notebooks import execute

    try:
        execute(Path(notebook), {**params, "out": record}, Path(executed))
    except KeyboardInterrupt:
        if workers.IN_WORKER:  # papermill has stopped its kernel and saved the executed notebook: end this worker
            os._exit(130)  # (returning would let it start the next queued cell)
        raise
    if not Path(record).exists():
        raise RuntimeError(f"{notebook} finished without writing {record}")
    return record


def error_line(e: BaseException) -> str:
    """One line saying why a cell failed: the notebook's ``Error: message`` when papermill raised."""
    if getattr(e, "ename", None):
        value = str(getattr(e, "evalue", "")).strip().splitlines()
        return f"{e.ename}: {value[0] if value else ''}"  # type: ignore[attr-defined]
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def prepare_features(cells: list[Cell]) -> None:
    """Extract, once, the val/test features and the few-shot views every run-config cell will need."""
    from tipkit.experiments.pipeline import prepare

    cfgs = [make_config(**{k: v for k, v in c.params.items() if k in FIELDS}) for c in cells]
    prepare(cfgs)


def _executor(kind: str, opts: dict[str, Any], folder: Path) -> Any:
    jobs = int(opts.get("jobs", 1))
    if kind == "local":
        threads = max(1, (os.cpu_count() or 1) // jobs)
        return cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                      initializer=workers.init, initargs=(threads,))
    import submitit

    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm" if kind == "slurm" else "local")
    params: dict[str, Any] = {"timeout_min": int(opts.get("time_min", 60)), "slurm_array_parallelism": jobs}
    if kind == "slurm":
        params.update(slurm_partition=opts.get("partition"), gpus_per_node=int(opts.get("gpus", 1)),
                      cpus_per_task=int(opts.get("cpus", 8)), mem_gb=int(opts.get("mem_gb", 32)))
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


def run_sweep(sweep: Sweep, force: bool = False, dry_run: bool = False) -> list[Cell]:
    """Run every cell not already done; return the failed cells (``cell.error``; the executed notebook
    holds the traceback). Ctrl-C stops the running cells and re-raises; finished cells are kept."""
    todo = [c for c in sweep.cells if force or not is_done(c)]
    log.info("sweep %s: %d cells, %d to run, %d done", sweep.name, len(sweep.cells), len(todo),
             len(sweep.cells) - len(todo))
    if dry_run or not todo:
        return []
    prepare_features(todo)
    kind = sweep.executor.get("kind", "local")
    failed: list[Cell] = []
    ex = _executor(kind, sweep.executor, paths.results_dir() / "submitit" / sweep.name)
    bar = tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="cell")
    pending: list = []
    try:
        if kind == "local":
            futs = {ex.submit(run_cell, str(c.notebook), c.params, str(c.record), str(c.executed)): c for c in todo}
            done_iter = ((futs[f], f) for f in cf.as_completed(futs))
        else:
            import submitit.helpers

            with ex.batch():
                pending = [(c, ex.submit(run_cell, str(c.notebook), c.params, str(c.record), str(c.executed)))
                           for c in todo]
            by_id = {j.job_id: c for c, j in pending}
            done_iter = ((by_id[j.job_id], j)
                         for j in submitit.helpers.as_completed([j for _, j in pending], poll_frequency=1))
        for cell, fut in done_iter:
            try:
                fut.result()
                write_text(cell.record.with_suffix(".inputs"), cell.inputs + "\n")
            except Exception as e:  # the executed notebook holds the traceback
                cell.error = error_line(e)
                log.error("cell %s failed: %s", cell.name, cell.error)
                failed.append(cell)
            bar.update()
    except KeyboardInterrupt:
        log.error("interrupted: stopping the running cells; finished cells are kept, run the sweep again to resume")
        if kind == "local":
            workers.stop(ex)
        else:
            for _, job in pending:
                job.cancel(check=False)
        raise
    finally:
        bar.close()
        if kind == "local":
            ex.shutdown(wait=True)
    for c in failed:
        log.error("failed: %s: %s (see %s)", c.name, c.error, c.executed)
    return failed
