"""Run records (one JSON per run) and their aggregation into tidy tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from tipkit import paths
from tipkit.io import write_json
from tipkit.labels import METHOD_LABELS
from tipkit.version import __version__

log = logging.getLogger(__name__)
MAIN_STUDY = "tip_adapter"  # the notebook whose records make the main results tables
RECORD_FIELDS = ("config", "timings", "model", "versions", "git_sha", "created")  # what the tables read
CONFIG_FIELDS = ("dataset", "backbone", "pretrained", "shots", "seed")
VERSIONED = ("torch", "torchvision", "open_clip_torch", "numpy", "papermill", "jupyter-book")


def git_sha(repo: Path = paths.REPO) -> str:
    """The checkout's commit (with ``-dirty`` when it has changes), or ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "tipkit": __version__}
    for pkg in VERSIONED:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def make_record(**fields: Any) -> dict[str, Any]:
    """A run record: the given fields plus versions, git SHA, host, creation time and ``id`` (16 hex digits
    of the sha256 of all of them; a saved adapter names its run by it)."""
    record = {"schema": 1, **fields, "versions": versions(), "git_sha": git_sha(), "host": platform.node(),
              "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    record["id"] = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return record


def record_path(config: dict[str, Any]) -> Path:
    from tipkit.config import RunConfig

    if config.get("out"):
        return Path(config["out"])
    return paths.records_dir() / MAIN_STUDY / f"{RunConfig(**config).run_name()}.json"


def write_record(record: dict[str, Any]) -> Path:
    """Write ``record`` atomically to its path (``config.out`` or the records folder)."""
    path = record_path(record["config"])
    write_json(path, record)
    log.info("wrote %s", path)
    return path


def record_problem(record: Any, study: str = MAIN_STUDY) -> "str | None":
    """Why a parsed record cannot be used (``None`` when it can): the fields the tables read must be there,
    ``metrics`` ({split: {method: top-1}}) for the main study, ``metrics`` or ``tables`` for the others."""
    if not isinstance(record, dict):
        return "not a JSON object"
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        return f"lacks {', '.join(missing)}"
    c = record["config"]
    if not isinstance(c, dict) or any(k not in c for k in CONFIG_FIELDS):
        return f"its config lacks one of {', '.join(CONFIG_FIELDS)}"
    if not isinstance(record["timings"], dict) or not isinstance(record["model"], dict) \
            or "weights" not in record["model"] or not isinstance(record["versions"], dict):
        return "its timings, model or versions are not what a record holds"
    metrics, tables = record.get("metrics"), record.get("tables")
    if metrics is None and (tables is None or study == MAIN_STUDY):
        return "lacks metrics" if study == MAIN_STUDY else "lacks metrics and tables"
    if metrics is not None and not (isinstance(metrics, dict) and all(
            isinstance(a, dict) and all(isinstance(v, (int, float)) for v in a.values()) for a in metrics.values())):
        return "its metrics are not {split: {method: top-1}}"
    if tables is not None and not (isinstance(tables, dict) and all(
            isinstance(t, list) and all(isinstance(r, dict) for r in t) for t in tables.values())):
        return "its tables are not {name: [rows]}"
    return None


def read_record(path: Path) -> "tuple[dict[str, Any] | None, str | None]":
    """``(record, None)``, or ``(None, why)`` for a record that does not parse or lacks what the tables need."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        return None, f"does not parse ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    why = record_problem(record, path.parent.name)
    return (None, why) if why else (record, None)


def load_records(folder: "str | Path | None" = None, recursive: bool = False) -> list[dict[str, Any]]:
    """Records (JSON) in ``folder`` (default: the main study's), each tagged with its study (folder name).
    A damaged or incomplete record is skipped with a warning naming it and the sweep cell that re-makes it."""
    folder = Path(folder) if folder else paths.records_dir() / MAIN_STUDY
    files = sorted(folder.rglob("*.json") if recursive else folder.glob("*.json"))
    out = []
    for p in files:
        record, why = read_record(p)
        if record is None:
            log.warning("skipping damaged record %s (%s): re-run its cell %s/%s (run the sweep again)",
                        p, why, p.parent.name, p.stem)
            continue
        out.append({"study": p.parent.name, **record})
    return out


def tidy(records: list[dict[str, Any]]) -> "Any":
    """One row per (run, method, split): dataset, backbone, pretrained, protocol, shots, seed, method, split, top1."""
    import pandas as pd

    rows = []
    for r in records:
        c = r["config"]
        for split, accs in r["metrics"].items():
            for method, acc in accs.items():
                rows.append({"dataset": c["dataset"], "backbone": c["backbone"], "pretrained": c["pretrained"],
                             "protocol": c.get("protocol", "clean"), "shots": c["shots"], "seed": c["seed"],
                             "method": method, "split": split,
                             "top1": acc, "git_sha": r.get("git_sha"), "total_s": r["timings"].get("total_s")})
    return pd.DataFrame(rows)


def histories(records: list[dict[str, Any]]) -> "Any":
    """One row per (run, trained method, epoch): dataset, backbone, protocol, shots, seed, method, epoch,
    val_acc — the training curves of the records' trained methods (Tip-Adapter-F, CLIP-Adapter, ...)."""
    import pandas as pd

    rows = []
    for r in records:
        c = r["config"]
        for method, epochs in (r.get("history") or {}).items():
            for e in epochs if isinstance(epochs, list) else []:
                if isinstance(e, dict) and "epoch" in e and "val_acc" in e:
                    rows.append({"dataset": c["dataset"], "backbone": c["backbone"],
                                 "protocol": c.get("protocol", "clean"), "shots": c["shots"], "seed": c["seed"],
                                 "method": method, "epoch": e["epoch"], "val_acc": e["val_acc"]})
    return pd.DataFrame(rows, columns=["dataset", "backbone", "protocol", "shots", "seed", "method", "epoch",
                                       "val_acc"])


def provenance(records: list[dict[str, Any]]) -> "Any":
    """One row per run record: what ran, on which commit and versions, when, and how long."""
    import pandas as pd

    return pd.DataFrame([{
        "study": r.get("study", MAIN_STUDY), "dataset": r["config"]["dataset"], "backbone": r["config"]["backbone"],
        "shots": r["config"]["shots"], "seed": r["config"]["seed"], "git_sha": r["git_sha"], "created": r["created"],
        "run_seconds": r["timings"].get("total_s"), "weights": r["model"]["weights"],
        **{f"v_{k}": v for k, v in r["versions"].items()}} for r in records])


def study_tables(records: list[dict[str, Any]]) -> "dict[str, Any]":
    """Tables that ablation/efficiency records carry (``record["tables"][name]`` = list of rows), each
    concatenated over records with the run's dataset, backbone, shots and seed as columns (``run_shots``
    etc. where the table has a column of that name already)."""
    import pandas as pd

    out: dict[str, list] = {}
    for r in records:
        c = r["config"]
        for name, rows in (r.get("tables") or {}).items():
            frame = pd.DataFrame(rows)
            run = {k if k not in frame else f"run_{k}": c[k] for k in ("dataset", "backbone", "shots", "seed")}
            out.setdefault(name, []).append(frame.assign(**run))
    return {name: pd.concat(frames, ignore_index=True) for name, frames in out.items()}


def executions(folder: "str | Path | None" = None) -> "Any":
    """One row per executed notebook (papermill's metadata): study, run, status, start time, duration."""
    import pandas as pd

    folder = Path(folder) if folder else paths.executed_dir()
    rows = []
    for p in sorted(folder.rglob("*.ipynb")):
        if p.name.startswith("."):
            continue  # a run still in progress (or killed): its temp file
        try:
            meta = json.loads(p.read_text()).get("metadata", {}).get("papermill", {})
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
            log.warning("skipping damaged executed notebook %s (%s): re-run its cell %s/%s",
                        p, type(e).__name__, p.parent.name, p.stem)
            continue
        rows.append({"study": p.parent.name, "run": p.stem, "status": "failed" if meta.get("exception") else "ok",
                     "started": meta.get("start_time"), "seconds": round(meta.get("duration") or 0.0, 1)})
    return pd.DataFrame(rows, columns=["study", "run", "status", "started", "seconds"])


def aggregate(records_dir: "str | Path | None" = None, out_dir: "str | Path" = paths.BOOK_DATA) -> list[Path]:
    """Write the book's tables into ``out_dir``: ``runs.csv`` (tidy rows of the main study), ``summary.csv``
    (test mean ± std over seeds), ``shift.csv`` (the same on each extra test set, ``test_set``),
    ``histories.csv`` (training curves), ``provenance.csv`` (every record), ``executions.csv`` (every executed
    notebook's status and time) and one CSV per study table."""
    from tipkit.errors import TipkitError
    from tipkit.io import write_text

    root = Path(records_dir) if records_dir else paths.records_dir()
    everything = load_records(root, recursive=True)  # each damaged record skipped with one warning
    main = [r for r in everything if r["study"] == MAIN_STUDY]
    if not main:
        raise TipkitError(f"no run records in {root / MAIN_STUDY}: run a sweep first (make book does)")
    df = tidy(main)
    out_dir = Path(out_dir)
    test = df[df.split == "test"]
    summary = (test.groupby(["dataset", "backbone", "pretrained", "protocol", "method", "shots"])["top1"]
               .agg(mean="mean", std="std", seeds="count").reset_index())
    summary["std"] = summary["std"].fillna(0.0)
    shifted = df[df.split.str.startswith("test:")].assign(test_set=lambda d: d.split.str.slice(5))
    shift = (shifted.groupby(["dataset", "test_set", "backbone", "pretrained", "protocol", "method", "shots"])["top1"]
             .agg(mean="mean", std="std", seeds="count").reset_index())
    shift["std"] = shift["std"].fillna(0.0)
    tables = {"runs": df.to_csv(index=False), "summary": summary.to_csv(index=False, float_format="%.4f"),
              "shift": shift.to_csv(index=False, float_format="%.4f"),
              "histories": histories(main).to_csv(index=False, float_format="%.4f"),
              "provenance": provenance(everything).to_csv(index=False), "executions": executions().to_csv(index=False),
              **{name: t.to_csv(index=False) for name, t in study_tables(everything).items()}}
    written = [write_text(out_dir / f"{name}.csv", text, only_if_changed=True) for name, text in tables.items()]
    log.info("aggregated %d records (%d in the main study) into %s", len(everything), len(main), out_dir)
    return written


def record_table(record: dict[str, Any], what: str = "metrics", method: str = "tip_adapter_f") -> "Any":
    """A record as a small DataFrame: ``metrics`` (method × split) or ``history`` (one method's epochs)."""
    import pandas as pd

    if what == "history":
        return pd.DataFrame(record["history"].get(method, []))
    df = pd.DataFrame(record["metrics"]).rename(index=METHOD_LABELS)
    return df[[c for c in ("val", "test") if c in df]].round(2)


class Stopwatch:
    """Wall-clock time since creation, for a study's ``timings``."""

    def __init__(self) -> None:
        import time

        self._t0 = time.perf_counter()

    def seconds(self) -> float:
        import time

        return round(time.perf_counter() - self._t0, 3)


def write_study(config: Any, study: str, tables: "dict[str, Any]", clock: "Stopwatch | None" = None,
                **extra: Any) -> Path:
    """Write an ablation/efficiency notebook's record: its config and its result tables (DataFrames),
    atomically, to ``config.out`` or ``<records>/<study>/<run name>.json``. Returns the path."""
    from dataclasses import asdict

    from tipkit.models.backbone import resolve_pretrained

    _, weights = resolve_pretrained(config.backbone, config.pretrained)
    record = make_record(config=asdict(config), study=study,
                         tables={name: df.to_dict("records") for name, df in tables.items()},
                         timings={"total_s": clock.seconds() if clock else None},
                         model={"name": config.backbone, "pretrained": config.pretrained, "weights": weights},
                         **extra)
    path = Path(config.out) if config.out else paths.records_dir() / study / f"{config.run_name()}.json"
    write_json(path, record)
    log.info("wrote %s", path)
    return path
