"""Tables and figures for the book, from the aggregated CSV files (never from typed numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from . import paths
from .report import METHOD_LABELS

METHOD_ORDER = list(METHOD_LABELS.values())


def load_summary(path: "str | Path | None" = None) -> pd.DataFrame:
    """The ``summary.csv`` written by ``python -m tipkit report`` with readable method names."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "summary.csv")
    df["method"] = df["method"].map(lambda m: METHOD_LABELS.get(m, m))
    return df


def results_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide table: rows (dataset, backbone, method), columns shots, cells ``mean ± std`` (% top-1)."""
    cell = summary.assign(v=[f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"
                             for m, s, n in zip(summary["mean"], summary["std"], summary["seeds"])])
    wide = cell.pivot_table(index=["dataset", "backbone", "method"], columns="shots", values="v", aggfunc="first")
    wide.columns = [f"{k}-shot" for k in wide.columns]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    return wide.sort_index(key=lambda s: s.map(order) if s.name == "method" else s)


def value(summary: pd.DataFrame, method: str, shots: int, dataset: "str | None" = None) -> float:
    """One mean accuracy from the summary (for numbers quoted in prose)."""
    rows = summary[(summary.method == METHOD_LABELS.get(method, method)) & (summary.shots == shots)]
    if dataset:
        rows = rows[rows.dataset == dataset]
    if len(rows) != 1:
        raise KeyError(f"expected one summary row for {method} at {shots} shots, found {len(rows)}")
    return float(rows["mean"].iloc[0])


def few_shot_curve(summary: pd.DataFrame, runs: "pd.DataFrame | None" = None, title: str = "") -> Any:
    """Seaborn line plot: top-1 vs shots (log2 axis) per method, error bars = std over seeds."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    if runs is not None and runs["seed"].nunique() > 1:
        data = runs.assign(method=runs["method"].map(lambda m: METHOD_LABELS.get(m, m)))
        sns.lineplot(data=data, x="shots", y="top1", hue="method", hue_order=METHOD_ORDER, marker="o",
                     errorbar="sd", err_style="bars", ax=ax)
    else:
        sns.lineplot(data=summary, x="shots", y="mean", hue="method", hue_order=METHOD_ORDER, marker="o", ax=ax)
    ax.set_xscale("log", base=2)
    shots = sorted(summary["shots"].unique())
    ax.set_xticks(shots, [str(s) for s in shots])
    ax.set_xlabel("shots per class")
    ax.set_ylabel("test top-1 accuracy (%)")
    ax.set_title(title)
    ax.legend(title=None)
    fig.tight_layout()
    return fig


def provenance_table(path: "str | Path | None" = None) -> pd.DataFrame:
    """The ``provenance.csv`` written by ``python -m tipkit report``, shaped for reading."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "provenance.csv")
    out = df[["dataset", "backbone", "shots", "seed", "created", "run_seconds"]].copy()
    out["git SHA"] = df["git_sha"].str.slice(0, 12)
    out["weights"] = df["weights"].str.slice(0, 23)
    return out.sort_values(["dataset", "backbone", "shots", "seed"]).reset_index(drop=True)


def versions_table(path: "str | Path | None" = None) -> pd.DataFrame:
    """Package versions recorded by the runs (one row per distinct set)."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "provenance.csv")
    cols = [c for c in df.columns if c.startswith("v_")]
    return df[cols].drop_duplicates().rename(columns=lambda c: c[2:]).T.rename(columns=lambda i: "version")
