"""The scale benchmark (``python -m tipkit bench``): synthetic shapes, one process per method, the CSV.

Only the quick shapes run here (a few seconds per spawned method); the full benchmark is a command.
"""

import dataclasses

import pandas as pd
import pytest
import torch

from tipkit import cli
from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.bench import runner as scale
from tipkit.bench.features import QUICK_SHAPES, SHAPES, Shape, get_shape, make_features


@pytest.fixture
def bench_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TIPKIT_BENCH", str(tmp_path / "bench"))
    return tmp_path / "bench"


def test_shapes_follow_the_paper_datasets():
    im, sun, cal, fm = SHAPES["imagenet"], SHAPES["sun397"], SHAPES["caltech101"], SHAPES["fashion-mnist"]
    assert (im.classes, im.cache_size, im.dim, im.views, im.test) == (1000, 16_000, 1024, 10, 50_000)
    assert (im.val_size("clean"), im.val_size("paper")) == (4_000, 50_000)
    assert (sun.classes, sun.val_size("clean"), sun.val_size("paper"), sun.test) == (397, 1588, 3970, 19850)
    assert (cal.classes, cal.val_size("paper"), cal.test) == (100, 1649, 2465)
    assert (fm.classes, fm.val_size("paper"), fm.test) == (10, 2000, 10_000)
    assert list(SHAPES)[-1] == "imagenet"  # smallest first
    with pytest.raises(TipkitError, match="unknown protocol 'test'"):
        im.val_size("test")


def test_features_have_the_shape_and_are_deterministic():
    s = QUICK_SHAPES["tiny"]
    data, xt, yt = make_features(s, "clean", seed=3)
    assert tuple(data.views.shape) == (s.views, s.cache_size, s.dim)
    assert tuple(data.val.shape) == (4 * s.classes, s.dim) and tuple(xt.shape) == (s.test, s.dim)
    assert torch.allclose(xt.norm(dim=-1), torch.ones(s.test), atol=1e-5)
    assert torch.bincount(yt).tolist() == [s.test // s.classes] * s.classes
    again, xt2, _ = make_features(s, "clean", seed=3)
    assert torch.equal(data.views, again.views) and torch.equal(xt, xt2)
    assert not torch.equal(make_features(s, "clean", seed=4)[1], xt)
    assert make_features(s, "paper")[0].val.shape[0] == s.val_paper


def test_features_behave_like_clip_at_imagenets_width_and_classes():
    """The stated calibration at C = 1000, D = 1024 (fewer test images, 1 shot per class for the 1-shot check):
    zero-shot near 58 %, the single prompt below it, one shot a worse classifier than the text, the true class
    means a better one (so a method that learns from the cache has room above zero-shot)."""
    shape = Shape("imagenet-lite", "imagenet", 1000, 1000, 10_000, shots=1, views=1)
    data, xt, yt = make_features(shape, "clean")
    acc = accuracy(xt @ data.class_embeddings.T, yt)
    assert 53.0 < acc < 63.0
    assert acc - 10 < accuracy(xt @ data.single_prompt_embeddings.T, yt) < acc
    one_shot = torch.nn.functional.normalize(data.views.mean(0), dim=-1)  # [C, D]: one image per class
    assert accuracy(xt @ one_shot.T, yt) < acc - 10
    gen = torch.Generator().manual_seed(1 * 1_000_003 + shape.cache_size)  # make_features' first draw: the means
    means = torch.nn.functional.normalize(torch.randn(1000, shape.dim, generator=gen), dim=-1)
    assert accuracy(xt @ means.T, yt) > acc + 20


def test_quick_run_writes_one_row_per_method_above_chance(bench_dir, capsys):
    code = cli.main(["bench", "--quick", "--shapes", "tiny", "--methods", "zero_shot", "tip_adapter",
                     "--protocols", "clean"])
    assert code == 0
    path = scale.results_path(scale.machine_kind("cpu"))
    assert path.parent == bench_dir and str(path) in capsys.readouterr().out
    df = pd.read_csv(path)
    assert list(df.columns) == scale.COLUMNS
    assert sorted(df["method"]) == ["tip_adapter", "zero_shot"] and set(df["status"]) == {"ok"}
    assert (df["machine"] == scale.machine_kind("cpu")).all() and (df["device"] == "cpu").all()
    assert (df["test_acc"] > 3 * df["chance_acc"]).all()  # separable features: far above chance
    assert (df["fit_s"] >= 0).all() and (df["predict_s_per_1k"] > 0).all()
    assert (df["fit_peak_mib"] >= df["inputs_mib"] * 0.5).all() and (df["predict_peak_mib"] > 0).all()
    assert not list(bench_dir.glob(".*.tmp"))


def test_rows_are_replaced_per_key(tmp_path):
    path = tmp_path / "scale_x.csv"
    base = {"shape": "tiny", "protocol": "clean", "device": "cpu", "precision": "fp32", "status": "ok"}
    scale.write_rows(path, [{**base, "method": "gda", "fit_s": 1.0}, {**base, "method": "tip_adapter", "fit_s": 2.0}])
    scale.write_rows(path, [{**base, "method": "gda", "fit_s": 3.0}, {**base, "method": "gda", "precision": "bf16",
                                                                       "fit_s": 4.0}])
    df = pd.read_csv(path)
    assert len(df) == 3 and list(df.columns) == scale.COLUMNS
    got = {(r.method, r.precision): r.fit_s for r in df.itertuples()}
    assert got == {("tip_adapter", "fp32"): 2.0, ("gda", "fp32"): 3.0, ("gda", "bf16"): 4.0}


def test_a_method_past_its_timeout_is_a_timeout_row():
    task = scale.Task(SHAPES["imagenet"], "clean", "clip_adapter")  # 100,000 steps: minutes, whatever speed-ups land
    row = scale.run_one(task, timeout=1.0)  # (making its 16,000 × 10 views alone takes longer than 1 s)
    assert row["status"] == "timeout" and "stopped after 1 s" in row["error"]


def test_a_spent_budget_starts_nothing_and_cuts_rows_it_would_understate(bench_dir):
    path = scale.run_bench(["small"], ["tip_x", "zero_shot"], ["paper"], budget=1.0)
    assert not path.exists()  # tip_x was cut by the budget (no row), zero_shot never started


def test_an_error_in_the_child_is_its_rows_error():
    bad = dataclasses.replace(QUICK_SHAPES["tiny"], shots=0)  # no cache images: FewShotData refuses it
    row = scale.run_one(scale.Task(bad, "clean", "zero_shot"), timeout=120)
    assert row["status"] == "error" and "at least one few-shot image" in row["error"]


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "cifar"], "unknown shape 'cifar'; known: caltech101"),
    (["--methods", "coop"], "method 'coop' cannot run on synthetic features"),
    (["--methods", "tip"], "unknown method 'tip'; known: ape, ape_t"),
    (["--protocols", "test"], "unknown protocol 'test'; known: clean, paper"),
    (["--precision", "bf16"], "precision 'bf16' is autocast on CUDA; the CPU runs fp32 only"),
    (["--precision", "fp8"], "unknown precision 'fp8'; known: bf16, fp16, fp32"),
    (["--timeout", "0"], "timeout must be > 0 seconds, got 0.0"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--budget", "-1"], "budget must be > 0 seconds, got -1.0"),
])
def test_bad_input_is_one_line_and_writes_nothing(bench_dir, capsys, argv, message):
    assert cli.main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tipkit: error:") and message in err and len(err.strip().splitlines()) == 1
    assert not bench_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_a_gpu_is_a_clear_error(bench_dir, capsys):
    assert cli.main(["bench", "--quick", "--device", "cuda"]) == 2
    assert "torch sees no CUDA device" in capsys.readouterr().err


def test_encoder_rows_time_forward_and_decoding():
    from tipkit.bench.encode import encoder_rows

    rows = {r["method"]: r for r in encoder_rows(backbones=("tipkit-standin-mini",), repeat_s=0.1)}
    assert set(rows) == {"encode", "decode"} and {r["status"] for r in rows.values()} == {"ok"}
    assert rows["encode"]["dim"] == 64 and rows["encode"]["shape"] == "tipkit-standin-mini"
    assert rows["encode"]["predict_s_per_1k"] > 0 and rows["decode"]["predict_s_per_1k"] > 0


def test_machine_kind_names_the_cores():
    assert scale.machine_kind("cpu").startswith("cpu-") and scale.machine_kind("cpu").endswith("core")
    assert get_shape("imagenet") is SHAPES["imagenet"]
