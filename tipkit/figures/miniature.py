"""The paper's Tables 3 and 5 in miniature, beside the paper's: backbones (the three stand-ins) and distribution
shift (Fashion-MNIST -> its re-collected and sketch test sets), read from ``summary.csv`` and ``shift.csv``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tipkit import paths
from tipkit.figures.plots import load_reported, present
from tipkit.labels import METHOD_LABELS
from tipkit.models.standin import SIZES

SHIFT_NAMES = {"fashion-mnist": "Fashion-MNIST", "fashion-mnist-v2": "-V2 (re-collected)",
               "fashion-mnist-sketch": "-Sketch (edge maps)", "imagenet": "ImageNet", "imagenet_v2": "-V2",
               "imagenet_sketch": "-Sketch"}
STANDIN_ORDER = list(reversed(SIZES.values()))  # tiny, small, base: capacity grows to the right


def _cell(mean: float, std: float, seeds: int) -> str:
    return f"{mean:.1f} ± {std:.1f}" if seeds > 1 else f"{mean:.1f}"


def _methods_as_rows(wide: pd.DataFrame) -> pd.DataFrame:
    """Rows relabelled with the methods' display names, in the book's method order, without axis names."""
    wide = wide.copy()
    wide.index = wide.index.map(lambda m: METHOD_LABELS.get(m, m))
    return wide.loc[present(list(wide.index))].rename_axis(None).rename_axis(None, axis=1)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def shift_table(data: "str | Path" = paths.BOOK_DATA, dataset: str = "fashion-mnist", shots: int = 16,
                protocol: str = "clean") -> pd.DataFrame:
    """Methods × (source test set, each shifted test set): top-1 mean ± std over seeds, the stand-in's default
    backbone (or whatever backbone ran ``dataset`` with extra test sets), at ``shots`` shots."""
    data = Path(data)
    summary, shift = _read(data / "summary.csv"), _read(data / "shift.csv")
    if shift.empty:
        return pd.DataFrame()
    shift = shift[(shift.dataset == dataset) & (shift.shots == shots) & (shift.protocol == protocol)]
    if shift.empty:
        return pd.DataFrame()
    bb = shift.backbone.iloc[0]
    src = summary[(summary.dataset == dataset) & (summary.shots == shots) & (summary.protocol == protocol)
                  & (summary.backbone == bb)].assign(test_set=dataset)
    both = pd.concat([src, shift[shift.backbone == bb]], ignore_index=True)
    both["cell"] = [_cell(m, s, n) for m, s, n in zip(both["mean"], both["std"], both["seeds"])]
    wide = both.pivot_table(index="method", columns="test_set", values="cell", aggfunc="first")
    cols = [dataset] + sorted(c for c in wide.columns if c != dataset)
    wide = wide[cols].rename(columns=lambda c: SHIFT_NAMES.get(c, c))
    return _methods_as_rows(wide)


def paper_shift_table(reported: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """The paper's Table 5 (16-shot ImageNet -> ImageNet-V2 / -Sketch, RN50) from ``reference/``."""
    rep = load_reported() if reported is None else reported
    t5 = rep[rep.source == "paper Table 5"]
    wide = t5.pivot_table(index="method", columns="tipkit_dataset", values="top1", aggfunc="first")
    wide = wide[["imagenet", "imagenet_v2", "imagenet_sketch"]].rename(columns=SHIFT_NAMES)
    return _methods_as_rows(wide.map(lambda v: f"{v:.2f}"))


def backbone_table(data: "str | Path" = paths.BOOK_DATA, dataset: str = "fashion-mnist", shots: int = 16,
                   protocol: str = "clean") -> pd.DataFrame:
    """Methods × stand-in backbones (tiny, small, base; with their parameter counts when known): top-1
    mean ± std over seeds at ``shots`` shots; only the methods every backbone ran."""
    summary = _read(Path(data) / "summary.csv")
    if summary.empty:
        return pd.DataFrame()
    s = summary[(summary.dataset == dataset) & (summary.shots == shots) & (summary.protocol == protocol)
                & summary.backbone.isin(STANDIN_ORDER)]
    if s.empty:
        return pd.DataFrame()
    s = s.assign(cell=[_cell(m, d, n) for m, d, n in zip(s["mean"], s["std"], s["seeds"])])
    wide = s.pivot_table(index="method", columns="backbone", values="cell", aggfunc="first").dropna()
    wide = wide[[b for b in STANDIN_ORDER if b in wide.columns]]
    return _methods_as_rows(wide)


def paper_backbone_table(reported: "pd.DataFrame | None" = None) -> pd.DataFrame:
    """The paper's Table 3 (16-shot ImageNet, four CLIP backbones) from ``reference/``."""
    rep = load_reported() if reported is None else reported
    t3 = rep[rep.source == "paper Table 3"]
    wide = t3.pivot_table(index="method", columns="backbone", values="top1", aggfunc="first")
    wide = wide[[b for b in ("RN50", "RN101", "ViT-B-32", "ViT-B-16") if b in wide.columns]]
    return _methods_as_rows(wide.map(lambda v: f"{v:.2f}"))


def shift_recipes() -> str:
    """Markdown: how each shifted Fashion-MNIST test set is made (from the dataset module's constants)."""
    from tipkit.data.fashion_shift import describe

    d = describe()
    return (f"- **re-collected** (`fashion-mnist-v2`), as ImageNet-V2 re-collected ImageNet's classes by the same "
            f"recipe: every test image {d['fashion-mnist-v2']}. Same objects and classes, other pixels: a mild "
            f"shift, as V2's.\n"
            f"- **sketch** (`fashion-mnist-sketch`), as ImageNet-Sketch's drawings keep the shape of ImageNet's "
            f"classes and drop their texture and colour: every test image redrawn as its edge map — "
            f"{d['fashion-mnist-sketch']}. The outline stays; fill, shading and print go: a strong shift, as "
            f"Sketch's.")


def standins_table() -> pd.DataFrame:
    """The three stand-ins from their model cards: parameters (all, image tower), checkpoint size, recipe."""
    from tipkit.models.backbone import load_state
    from tipkit.models.standin import card, checkpoint_path

    rows = []
    for name in STANDIN_ORDER:
        tr = card.load(name).get("training")
        if not tr:
            continue
        image = sum(t.numel() for k, t in load_state(checkpoint_path(name)).items() if k.startswith("visual."))
        rows.append({"backbone": name, "parameters": f"{tr['parameters']:,}", "image tower": f"{image:,}",
                     "MB": f"{tr['checkpoint_bytes'] / 1e6:.1f}",
                     "steps × pairs": f"{tr['recipe']['steps']:,} × {tr['recipe']['batch_size']}"})
    return pd.DataFrame(rows).set_index("backbone").rename_axis(None).rename_axis(None, axis=1)
