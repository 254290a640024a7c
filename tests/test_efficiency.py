import math
import time

import pytest
import torch
from test_ablations import FAST_F, GRID, make_data, tip_reference, zero_shot_acc

from tipkit import config
from tipkit.errors import TipkitError
from tipkit.studies import ablations, efficiency

COLUMNS = ["method", "train_s", "predict_ms_per_image", "encode_ms_per_image", "inference_ms_per_image",
           "train_peak_rss_increase_mib", "infer_peak_rss_increase_mib", "acc", "device", "batch_size"]


def fake_encoder(d: int = 32):
    lin = torch.nn.Linear(3 * 8 * 8, d)
    return lambda x: lin(x.flatten(1)), torch.randn(40, 3, 8, 8)


OVERRIDES = {"tip_adapter": {"search_scale": [10.0, 10.0], "search_step": [12, 6]},
             "tip_adapter_f": {"search_scale": [10.0, 10.0], "search_step": [12, 6], "init_alpha": FAST_F.alpha,
                               "init_beta": FAST_F.beta, "epochs": FAST_F.epochs, "lr": FAST_F.lr,
                               "batch_size": FAST_F.batch_size}}


def test_measure_registry_methods():
    d = make_data()
    encoder, images = fake_encoder()
    methods = efficiency.method_factories(d, overrides=OVERRIDES, seed=FAST_F.seed)
    df = efficiency.measure(methods, d.test_features, d.test_labels, encoder=encoder, images=images, repeats=5,
                            warmup=1)
    assert list(df.columns) == COLUMNS
    assert df["method"].tolist() == ["zero_shot", "tip_adapter", "tip_adapter_f"]
    for col in ("train_s", "predict_ms_per_image", "encode_ms_per_image"):
        assert (df[col] > 0).all(), col
    assert (df["inference_ms_per_image"] == df["predict_ms_per_image"] + df["encode_ms_per_image"]).all()
    assert (df["batch_size"] == 32).all() and (df["device"] == "cpu").all()
    assert df.loc[0, "acc"] == zero_shot_acc(d)
    assert df.loc[1, "acc"] == tip_reference(d, *d.cache())[3]  # the search inside the factory is on val
    tip_f = ablations.finetune_parts(d, parts=("keys",), tip_f=FAST_F, grid=GRID)
    assert df.loc[2, "acc"] == tip_f.loc[0, "acc"]  # the registry's Tip-F is the ablations' Tip-F
    assert (df[["train_peak_rss_increase_mib", "infer_peak_rss_increase_mib"]] >= 0).all().all()


def test_method_factories_check_names_first():
    d = make_data()
    with pytest.raises(TipkitError, match="unknown method 'tip'"):
        efficiency.method_factories(d, names=["zero_shot", "tip"])
    with pytest.raises(TipkitError, match="unknown hyperparameter 'alpha'"):
        efficiency.method_factories(d, overrides={"tip_adapter": {"alpha": 1.0}})
    with pytest.raises(TipkitError, match="not among the methods"):
        efficiency.method_factories(d, names=["zero_shot"], overrides={"coop": {}})


def test_registry_takes_any_method_and_measures_its_memory():
    w = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)

    def hungry():  # holds 256 MiB for a while during "training"
        big = torch.ones(64 * 2**20)
        time.sleep(0.05)
        del big
        return lambda f: f @ w.T

    def lean():
        time.sleep(0.02)
        return lambda f: f @ w.T

    feats = torch.nn.functional.normalize(torch.randn(50, 16), dim=-1)
    df = efficiency.measure({"hungry": hungry, "lean": lean}, feats, repeats=3, warmup=0, batch_size=10)
    assert df.loc[0, "train_peak_rss_increase_mib"] > 200
    assert df.loc[1, "train_peak_rss_increase_mib"] < 100
    assert df.loc[0, "train_s"] >= 0.05 and df.loc[1, "train_s"] >= 0.02
    assert (df["encode_ms_per_image"] == 0).all() and df["acc"].map(math.isnan).all()
    assert (df["batch_size"] == 10).all()


def test_fit_warmup_and_threads():
    calls = []

    def method():
        calls.append(torch.get_num_threads())
        return lambda f: f

    before = torch.get_num_threads()
    df = efficiency.measure({"m": method}, torch.randn(8, 4), repeats=2, fit_warmup=True, threads=1)
    assert calls == [1, 1] and len(df) == 1 and torch.get_num_threads() == before
    efficiency.measure({"m": method}, torch.randn(8, 4), repeats=2)
    assert calls == [1, 1, before]


def test_bad_arguments_rejected():
    feats = torch.randn(5, 4)
    with pytest.raises(TipkitError, match="both encoder and images"):
        efficiency.measure({}, feats, encoder=lambda x: x)
    with pytest.raises(TipkitError, match="batch_size >= 1"):
        efficiency.measure({}, feats, batch_size=0)
    with pytest.raises(TipkitError, match="threads >= 1"):
        efficiency.measure({}, feats, threads=0)
    assert efficiency.memory_kind("cuda:0") == "cuda_allocated" and efficiency.memory_kind("cpu") == "rss_increase"


def test_median_time_is_positive_and_tracks_work():
    fast = efficiency.median_time(lambda x: x, torch.zeros(1), "cpu", repeats=3)
    slow = efficiency.median_time(lambda x: time.sleep(0.01), torch.zeros(1), "cpu", repeats=3)
    assert 0 < fast < slow and slow >= 0.01


def test_clip_encoder_from_a_config():
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=2)
    encode, images = efficiency.clip_encoder(cfg, batch_size=6)
    assert images.shape[0] == 6 and images.dim() == 4
    feats = encode(images)
    assert feats.shape[0] == 6 and not feats.requires_grad


def test_efficiency_table_shows_memory_only_where_it_is_measurable():
    import pandas as pd

    from tipkit.figures import ablation_plots

    rows = [{"method": m, "device": "cpu", "train_s": 1.0, "inference_ms_per_image": 2.0, "predict_ms_per_image": 0.5,
             "acc": 80.0, "train_peak_rss_increase_mib": train, "infer_peak_rss_increase_mib": infer}
            for m, train, infer in (("tip_adapter", 250.0, 0.004), ("gda", 0.01, 6.0))]
    t = ablation_plots.efficiency_table(pd.DataFrame(rows)).set_index("method")
    train, infer = "peak memory, training (RSS rise, MiB)", "peak memory, inference (RSS rise, MiB)"
    assert t.loc["tip_adapter", train] == 250.0 and math.isnan(t.loc["tip_adapter", infer])
    assert math.isnan(t.loc["gda", train]) and t.loc["gda", infer] == 6.0
    cuda = pd.DataFrame(rows).rename(columns=lambda c: c.replace("rss_increase", "cuda_allocated"))
    t = ablation_plots.efficiency_table(cuda).set_index("method")  # absolute CUDA memory: always shown
    assert t.loc["tip_adapter", "peak memory, inference (CUDA allocated, MiB)"] == 0.004
