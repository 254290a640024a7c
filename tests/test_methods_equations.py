"""tipkit.methods: each method's equation, checked by degenerate settings and independent computations."""

import dataclasses

import numpy as np
import pytest
import torch
from methods_synth import FAST, make_problem, one_thread  # noqa: F401 (autouse fixture)

from tipkit.core.cache import l2_normalize
from tipkit.core.fusion import clip_logits, tip_logits
from tipkit.core.metrics import accuracy
from tipkit.core.search import grid_search, paper_grid
from tipkit.errors import TipkitError
from tipkit.methods import get_method
from tipkit.methods.ape import criterion, select_channels
from tipkit.methods.base import dassl_lr, epoch_batches
from tipkit.methods.clap import class_multipliers
from tipkit.methods.lpplusplus import step_sizes
from tipkit.methods.tipx import kl_divergence, signatures


@pytest.fixture(scope="module")
def problem():
    return make_problem(seed=5)


def zero_shot(data, x):
    return clip_logits(x, data.class_embeddings)


def test_zero_shot_variants(problem):
    data, xt, _ = problem
    assert torch.equal(get_method("zero_shot").fit(data).predict(xt), 100.0 * xt @ data.class_embeddings.T)
    single = get_method("zero_shot_single").fit(data).predict(xt)
    assert torch.equal(single, 100.0 * xt @ data.single_prompt_embeddings.T)
    with pytest.raises(TipkitError, match="single_prompt_embeddings"):
        get_method("zero_shot_single").fit(dataclasses.replace(data, single_prompt_embeddings=None))


def test_tip_adapter_wraps_grid_search(problem):
    data, xt, _ = problem
    m = get_method("tip_adapter", **FAST["tip_adapter"]).fit(data)
    betas, alphas = paper_grid((10.0, 10.0), (10, 10))
    s = grid_search(data.val, data.val_labels, data.class_embeddings, data.keys, data.values, betas, alphas)
    assert m.hyper == {"alpha": s.best_alpha, "beta": s.best_beta, "val_acc": s.best_acc}
    assert torch.equal(m.predict(xt), tip_logits(xt, data.class_embeddings, data.keys, data.values, s.best_alpha, s.best_beta))


def test_tip_adapter_f_keeps_best_validation_epoch(problem):
    data, _, _ = problem
    m = get_method("tip_adapter_f", **FAST["tip_adapter_f"]).fit(data)
    vals = [h["val_acc"] for h in m.history]
    assert len(vals) == 4 and m.hyper["best_epoch"] == 1 + int(np.argmax(vals))


def test_tip_x_reduces_to_zero_shot_and_to_tip(problem):
    data, xt, _ = problem
    none = get_method("tip_x", betas=[3.0], alphas=[0.0], gammas=[0.0]).fit(data)
    assert torch.equal(none.predict(xt), zero_shot(data, xt))
    tip = get_method("tip_x", betas=[2.0], alphas=[1.5], gammas=[0.0]).fit(data)
    assert torch.allclose(tip.predict(xt), tip_logits(xt, data.class_embeddings, data.keys, data.values, 1.5, 2.0), atol=1e-4)
    kl_only = get_method("tip_x", betas=[2.0], alphas=[0.0], gammas=[1.0]).fit(data)
    assert not torch.allclose(kl_only.predict(xt), zero_shot(data, xt))


def test_tip_x_kl_term(problem):
    data, _, _ = problem
    log_k = signatures(data.keys, data.class_embeddings, 0.5)
    log_v = signatures(data.val, data.class_embeddings, 0.5)
    brute = (log_v.exp()[:, None, :] * (log_v[:, None, :] - log_k[None, :, :])).sum(-1)
    assert torch.allclose(kl_divergence(log_v, log_k), brute, atol=1e-5)
    assert torch.allclose(torch.diagonal(kl_divergence(log_k, log_k)), torch.zeros(len(log_k)), atol=1e-5)
    m = get_method("tip_x", betas=[1.0], alphas=[1.0], gammas=[1.0]).fit(data)
    lo, hi, a_lo, a_hi = m.ranges  # KL range mapped onto the val affinity range (SuS-X scale_)
    scaled = -m._kl_logits(data.val) / data.values.sum(0)  # one-hot V: per-class sums of scaled KL
    assert a_lo * 0.999 - 1e-4 <= float(scaled.min()) and float(scaled.max()) <= a_hi * 1.001 + 1e-4
    _, xt, yt = problem
    assert accuracy(m._kl_logits(xt), yt) > 80.0  # small divergence from a class's images = evidence for it


def test_ape_prior_weights_are_kl_of_one_hot_to_zero_shot_probs(problem):
    data, _, _ = problem
    m = get_method("ape", **FAST["ape"]).fit(data)
    w_sel, k_sel = l2_normalize(data.class_embeddings[:, m.idx]), l2_normalize(data.keys[:, m.idx])
    p_true = torch.softmax(k_sel @ w_sel.T, dim=1).gather(1, data.labels[:, None])
    assert torch.allclose(m.div, torch.log2((1 + 1e-6) / (p_true + 1e-6)), atol=1e-5)  # harder images weigh more
    assert torch.allclose(m.soft_values.dense(), data.values * torch.exp(m.gamma * m.div))


def test_ape_criterion_matches_the_official_loops():
    gen = torch.Generator().manual_seed(0)
    c, shots, d = 3, 2, 6
    W, keys = l2_normalize(torch.randn(c, d, generator=gen)), l2_normalize(torch.randn(c * shots, d, generator=gen))
    labels = torch.arange(c).repeat_interleave(shots)
    feats = torch.cat([W[:, None, :], keys.reshape(c, shots, d)], dim=1)  # [C, 1 + shots, D] as cal_criterion
    sim, count = torch.zeros(d), 0
    for i in range(c):
        for j in range(c):
            for m in range(shots + 1):
                for n in range(shots + 1):
                    if i != j:
                        sim += feats[i, m] * feats[j, n]
                        count += 1
    official = -0.7 * sim / count + 0.3 * torch.var(W.T, dim=1)
    assert torch.allclose(criterion(W, keys, labels, [0.7, 0.3]), official, atol=1e-6)


def test_ape_reduces_to_zero_shot_and_to_tip(problem):
    data, xt, _ = problem
    assert torch.equal(get_method("ape", betas=[1.0], alphas=[0.0], gammas=[0.5]).fit(data).predict(xt), zero_shot(data, xt))
    all_channels = get_method("ape", feat_num=data.dim, betas=[2.0], alphas=[1.5], gammas=[0.0]).fit(data)
    assert torch.allclose(all_channels.predict(xt), tip_logits(xt, data.class_embeddings, data.keys, data.values, 1.5, 2.0), atol=1e-3)
    few = get_method("ape", feat_num=0.25, **FAST["ape"]).fit(data)
    assert few.hyper["feat_num"] == 8 and len(set(few.idx.tolist())) == 8
    with pytest.raises(TipkitError, match="feat_num must select between 1 and 32"):
        get_method("ape", feat_num=64).fit(data)


def test_ape_t_without_training_is_tip_on_its_grid(problem):
    data, xt, _ = problem
    m = get_method("ape_t", **{**FAST["ape_t"], "lr": 0.0}).fit(data)  # residual stays 0, value weights 1
    a, b = m.hyper["alpha"], m.hyper["beta"]
    assert torch.allclose(m.predict(xt), tip_logits(xt, data.class_embeddings, data.keys, data.values, a, b), atol=1e-4)


def test_ape_t_learns_one_residual_per_class_shared_by_text_and_keys(problem):
    data, _, _ = problem
    m = get_method("ape_t", **FAST["ape_t"]).fit(data)
    idx = select_channels(data, m.params["feat_num"], m.params["w"])
    res_text = m.W[:, idx] - data.class_embeddings[:, idx]  # [C, Q]
    res_keys = m.keys[:, idx] - data.keys[:, idx]  # [K, Q]
    assert res_text.abs().max() > 1e-4 and torch.allclose(res_keys, res_text[data.labels], atol=1e-6)
    rest = torch.ones(data.dim, dtype=torch.bool)
    rest[idx] = False
    assert torch.equal(m.W[:, rest], data.class_embeddings[:, rest]) and torch.equal(m.keys[:, rest], data.keys[:, rest])


def test_gda_is_shared_covariance_lda_fused_with_zero_shot(problem):
    data, xt, _ = problem
    assert torch.equal(get_method("gda", alphas=[0.0]).fit(data).predict(xt), zero_shot(data, xt))
    m = get_method("gda").fit(data)
    a, k, d = data.views.shape
    x = l2_normalize(data.views).reshape(a * k, d).double().numpy()
    y = data.labels.repeat(a).numpy()
    mus = np.stack([x[y == c].mean(0) for c in range(data.num_classes)])
    s = np.cov((x - mus[y]).T)
    prec = d * np.linalg.pinv((len(x) - 1) * s + np.trace(s) * np.eye(d))
    q = xt.double().numpy()
    maha = np.stack([np.einsum("nd,de,ne->n", q - mu, prec, q - mu) for mu in mus], 1)  # equal priors
    assert (m.discriminant(xt).argmax(1).numpy() == maha.argmin(1)).all()
    assert np.allclose(m.weights.numpy(), mus @ prec) and np.allclose(
        m.bias.numpy(), np.log(1 / data.num_classes) - 0.5 * np.einsum("cd,de,ce->c", mus, prec, mus))
    assert torch.allclose(m.predict(xt), (zero_shot(data, xt).double() + m.alpha * m.discriminant(xt)).float())


def test_clap_multipliers_and_zero_step_equals_zero_shot(problem):
    data, xt, _ = problem
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(class_multipliers(logits, torch.tensor([0, 0, 1]), 2),
                          torch.tensor([(torch.softmax(logits[0], 0)[0] + 0.5) / 2, torch.softmax(logits[2], 0)[1]]))
    frozen = get_method("clap", epochs=3, lr=0.0, warmup_lr=0.0).fit(data)
    assert torch.allclose(frozen.predict(xt), zero_shot(data, xt), atol=1e-4)
    assert len(frozen.history) == 3 and len(frozen.hyper["lambdas"]) == data.num_classes


def test_lp_plus_plus_step_sizes(problem):
    data, _, _ = problem
    f = l2_normalize(data.views[0].float())
    lr_w, lr_a = step_sizes(f, data.class_embeddings)
    fn = f.double().numpy()
    assert lr_w == pytest.approx(4 * len(fn) / np.linalg.eigvalsh(fn.T @ fn).max())
    assert lr_a == pytest.approx(len(fn) / (4 * ((fn @ data.class_embeddings.double().numpy().T) ** 2).sum(0).max()))


def test_clip_adapter_ratio_zero_is_zero_shot_and_epoch_is_best_on_val(problem):
    data, xt, _ = problem
    assert torch.allclose(get_method("clip_adapter", epochs=2, ratio=0.0).fit(data).predict(xt), zero_shot(data, xt), atol=1e-4)
    m = get_method("clip_adapter", **FAST["clip_adapter"]).fit(data)
    vals = [h["val_acc"] for h in m.history]
    assert m.hyper["best_epoch"] == 1 + int(np.argmax(vals)) and m.hyper["val_acc"] == max(vals)


def test_linear_probe_search(problem):
    data, xt, _ = problem
    m = get_method("linear_probe", search_steps=0).fit(data)
    grid = m.params["c_grid"]
    assert m.hyper["C"] == grid[int(np.argmax(m.hyper["grid_val_acc"]))]
    searched = get_method("linear_probe", search_steps=2).fit(data)
    peak = searched.hyper["C"]
    assert any(0.1 * c <= peak <= 10 * c for c in grid)


def test_dassl_schedule_and_batches():
    assert dassl_lr(0, 0.1, 10) == 1e-5 and dassl_lr(1, 0.1, 10) == pytest.approx(0.1)
    assert dassl_lr(6, 0.1, 10) == pytest.approx(0.05)
    gen = torch.Generator().manual_seed(0)
    assert [len(b) for b in epoch_batches(70, 32, gen)] == [32, 32]  # drop_last, as Dassl's train loader
    assert [len(b) for b in epoch_batches(20, 32, gen)] == [20]
