"""Tables and figures for the book, from the aggregated CSV files (never from typed numbers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tipkit import paths
from tipkit.labels import METHOD_LABELS, PROTOCOL_LABELS

METHOD_ORDER = list(METHOD_LABELS.values())


def method_label(name: str) -> str:
    """A registry method's display name (``tip_adapter_f`` -> ``Tip-Adapter-F``); unknown names unchanged."""
    return METHOD_LABELS.get(name, name)


def book_table(df: pd.DataFrame, digits: "dict[str, int] | int" = 1) -> Any:
    """A table as the book shows it: no index column, floats to ``digits`` places (one number, or per column;
    default 1) with thousands separators, ``—`` for missing values; numeric columns right-aligned on one line,
    with a gap before them so that neighbouring numbers never run together."""
    places = (lambda c: digits.get(c, 1)) if isinstance(digits, dict) else (lambda c: digits)
    fmt = {c: f"{{:,.{places(c)}f}}" for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    sty = df.style.hide(axis="index").format(fmt, na_rep="—")
    return sty.set_properties(subset=numeric, **{"white-space": "nowrap", "text-align": "right",
                                                 "padding-left": "0.75em"}) if numeric else sty


def number_of(cell: Any) -> float:
    """The leading number of a table cell (``80.5``, ``"80.5 ± 0.5"``, ``"85.92 · 80.20 (paper)"``); NaN if none."""
    import math
    import re

    if isinstance(cell, (int, float)):
        return float(cell)
    m = re.match(r"\s*(-?\d[\d,]*\.?\d*)", str(cell))
    return float(m.group(1).replace(",", "")) if m else math.nan


def readable(df: pd.DataFrame, caption: "str | None" = None, best: bool = True) -> Any:
    """A methods × columns table as the book shows it: numeric cells on one line (``white-space: nowrap``),
    right-aligned, the best of each column in bold (``best``), an optional caption."""
    nums = df.map(number_of)

    def bold(col: pd.Series) -> list[str]:
        top = nums[col.name].max()
        return ["font-weight: bold" if best and v == top else "" for v in nums[col.name]]
    sty = df.style.set_properties(**{"white-space": "nowrap", "text-align": "right", "padding-left": "1em"})
    sty = sty.apply(bold, axis=0).set_table_attributes('class="numeric-table"').set_table_styles(
        [{"selector": "th", "props": [("white-space", "normal !important")]}])  # headers may wrap, numbers not
    return sty.set_caption(caption) if caption else sty


def present(methods: "pd.Series | list[str]") -> list[str]:
    """The methods that occur, in the book's order (known ones first, then the rest sorted)."""
    seen = set(methods)
    return [m for m in METHOD_ORDER if m in seen] + sorted(seen - set(METHOD_ORDER))


def load_summary(path: "str | Path | None" = None) -> pd.DataFrame:
    """The ``summary.csv`` written by ``python -m tipkit report`` with readable method names."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "summary.csv")
    df["method"] = df["method"].map(lambda m: METHOD_LABELS.get(m, m))
    return df


def results_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Wide table: rows (dataset, backbone, method), columns shots, cells ``mean ± std`` (% top-1)."""
    summary = summary.assign(backbone=summary["backbone"].map(backbone_label))
    cell = summary.assign(v=[f"{m:.2f} ± {s:.2f}" if n > 1 else f"{m:.2f}"
                             for m, s, n in zip(summary["mean"], summary["std"], summary["seeds"])])
    cell["protocol"] = cell["protocol"].map(lambda p: PROTOCOL_LABELS.get(p, p))
    wide = cell.pivot_table(index=["dataset", "backbone", "protocol", "method"], columns="shots", values="v",
                            aggfunc="first")
    wide.columns = [f"{k}-shot" for k in wide.columns]
    order = {m: i for i, m in enumerate(present(summary["method"]))}
    return wide.sort_index(key=lambda s: s.map(order) if s.name == "method" else s)


def without_small_standins(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without the rows of the smaller stand-ins (``tipkit-standin-small``, ``-tiny``): they are the
    backbone comparison's (the miniature page), not the results'."""
    from tipkit.models.standin import NAME, SIZES

    return df[~df["backbone"].isin([n for n in SIZES.values() if n != NAME])]


def results_tables(summary: pd.DataFrame) -> list[Any]:
    """One readable table per (dataset, backbone, protocol): methods as rows, shots as columns, cells
    ``mean ± std`` on one line, the best of each column in bold, the setting in the caption."""
    out = []
    for (ds, bb, proto), part in summary.groupby(["dataset", "backbone", "protocol"], sort=True):
        cell = part.assign(v=[f"{m:.1f} ± {s:.1f}" if n > 1 else f"{m:.1f}"
                              for m, s, n in zip(part["mean"], part["std"], part["seeds"])])
        wide = cell.pivot_table(index="method", columns="shots", values="v", aggfunc="first")
        wide.columns = [f"{k}-shot" for k in wide.columns]
        wide = wide.loc[present(list(wide.index))].rename_axis(None)
        out.append(readable(wide, f"{ds} · {backbone_label(bb)} · {PROTOCOL_LABELS.get(proto, proto)}"))
    return out


def value(summary: pd.DataFrame, method: str, shots: int, dataset: "str | None" = None,
          protocol: str = "clean") -> float:
    """One mean accuracy from the summary (for numbers quoted in prose)."""
    rows = summary[(summary.method == METHOD_LABELS.get(method, method)) & (summary.shots == shots)
                   & (summary.protocol == protocol)]
    if dataset:
        rows = rows[rows.dataset == dataset]
    if len(rows) != 1:
        raise KeyError(f"expected one summary row for {method} at {shots} shots, found {len(rows)}")
    return float(rows["mean"].iloc[0])


PAPER_REPORTED = paths.REPO / "reference" / "paper_reported.csv"


def backbone_label(name: str) -> str:
    """How a backbone is named in the book: the stand-in is always labelled as such."""
    from tipkit.models.standin import LABEL, NAME

    return f"{NAME} ({LABEL})" if name == NAME else name


def load_reported(path: "str | Path | None" = None) -> pd.DataFrame:
    """The paper's reported numbers (``reference/paper_reported.csv``), one row per source."""
    return pd.read_csv(Path(path) if path else PAPER_REPORTED)


def paper_comparison(summary: pd.DataFrame, reported: pd.DataFrame, shots: int = 16, backbone: str = "RN50",
                     source_prefix: str = "official repository exp.log",
                     fill: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """Datasets × methods: the paper's number, ours beside it where a record exists (``paper · ours (protocol)``,
    the ``paper`` protocol first), and where none exists ``paper · —``. ``fill`` (from :func:`tipkit.fill_plan`:
    ``dataset, command, planned, machine``) adds a last column, ``planned (to fill)``: one planned time per row
    and the machine it was measured on (the commands: :func:`fill_commands`, one block); without it a missing
    cell says *not run here*."""
    rep = reported[(reported.shots == shots) & (reported.backbone == backbone)
                   & reported.source.str.startswith(source_prefix)]
    ours = summary.assign(method_key=summary["method"].map({v: k for k, v in METHOD_LABELS.items()}))
    plan = {} if fill is None else {r["dataset"]: r for r in fill.to_dict("records")}
    cells: dict[str, dict[str, str]] = {}
    todo: dict[str, str] = {}
    for _, r in rep.iterrows():
        got = []
        for protocol in ("paper", "clean"):
            hit = ours[(ours.dataset == r.tipkit_dataset) & (ours.backbone == backbone) & (ours.shots == shots)
                       & (ours.method_key == r.method) & (ours.protocol == protocol)]
            if len(hit):
                got.append(f"{hit['mean'].iloc[0]:.2f} ({protocol})")
        p = plan.get(r.tipkit_dataset)
        missing = "—" if p else "not run here"
        cells.setdefault(r.dataset, {})[METHOD_LABELS.get(r.method, r.method)] = \
            f"{r.top1:.2f} · {', '.join(got) if got else missing}"
        if not got and p:
            todo[r.dataset] = f"{p['planned']} on {p['machine']}"
    df = pd.DataFrame.from_dict(cells, orient="index")
    df = df[present(list(df.columns))].sort_index()
    if todo:
        df["planned (to fill)"] = [todo.get(d, "—") for d in df.index]
    return df.rename_axis("dataset").reset_index()


def fill_commands(comparison: pd.DataFrame, reported: pd.DataFrame, fill: "pd.DataFrame | None") -> str:
    """The commands that fill :func:`paper_comparison`'s missing cells, one line per dataset with one, as one
    block (then ``python -m tipkit report``)."""
    if fill is None or "planned (to fill)" not in comparison:
        return ""
    names = dict(zip(reported["dataset"], reported["tipkit_dataset"]))
    need = {names.get(d, d) for d, p in zip(comparison["dataset"], comparison["planned (to fill)"]) if p != "—"}
    lines = [r["command"] for r in fill.to_dict("records") if r["dataset"] in need]
    return "\n".join(lines + ["python -m tipkit report"]) if lines else ""


def few_shot_curves(runs: pd.DataFrame) -> Any:
    """One panel per (dataset, protocol): test top-1 vs shots per method, error bars = std over seeds."""
    import seaborn as sns

    data = runs.assign(method=runs["method"].map(lambda m: METHOD_LABELS.get(m, m)),
                       backbone=runs["backbone"].map(backbone_label),
                       protocol=runs["protocol"].map(lambda p: PROTOCOL_LABELS.get(p, p)))
    sns.set_theme(style="whitegrid", context="notebook")
    g = sns.relplot(data=data, x="shots", y="top1", hue="method", hue_order=present(data["method"]), col="protocol",
                    row="dataset", kind="line", marker="o", errorbar="sd", err_style="bars",
                    height=3.8, aspect=1.2, facet_kws={"sharey": True})
    shots = sorted(data["shots"].unique())
    for ax in g.axes.flat:
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots, [str(s) for s in shots])
    g.set_axis_labels("shots per class", "test top-1 (%)")
    g.set_titles("{row_name} — {col_name}")
    g.figure.suptitle(", ".join(sorted(data["backbone"].unique())), y=1.02)
    return g.figure


def provenance_table(path: "str | Path | None" = None) -> pd.DataFrame:
    """The ``provenance.csv`` written by ``python -m tipkit report``, shaped for reading."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "provenance.csv")
    out = df[["study", "dataset", "backbone", "shots", "seed", "created", "run_seconds"]].copy()
    out["git SHA"] = df["git_sha"].str.slice(0, 12)
    out["weights"] = df["weights"].str.slice(0, 23)
    return out.sort_values(["study", "dataset", "backbone", "shots", "seed"]).reset_index(drop=True)


def versions_table(path: "str | Path | None" = None) -> pd.DataFrame:
    """Package versions recorded by the runs (one row per distinct set)."""
    df = pd.read_csv(Path(path) if path else paths.BOOK_DATA / "provenance.csv")
    cols = [c for c in df.columns if c.startswith("v_")]
    return df[cols].drop_duplicates().rename(columns=lambda c: c[2:]).T.rename(columns=lambda i: "version")
