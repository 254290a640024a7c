"""Execute a parameterised notebook with papermill (one executed copy per run)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tipkit import paths

log = logging.getLogger(__name__)


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
