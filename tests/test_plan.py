"""Plans before running: images to encode, the feature store, time from the benchmark CSV; the book's
tables drawn from that CSV (scale_plots) and the compact comparison with the paper."""

import json

import numpy as np
import pandas as pd
import pytest

from tipkit import cli, data, paths
from tipkit.config import make_config
from tipkit.bench import plan
from tipkit.bench.runner import COLUMNS, write_rows
from tipkit.figures import plots, scale_plots

NB = "notebooks/tip_adapter.ipynb"


def bench_rows(machine="cpu-2core", device="cpu", shape="synthetic", fit=2.0, status="ok", **extra):
    """Benchmark rows: zero-shot and Tip-Adapter at ``shape``, and the stand-in's encoder rows."""
    base = {"machine": machine, "device": device, "precision": "fp32", "protocol": "clean", "timeout_s": 600.0,
            "status": "ok", "shape": shape}
    return [{**base, "method": "zero_shot", "fit_s": 0.0, "predict_s": 1.0},
            {**base, "method": "tip_adapter", "fit_s": fit, "predict_s": 3.0, "status": status, **extra},
            {**base, "shape": "tipkit-standin-mini", "protocol": "-", "method": "encode", "predict_s_per_1k": 10.0},
            {**base, "shape": "tipkit-standin-mini", "protocol": "-", "method": "decode", "predict_s_per_1k": 4.0}]


def test_expected_union_of_independent_draws():
    assert plan.expected_union(10, [10]) == 10 and plan.expected_union(10, [1]) == pytest.approx(1)
    assert plan.expected_union(10, [5, 5]) == pytest.approx(7.5)
    assert plan.expected_union(0, [3]) == 0


def test_encode_needs_count_each_image_and_view_once():
    cfgs = [make_config(dataset="synthetic", shots=s, seed=d, augment_views=v, methods=["zero_shot"])
            for s, d, v in [(1, 1, 2), (2, 1, 3), (2, 2, 3)]]
    needs = plan.encode_needs(cfgs)
    assert len(needs) == 1
    r = needs.iloc[0]
    train = data.get_dataset("synthetic").split("train")
    few = np.unique(np.concatenate([data.few_shot_for(c, train) for c in cfgs]))
    assert (r.val, r.test, r.few_shot, r.views, r.counted) == (20, 40, len(few), 3, "exact")
    assert r.encodings == 20 + 40 + 3 * len(few)
    assert r.store_bytes == r.encodings * (64 * 4 + 8)  # the stand-in's 64-wide features + an int64 index
    assert plan.encode_needs([make_config(dataset="synthetic", pretrained="none")]).empty  # random init: per run


def test_encode_needs_estimated_without_data_on_disk(tmp_path):
    cfgs = [make_config(dataset=d, data_root=str(tmp_path), shots=16, seed=s) for d in ("dtd", "imagenet")
            for s in (1, 2)]
    needs = plan.encode_needs(cfgs).set_index("dataset")
    assert (needs["counted"].str.startswith("estimated")).all()
    assert (needs.loc["dtd", "val"], needs.loc["dtd", "test"]) == (1128, 1692)
    assert (needs.loc["imagenet", "val"], needs.loc["imagenet", "test"]) == (0, 50_000)  # val is its test split
    assert 16 * 47 < needs.loc["dtd", "few_shot"] < 2 * 16 * 47  # two seeds overlap a little
    assert needs.loc["imagenet", "store_bytes"] == needs.loc["imagenet", "encodings"] * (1024 * 4 + 8)


def test_run_and_encode_estimates_from_the_benchmark():
    bench = pd.DataFrame(bench_rows()).reindex(columns=COLUMNS)
    cfg = make_config(dataset="synthetic", methods=["zero_shot", "tip_adapter", "gda"])
    est = plan.run_estimate(cfg, bench)
    assert (est.seconds, est.lower_bound, est.missing) == (6.0, False, 1)  # gda has no row
    slow = pd.DataFrame(bench_rows(fit=float("nan"), status="timeout")).reindex(columns=COLUMNS)
    est = plan.run_estimate(cfg, slow)
    assert est.seconds == 601.0 and est.lower_bound
    need = {"backbone": "tipkit-standin-mini", "encodings": 1000, "precision": "fp32", "workers": 2}
    assert plan.encode_estimate(need, bench).seconds == pytest.approx(10.0 + 4.0 / 2)


def test_sweep_plan_prints_cells_images_store_and_time_and_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TIPKIT_BENCH", str(tmp_path / "bench"))
    write_rows(tmp_path / "bench" / "scale_cpu-2core.csv", bench_rows())
    spec = {"fixed": {"dataset": "synthetic", "methods": ["zero_shot", "tip_adapter"]},
            "studies": [{"notebook": NB, "grid": {"shots": [1, 2], "seed": [1, 2]}}], "executor": {"jobs": 2}}
    (tmp_path / "s.yaml").write_text(json.dumps(spec))
    assert cli.main(["sweep", str(tmp_path / "s.yaml"), "--plan"]) == 0
    out = capsys.readouterr().out
    assert "sweep s: 4 cells, 4 to run (0 done); executor local, 2 at a time" in out
    assert "synthetic__tipkit-standin-mini__standin__clean__1shot__seed1" in out
    assert "images to encode" in out and "feature store on disk" in out and "exact" in out
    assert "cpu-2core" in out and "runs 24 s" in out  # 4 runs x (zero-shot 1 s + Tip-Adapter 5 s)
    assert not paths.results_dir().exists() and not paths.cache_dir().exists()


def test_fill_plan_prefers_a_measured_gpu():
    rows = bench_rows(shape="dtd") + bench_rows(machine="cuda-h200", device="cuda", shape="dtd", fit=0.5)
    bench = pd.DataFrame(rows).reindex(columns=COLUMNS)
    fill = plan.fill_plan(["dtd"], ["zero_shot", "tip_adapter"], protocol="clean", bench=bench)
    r = fill.iloc[0]
    assert r.machine == "cuda-h200" and r.planned == "≈ 4 s + ?"  # (0 + 1) + (0.5 + 3) s; no RN50 encoder row
    assert "--config configs/paper/dtd.yaml" in r.command and "--methods zero_shot tip_adapter" in r.command
    nothing = plan.fill_plan(["dtd"], ["zero_shot"], bench=pd.DataFrame(columns=COLUMNS))
    assert nothing.iloc[0].planned.startswith("not measured")


def test_paper_comparison_is_datasets_by_methods_with_what_fills_a_gap():
    reported = plots.load_reported()
    summary = pd.DataFrame([{"dataset": "dtd", "backbone": "RN50", "shots": 16, "method": "Tip-Adapter",
                             "protocol": "paper", "mean": 60.5, "std": 0.0}])
    fill = pd.DataFrame([{"dataset": d, "command": f"python -m tipkit run --config configs/paper/{d}.yaml",
                          "planned": "≈ 3 min", "machine": "cuda-h200"} for d in reported["tipkit_dataset"].unique()])
    cmp = plots.paper_comparison(summary, reported, shots=16, fill=fill)
    assert list(cmp.columns) == ["dataset", "Zero-shot", "CLIP-Adapter", "Tip-Adapter", "Tip-Adapter-F",
                                 "planned (to fill)"]
    assert len(cmp) == 11 and cmp["dataset"].is_unique
    dtd = cmp.set_index("dataset").loc["DTD"]
    assert dtd["Tip-Adapter"].endswith("· 60.50 (paper)") and dtd["Zero-shot"].endswith("· —")
    assert dtd["planned (to fill)"] == "≈ 3 min on cuda-h200"  # one planned time per row, no command in it
    block = plots.fill_commands(cmp, reported, fill).splitlines()
    assert len(block) == 12 and "python -m tipkit run --config configs/paper/dtd.yaml" in block
    assert block[-1] == "python -m tipkit report"
    assert (plots.paper_comparison(summary.iloc[:0], reported)["Tip-Adapter"].str.endswith("not run here")).all()


def scale_frame():
    rows = []
    for shape, k in (("fashion-mnist", 160), ("caltech101", 1600), ("imagenet", 16000)):
        for m, fit, status in (("gda", 1.0, "ok"), ("tip_x", 30.0 if k < 16000 else float("nan"),
                                                    "ok" if k < 16000 else "timeout")):
            rows.append({"machine": "cpu-2core", "device": "cpu", "precision": "fp32", "shape": shape,
                         "protocol": "clean", "method": m, "cache_size": k, "status": status, "fit_s": fit,
                         "predict_s_per_1k": 0.1, "predict_s": 5.0, "fit_peak_mib": 2048.0,
                         "predict_peak_mib": 1024.0, "timeout_s": 600.0, "test_acc": 90.0, "load_1m": 1.5})
    return pd.DataFrame(rows)


def test_laptop_table_is_derived_from_the_rows():
    df = scale_frame()
    t = scale_plots.laptop_table(df).set_index("method")
    assert t.loc["GDA", "clean: laptop CPU up to"] == "imagenet" and t.loc["GDA", "clean: needs a GPU from"] == "—"
    assert t.loc["Tip-X", "clean: laptop CPU up to"] == "caltech101"
    assert t.loc["Tip-X", "clean: needs a GPU from"] == "imagenet (stopped after 600 s)"
    assert not any("cuda" in c for c in t.columns)  # no GPU rows measured: none shown
    t = scale_plots.laptop_table(df[df["shape"] != "imagenet"]).set_index("method")
    assert t.loc["Tip-X", "clean: laptop CPU up to"] == "caltech101"  # the largest measured, not "every shape"
    gpu = df.assign(machine="cuda-h200", device="cuda", fit_s=0.5, status="ok")
    t = scale_plots.laptop_table(pd.concat([df, gpu])).set_index("method")
    assert t.loc["Tip-X", "clean: cuda-h200 fp32 at imagenet"] == "0.5 s"
    big = df.assign(fit_peak_mib=9 * 1024.0)
    t = scale_plots.laptop_table(big).set_index("method")
    assert t.loc["GDA", "clean: needs a GPU from"] == "fashion-mnist (9.0 GiB)"
    assert t.loc["GDA", "clean: laptop CPU up to"] == "none"


def test_cost_figure_and_shape_table():
    df = scale_frame()
    fig = scale_plots.cost_vs_scale(df)
    assert len(fig.axes) == 3 and fig.axes[0].get_xscale() == "log" and fig.axes[0].get_yscale() == "log"
    t = scale_plots.shape_table(df, "imagenet")
    assert list(t["method"]) == ["Tip-X", "GDA"] or list(t["method"]) == ["GDA", "Tip-X"]
    assert t.set_index("method").loc["Tip-X", "status"] == "timeout"
    gda = t.set_index("method").loc["GDA"]
    assert gda["fit + predict (min)"] == pytest.approx(6.0 / 60) and gda["bound (min)"] == 10.0  # fit 1 s + 5 s
    assert t.set_index("method").loc["Tip-X", "bound (min)"] == 5.0  # the probe's bound for the four slow ones
    html = plots.book_table(t).to_html()
    assert "2.0" in html and "<th class=\"blank" not in html  # no index column
    numeric = plots.book_table(pd.DataFrame({"method": ["GDA"], "fit (s)": [1.0], "runs": [3]}))
    numeric._compute()  # the cell styles, by (row, column)
    assert numeric.ctx[(0, 1)] == numeric.ctx[(0, 2)] == [("white-space", "nowrap"), ("text-align", "right"),
                                                           ("padding-left", "0.75em")]
    assert (0, 0) not in numeric.ctx  # text wraps as before
