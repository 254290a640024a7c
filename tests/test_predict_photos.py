"""`tipkit predict` and `Adapter.predict` as a new user meets them: a two-class adapter with the defaults, one
path in Python, `--out FILE`, accuracy per class, photos read upright, and damaged headers as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from folder_fakes import write_pictures
from PIL import Image
from test_adapter import one_error_line, run_cli, small_adapter
from test_photos import save_rotated

import tipkit
from tipkit.apply.adapter import ADAPTER_FORMAT, MAGIC, _image
from tipkit.io import save_safetensors


@pytest.fixture(scope="module")
def standin():
    return tipkit.load_backbone()


def test_two_class_adapter_predicts_with_the_defaults(capsys, tmp_path, standin):
    three = small_adapter(standin)
    a = tipkit.Adapter("tip_adapter", three.class_embeddings[:2], three.keys[:4],
                       tipkit.one_hot(torch.tensor([0, 0, 1, 1]), 2), 2.0, 5.0, ["cat", "dog"], three.templates,
                       three.backbone, three.meta)
    path = a.save(tmp_path / "two.safetensors")
    images = write_pictures(tmp_path / "imgs", 0, 3, 0)
    code, out, err = run_cli(capsys, "predict", "--adapter", path, *images)
    assert code == 0, err
    head = out.splitlines()[0].split()
    assert head == ["image", "label", "top-1", "top-2"]
    pred = tipkit.Adapter.load(path).predict(images, backbone=standin)
    assert [len(t) for t in pred.top()] == [2, 2, 2]


def test_one_path_or_one_pil_image_in_python(tmp_path, standin):
    a = small_adapter(standin)
    img = write_pictures(tmp_path / "imgs", 1, 1, 0)[0]
    one = a.predict(str(img), backbone=standin)
    also = a.predict(img, backbone=standin)
    pil = a.predict(Image.open(img), backbone=standin)
    listed = a.predict([img], backbone=standin)
    assert one.probs.shape == (1, 3)
    for p in (also, pil, listed):
        np.testing.assert_array_equal(p.probs, one.probs)


def test_photos_are_read_upright_for_predict(tmp_path):
    save_rotated(tmp_path / "phone.jpg", 6)
    assert _image(str(tmp_path / "phone.jpg")).size == (20, 40)
    assert _image(Image.open(tmp_path / "phone.jpg")).size == (20, 40)  # a PIL image keeps its EXIF tag


def test_out_file_per_class_accuracy_and_nothing_written_on_failure(capsys, tmp_path, standin):
    path = small_adapter(standin).save(tmp_path / "a.safetensors")
    for c, name in enumerate(("cat", "dog", "owl")):
        write_pictures(tmp_path / "lab" / name, c, 2 + c, 10 * c)
    code, out, err = run_cli(capsys, "predict", "--adapter", path, tmp_path / "lab", "--out", tmp_path / "p.json")
    assert code == 0 and out == "" and f"wrote {tmp_path / 'p.json'}" in err
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["top_k"] == 3 and len(doc["predictions"]) == 9
    per = doc["accuracy"]["per_class"]
    assert {c: v["images"] for c, v in per.items()} == {"cat": 2, "dog": 3, "owl": 4}
    assert sum(v["correct"] for v in per.values()) == doc["accuracy"]["correct"]
    code, out, _ = run_cli(capsys, "predict", "--adapter", path, tmp_path / "lab")
    lines = out.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("top-1 accuracy:"))
    assert [ln.split()[0] for ln in lines[at + 1:]] == ["cat", "dog", "owl"]
    assert lines[at + 2].endswith(f"(" + f"{per['dog']['correct']} of 3)")
    bad = tmp_path / "lab" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG nope")
    code, out, err = run_cli(capsys, "predict", "--adapter", path, tmp_path / "lab", "--out", tmp_path / "q.csv")
    assert code == 2 and not (tmp_path / "q.csv").exists() and "broken.png" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("q.csv", ".q.csv"))]


@pytest.mark.parametrize("header, message", [
    ("[]", "header must be a JSON object, got list"),
    ('{"method": "tip_adapter", "alpha": "big"}', "header key 'alpha' must be a number, got \"big\""),
    ('{"method": 3}', "header key 'method' must be a method name, got 3"),
    ('{"method": "zero_shot", "alpha": 0, "beta": null, "classnames": "cat", "templates": ["{}"], '
     '"backbone": {}}', "header key 'classnames' must be a non-empty list of strings"),
    ('{"method": "zero_shot", "alpha": 0, "beta": null, "classnames": ["a", "b", "c"], "templates": ["{}"], '
     '"backbone": {"name": 1}}', "header key 'backbone' must be an object of strings"),
    ('{"method": "zero_shot", "alpha": 0, "beta": null, "classnames": ["a", "b", "c"], "templates": ["{}"], '
     '"backbone": {"name": "x", "pretrained": "y", "weights": "z", "precision": "fp32"}, "batch_size": "many"}',
     "header key 'batch_size' must be a positive integer or null"),
])
def test_adapter_headers_of_the_wrong_type_are_one_line(capsys, tmp_path, standin, header, message):
    a = small_adapter(standin)
    target = save_safetensors(tmp_path / "h.safetensors", {"class_embeddings": a.class_embeddings},
                              {"format": MAGIC, "format_version": str(ADAPTER_FORMAT), "tipkit": header})
    images = write_pictures(tmp_path / "imgs", 0, 1, 0)
    code, out, err = run_cli(capsys, "predict", "--adapter", target, *images)
    assert code == 2 and not out
    one_error_line(err, "is a damaged tipkit adapter")
    one_error_line(err, message)
