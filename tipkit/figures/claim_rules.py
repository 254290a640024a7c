"""The paper's claims as criteria on tables: each rule maps one side's :class:`Evidence` to an :class:`Outcome`.

A side is the paper (``reference/``), this book's stand-in records, or real-CLIP records where a GPU box ran
``configs/paper.yaml``; every side is the same set of tidy tables (empty where it has none), so one rule
gives all three verdicts. A rule never types a number: it reads them, compares them with the threshold its
criterion states, and writes the numbers it compared into the outcome's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from tipkit.labels import METHOD_LABELS

HOLDS, FAILS, UNTESTABLE = "holds here", "does not hold here", "not testable here"
PAPER_METHODS = ("zero_shot", "linear_probe", "coop", "clip_adapter", "tip_adapter", "tip_adapter_f")
EMPTY = pd.DataFrame()


@dataclass
class Evidence:
    """One side's tables. ``summary``/``main``: ``dataset, backbone, method, shots, mean`` (``main``: the
    side's principal backbone only); ``shift``: the same with ``test_set``; ``histories``: ``dataset, backbone,
    shots, seed, method, epoch, val_acc``; ``alpha``/``beta``: ``value, top1``; ``efficiency``: ``method,
    epochs, train_s, inference_ms``; ``parity``: ``method, difference, tolerance``; ``parity_pending``:
    ``method, shots, why`` (the cells the harness has not measured yet)."""

    name: str
    summary: pd.DataFrame = field(default_factory=lambda: EMPTY)
    main: pd.DataFrame = field(default_factory=lambda: EMPTY)
    shift: pd.DataFrame = field(default_factory=lambda: EMPTY)
    histories: pd.DataFrame = field(default_factory=lambda: EMPTY)
    alpha: pd.DataFrame = field(default_factory=lambda: EMPTY)
    beta: pd.DataFrame = field(default_factory=lambda: EMPTY)
    efficiency: pd.DataFrame = field(default_factory=lambda: EMPTY)
    parity: pd.DataFrame = field(default_factory=lambda: EMPTY)
    parity_pending: pd.DataFrame = field(default_factory=lambda: EMPTY)


@dataclass
class Outcome:
    verdict: str
    text: str


def lab(m: str) -> str:
    return METHOD_LABELS.get(m, m)


def _groups(df: pd.DataFrame, keys: list[str], fn: Callable[[pd.DataFrame], "tuple[bool, str] | None"],
            what: str = "settings", every: int = 0) -> Outcome:
    """Apply ``fn`` (``(ok, text)`` or None when the group lacks the data) to each group of ``df``; the claim
    holds when it holds in every testable group. One group (or up to ``every`` groups): their texts; more: a
    count and the failures."""
    if df.empty:
        return Outcome(UNTESTABLE, "no records")
    results = [(name, r) for name, g in df.groupby(keys, sort=True) if (r := fn(g)) is not None]
    if not results:
        return Outcome(UNTESTABLE, "the records lack the methods or shots it compares")
    bad = [(n, r) for n, r in results if not r[0]]
    if len(results) <= max(1, every):
        return Outcome(FAILS if bad else HOLDS, "; ".join(r[1] for _, r in results))
    name = lambda n: " / ".join(str(x) for x in (n if isinstance(n, tuple) else (n,)))  # noqa: E731
    text = f"on {len(results) - len(bad)} of {len(results)} {what}"
    if bad:
        text += "; not on " + "; ".join(f"{name(n)}: {r[1]}" for n, r in bad[:3]) + (" …" if len(bad) > 3 else "")
    else:
        text += f" (e.g. {name(results[0][0])}: {results[0][1][1]})"
    return Outcome(FAILS if bad else HOLDS, text)


def _wide(g: pd.DataFrame) -> pd.DataFrame:
    return g.pivot_table(index="method", columns="shots", values="mean", aggfunc="first")


def beats_zero_shot(ev: Evidence) -> Outcome:
    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        w = _wide(g)
        if not {"tip_adapter", "zero_shot"} <= set(w.index):
            return None
        d = (w.loc["tip_adapter"] - w.loc["zero_shot"]).dropna()
        if d.empty:
            return None
        return bool((d > 0).all()), "Tip-Adapter − zero-shot: " + ", ".join(f"{v:+.1f} ({k})" for k, v in d.items())
    return _groups(ev.main, ["dataset", "backbone"], fn, "datasets")


def _at16(g: pd.DataFrame) -> "pd.Series | None":
    top = g[g.shots == 16]
    return top.set_index("method")["mean"] if len(top) else None


def comparable_to_clip_adapter(ev: Evidence) -> Outcome:
    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        s = _at16(g)
        if s is None or not {"tip_adapter", "clip_adapter"} <= set(s.index):
            return None
        d = s["tip_adapter"] - s["clip_adapter"]
        return bool(d >= -1.0), f"Tip-Adapter {s['tip_adapter']:.1f} vs CLIP-Adapter {s['clip_adapter']:.1f} ({d:+.1f})"
    return _groups(ev.main, ["dataset", "backbone"], fn, "datasets")


def tip_f_best(ev: Evidence) -> Outcome:
    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        s = _at16(g)
        if s is None or "tip_adapter_f" not in s.index:
            return None
        others = s[[m for m in PAPER_METHODS if m in s.index and m != "tip_adapter_f"]]
        if others.empty:
            return None
        best = others.idxmax()
        return bool(s["tip_adapter_f"] >= others.max()), \
            f"Tip-Adapter-F {s['tip_adapter_f']:.1f}; best other: {lab(best)} {others.max():.1f}"
    return _groups(ev.main, ["dataset", "backbone"], fn, "datasets")


def converges_fast(ev: Evidence) -> Outcome:
    if not ev.histories.empty:
        h = ev.histories[ev.histories.shots == ev.histories.shots.max()]
        first = {}
        for (m, _), g in h.groupby(["method", "seed"]):
            g = g.sort_values("epoch")
            first.setdefault(m, []).append((int(g[g.val_acc >= g.val_acc.max() - 0.5].epoch.iloc[0]),
                                            int(g.epoch.max())))
        if "tip_adapter_f" in first:
            tf = first["tip_adapter_f"]
            text = (f"Tip-Adapter-F within 0.5 of its best at epoch {', '.join(str(e) for e, _ in tf)} "
                    f"(of {tf[0][1]}; per seed)")
            if "clip_adapter" in first:
                ca = first["clip_adapter"]
                text += f"; CLIP-Adapter at epoch {', '.join(str(e) for e, _ in ca)} (of {ca[0][1]})"
            return Outcome(HOLDS if max(e for e, _ in tf) <= 20 else FAILS, text)
    e = ev.efficiency
    if not e.empty and "epochs" in e and {"tip_adapter_f", "clip_adapter"} <= set(e.method):
        ep = e.set_index("method")["epochs"]
        return Outcome(HOLDS if ep["tip_adapter_f"] <= 20 else FAILS,
                       f"Tip-Adapter-F trains {ep['tip_adapter_f']:.0f} epochs, CLIP-Adapter {ep['clip_adapter']:.0f}")
    return Outcome(UNTESTABLE, "no training histories")


def gain_grows(ev: Evidence) -> Outcome:
    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        w = _wide(g)
        if not {"tip_adapter", "zero_shot"} <= set(w.index):
            return None
        d = (w.loc["tip_adapter"] - w.loc["zero_shot"]).dropna().sort_index()
        if len(d) < 2:
            return None
        ok = d.iloc[-1] > d.iloc[0] and bool((d.diff().dropna() >= -0.5).all())
        return ok, "gain " + ", ".join(f"{v:+.1f} ({k})" for k, v in d.items())
    return _groups(ev.main, ["dataset", "backbone"], fn, "datasets")


def interior_optimum(ev: Evidence) -> Outcome:
    parts, oks = [], []
    for name, t in (("α", ev.alpha), ("β", ev.beta)):
        if t.empty:
            return Outcome(UNTESTABLE, f"no {name} ablation")
        m = t.groupby("value")["top1"].mean().sort_index()
        best = m.idxmax()
        oks.append(m.index[0] < best < m.index[-1])
        parts.append(f"{name}: best {m.max():.1f} at {best:g} (grid {m.index[0]:g}–{m.index[-1]:g}; "
                     f"ends {m.iloc[0]:.1f}, {m.iloc[-1]:.1f})")
    return Outcome(HOLDS if all(oks) else FAILS, "; ".join(parts))


def shift_gain(ev: Evidence) -> Outcome:
    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        s = _at16(g)
        if s is None or "zero_shot" not in s.index or not {"tip_adapter", "tip_adapter_f"} & set(s.index):
            return None
        tips = [m for m in ("tip_adapter", "tip_adapter_f") if m in s.index]
        return bool(all(s[m] > s["zero_shot"] for m in tips)), \
            f"{g.test_set.iloc[0]}: zero-shot {s['zero_shot']:.1f}, " + ", ".join(f"{lab(m)} {s[m]:.1f}" for m in tips)
    return _groups(ev.shift, ["test_set", "backbone"], fn, "shifted test sets", every=4)


def across_backbones(ev: Evidence) -> Outcome:
    if ev.summary.empty:
        return Outcome(UNTESTABLE, "no records")
    several = ev.summary.groupby("dataset").backbone.transform("nunique") >= 2
    if not several.any():
        return Outcome(UNTESTABLE, "one backbone per dataset in the records; needs two or more")

    def fn(g: pd.DataFrame) -> "tuple[bool, str] | None":
        s = _at16(g)
        if s is None or not {"zero_shot", "tip_adapter", "tip_adapter_f"} <= set(s.index):
            return None
        ok = s["tip_adapter"] > s["zero_shot"] and s["tip_adapter_f"] > s["tip_adapter"]
        return bool(ok), (f"{g.backbone.iloc[0]}: zero-shot {s['zero_shot']:.1f}, Tip {s['tip_adapter']:.1f}, "
                          f"Tip-F {s['tip_adapter_f']:.1f}")
    return _groups(ev.summary[several], ["dataset", "backbone"], fn, "backbones", every=6)


def cheap_inference(ev: Evidence) -> Outcome:
    e = ev.efficiency
    if e.empty or not {"zero_shot", "tip_adapter", "tip_adapter_f"} <= set(e.method):
        return Outcome(UNTESTABLE, "no efficiency record with zero-shot, Tip-Adapter and Tip-Adapter-F")
    s = e.groupby("method")[["train_s", "inference_ms"]].mean()
    ratio = s.loc["tip_adapter", "inference_ms"] / s.loc["zero_shot", "inference_ms"]
    fit, train = s.loc["tip_adapter", "train_s"], s.loc["tip_adapter_f", "train_s"]
    ok = ratio <= 1.25 and fit <= 0.1 * train
    return Outcome(HOLDS if ok else FAILS,
                   f"inference {s.loc['tip_adapter', 'inference_ms']:.3g} vs {s.loc['zero_shot', 'inference_ms']:.3g} "
                   f"ms/image (×{ratio:.2f}); fitting {fit:.3g} s vs Tip-Adapter-F's training {train:.3g} s")


def parity(ev: Evidence) -> Outcome:
    p = ev.parity
    if p.empty:
        return Outcome(UNTESTABLE, "no parity results (benchmarks/results/parity.csv)")
    off = p[p.difference.abs() > p.tolerance]
    text = f"{len(p) - len(off)} of {len(p)} comparisons within tolerance (largest |difference| " \
           f"{p.difference.abs().max():.2f})"
    if len(off):
        text += "; outside: " + ", ".join(f"{lab(m)} {d:+.2f}" for m, d in zip(off.method, off.difference))
    pending = ev.parity_pending
    if len(pending) and not len(off):  # the claim covers every method: untested cells leave it open
        cells = ", ".join(f"{lab(m)} {int(k)}-shot" for m, k in zip(pending.method, pending.shots))
        return Outcome(UNTESTABLE, f"{text}; not measured yet ({len(pending)}): {cells}")
    return Outcome(FAILS if len(off) else HOLDS, text)
