"""Distribution shift in miniature: the shifted Fashion-MNIST test sets and a run's extra test sets."""

import numpy as np
import pytest

from tipkit import config, data, paths
from tipkit.cli import main
from tipkit.data import fashion_shift
from tipkit.data.registry import Dataset, Split, _REGISTRY, register
from tipkit.errors import TipkitError
from tipkit.experiments import pipeline

needs_fashion = pytest.mark.skipif(not paths.DEBIAN_FASHION_MNIST.exists(), reason="dataset-fashion-mnist not installed")


def test_sketch_is_an_edge_map():
    img = np.zeros((28, 28), np.uint8)
    assert not fashion_shift.sketch(img).any()  # a flat image has no edges
    img[8:20, 8:20] = 200
    s = fashion_shift.sketch(img)
    assert s.shape == img.shape and s.dtype == np.uint8
    assert s[14, 14] == 0 and s[8, 14] > 100  # the fill is gone, the outline stays


def test_recollect_is_deterministic_mild_and_per_image():
    rng = np.random.default_rng(0)
    img = (rng.random((28, 28)) * 255).astype(np.uint8)
    a, b = fashion_shift.recollect(img, 3), fashion_shift.recollect(img, 3)
    assert np.array_equal(a, b) and a.shape == img.shape
    assert not np.array_equal(a, fashion_shift.recollect(img, 4))  # each image its own draw
    smooth = np.tile(np.linspace(0, 255, 28, dtype=np.float32), (28, 1)).astype(np.uint8)
    diff = np.abs(fashion_shift.recollect(smooth, 0).astype(float) - smooth)
    assert diff[6:22, 6:22].mean() < 60  # a mild change, not a different image


@needs_fashion
def test_shifted_sets_are_test_only_with_the_same_classes():
    base = data.get_dataset("fashion-mnist")
    for name in fashion_shift.SHIFTS:
        ds = data.get_dataset(name)
        assert ds.classnames == base.classnames and list(ds.splits) == ["test"]
        test = ds.split("test")
        assert np.array_equal(test.labels, base.split("test").labels) and test.image(0).size == (28, 28)
        assert test.fingerprint() != base.split("test").fingerprint()  # its own cache key
        with pytest.raises(TipkitError, match="test-only"):
            ds.split("train")


@pytest.fixture
def shifted_synthetic():
    """A test-only shifted copy of the synthetic dataset (noise added), registered for the test."""
    @register("synthetic-noisy")
    def build(root=None, download=True):
        base = data.get_dataset("synthetic")
        t = base.split("test")

        def load(i):
            from PIL import Image

            arr = np.asarray(t.image(i)).astype(np.int16)
            arr = arr + np.random.default_rng(i).integers(-60, 60, arr.shape)
            return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
        return Dataset("synthetic-noisy", base.classnames, base.templates,
                       {"test": Split("test", t.labels, load, [f"noisy/{j}" for j in t.ids])})
    yield "synthetic-noisy"
    _REGISTRY.pop("synthetic-noisy")


@pytest.mark.parametrize("protocol", ["clean", "paper"])
def test_extra_test_sets_are_scored_with_the_methods_unchanged(shifted_synthetic, protocol):
    kw = dict(dataset="synthetic", pretrained="none", shots=2, epochs=2, protocol=protocol,
              methods=["zero_shot", "tip_adapter", "tip_adapter_f"])
    plain = pipeline.run(config.make_config(**kw))
    rec = pipeline.run(config.make_config(**kw, extra_test=[shifted_synthetic]))
    assert rec["metrics"]["test"] == plain["metrics"]["test"]  # the extra set changes nothing fitted
    extra = rec["metrics"][f"test:{shifted_synthetic}"]
    assert set(extra) == set(kw["methods"]) and all(0 <= v <= 100 for v in extra.values())
    assert rec["config"]["extra_test"] == [shifted_synthetic]


def test_bad_extra_test_sets_fail_before_any_model_work(shifted_synthetic):
    with pytest.raises(TipkitError, match="unknown dataset 'nope'; known: .*fashion-mnist-sketch"):
        pipeline.validate(config.make_config(dataset="synthetic", extra_test=["nope"]))
    with pytest.raises(TipkitError, match="the run's own dataset"):
        pipeline.validate(config.make_config(dataset="synthetic", extra_test=["synthetic"]))
    with pytest.raises(TipkitError, match="repeat"):
        pipeline.validate(config.make_config(dataset="synthetic", extra_test=[shifted_synthetic] * 2))
    with pytest.raises(TipkitError, match="config key 'extra_test' must be a list of names"):
        config.make_config(extra_test="fashion-mnist-v2")


@needs_fashion
def test_other_classes_are_refused():
    with pytest.raises(TipkitError, match="other classes than 'synthetic'"):
        pipeline.validate(config.make_config(dataset="synthetic", extra_test=["fashion-mnist-v2"]))


def test_cli_extra_test_flag_reaches_the_config(capsys):
    assert main(["run", "--dataset", "synthetic", "--extra-test", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown dataset 'nope'" in err[0]


@needs_fashion
def test_data_check_knows_the_shifted_sets(capsys):
    assert main(["data", "check", "--dataset", "fashion-mnist-sketch", "--no-images"]) == 0
    assert "fashion-mnist-sketch: OK" in capsys.readouterr().out
