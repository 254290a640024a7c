"""A saved adapter and ``tipkit predict``: a folder of our own runs end to end, the adapter file reproduces
the run's test predictions and accuracy exactly, and every bad input is one clear line with nothing written."""

import json

import numpy as np
import pytest
import torch
from folder_fakes import write_pictures, write_tree

import tipkit
from tipkit import cli, paths
from tipkit.apply.adapter import ADAPTER_FORMAT, MAGIC
from tipkit.io import save_safetensors
from tipkit.models import load_state

FAST = ["--augment-views", "2", "--epochs", "3"]


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, message: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("tipkit: error:")]
    assert len(lines) == 1 and message in err, err  # one error; several problems are listed under it
    assert "Traceback" not in err


def run_own_folder(capsys, tmp_path, root, shots, *extra):
    """``tipkit run --dataset folder:root --save-adapter``; returns (record, adapter path, the run's own
    test logits from the same config, the dataset)."""
    adapter, rec = tmp_path / f"a{shots}.safetensors", tmp_path / f"rec{shots}.json"
    code, out, err = run_cli(capsys, "run", "--dataset", f"folder:{root}", "--shots", shots, *FAST, *extra,
                             "--out", rec, "--save-adapter", adapter)
    assert code == 0, err
    assert f"adapter: {adapter}" in out
    record = json.loads(rec.read_text())
    fitted = tipkit.fit(tipkit.make_config(**record["config"]))  # the same run again: deterministic
    test = fitted.dataset.split("test")
    ft = tipkit.l2_normalize(tipkit.image_features(fitted.backbone, fitted.dataset.name, test))
    method = record["adapter"]["method"]
    logits = fitted.methods[method].predict(ft)
    assert tipkit.accuracy(logits, test.labels) == record["metrics"]["test"][method]  # it is the run's prediction
    return record, adapter, logits, fitted.dataset


def check_predict_agrees(capsys, record, adapter, logits, ds, files):
    code, out, err = run_cli(capsys, "predict", "--adapter", adapter, "--json", "--top-k", "2", *files)
    assert code == 0, err
    doc = json.loads(out)
    assert [p["top"][0]["class"] for p in doc["predictions"]] == [ds.classnames[i] for i in logits.argmax(1).tolist()]
    for p in doc["predictions"]:
        assert len(p["top"]) == 2 and p["top"][0]["probability"] >= p["top"][1]["probability"]
    return doc


def test_own_folder_end_to_end_with_junk_save_and_predict(capsys, tmp_path):
    """Must hold: run 16 shots on a tree built here (junk files mixed in), --save-adapter, predict the held-out
    test images with identical labels, and the adapter reproduces the run's test accuracy exactly."""
    root = write_tree(tmp_path / "photos", per_class=40)
    record, adapter, logits, ds = run_own_folder(capsys, tmp_path, root, 16)
    assert record["adapter"] == {"path": str(adapter), "method": "tip_adapter_f"}
    source = record["data"]["source"]
    assert source["ignored_files"] == 13 and source["layout"] == "one pool, split by fractions"
    assert source["fingerprints"]["test"] == ds.split("test").fingerprint()
    assert len(record["manifest"]) == 16 * 4
    test = ds.split("test")
    doc = check_predict_agrees(capsys, record, adapter, logits, ds, [root / i for i in test.ids])
    assert doc["accuracy"] is None and doc["method"] == "tip_adapter_f"  # loose files carry no label
    a = tipkit.Adapter.load(adapter)
    pred = a.predict([root / i for i in test.ids])
    assert tipkit.accuracy(pred.logits, test.labels) == record["metrics"]["test"]["tip_adapter_f"]
    assert pred.labels == [ds.classnames[i] for i in logits.argmax(1).tolist()]
    assert np.allclose(pred.probs.sum(1), 1.0, atol=1e-5)
    assert a.meta["run"]["record_id"] == record["id"] and a.meta["tipkit"] == tipkit.__version__
    assert a.backbone["weights"] == record["model"]["weights"] and a.backbone["weights"].startswith("sha256:")
    assert a.classnames == ds.classnames and a.templates == ds.templates and a.keys.shape == (64, 64)


def test_split_folders_predict_reports_the_runs_test_accuracy(capsys, tmp_path):
    """predict on PATH/test (ImageFolder layout) gets an accuracy line equal to the run's test accuracy."""
    root = write_tree(tmp_path / "photos", split={"train": 20, "test": 8})
    record, adapter, logits, ds = run_own_folder(capsys, tmp_path, root, 8)
    doc = check_predict_agrees(capsys, record, adapter, logits, ds, [root / "test"])
    assert doc["accuracy"]["top1"] == record["metrics"]["test"]["tip_adapter_f"]
    assert doc["accuracy"]["images"] == 32
    assert [p["label"] for p in doc["predictions"]] == [ds.classnames[i] for i in ds.split("test").labels]
    code, out, _ = run_cli(capsys, "predict", "--adapter", adapter, root / "test")
    assert code == 0
    assert out.splitlines()[0].split()[:4] == ["image", "label", "top-1", "top-2"]
    assert out.splitlines()[-5] == (f"top-1 accuracy: {doc['accuracy']['top1']:.2f}% ({doc['accuracy']['correct']} "
                                    "of 32 labelled images, tip_adapter_f)")
    code, out, err = run_cli(capsys, "predict", "--adapter", adapter, "--csv", "--top-k", "1", root / "test" / "rings")
    rows = out.splitlines()
    assert rows[0] == "image,label,class_1,probability_1" and len(rows) == 1 + 8
    assert rows[1].split(",")[1] == "" and "accuracy" not in err  # a folder of one class's images is not ImageFolder layout


@pytest.mark.slow
@pytest.mark.parametrize("shots", [1, 2, 4, 8])
def test_own_folder_every_shot_count(capsys, tmp_path, shots):
    root = write_tree(tmp_path / "photos", per_class=40)
    record, adapter, logits, ds = run_own_folder(capsys, tmp_path, root, shots)
    check_predict_agrees(capsys, record, adapter, logits, ds, [root / i for i in ds.split("test").ids])


def test_zero_shot_and_tip_adapter_adapters(capsys, tmp_path):
    root = write_tree(tmp_path / "photos", per_class=20, junk=False)
    for method in ("zero_shot", "tip_adapter"):
        (tmp_path / method).mkdir()
        record, adapter, logits, ds = run_own_folder(capsys, tmp_path / method, root, 4, "--methods", "zero_shot",
                                                     "tip_adapter", "--adapter-method", method)
        a = tipkit.Adapter.load(adapter)
        assert a.method == method and (a.keys is None) == (method == "zero_shot")
        pred = a.predict([root / i for i in ds.split("test").ids])
        assert tipkit.accuracy(pred.logits, ds.split("test").labels) == record["metrics"]["test"][method]


# ---------------------------------------------------------------------------------------------- bad input
def nothing_written(tmp_path, *extra):
    assert not paths.results_dir().exists() and not paths.feature_cache_dir().exists()
    for p in extra:
        assert not p.exists(), p


@pytest.mark.parametrize("argv, message", [
    (["--save-adapter", "{tmp}/no/such/dir/a.safetensors"], "folder {tmp}/no/such/dir does not exist; create it first"),
    (["--save-adapter", "{tmp}"], "is a folder; name a file"),
    (["--save-adapter", "{tmp}/a.safetensors", "--adapter-method", "linear_probe"], "cannot save method 'linear_probe'"),
    (["--save-adapter", "{tmp}/a.safetensors", "--protocol", "paper", "--adapter-method", "tip_adapter_f"],
     "cannot save tip_adapter_f: the run does not fit it (under protocol paper it selects on test)"),
    (["--save-adapter", "{tmp}/a.safetensors", "--methods", "linear_probe"], "--save-adapter needs one of"),
])
def test_bad_save_adapter_is_refused_before_any_work(capsys, tmp_path, argv, message):
    root = write_tree(tmp_path / "photos", per_class=20, junk=False)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = run_cli(capsys, "run", "--dataset", f"folder:{root}", "--shots", "2", *argv)
    assert code == 2
    one_error_line(err, message.replace("{tmp}", str(tmp_path)))
    nothing_written(tmp_path, tmp_path / "a.safetensors", tmp_path / "no")


@pytest.mark.parametrize("make, message", [
    (lambda t: None, "no such folder"),
    (lambda t: write_tree(t / "p", per_class=5, classes=("cats",)), "a classifier needs at least 2"),
    (lambda t: (write_tree(t / "p", per_class=5, classes=("cats", "dogs")), (t / "p" / "owls").mkdir(),
                (t / "p" / "owls" / "notes.txt").write_text("x")), "class folder"),
    (lambda t: write_tree(t / "p", per_class=10, junk=False), "shots=16 is more than 4 classes hold ('checker' 6, 'horizontal stripes' 6"),
])
def test_bad_folder_runs_write_nothing(capsys, tmp_path, make, message):
    make(tmp_path)
    code, _, err = run_cli(capsys, "run", "--dataset", f"folder:{tmp_path / 'p'}", "--shots", "16",
                           "--save-adapter", tmp_path / "a.safetensors")
    assert code == 2
    one_error_line(err, message)
    nothing_written(tmp_path, tmp_path / "a.safetensors")


@pytest.fixture(scope="module")
def standin():
    return tipkit.load_backbone()


def small_adapter(bb, classes=("cat", "dog", "owl")) -> tipkit.Adapter:
    gen = torch.Generator().manual_seed(0)
    W = tipkit.l2_normalize(torch.randn(len(classes), 64, generator=gen))
    keys = tipkit.l2_normalize(torch.randn(6, 64, generator=gen))
    values = tipkit.one_hot(torch.tensor([0, 0, 1, 1, 2, 2]), len(classes))
    return tipkit.Adapter("tip_adapter", W, keys, values, 2.0, 5.0, list(classes), ["a photo of a {}."],
                          {"name": bb.name, "pretrained": "standin", "weights": bb.weights_id, "precision": "fp32"},
                          {"batch_size": 4})


def test_adapter_round_trip_and_predict_on_pil_images(tmp_path, standin):
    a = small_adapter(standin)
    path = a.save(tmp_path / "small.safetensors")
    b = tipkit.Adapter.load(path)
    assert torch.equal(b.keys, a.keys) and torch.equal(b.class_embeddings, a.class_embeddings)
    assert (b.alpha, b.beta, b.classnames) == (2.0, 5.0, ["cat", "dog", "owl"])
    from folder_fakes import picture

    images = [picture(k % 4, k) for k in range(7)]
    pred = b.predict(images)  # 7 images in batches of 4
    feats = tipkit.l2_normalize(torch.cat([standin.model.encode_image(torch.stack([standin.preprocess(im.convert("RGB"))
                                                                                   for im in images])).detach()]))
    ref = tipkit.tip_logits(feats, a.class_embeddings, a.keys, a.values, 2.0, 5.0)
    assert torch.allclose(pred.logits, ref, atol=1e-4)
    assert pred.indices.tolist() == ref.argmax(1).tolist() and len(pred.labels) == 7
    top = pred.top(3)
    assert [len(t) for t in top] == [3] * 7 and all(t[0][1] >= t[1][1] >= t[2][1] for t in top)
    assert pred.top(4) == top  # clamped to the classes
    with pytest.raises(tipkit.TipkitError, match="top-k must be a positive integer, got 0"):
        pred.top(0)


@pytest.mark.parametrize("make, message", [
    (lambda t, a: t / "missing.safetensors", "adapter file not found"),
    (lambda t, a: (t / "junk.safetensors").write_bytes(b"\x00garbage" * 9) and t / "junk.safetensors",
     "is not a tipkit adapter (not a safetensors file"),
    (lambda t, a: paths.STANDIN_CHECKPOINT, "is not a tipkit adapter (a safetensors file without tipkit's adapter metadata)"),
    (lambda t, a: save_safetensors(t / "new.safetensors", {"class_embeddings": a.class_embeddings},
                                   {"format": MAGIC, "format_version": str(ADAPTER_FORMAT + 1), "tipkit": "{}"}),
     f"is adapter format {ADAPTER_FORMAT + 1}, newer than this tipkit"),
    (lambda t, a: save_safetensors(t / "broken.safetensors", {"class_embeddings": a.class_embeddings},
                                   {"format": MAGIC, "format_version": "1", "tipkit": "{\"method\": \"tip_adapter\"}"}),
     "is a damaged tipkit adapter"),
])
def test_not_an_adapter_is_one_clear_line(capsys, tmp_path, standin, make, message):
    target = make(tmp_path, small_adapter(standin))
    images = write_pictures(tmp_path / "imgs", 0, 2, 0)
    code, out, err = run_cli(capsys, "predict", "--adapter", target, *images)
    assert code == 2 and not out
    one_error_line(err, message)


def test_predict_bad_paths_and_other_weights(capsys, tmp_path, standin):
    adapter = small_adapter(standin).save(tmp_path / "a.safetensors")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
    (tmp_path / "doc.pdf").write_text("x")
    good = write_pictures(tmp_path / "imgs", 1, 2, 0)
    for target, message in [(tmp_path / "empty", "holds no images (looked for .jpg"),
                            (tmp_path / "doc.pdf", "is not an image file"), (tmp_path / "nope.png", "no such image or folder")]:
        code, out, err = run_cli(capsys, "predict", "--adapter", adapter, *good, target)
        assert code == 2 and not out
        one_error_line(err, f"{target}")
        one_error_line(err, message)
    code, _, err = run_cli(capsys, "predict", "--adapter", adapter, "--top-k", "0", *good)
    assert code == 2
    one_error_line(err, "--top-k must be at least 1, got 0")
    other = tmp_path / "other.safetensors"
    state = {k: v.clone() for k, v in load_state(paths.STANDIN_CHECKPOINT).items()}
    first = sorted(state)[0]
    state[first] += 0.01
    save_safetensors(other, state)
    code, out, err = run_cli(capsys, "predict", "--adapter", adapter, "--pretrained", other, *good)
    assert code == 2 and not out
    one_error_line(err, f"was fitted on tipkit-standin-mini weights {standin.weights_id} but {other} has sha256:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "doc.pdf", "empty", "imgs", "other.safetensors"]
