import math

import pytest
import torch

from tipkit import config
from tipkit.core.cache import build_cache, l2_normalize, one_hot
from tipkit.core.finetune import finetune
from tipkit.core.fusion import clip_logits, tip_logits
from tipkit.core.metrics import accuracy
from tipkit.core.search import grid_search, paper_grid
from tipkit.errors import TipkitError
from tipkit.studies import ablations
from tipkit.studies.ablations import AblationData, TipF

GRID = paper_grid((10.0, 10.0), (12, 6))
FAST_F = TipF(alpha=1.0, beta=3.0, epochs=3, lr=1e-2, batch_size=32, seed=1)


def make_data(c: int = 5, k: int = 16, d: int = 32, a: int = 3, seed: int = 0) -> AblationData:
    """Gaussian clusters around class centres; a noisy text classifier so the cache matters."""
    gen = torch.Generator().manual_seed(seed)
    centers = l2_normalize(torch.randn(c, d, generator=gen))
    labels = torch.arange(c).repeat_interleave(k)

    def queries(n):
        y = torch.randint(c, (n,), generator=gen)
        return l2_normalize(centers[y] + 0.25 * torch.randn(n, d, generator=gen)), y

    views = centers[labels].unsqueeze(0) + 0.25 * torch.randn(a, c * k, d, generator=gen)
    w = l2_normalize(centers + 0.25 * torch.randn(c, d, generator=gen))
    (fv, yv), (ft, yt) = queries(100), queries(200)
    return AblationData(views, labels, fv, yv, ft, yt, w)


@pytest.fixture(scope="module")
def data():
    return make_data()


def tip_reference(d, keys, values):
    """The plain recipe: α, β searched on val, test accuracy at that choice."""
    s = grid_search(d.val_features, d.val_labels, d.class_embeddings, keys, values, *GRID)
    acc = accuracy(tip_logits(d.test_features, d.class_embeddings, keys, values, s.best_alpha, s.best_beta),
                   d.test_labels)
    return s.best_alpha, s.best_beta, s.best_acc, acc


def zero_shot_acc(d):
    return accuracy(clip_logits(d.test_features, d.class_embeddings), d.test_labels)


def test_alpha_sweep_starts_at_zero_shot_and_matches_direct_logits(data):
    df = ablations.alpha_sweep(data)
    assert list(df.columns) == ["alpha", "beta", "val_acc", "acc"]
    assert df["alpha"].tolist() == list(ablations.PAPER_ALPHAS) and (df["beta"] == 5.5).all()
    assert df.loc[0, "acc"] == zero_shot_acc(data)
    keys, values = data.cache()
    for _, r in df.iterrows():
        assert r["acc"] == pytest.approx(accuracy(tip_logits(data.test_features, data.class_embeddings, keys, values,
                                                             r["alpha"], r["beta"]), data.test_labels))
    assert df["acc"].nunique() > 1  # the curve is not flat, so the checks above can fail


def test_beta_sweep_matches_direct_logits(data):
    df = ablations.beta_sweep(data, betas=[1.0, 4.0, 9.0], alpha=2.0)
    keys, values = data.cache()
    assert df["beta"].tolist() == [1.0, 4.0, 9.0] and (df["alpha"] == 2.0).all()
    for _, r in df.iterrows():
        assert r["val_acc"] == pytest.approx(accuracy(tip_logits(data.val_features, data.class_embeddings, keys,
                                                                 values, 2.0, r["beta"]), data.val_labels))


def test_heatmap_equals_grid_search(data):
    df = ablations.heatmap(data, grid=GRID)
    keys, values = data.cache()
    val = grid_search(data.val_features, data.val_labels, data.class_embeddings, keys, values, *GRID)
    test = grid_search(data.test_features, data.test_labels, data.class_embeddings, keys, values, *GRID)
    assert len(df) == 12 * 6
    assert torch.equal(torch.tensor(df["val_acc"].to_numpy()).reshape(12, 6), val.grid)
    assert torch.equal(torch.tensor(df["acc"].to_numpy()).reshape(12, 6), test.grid)
    best = df[df["val_best"]]
    assert len(best) == 1 and (best["alpha"].item(), best["beta"].item()) == (val.best_alpha, val.best_beta)


def test_group_keys_averages_consecutive_shots_per_class(data):
    keys, _ = data.cache()
    g, y = ablations.group_keys(keys, data.labels, 4)  # 16 shots per class -> 4 groups of 4
    assert g.shape == (5 * 4, 32) and y.tolist() == torch.arange(5).repeat_interleave(4).tolist()
    expected = l2_normalize(keys[16 * 2 + 4 * 3: 16 * 2 + 4 * 4].mean(dim=0))  # class 2, group 3
    assert torch.allclose(g[2 * 4 + 3], expected)
    assert torch.allclose(g.norm(dim=-1), torch.ones(20))
    same, y16 = ablations.group_keys(keys, data.labels, 16)
    assert torch.equal(same, keys) and torch.equal(y16, data.labels)
    with pytest.raises(TipkitError, match="does not divide"):
        ablations.group_keys(keys, data.labels, 3)
    with pytest.raises(TipkitError, match="positive integer"):
        ablations.group_keys(keys, data.labels, 0)


def test_cache_size_ends_are_zero_shot_and_plain_tip(data):
    df = ablations.cache_size(data, groups=(0, 1, 4, 16), grid=GRID)
    assert df["cache_entries"].tolist() == [0, 5, 20, 80]
    assert df.loc[0, "acc"] == zero_shot_acc(data) and math.isnan(df.loc[0, "beta"])
    alpha, beta, val_acc, acc = tip_reference(data, *data.cache())
    full = df[df["groups"] == 16].iloc[0]
    assert (full["alpha"], full["beta"], full["val_acc"], full["acc"]) == (alpha, beta, val_acc, acc)
    one = df[df["groups"] == 1].iloc[0]  # one averaged key per class: a prototype cache
    protos, y = ablations.group_keys(data.cache()[0], data.labels, 1)
    assert one["acc"] == tip_reference(data, protos, one_hot(y, 5))[3]
    with pytest.raises(TipkitError, match="does not divide"):
        ablations.cache_size(data, groups=(5,), grid=GRID)


def test_more_shots_keeps_the_cache_at_16_per_class():
    d = make_data(k=32, seed=3)
    df = ablations.more_shots(d, shots=(16, 32), grid=GRID, tip_f=FAST_F)
    assert df["cache_entries"].tolist() == [80, 80, 80, 80]
    assert df["method"].tolist() == ["tip_adapter", "tip_adapter_f"] * 2
    first16 = ablations.take_shots(d, 16)
    assert torch.equal(first16.views, d.views.reshape(3, 5, 32, 32)[:, :, :16].reshape(3, 80, 32))
    assert torch.equal(first16.labels, torch.arange(5).repeat_interleave(16))
    assert df.loc[0, "acc"] == tip_reference(first16, *first16.cache())[3]
    keys32, y = ablations.group_keys(d.cache()[0], d.labels, 16)
    assert df.loc[2, "acc"] == tip_reference(d, keys32, one_hot(y, 5))[3]
    assert (df.loc[[1, 3], "best_epoch"] >= 1).all()
    with pytest.raises(TipkitError, match="has 32 few-shot images"):
        ablations.more_shots(d, shots=(64,), grid=GRID, tip_f=None)
    with pytest.raises(TipkitError, match="does not divide"):
        ablations.more_shots(d, shots=(24,), grid=GRID, tip_f=None)


def test_augment_views_all_views_equals_build_cache(data):
    df = ablations.augment_views(data, grid=GRID)
    assert df["views"].tolist() == [1, 2, 3]
    ref = tip_reference(data, *build_cache(data.views, data.labels, 5))
    assert tuple(df.iloc[-1][["alpha", "beta", "val_acc", "acc"]]) == ref
    assert df.iloc[0]["acc"] == tip_reference(data, *build_cache(data.views[0], data.labels, 5))[3]
    for bad in (0, 4):
        with pytest.raises(TipkitError, match="outside 1..3"):
            ablations.augment_views(data, views=[bad], grid=GRID)


def test_prompt_ensemble_uses_each_classifier(data):
    w2 = l2_normalize(data.class_embeddings + 0.5 * torch.randn(5, 32, generator=torch.Generator().manual_seed(9)))
    df = ablations.prompt_ensemble(data, {"single": w2, "ensemble": data.class_embeddings}, tip_f=FAST_F, grid=GRID)
    assert df[["prompt", "method"]].values.tolist() == [[p, m] for p in ("single", "ensemble")
                                                        for m in ("zero_shot", "tip_adapter", "tip_adapter_f")]
    zs = df[df["method"] == "zero_shot"].set_index("prompt")["acc"]
    assert zs["ensemble"] == zero_shot_acc(data)
    assert zs["single"] == accuracy(clip_logits(data.test_features, w2), data.test_labels) != zs["ensemble"]


def test_finetune_trains_only_the_requested_part(data):
    keys, values = data.cache()
    args = (data.views, data.labels, data.val_features, data.val_labels, data.class_embeddings, keys, values, 1.0, 3.0)
    kw = dict(epochs=3, lr=1e-2, batch_size=16)
    v = finetune(*args, train="values", **kw)
    assert torch.equal(v.keys, keys) and not torch.equal(v.values, values) and v.best_epoch >= 1
    k = finetune(*args, train="keys", **kw)
    assert torch.equal(k.values, values) and not torch.equal(k.keys, keys)
    assert torch.equal(k.keys, finetune(*args, **kw).keys)  # "keys" is the default, unchanged behaviour
    b = finetune(*args, train="both", **kw)
    assert not torch.equal(b.keys, keys) and not torch.equal(b.values, values)
    with pytest.raises(TipkitError, match="unknown finetune part 'text'; known: both, keys, values"):
        finetune(*args, train="text", **kw)


def test_finetune_parts_and_epochs(data):
    df = ablations.finetune_parts(data, tip_f=FAST_F, grid=GRID)
    assert df["part"].tolist() == ["none", "keys", "values", "both"]
    assert tuple(df.iloc[0][["alpha", "beta", "val_acc", "acc"]]) == tip_reference(data, *data.cache())
    assert (df["best_epoch"].iloc[1:] >= 1).all() and (df["train_s"].iloc[1:] > 0).all()
    with pytest.raises(TipkitError, match="unknown finetune part 'encoder'"):
        ablations.finetune_parts(data, parts=("keys", "encoder"), tip_f=FAST_F, grid=GRID)
    ep = ablations.finetune_epochs(data, epochs=(1, 4), tip_f=FAST_F, grid=GRID)
    assert ep["epochs"].tolist() == [1, 4] and ep.loc[0, "best_epoch"] == 1 and 1 <= ep.loc[1, "best_epoch"] <= 4
    with pytest.raises(TipkitError, match="positive integers"):
        ablations.finetune_epochs(data, epochs=(0,), tip_f=FAST_F, grid=GRID)


def test_bad_data_rejected(data):
    with pytest.raises(TipkitError, match="dimensions disagree"):
        AblationData(data.views, data.labels, data.val_features[:, :8], data.val_labels, data.test_features,
                     data.test_labels, data.class_embeddings)
    with pytest.raises(TipkitError, match="dimensions disagree"):
        ablations.prompt_ensemble(data, {"ok": data.class_embeddings, "bad": torch.ones(5, 16)}, grid=GRID)
    with pytest.raises(TipkitError, match="val features but"):
        AblationData(data.views, data.labels, data.val_features, data.val_labels[:3], data.test_features,
                     data.test_labels, data.class_embeddings)


def test_load_data_from_a_config():
    cfg = config.make_config(dataset="synthetic", pretrained="none", shots=3)
    d = ablations.load_data(cfg, templates=["a {}."])
    assert d.views.shape[:2] == (cfg.augment_views, 4 * 3) and d.num_classes == 4
    assert torch.allclose(d.val_features.norm(dim=-1), torch.ones(len(d.val_labels)))
    assert ablations.cache_size(d, groups=(0, 3), grid=GRID)["groups"].tolist() == [0, 3]
    assert TipF.from_config(cfg).epochs == cfg.epochs
