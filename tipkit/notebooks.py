"""Execute parameterised notebooks with papermill: one executed copy and one record per run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from . import paths
from .config import make_config
from .errors import TipkitError

log = logging.getLogger(__name__)


def _coerce(value: str) -> Any:
    """Command-line parameter text -> int, float, bool or str (``none`` stays a string: random init)."""
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(value.lower(), value)


def execute(notebook: Path, parameters: dict[str, Any], executed: Path) -> None:
    """Run ``notebook`` with ``parameters`` into ``executed``.

    papermill writes into a temp file that is renamed into place when it stops, whether the run passed
    or failed (a failed notebook is the log that says why), so ``executed`` is never half-written.
    """
    import papermill as pm

    executed.parent.mkdir(parents=True, exist_ok=True)
    tmp = executed.with_name(f".{executed.stem}.running.ipynb")
    try:
        pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, kernel_name="python3",
                            progress_bar=False, cwd=str(paths.REPO))
    finally:
        if tmp.exists():
            tmp.replace(executed)


def execute_runs(notebook: Path, shots: list[int], seeds: list[int], extra: "dict[str, str] | None" = None,
                 force: bool = False) -> list[Path]:
    """Execute ``notebook`` once per (shots, seed); skip runs whose record exists. Return failed notebooks."""
    if not notebook.is_file():
        raise TipkitError(f"notebook not found: {notebook}")
    params = {k: _coerce(v) for k, v in (extra or {}).items()}
    cells = [make_config(**params, shots=k, seed=s) for k in shots for s in seeds]  # validates keys and types
    failed = []
    for cfg in tqdm(cells, desc=f"papermill {notebook.name}", unit="run"):
        name = cfg.run_name()
        record = Path(cfg.out) if cfg.out else paths.records_dir() / f"{name}.json"
        executed = paths.executed_dir() / f"{notebook.stem}__{name}.ipynb"
        if record.exists() and not force:
            log.info("skip %s: record exists", name)
            continue
        try:
            execute(notebook, {**params, "shots": cfg.shots, "seed": cfg.seed, "out": str(record)}, executed)
        except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
            log.error("%s failed: %s", name, str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__)
            failed.append(executed)
    for f in failed:
        log.error("failed run, see %s", f)
    return failed
