"""The scale benchmark drawn and tabled: cost against scale, and what fits a laptop CPU, from its CSVs.

Reads ``benchmarks/results/scale_<machine>.csv`` (written by ``python -m tipkit bench``); never runs it. A
machine kind appears only where its CSV exists: GPU rows are shown only where they were measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tipkit import paths
from tipkit.labels import METHOD_LABELS

LAPTOP_FIT_S = 600.0  # "fits a laptop": fitted within 10 minutes ...
LAPTOP_PEAK_GIB = 8.0  # ... in at most 8 GiB of memory (the bounds), measured on a CPU machine
GIB = 1024.0  # MiB per GiB
RUN_BOUND_S = {"tip_adapter_f": 300.0, "ape": 300.0, "ape_t": 300.0, "tip_x": 300.0}  # fit + predict at
DEFAULT_BOUND_S = 600.0  # ImageNet's shape on 2 CPU cores, as an outside probe measures it (issue 19): else 10 min
LADDER = ("fashion-mnist", "caltech101", "sun397", "imagenet")  # the scale axis: caches of 160 ... 16,000 images


def load_bench(folder: "str | Path | None" = None) -> pd.DataFrame:
    """Every ``scale_*.csv`` under ``folder`` (default ``benchmarks/results``), one frame (empty if none)."""
    files = sorted(Path(folder or paths.BENCH_RESULTS).glob("scale_*.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def method_rows(bench: pd.DataFrame) -> pd.DataFrame:
    """The methods' rows (not the encoder rows), with readable labels, the peak memory in GiB and a run label."""
    if "method" not in bench:  # no benchmark CSV yet
        return pd.DataFrame(columns=["machine", "device", "precision", "shape", "protocol", "method", "label",
                                     "cache_size", "status", "fit_s", "predict_s_per_1k", "peak_gib", "run",
                                     "timeout_s", "test_acc", "fit_peak_mib", "predict_peak_mib"])
    df = bench[~bench["method"].isin(["encode", "decode"])].copy()
    df["label"] = df["method"].map(lambda m: METHOD_LABELS.get(m, m))
    df["peak_gib"] = df[["fit_peak_mib", "predict_peak_mib"]].max(axis=1) / GIB
    df["run"] = df["machine"] + " " + df["precision"]
    return df


def measured(bench: pd.DataFrame, shape: str, method: str, column: str = "test_acc",
             device: str = "cpu") -> "float | None":
    """One finished row's value (mean over the machines of that device; None where none finished)."""
    df = method_rows(bench)
    hit = df[(df["shape"] == shape) & (df["method"] == method) & (df["status"] == "ok") & (df["device"] == device)]
    return float(hit[column].mean()) if len(hit) else None


def _order(labels: "pd.Series | list[str]") -> list[str]:
    seen = set(labels)
    return [m for m in METHOD_LABELS.values() if m in seen] + sorted(seen - set(METHOD_LABELS.values()))


def cost_vs_scale(bench: pd.DataFrame, shapes: "tuple[str, ...] | None" = LADDER) -> Any:
    """Fit time, predict time per 1,000 images and peak memory against the cache size (log axes).

    ``shapes``: the shapes drawn (default :data:`LADDER`, one per cache size; None or none present: all).
    One row of panels per measured machine and precision; solid lines the ``clean`` protocol, dashed the
    ``paper`` one (search on the whole validation split); a cross marks a method stopped at its timeout.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    df = method_rows(bench)
    if shapes and df["shape"].isin(shapes).any():
        df = df[df["shape"].isin(shapes)]
    runs = sorted(df["run"].unique())
    if not runs:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no benchmark results yet: python -m tipkit bench", ha="center", va="center")
        return fig
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(len(runs), 3, figsize=(14, 4.2 * len(runs)), squeeze=False)
    hue = _order(df["label"])
    palette = dict(zip(hue, sns.color_palette("tab20", len(hue))))
    panels = [("fit_s", "fit (s)"), ("predict_s_per_1k", "predict (s per 1,000 images)"), ("peak_gib", "peak memory (GiB)")]
    for row, run in zip(axes, runs):
        one = df[df["run"] == run].rename(columns={"method": "key", "label": "method"})
        ok = one[one["status"] == "ok"]
        for ax, (col, label) in zip(row, panels):
            sns.lineplot(data=ok, x="cache_size", y=col, hue="method", hue_order=hue, palette=palette,
                         style="protocol", style_order=["clean", "paper"], marker="o", ax=ax, legend=ax is row[-1])
            stopped = one[one["status"] == "timeout"]
            if col == "fit_s" and len(stopped):
                ax.scatter(stopped["cache_size"], stopped["timeout_s"], marker="x", s=80, color="black",
                           label="stopped at timeout", zorder=5)
                ax.legend(loc="upper left", fontsize="small")
            ax.set(xscale="log", yscale="log", xlabel="cache size K = 16 × classes", ylabel=label, title=f"{run}: {label}")
        if row[-1].get_legend():
            sns.move_legend(row[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize="small")
    fig.tight_layout()
    return fig


def _fits(r: pd.Series) -> bool:
    return r["status"] == "ok" and r["fit_s"] <= LAPTOP_FIT_S and r["peak_gib"] <= LAPTOP_PEAK_GIB


def _why(r: pd.Series) -> str:
    if r["status"] == "timeout":
        return f"stopped after {r['timeout_s']:.0f} s"
    if r["status"] != "ok":
        return str(r["status"])
    if r["fit_s"] > LAPTOP_FIT_S:
        return f"fit {r['fit_s'] / 60:.0f} min"
    return f"{r['peak_gib']:.1f} GiB"


def laptop_table(bench: pd.DataFrame) -> pd.DataFrame:
    """Per method, on the CPU, per protocol: the largest measured shape that fits a laptop (fit <=
    LAPTOP_FIT_S, peak <= LAPTOP_PEAK_GIB) before the first that does not, and that first one with why ("—"
    where every measured shape fits); then, per measured GPU run, the fit time at its largest shape. Derived
    from the CSV rows alone: a shape not yet measured is in neither column."""
    df = method_rows(bench)
    cpu, gpu = df[df["device"] == "cpu"], df[df["device"] == "cuda"]
    rows: dict[str, dict[str, str]] = {}
    for (label, protocol), g in cpu.groupby(["label", "protocol"]):
        g = g.sort_values("cache_size")
        fits = [_fits(r) for _, r in g.iterrows()]
        bad = next((i for i, f in enumerate(fits) if not f), None)
        last_ok = len(fits) - 1 if bad is None else bad - 1
        row = rows.setdefault(label, {"method": label})
        row[f"{protocol}: laptop CPU up to"] = g["shape"].iloc[last_ok] if last_ok >= 0 else "none"
        row[f"{protocol}: needs a GPU from"] = "—" if bad is None else f"{g['shape'].iloc[bad]} ({_why(g.iloc[bad])})"
    for (label, protocol, run), h in gpu.groupby(["label", "protocol", "run"]):
        big = h.sort_values("cache_size").iloc[-1]
        rows.setdefault(label, {"method": label})[f"{protocol}: {run} at {big['shape']}"] = \
            f"{big['fit_s']:.1f} s" if big["status"] == "ok" else _why(big)
    out = pd.DataFrame(list(rows.values()))
    if not len(out):
        return out
    order = {m: i for i, m in enumerate(_order(out["method"]))}
    return out.sort_values("method", key=lambda c: c.map(order)).reset_index(drop=True).fillna("—")


def shape_table(bench: pd.DataFrame, shape: str = "imagenet") -> pd.DataFrame:
    """Every measured method at one shape: fit, predict per 1,000 images, peak memory, test accuracy, status."""
    df = method_rows(bench)
    df = df[df["shape"] == shape]
    nan = pd.Series(float("nan"), index=df.index)
    total = (df["fit_s"] + df.get("predict_s", nan)) / 60.0
    bound = df["method"].map(lambda m: RUN_BOUND_S.get(m, DEFAULT_BOUND_S) / 60.0)
    out = pd.DataFrame({"machine": df["run"], "protocol": df["protocol"], "method": df["label"],
                        "fit (s)": df["fit_s"], "predict (s / 1k images)": df["predict_s_per_1k"],
                        "fit + predict (min)": total, "bound (min)": bound,
                        "peak memory (GiB)": df["peak_gib"].where(df["status"] == "ok"),
                        "test top-1 (%)": df["test_acc"], "load": df.get("load_1m", nan), "status": df["status"]})
    order = {m: i for i, m in enumerate(_order(out["method"]))}
    return out.sort_values(["machine", "protocol", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
