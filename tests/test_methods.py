"""tipkit.methods: the shared interface, the registry, the protocol, and every method's known answer."""

import dataclasses
import json

import pytest
import torch
from methods_synth import FAST, make_problem, one_thread  # noqa: F401 (autouse fixture)

from tipkit.core.metrics import accuracy
from tipkit.errors import TipkitError
from tipkit.methods import HPARAMS, METHODS, PAPERS, FewShotData, get_method, list_methods

NAMES = sorted(FAST)  # every method except CoOp (tests/test_methods_coop.py)
TRAINED = ["clip_adapter", "tip_adapter_f", "ape_t", "clap", "lp_plus_plus"]  # seed-dependent methods
LEARNERS = [n for n in NAMES if not n.startswith("zero_shot")]


@pytest.fixture(scope="module")
def problem():
    return make_problem()


@pytest.fixture(scope="module")
def fitted(problem):
    data, _, _ = problem
    return {name: get_method(name, **FAST[name]).fit(data) for name in NAMES}


def test_registry_covers_every_method_with_hparams_and_citation():
    assert set(list_methods()) == set(FAST) | {"coop"}
    for name, cls in METHODS.items():
        assert cls.name == name and name in PAPERS and "arXiv" in PAPERS[name]
        for key, spec in HPARAMS[name].items():
            assert set(spec) == {"default", "source"} and spec["source"], (name, key)


def test_unknown_method_lists_known_names():
    with pytest.raises(TipkitError, match=r"unknown method 'tip_adapterr'; known: .*tip_adapter, tip_adapter_f"):
        get_method("tip_adapterr")


def test_bad_hyperparameters_are_one_clear_error():
    with pytest.raises(TipkitError, match=r"unknown hyperparameter 'gama' for method 'tip_x'; known: .*gammas"):
        get_method("tip_x", gama=1.0)
    with pytest.raises(TipkitError, match="hyperparameter 'epochs' of clap must be int"):
        get_method("clap", epochs="many")
    with pytest.raises(TipkitError, match="hyperparameter 'lr' of clap must be float"):
        get_method("clap", lr=float("nan"))
    with pytest.raises(TipkitError, match="'search_step' of tip_x must have 3 values"):
        get_method("tip_x", search_step=[10, 10])
    data = make_problem(n_val=10, n_test=1)[0]
    with pytest.raises(TipkitError, match="explicit search grid must be a non-empty list of numbers"):
        get_method("tip_x", gammas=[]).fit(data)


def test_overrides_replace_defaults_without_touching_the_table():
    m = get_method("tip_x", search_step=[2, 2, 2])
    assert m.params["search_step"] == [2, 2, 2] and m.params["temperature"] == 0.5
    assert HPARAMS["tip_x"]["search_step"]["default"] == [200, 20, 50]


def test_fewshotdata_rejects_inconsistent_inputs(problem):
    data, _, _ = problem
    ok = dict(views=data.views, labels=data.labels, val=data.val, val_labels=data.val_labels,
              class_embeddings=data.class_embeddings)
    with pytest.raises(TipkitError, match="labels must have shape"):
        FewShotData(**{**ok, "labels": data.labels[:-1]})
    with pytest.raises(TipkitError, match=r"val must have shape \[\*, 32\]"):
        FewShotData(**{**ok, "val": data.val[:, :5]})
    with pytest.raises(TipkitError, match="labels must lie in"):
        FewShotData(**{**ok, "labels": data.labels + 10})
    assert torch.allclose(data.keys.norm(dim=-1), torch.ones(len(data.labels)))


def test_predict_needs_fit_and_the_right_width(problem):
    data, xt, _ = problem
    m = get_method("tip_adapter")
    with pytest.raises(TipkitError, match="call fit"):
        m.predict(xt)
    m.fit(data)
    with pytest.raises(TipkitError, match=r"features must be \[N, 32\]"):
        m.predict(xt[:, :8])


@pytest.mark.parametrize("name", NAMES)
def test_known_answer_on_separable_clusters(name, problem, fitted):
    _, xt, yt = problem
    zs = accuracy(fitted["zero_shot"].predict(xt), yt)
    assert zs < 85.0  # the text classifier confuses two pairs of classes
    acc = accuracy(fitted[name].predict(xt), yt)
    logits = fitted[name].predict(xt)
    assert logits.shape == (len(yt), 5) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    if name in LEARNERS:  # the few-shot images separate every class
        assert acc >= (90.0 if name == "clip_adapter" else 97.0), acc
    if "val_acc" in fitted[name].hyper:  # what was selected on val is what predict() computes
        data = problem[0]
        assert accuracy(fitted[name].predict(data.val), data.val_labels) == pytest.approx(fitted[name].hyper["val_acc"])
    json.dumps(fitted[name].hyper)  # JSON-serialisable record
    json.dumps(fitted[name].history)


@pytest.mark.parametrize("name", NAMES)
def test_predictions_are_per_image(name, problem, fitted):
    """No batch statistics at test time: a sub-batch gets exactly the rows of the full batch."""
    _, xt, _ = problem
    full = fitted[name].predict(xt)
    assert torch.allclose(fitted[name].predict(xt[7:19]), full[7:19], atol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_per_seed(name, problem, fitted):
    data, xt, _ = problem
    again = get_method(name, **FAST[name]).fit(data)
    assert torch.equal(again.predict(xt), fitted[name].predict(xt))
    assert again.hyper == fitted[name].hyper
    if name in TRAINED:
        other = make_problem()[0]
        other.seed = 2
        assert not torch.equal(get_method(name, **FAST[name]).fit(other).predict(xt), again.predict(xt))


class Sealed(torch.Tensor):
    """Test features that raise on any use until unsealed."""

    sealed = True

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if Sealed.sealed:
            raise AssertionError(f"the test features were touched before predict ({getattr(func, '__name__', func)})")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("name", NAMES)
def test_protocol_guard_fit_never_touches_test_features(name):
    data, xt, yt = make_problem(seed=3)
    before = {k: getattr(data, k).clone() for k in ("views", "labels", "val", "val_labels", "class_embeddings")}
    test = xt.as_subclass(Sealed)
    Sealed.sealed = True
    try:
        with pytest.raises(AssertionError, match="touched before predict"):
            test.sum()  # the guard works
        m = get_method(name, **FAST[name]).fit(data)  # all selection happens here
    finally:
        Sealed.sealed = False
    for k, v in before.items():  # fit did not modify its inputs either
        assert torch.equal(getattr(data, k), v), k
    assert torch.equal(m.predict(test.as_subclass(torch.Tensor)), m.predict(xt))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_cuda_with_the_cpu_answer(name, problem, fitted):
    data, xt, yt = problem
    m = get_method(name, **FAST[name]).fit(dataclasses.replace(data, device="cuda"))
    logits = m.predict(xt)
    assert logits.device.type == "cpu" and m.device.type == "cuda"
    assert abs(accuracy(logits, yt) - accuracy(fitted[name].predict(xt), yt)) <= 2.0
