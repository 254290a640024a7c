import matplotlib
import torch

from tipkit.core.cache import build_cache
from tipkit.figures import teach

matplotlib.use("Agg")


def test_instructive_query_is_wrong_zero_shot_and_right_with_the_cache(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, y = problem["queries"], problem["labels_q"]
    W = torch.roll(problem["W"], 1, dims=0)  # a zero-shot classifier that is mostly wrong
    i = teach.instructive_query(q, y, W, keys, values, alpha=1000.0, beta=5.0)
    assert int((100 * q[i] @ W.T).argmax()) != int(y[i])
    from tipkit.core.fusion import tip_logits

    assert int(tip_logits(q[i:i + 1], W, keys, values, 1000.0, 5.0).argmax()) == int(y[i])


def test_alpha_zero_row_is_the_zero_shot_prediction(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    names = [f"c{i}" for i in range(problem["C"])]
    q = problem["queries"][0]
    df = teach.alpha_beta_effect(q, problem["W"], keys, values, names)
    zs = names[int((q @ problem["W"].T).argmax())]
    assert set(df[df.alpha == 0.0].prediction) == {zs}
    assert len(df) == 10


def test_figures_build(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    names = [f"c{i}" for i in range(problem["C"])]
    for fig in (teach.cache_matrices(keys, values, names),
                teach.query_affinities(problem["queries"][0], keys, problem["labels_k"], names),
                teach.prediction_bars(problem["queries"][0], problem["W"], keys, values, names, 1.0, 5.5),
                teach.method_diagram()):
        assert fig.axes


def test_instructive_query_falls_back_to_zero_when_none_qualifies(problem):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    assert teach.instructive_query(problem["queries"], problem["labels_q"], problem["W"], keys, values, alpha=0.0) == 0
