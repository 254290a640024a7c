import numpy as np
import pytest
import torch

from tipkit import config, data
from tipkit.core.cache import build_cache
from tipkit.core.finetune import finetune
from tipkit.core.fusion import tip_logits
from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.experiments import pipeline


def run_ft(problem, **kw):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, y = problem["queries"], problem["labels_q"]
    args = dict(epochs=6, lr=1e-2, batch_size=8, seed=1)
    args.update(kw)
    return finetune(problem["views"], problem["labels_k"], q[:30], y[:30], problem["W"], keys, values, 1.0, 3.0,
                    **args), keys, values


def test_keeps_the_epoch_with_best_validation_accuracy(problem):
    r, keys, values = run_ft(problem)
    vals = [h["val_acc"] for h in r.history]
    assert len(vals) == 6
    assert r.best_epoch == 1 + int(np.argmax(vals))  # first maximum
    assert r.best_val_acc == max(vals)
    q, y = problem["queries"][:30], problem["labels_q"][:30]
    assert accuracy(tip_logits(q, problem["W"], r.keys, values, 1.0, 3.0), y) == pytest.approx(r.best_val_acc)
    assert not torch.equal(r.keys, keys)  # the keys moved
    assert r.history[-1]["lr"] < r.history[0]["lr"]  # cosine schedule


def test_is_deterministic_per_seed(problem):
    a, _, _ = run_ft(problem)
    b, _, _ = run_ft(problem)
    c, _, _ = run_ft(problem, seed=2)
    assert torch.equal(a.keys, b.keys) and a.history == b.history
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_rejects_zero_epochs(problem):
    with pytest.raises(TipkitError, match="epochs must be >= 1"):
        run_ft(problem, epochs=0)


class Untouchable(data.Split):
    def image(self, i):
        raise AssertionError("the test split was read during fitting")


def test_fit_never_touches_the_test_split():
    ds = data.get_dataset("synthetic")
    t = ds.splits["test"]
    ds.splits["test"] = Untouchable(t.name, t.labels, t.load, t.ids)
    methods = ["zero_shot", "zero_shot_single", "linear_probe", "clip_adapter", "tip_adapter", "tip_adapter_f",
               "tip_x", "ape", "gda", "clap", "lp_plus_plus"]
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=2, methods=methods)
    fitted = pipeline.fit(cfg, ds)  # all selection happens here
    assert sorted(fitted.methods) == sorted(methods)
    assert fitted.methods["tip_adapter_f"].hyper["best_epoch"] >= 1
    with pytest.raises(AssertionError, match="test split was read"):
        pipeline.evaluate(fitted)


def test_clean_protocol_chooses_on_min_k_4_val_images_paper_on_all():
    clean = pipeline.fit(config.make_config(dataset="synthetic", pretrained="none", shots=2, epochs=1))
    assert len(clean.val_indices) == 2 * 4 and clean.data.val.shape[0] == 8
    paper = pipeline.fit(config.make_config(dataset="synthetic", pretrained="none", shots=2, epochs=1,
                                            protocol="paper"))
    assert len(paper.val_indices) == len(data.get_dataset("synthetic").split("val"))
    assert "tip_adapter_f" not in paper.methods  # fitted at evaluation, on test, as the official code


def test_paper_protocol_tip_f_selects_its_epoch_on_test():
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=2, epochs=3, protocol="paper")
    rec = pipeline.run(cfg)
    h = rec["hyper"]["tip_adapter_f"]
    assert h["selection"].startswith("epoch on test")
    best_test_during_training = max(e["val_acc"] for e in rec["history"]["tip_adapter_f"])  # scored on test
    assert rec["metrics"]["test"]["tip_adapter_f"] >= best_test_during_training


def test_same_config_and_seed_give_identical_numbers():
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=3, seed=4)
    a, b = pipeline.run(cfg), pipeline.run(cfg)
    assert a["metrics"] == b["metrics"] and a["hyper"] == b["hyper"] and a["history"] == b["history"]
    assert a["manifest"] == b["manifest"] and len(a["manifest"]) == 3 * 4


def test_fused_adamw_keeps_the_accuracies_and_the_chosen_epoch(problem, monkeypatch):
    """The fused optimiser step (one pass over the keys) against torch's reference AdamW loop: the keys agree to
    float rounding, every epoch's accuracies and the kept epoch are the same."""
    import importlib

    ft = importlib.import_module("tipkit.core.finetune")  # the module (tipkit.core.finetune is also the function)

    fused, _, _ = run_ft(problem, epochs=8)
    monkeypatch.setattr(ft, "fused_adamw", lambda device: False)
    reference, _, _ = run_ft(problem, epochs=8)
    assert ft.fused_adamw("cpu") is False and fused.best_epoch == reference.best_epoch
    assert [(h["val_acc"], h["train_acc"]) for h in fused.history] == \
        [(h["val_acc"], h["train_acc"]) for h in reference.history]
    assert torch.allclose(fused.keys, reference.keys, atol=1e-6, rtol=0)
    assert [h["loss"] for h in fused.history] == pytest.approx([h["loss"] for h in reference.history], rel=1e-5)
