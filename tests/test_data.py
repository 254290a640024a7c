import numpy as np
import pytest

from tipkit import data, paths
from tipkit.data import fashion_mnist
from tipkit.errors import TipkitError

needs_fmnist = pytest.mark.skipif(not paths.DEBIAN_FASHION_MNIST.exists(),
                                  reason="Debian package dataset-fashion-mnist not installed")


def test_sampler_is_deterministic_per_seed_and_balanced():
    labels = np.repeat(np.arange(6), 30)
    a = data.sample_few_shot(labels, 4, seed=1)
    assert np.array_equal(a, data.sample_few_shot(labels, 4, seed=1))
    assert not np.array_equal(a, data.sample_few_shot(labels, 4, seed=2))
    assert np.array_equal(np.bincount(labels[a]), np.full(6, 4))
    assert len(set(a.tolist())) == len(a)  # without replacement


@pytest.mark.parametrize("shots", [0, -3, 2.5, True])
def test_sampler_rejects_non_positive_or_non_integer_shots(shots):
    with pytest.raises(TipkitError, match="positive integer"):
        data.sample_few_shot(np.repeat(np.arange(3), 10), shots, seed=1)


def test_sampler_rejects_more_shots_than_a_class_holds():
    labels = np.array([0] * 10 + [1] * 3)
    with pytest.raises(TipkitError, match=r"shots=4 is more than class 1 holds \(3 images\); use shots <= 3"):
        data.sample_few_shot(labels, 4, seed=1)


def test_partition_is_stratified_disjoint_and_fixed():
    labels = np.repeat(np.arange(10), 6000)
    part = fashion_mnist.fashion_partition(labels)
    sets = {k: set(v.tolist()) for k, v in part.items()}
    assert not (sets["pretrain"] & sets["val"]) and not (sets["pretrain"] & sets["train"]) \
        and not (sets["val"] & sets["train"])
    for k, n in fashion_mnist.PER_CLASS.items():
        assert np.array_equal(np.bincount(labels[part[k]]), np.full(10, n))
    assert all(np.array_equal(part[k], fashion_mnist.fashion_partition(labels)[k]) for k in part)


def test_unknown_dataset_lists_known():
    with pytest.raises(TipkitError, match=r"unknown dataset 'mnist'; known: caltech101, .*fashion-mnist, .*synthetic"):
        data.get_dataset("mnist")


def test_missing_dataset_root_is_a_clear_error(tmp_path):
    with pytest.raises(TipkitError, match=f"Fashion-MNIST not found in {tmp_path}"):
        data.get_dataset("fashion-mnist", root=tmp_path)


def test_download_fallback_failure_is_a_clear_error(monkeypatch, tmp_path):
    import torchvision.datasets

    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(TipkitError, match="download failed"):
        data.get_dataset("fashion-mnist")


def test_truncated_idx_file_is_rejected(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes((0x0803).to_bytes(4, "big") + (5).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 10)
    with pytest.raises(TipkitError, match="truncated"):
        fashion_mnist.read_idx(p)


def test_synthetic_dataset_and_manifest():
    ds = data.get_dataset("synthetic")
    train = ds.split("train")
    idx = data.sample_few_shot(train.labels, 2, seed=3)
    m = data.manifest(train, idx)
    assert [r["label"] for r in m] == train.labels[idx].tolist()
    assert all(r["id"].startswith("train/") for r in m)
    assert train.image(0).size == (28, 28)
    with pytest.raises(TipkitError, match="unknown split"):
        ds.split("pretrain")


@needs_fmnist
def test_fashion_mnist_splits_are_disjoint_from_test_and_pretrain():
    ds = data.get_dataset("fashion-mnist")
    ids = {k: set(s.ids) for k, s in ds.splits.items()}
    assert {k: len(v) for k, v in ids.items()} == {"pretrain": 50000, "val": 2000, "train": 8000, "test": 10000}
    for a in ids:
        for b in ids:
            if a < b:
                assert not ids[a] & ids[b], (a, b)
    assert ds.num_classes == 10 and "ankle boot" in ds.classnames
