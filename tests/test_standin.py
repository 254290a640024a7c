import json

import pytest
import torch

from tipkit import paths
from tipkit.models.standin import card
from tipkit.models import standin
from tipkit.models.backbone import file_sha256, load_backbone, load_state
from tipkit.models.standin import captions, train


def test_checkpoint_is_committed_small_and_matches_its_card():
    assert paths.STANDIN_CHECKPOINT.stat().st_size <= 20 * 2**20
    data = json.loads(paths.STANDIN_CARD_DATA.read_text())
    assert data["training"]["checkpoint_sha256"] == file_sha256(paths.STANDIN_CHECKPOINT)
    assert data["evaluation"], "the card's accuracy table is measured, not empty"
    md = card.CARD_MD.read_text()
    assert md == card.render(data)  # the Markdown is exactly what the measured data renders to
    assert "not CLIP" in md


def test_loads_through_open_clip_pretrained_path():
    import open_clip

    standin.register()
    model, _, preprocess = open_clip.create_model_and_transforms(standin.NAME, pretrained=str(paths.STANDIN_CHECKPOINT))
    sd = load_state(paths.STANDIN_CHECKPOINT)
    assert set(sd) == set(model.state_dict())
    assert torch.equal(model.state_dict()["visual.proj"], sd["visual.proj"].float())
    bb = load_backbone()  # the default is the stand-in, by the same route
    assert bb.weights_id == f"sha256:{file_sha256(paths.STANDIN_CHECKPOINT)}"


def test_synonyms_never_contain_canonical_names_and_canonical_captions_are_rare():
    canon = captions.CANONICAL + ["t-shirt", "top"]
    words = [w for syns in captions.SYNONYMS for w in syns] + captions.TEMPLATES + captions.ADJECTIVES
    for w in words:
        for c in canon[:-2] + ["t-shirt"]:
            assert c not in w.lower(), (c, w)
    import random

    rng = random.Random(0)
    n = 20000
    caps = [captions.caption(i % 10, rng, noise=0.2, canonical=0.03) for i in range(n)]
    with_canon = sum(any(c in cap for c in captions.CANONICAL) for cap in caps)
    assert 0.02 < with_canon / n < 0.04
    rng = random.Random(0)
    assert not any(c in captions.caption(i % 10, rng, noise=0.2) for c in captions.CANONICAL for i in range(2000))


def test_caption_noise_rate():
    import random

    rng = random.Random(0)
    caps = [captions.caption(0, rng, noise=0.2) for _ in range(4000)]
    own = sum(any(s in cap for s in captions.SYNONYMS[0]) for cap in caps)
    assert 0.75 < own / 4000 < 0.85  # ~20 % of captions describe another class


@pytest.mark.skipif(not paths.DEBIAN_FASHION_MNIST.exists(), reason="dataset-fashion-mnist not installed")
def test_training_is_reproducible_for_a_fixed_seed(tmp_path):
    r = train.Recipe(steps=3, batch_size=16, warmup=1)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train.train(r, out=a)
    train.train(r, out=b)
    assert file_sha256(a) == file_sha256(b)
    c = tmp_path / "c.safetensors"
    train.train(train.Recipe(steps=3, batch_size=16, warmup=1, seed=1), out=c)
    assert file_sha256(a) != file_sha256(c)


def test_augment_keeps_shape_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 28, 28)
    y = train.augment(x, (0.5, 1.0), g)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1


NEW_SIZES = [s for s in standin.SIZES if s != "base"]


@pytest.mark.parametrize("size", NEW_SIZES)
def test_each_size_is_committed_small_loadable_and_matches_its_card(size):
    name = standin.size_name(size)
    ckpt = standin.checkpoint_path(name)
    assert ckpt.stat().st_size <= 10 * 2**20
    data = card.load(name)
    assert data["training"]["checkpoint_sha256"] == file_sha256(ckpt)
    assert data["evaluation"], "the card's accuracy table is measured, not empty"
    md = standin.card_md_path(name).read_text()
    assert md == card.render(data, name) and "not CLIP" in md and f"--size {size}" in md
    bb = load_backbone(name, "standin")  # pretrained "standin" names this size's own checkpoint
    assert bb.weights_id == f"sha256:{file_sha256(ckpt)}"
    assert data["training"]["parameters"] < json.loads(paths.STANDIN_CARD_DATA.read_text())["training"]["parameters"]


def test_sizes_differ_in_capacity_and_the_default_is_unchanged():
    import open_clip

    standin.register()
    vis = {s: sum(p.numel() for p in open_clip.create_model(n, pretrained=None).visual.parameters())
           for s, n in standin.SIZES.items()}
    assert vis["tiny"] * 3 < vis["small"] and vis["small"] * 3 < vis["base"]
    assert standin.checkpoint_path(standin.NAME) == paths.STANDIN_CHECKPOINT
    assert standin.card_data_path(standin.NAME) == paths.STANDIN_CARD_DATA
    assert train.RECIPES["base"] == train.Recipe()  # the default recipe, as its card records


def test_unknown_names_get_one_clear_error():
    from tipkit.errors import TipkitError
    from tipkit.models.backbone import standin_checkpoint

    with pytest.raises(TipkitError, match="unknown stand-in size 'huge'; known: base, small, tiny"):
        standin.size_name("huge")
    with pytest.raises(TipkitError, match="'RN50' is not a stand-in; stand-ins: tipkit-standin-mini"):
        standin_checkpoint("RN50")
    with pytest.raises(TipkitError, match="unknown backbone 'tipkit-standin-huge'; known: .*tipkit-standin-tiny"):
        load_backbone("tipkit-standin-huge")


def test_cli_size_option_is_checked(capsys):
    from tipkit.cli import main

    with pytest.raises(SystemExit) as e:
        main(["standin", "train", "--size", "huge"])
    assert e.value.code == 2 and "invalid choice: 'huge'" in capsys.readouterr().err


@pytest.mark.skipif(not paths.DEBIAN_FASHION_MNIST.exists(), reason="dataset-fashion-mnist not installed")
def test_every_size_trains_reproducibly(tmp_path):
    r = train.Recipe(steps=2, batch_size=8, warmup=1)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train.train(r, out=a, size="tiny")
    train.train(r, out=b, size="tiny")
    assert file_sha256(a) == file_sha256(b)
    assert set(load_state(a)) == set(load_state(standin.checkpoint_path(standin.size_name("tiny"))))


@pytest.mark.parametrize("size", NEW_SIZES)
def test_a_smaller_standin_runs_and_its_saved_adapter_predicts(tmp_path, capsys, size):
    from tipkit.cli import main
    from tipkit.data import get_dataset

    name, adapter = standin.size_name(size), tmp_path / "a.safetensors"
    assert main(["run", "--dataset", "synthetic", "--backbone", name, "--shots", "2", "--epochs", "1",
                 "--methods", "zero_shot", "tip_adapter", "--save-adapter", str(adapter),
                 "--out", str(tmp_path / "r.json")]) == 0
    rec = json.loads((tmp_path / "r.json").read_text())
    assert rec["model"]["name"] == name
    assert rec["model"]["weights"] == f"sha256:{file_sha256(standin.checkpoint_path(name))}"
    img = tmp_path / "x.png"
    get_dataset("synthetic").split("test").image(0).save(img)
    capsys.readouterr()
    assert main(["predict", "--adapter", str(adapter), str(img)]) == 0
    assert "x.png" in capsys.readouterr().out
