"""Figures for the ablation and efficiency chapters, from the CSV tables ``python -m tipkit report`` writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tipkit import paths
from tipkit.labels import METHOD_LABELS


def table(name: str, folder: "str | Path | None" = None) -> pd.DataFrame:
    """One aggregated study table (e.g. ``alpha_sweep``) with readable method names."""
    df = pd.read_csv(Path(folder or paths.BOOK_DATA) / f"{name}.csv")
    if "method" in df:
        df["method"] = df["method"].map(lambda m: METHOD_LABELS.get(m, m))
    return df


def _long(df: pd.DataFrame, x: str, by: "str | None" = None) -> pd.DataFrame:
    """Validation and test accuracy as one ``accuracy`` column with a ``split`` column."""
    keep = [x] + ([by] if by else []) + ["seed" if "seed" in df else "run_seed"]
    out = df.melt(id_vars=[c for c in keep if c in df], value_vars=["val_acc", "acc"], var_name="split",
                  value_name="accuracy")
    out["split"] = out["split"].map({"val_acc": "validation", "acc": "test"})
    return out


def curve(df: pd.DataFrame, x: str, title: str, by: "str | None" = None, log2: bool = False,
          xlabel: "str | None" = None) -> Any:
    """Accuracy against one setting: validation dashed, test solid; error bars over seeds when several."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    data = _long(df, x, by)
    sns.lineplot(data=data, x=x, y="accuracy", hue=by, style="split", style_order=["test", "validation"],
                 marker="o", errorbar="sd", err_style="bars", ax=ax)
    if log2:
        ax.set_xscale("log", base=2)
        ticks = sorted(df[x].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set(title=title, xlabel=xlabel or x, ylabel="top-1 accuracy (%)")
    fig.tight_layout()
    return fig


def bars(df: pd.DataFrame, x: str, title: str, hue: "str | None" = None) -> Any:
    """Test accuracy per setting (and per ``hue``) as bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    sns.barplot(data=df, x=x, y="acc", hue=hue, errorbar="sd", ax=ax)
    lo = df["acc"].min()
    ax.set_ylim(max(0.0, lo - 10), min(100.0, df["acc"].max() + 3))
    ax.set(title=title, ylabel="test top-1 accuracy (%)")
    fig.tight_layout()
    return fig


def heatmap(df: pd.DataFrame, value: str = "val_acc", title: str = "") -> Any:
    """The α × β grid (rows β, columns α) of one run, the validation maximum marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    one = df[(df.dataset == df.dataset.iloc[0]) & (df.seed == df.seed.iloc[0])]
    grid = one.pivot_table(index="beta", columns="alpha", values=value).sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(7.0, 5.0))
    sns.heatmap(grid, cmap="viridis", ax=ax, cbar_kws={"label": f"{'validation' if value == 'val_acc' else 'test'} "
                                                                   "top-1 (%)"},
                xticklabels=max(1, len(grid.columns) // 10), yticklabels=max(1, len(grid.index) // 12))
    best = one[one.val_best.astype(bool)].iloc[0]
    r, c = list(grid.index).index(best.beta), list(grid.columns).index(best.alpha)
    ax.scatter([c + 0.5], [r + 0.5], marker="*", s=220, color="red", label="chosen on validation")
    ax.legend(loc="upper right")
    ax.set_xticklabels([f"{float(t.get_text()):.2f}" for t in ax.get_xticklabels()], rotation=90)
    ax.set_yticklabels([f"{float(t.get_text()):.2f}" for t in ax.get_yticklabels()], rotation=0)
    ax.set(title=title, xlabel="α (residual ratio)", ylabel="β (sharpness)")
    fig.tight_layout()
    return fig


RSS_RESOLUTION_MIB = 1.0  # below this a rise of resident memory is page-level noise, not a method's memory


def efficiency_table(df: pd.DataFrame) -> pd.DataFrame:
    """The measured efficiency table, shaped like the paper's Table 1 (one row per method and device).

    Peak memory is shown for training and inference; a CPU resident-memory rise under
    :data:`RSS_RESOLUTION_MIB` is left blank (NaN): at that size it measures pages, not the method.
    """
    mem = [c for c in df.columns if c.startswith(("train_peak_", "infer_peak_"))]
    out = df[["method", "device", "train_s", "inference_ms_per_image", "predict_ms_per_image", "acc"] + mem].copy()
    for c in mem:
        if "rss_increase" in c:
            out[c] = out[c].where(out[c] >= RSS_RESOLUTION_MIB)

    def mem_label(c: str) -> str:
        phase = "training" if c.startswith("train_") else "inference"
        kind = "CUDA allocated" if "cuda_allocated" in c else "RSS rise"
        return f"peak memory, {phase} ({kind}, MiB)"

    out = out.rename(columns={"train_s": "training (s)", "inference_ms_per_image": "inference (ms/image)",
                              "predict_ms_per_image": "head only (ms/image)", "acc": "test top-1 (%)",
                              **{m: mem_label(m) for m in mem}})
    return out.groupby(["method", "device"], sort=False).mean(numeric_only=True).reset_index()
