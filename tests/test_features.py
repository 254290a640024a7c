import numpy as np
import pytest
import torch

from tipkit import data, models, paths
from tipkit.errors import TipkitError


def cached_files():
    """The feature stores (one folder of shards each)."""
    d = paths.feature_cache_dir()
    return sorted(p.name for p in d.iterdir() if p.is_dir()) if d.exists() else []


def test_class_embeddings_are_normalised_template_means(bb):
    W = models.class_embeddings(bb, ["a_b", "c"], ["x {}.", "y {}."])
    assert W.shape == (2, bb.model.text_projection.shape[1])
    assert torch.allclose(W.norm(dim=-1), torch.ones(2), atol=1e-5)
    tok = bb.tokenizer(["x a b.", "y a b."])  # underscores became spaces
    with torch.no_grad():
        e = bb.model.encode_text(tok)
    e = e / e.norm(dim=-1, keepdim=True)
    m = e.mean(0)
    assert torch.allclose(W[0], m / m.norm(), atol=1e-5)


def test_feature_cache_hits_extends_and_invalidates(bb, ds):
    test = ds.split("test")
    f1 = models.image_features(bb, ds.name, test, indices=[0, 1, 2])
    assert len(cached_files()) == 1
    assert torch.equal(f1, models.image_features(bb, ds.name, test, indices=[0, 1, 2]))
    f2 = models.image_features(bb, ds.name, test, indices=[2, 3])  # extends the same store
    assert len(cached_files()) == 1
    assert torch.equal(f2[0], f1[2])
    fresh = models.image_features(bb, ds.name, test, indices=[3, 0], use_cache=False)
    assert torch.allclose(fresh[0], f2[1], atol=1e-6) and torch.allclose(fresh[1], f1[0], atol=1e-6)
    models.image_features(bb, ds.name, ds.split("val"), indices=[0, 1, 2])
    models.image_features(bb, ds.name, test, indices=[0, 1, 2], view=0)
    models.image_features(bb, ds.name, test, indices=[0, 1, 2], view=1)
    models.image_features(bb, ds.name, test, indices=[0, 1, 2], view=1, aug_seed=5)
    assert len(cached_files()) == 5  # each changed input (split, view, augmentation seed) made a new store
    assert not list(paths.feature_cache_dir().rglob("*.tmp"))


def test_relabelled_split_never_reuses_a_stale_store(bb, ds):
    test = ds.split("test")
    models.image_features(bb, ds.name, test, indices=[0, 1])
    relabelled = data.Split(test.name, test.labels[::-1].copy(), test.load, test.ids)
    models.image_features(bb, ds.name, relabelled, indices=[0, 1])
    assert len(cached_files()) == 2


def test_changed_weights_never_reuse_a_stale_file(bb, ds, tmp_path):
    test = ds.split("test")
    ck = tmp_path / "w.pt"
    torch.save(bb.model.state_dict(), ck)
    a = models.load_backbone(pretrained=str(ck))
    fa = models.image_features(a, ds.name, test, indices=[0, 1])
    sd = bb.model.state_dict()
    sd["visual.proj"] = sd["visual.proj"] * 2
    torch.save(sd, ck)  # same path, new content
    b = models.load_backbone(pretrained=str(ck))
    assert a.weights_id != b.weights_id
    fb = models.image_features(b, ds.name, test, indices=[0, 1])
    assert torch.allclose(fb, 2 * fa, atol=1e-5)
    assert len(cached_files()) == 2


def test_local_checkpoint_loads_through_open_clip(bb, tmp_path):
    ck = tmp_path / "w.pt"
    torch.save(bb.model.state_dict(), ck)
    loaded = models.load_backbone(pretrained=str(ck))
    for (k, v), (k2, v2) in zip(bb.model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert loaded.weights_id == f"sha256:{models.file_sha256(ck)}"


def test_augmented_views_are_deterministic_and_differ(bb, ds):
    train = ds.split("train")
    v = models.view_features(bb, ds.name, train, np.arange(4), views=2, aug_seed=1, use_cache=False)
    assert v.shape[:2] == (2, 4)
    again = models.view_features(bb, ds.name, train, np.arange(4)[::-1], views=2, aug_seed=1, use_cache=False,
                                   batch_size=1)  # neither batching nor order changes an image's draw
    assert torch.allclose(v, again.flip(1), atol=1e-5)
    assert not torch.allclose(v[0], v[1])
    plain = models.image_features(bb, ds.name, train, np.arange(4), use_cache=False)
    assert not torch.allclose(plain, v[0])


@pytest.mark.parametrize("pretrained, message", [
    ("/no/such/file.pt", "checkpoint not found: /no/such/file.pt"),
    ("laion9000", "unknown pretrained tag 'laion9000' for tipkit-standin-mini"),
])
def test_bad_pretrained_values(pretrained, message):
    with pytest.raises(TipkitError, match=message):
        models.load_backbone(pretrained=pretrained)


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("hello")
    with pytest.raises(TipkitError, match="is not a checkpoint"):
        models.load_backbone(pretrained=str(bad))


def test_unknown_backbone_lists_known():
    with pytest.raises(TipkitError, match=r"unknown backbone 'RN5000'; known: .*RN50.*tipkit-standin-mini"):
        models.load_backbone("RN5000")


def test_real_pretrained_tag_path_is_kept(monkeypatch):
    """Real users pass hub tags: the tag reaches open_clip's downloader (which cannot connect here)."""
    import open_clip
    import open_clip.factory as factory

    seen = {}

    def fake_download(cfg, cache_dir=None):
        seen["cfg"] = cfg
        raise OSError("no network in tests")

    monkeypatch.setattr(factory, "download_pretrained", fake_download)
    with pytest.raises(TipkitError, match="could not fetch pretrained weights 'openai' for RN50"):
        models.load_backbone("RN50", "openai")
    assert seen["cfg"] == open_clip.get_pretrained_cfg("RN50", "openai")
