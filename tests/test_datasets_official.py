"""The official few-shot sampler against plain re-implementations of the upstream snippets."""

import random
from collections import defaultdict

import numpy as np
import pytest
from datasets_fakes import write_json_tree

from tipkit import data
from tipkit.data.fewshot_official import coop_few_shot, reduce_val_official, sample_few_shot_official
from tipkit.errors import TipkitError


def generate_fewshot_dataset(data_source, num_shots):
    """Dassl/CoOp/Tip-Adapter ``DatasetBase.generate_fewshot_dataset`` on (index, label) items, global random."""
    tracker = defaultdict(list)
    for item in data_source:
        tracker[item[1]].append(item)
    dataset = []
    for label, items in tracker.items():  # noqa: B007  (upstream's loop, verbatim)
        if len(items) >= num_shots:
            sampled_items = random.sample(items, num_shots)
        else:
            sampled_items = random.choices(items, k=num_shots)
        dataset.extend(sampled_items)
    return [i for i, _ in dataset]


def official(labels, shots, seed):
    random.seed(seed)  # Tip-Adapter main.py: random.seed(1) right before build_dataset
    return generate_fewshot_dataset(list(enumerate(labels)), shots)


def shuffled_labels(seed, classes=7, short=None):
    rng = np.random.default_rng(seed)
    counts = rng.integers(18, 30, classes)
    if short is not None:
        counts[short] = 3
    return rng.permutation(np.repeat(np.arange(classes), counts)).tolist()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_equals_the_official_snippet(seed, shots):
    labels = shuffled_labels(seed, short=4)
    assert sample_few_shot_official(labels, shots, seed).tolist() == official(labels, shots, seed)


def test_leaves_global_random_state_alone_and_is_deterministic():
    labels = shuffled_labels(0)
    random.seed(123)
    expected = [random.random() for _ in range(3)]
    random.seed(123)
    a = sample_few_shot_official(labels, 4, seed=1)
    assert [random.random() for _ in range(3)] == expected
    assert np.array_equal(a, sample_few_shot_official(np.asarray(labels), 4, seed=1)) and a.dtype == np.int64
    assert not np.array_equal(a, sample_few_shot_official(labels, 4, seed=2))


def test_classes_in_order_of_first_appearance_and_replacement_only_when_short():
    labels = np.asarray(shuffled_labels(5, short=2))
    idx = sample_few_shot_official(labels, 5, seed=1)
    first = list(dict.fromkeys(labels.tolist()))
    assert labels[idx].tolist() == [c for c in first for _ in range(5)]
    for c in first:
        picked = idx[labels[idx] == c]
        assert len(picked) == 5
        assert (len(set(picked.tolist())) < 5) == (c == 2)  # duplicates only where the class has 3 images
        assert set(picked.tolist()) <= set(np.flatnonzero(labels == c).tolist())
    kept = sample_few_shot_official(labels, 5, seed=1, repeat=False)
    assert (labels[kept] == 2).sum() == 3 and len(set(kept.tolist())) == len(kept)


def test_coop_draws_val_after_train_with_one_generator():
    tr, va = shuffled_labels(1), shuffled_labels(2)
    random.seed(7)  # CoOp: set_random_seed(cfg.SEED), then train, then val with min(K, 4)
    want_tr = generate_fewshot_dataset(list(enumerate(tr)), 8)
    want_va = generate_fewshot_dataset(list(enumerate(va)), 4)
    got_tr, got_va = coop_few_shot(tr, va, 8, seed=7)
    assert got_tr.tolist() == want_tr and got_va.tolist() == want_va
    assert np.bincount(np.asarray(va)[reduce_val_official(va, 2, seed=1)]).tolist() == [2] * 7
    assert np.bincount(np.asarray(va)[reduce_val_official(va, 16, seed=1)]).tolist() == [4] * 7


def test_matches_tip_adapters_imagenet_loop_on_label_sorted_lists():
    labels = sorted(shuffled_labels(3))  # ImageNet lists are ordered by class (ImageFolder)
    random.seed(1)  # main_imagenet.py
    by_label = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    want = [i for _, items in by_label.items() for i in random.sample(items, 16)]
    assert sample_few_shot_official(labels, 16, seed=1).tolist() == want


@pytest.mark.parametrize("shots", [0, -1, 2.5, True, "4"])
def test_rejects_bad_shots(shots):
    with pytest.raises(TipkitError, match="shots must be a positive integer"):
        sample_few_shot_official([0, 1, 1], shots, seed=1)


def test_needs_exactly_one_of_seed_or_rng():
    with pytest.raises(TipkitError, match="exactly one of seed= or rng="):
        sample_few_shot_official([0, 1], 1)
    with pytest.raises(TipkitError, match="exactly one of seed= or rng="):
        sample_few_shot_official([0, 1], 1, seed=1, rng=random.Random(1))


def test_draws_on_a_loaded_split_in_split_file_order(tmp_path):
    split = write_json_tree(tmp_path, "oxford_pets")
    tr = data.get_dataset("oxford_pets", root=tmp_path, download=False).split("train")
    idx = sample_few_shot_official(tr.labels, 2, seed=1)
    want = official([y for _, y, _ in split["train"]], 2, 1)
    assert [tr.ids[i] for i in idx] == ["images/" + split["train"][i][0] for i in want]
    assert [m["id"] for m in data.manifest(tr, idx)] == [tr.ids[i] for i in idx]
