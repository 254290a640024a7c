"""Paper-scale loaders on fake trees in the real layouts: splits, class order and names, templates, ids,
ImageNet family, missing-file errors, corrupt files, and the torchvision download route (offline)."""

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from datasets_fakes import (
    CLASSNAMES,
    FGVC_VARIANTS,
    IMAGENET_LABELS,
    JSON_DATASETS,
    ORDER,
    SIZES,
    jpeg_bytes,
    write_fgvc_tree,
    write_image,
    write_imagenet_tree,
    write_json_tree,
    write_sketch_tree,
    write_v2_tree,
)
from PIL import Image

from tipkit import data
from tipkit.data import download as datasets_download
from tipkit.data import paper as dp
from tipkit.data.classnames import IMAGENET_TEMPLATES, TEMPLATES, imagenet_classnames, imagenet_wnids
from tipkit.errors import TipkitError

PAPER_TEMPLATES = {  # paper_tables.md "Prompt templates"
    "caltech101": "a photo of a {}.", "stanford_cars": "a photo of a {}.", "sun397": "a photo of a {}.",
    "oxford_pets": "a photo of a {}, a type of pet.", "flowers102": "a photo of a {}, a type of flower.",
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.", "dtd": "{} texture.",
    "eurosat": "a centered satellite photo of {}.", "food101": "a photo of {}, a type of food.",
    "ucf101": "a photo of a person doing {}.",
}


def no_download(monkeypatch):
    import torchvision.datasets as tvd

    def boom(*a, **k):
        raise AssertionError("a test tried to download")

    for spec in datasets_download.FETCHABLE.values():
        monkeypatch.setattr(tvd, spec.tv_class, boom)


@pytest.mark.parametrize("name", JSON_DATASETS)
def test_split_file_datasets_follow_the_split_file(tmp_path, name):
    split = write_json_tree(tmp_path, name)
    ds = data.get_dataset(name, root=tmp_path, download=False)
    lay = dp.LAYOUTS[name]
    assert list(ds.splits) == ["train", "val", "test"] and ds.skipped == []
    assert ds.classnames == [c.replace("_", " ") for c in CLASSNAMES]
    assert ds.templates == [PAPER_TEMPLATES[name]] == TEMPLATES[name]
    for k, rows in split.items():
        s = ds.split(k)
        assert len(s) == SIZES[k] * 3 and s.labels.dtype == np.int64
        assert s.labels.tolist() == [y for _, y, _ in rows]  # the split file's order, untouched
        assert s.ids == [(f"{lay.prefix}/" if lay.prefix else "") + p for p, _, _ in rows]
    assert ds.split("train").labels[:3].tolist() == ORDER
    img = ds.split("test").image(4)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (8, 8)


def test_caltech101_leaves_out_background_and_faces_easy(tmp_path):
    split = write_json_tree(tmp_path, "caltech101")
    base = tmp_path / "caltech-101" / "101_ObjectCategories"
    for k, (folder, y) in zip(("train", "test"), (("BACKGROUND_Google", 3), ("Faces_easy", 4)), strict=True):
        split[k].append([f"{folder}/image_0001.jpg", y, folder])
        write_image(base / folder / "image_0001.jpg")
    (tmp_path / "caltech-101" / "split_zhou_Caltech101.json").write_text(json.dumps(split))
    ds = data.get_dataset("caltech101", root=tmp_path, download=False)
    assert ds.num_classes == 3 and len(ds.split("train")) == 15 and len(ds.split("test")) == 9
    assert not any("BACKGROUND" in i or "Faces_easy" in i for s in ds.splits.values() for i in s.ids)


def test_fgvc_aircraft_reads_variant_lists(tmp_path):
    write_fgvc_tree(tmp_path)
    ds = data.get_dataset("fgvc_aircraft", root=tmp_path, download=False)
    assert ds.classnames == FGVC_VARIANTS and ds.templates == ["a photo of a {}, a type of aircraft."]
    tr = ds.split("train")
    assert tr.labels.tolist() == ORDER * 2 and tr.ids[0] == "images/1000000.jpg"
    assert ds.split("test").image(0).size == (8, 8)
    (tmp_path / "fgvc_aircraft" / "images_variant_val.txt").write_text("1000000 Boeing-999\n")
    with pytest.raises(TipkitError, match=r"images_variant_val.txt:1: variant 'Boeing-999' is not in .*variants.txt"):
        data.get_dataset("fgvc_aircraft", root=tmp_path, download=False)


def test_imagenet_classnames_and_templates_are_the_official_ones():
    names, wnids = imagenet_classnames(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert (wnids[0], names[0]) == ("n01440764", "tench") and (wnids[999], names[999]) == ("n15075141", "toilet paper")
    assert names[21] == "kite (bird of prey)" and names[879] == "umbrella" and wnids[879] == "n04507155"
    assert names[657] == names[744] == "missile" and names[836] == names[837] == "sunglasses"  # as upstream
    assert IMAGENET_TEMPLATES == ["itap of a {}.", "a bad photo of the {}.", "a origami {}.",
                                  "a photo of the large {}.", "a {} in a video game.", "art of the {}.",
                                  "a photo of the small {}."]


def test_imagenet_uses_val_as_val_and_test_and_keeps_imagenet_labels(tmp_path, caplog):
    write_imagenet_tree(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tipkit"):
        ds = data.get_dataset("imagenet", root=tmp_path, download=False)
    assert "only 3 of 1000 class folders" in caplog.text
    assert ds.num_classes == 1000 and ds.templates == IMAGENET_TEMPLATES
    assert ds.classnames == list(imagenet_classnames())
    tr, va, te = ds.split("train"), ds.split("val"), ds.split("test")
    assert tr.labels.tolist() == [y for y in IMAGENET_LABELS for _ in range(3)]
    w = imagenet_wnids()[0]
    assert tr.ids[:3] == [f"images/train/{w}/{w}_{i}.JPEG" for i in (100, 98, 99)]  # sorted file names
    assert va.ids == te.ids and np.array_equal(va.labels, te.labels) and (va.name, te.name) == ("val", "test")
    assert te.image(0).mode == "RGB"


def test_imagenet_rejects_unknown_class_folders_and_flat_val(tmp_path):
    write_imagenet_tree(tmp_path)
    (tmp_path / "imagenet" / "images" / "train" / "cats").mkdir()
    with pytest.raises(TipkitError, match=r"imagenet: folder .*train/cats is not an ImageNet-1k class"):
        data.get_dataset("imagenet", root=tmp_path, download=False)
    (tmp_path / "imagenet" / "images" / "train" / "cats").rmdir()
    val = tmp_path / "imagenet" / "images" / "val"
    for d in list(val.iterdir()):
        for f in d.iterdir():
            f.rename(val / f.name)
        d.rmdir()
    with pytest.raises(TipkitError, match=r"has no <wnid>/ class folders \(its images lie flat"):
        data.get_dataset("imagenet", root=tmp_path, download=False)


@pytest.mark.parametrize("name, writer", [("imagenet_v2", write_v2_tree), ("imagenet_sketch", write_sketch_tree)])
def test_shifted_imagenets_are_test_only(tmp_path, name, writer):
    writer(tmp_path)
    ds = data.get_dataset(name, root=tmp_path, download=False)
    assert list(ds.splits) == ["test"] and ds.num_classes == 1000 and ds.templates == IMAGENET_TEMPLATES
    assert ds.split("test").labels.tolist() == [y for y in IMAGENET_LABELS for _ in range(2)]
    assert ds.split("test").image(5).size == (8, 8)
    with pytest.raises(TipkitError, match=rf"{name} is a test-only dataset .*no 'train' split to draw shots"):
        ds.split("train")


def test_imagenet_v2_rejects_non_label_folders(tmp_path):
    write_v2_tree(tmp_path)
    (tmp_path / "imagenetv2" / "imagenetv2-matched-frequency-format-val" / "1000").mkdir()
    with pytest.raises(TipkitError, match=r"1000 is not a class folder; .* must hold folders 0..999"):
        data.get_dataset("imagenet_v2", root=tmp_path, download=False)


MISSING = {  # what an empty data folder reports, per dataset: the path and where to get it
    **{n: (rf"{dp.LAYOUTS[n].folder}/{dp.LAYOUTS[n].split_file}",
           rf"https://drive.google.com/file/d/{dp.LAYOUTS[n].gdrive}/view") for n in JSON_DATASETS},
    "fgvc_aircraft": (r"fgvc_aircraft/images", r"fgvc-aircraft-2013b.tar.gz"),
    "imagenet": (r"imagenet/images/train", r"https://image-net.org"),
    "imagenet_v2": (r"imagenetv2/imagenetv2-matched-frequency-format-val", r"imagenetv2-matched-frequency.tar.gz"),
    "imagenet_sketch": (r"imagenet-sketch/images", r"github.com/HaohanWang/ImageNet-Sketch"),
}


@pytest.mark.parametrize("name", sorted(MISSING))
def test_missing_files_are_one_line_errors_naming_path_and_source(tmp_path, monkeypatch, name):
    no_download(monkeypatch)
    with pytest.raises(TipkitError) as e:
        data.get_dataset(name, root=tmp_path, download=False)
    msg = str(e.value)
    path, source = MISSING[name]
    assert "\n" not in msg and msg.startswith(f"{name}: missing")
    assert str(tmp_path / path) in msg and source in msg


@pytest.mark.parametrize("name", sorted(set(JSON_DATASETS) & set(datasets_download.FETCHABLE)))
def test_no_split_file_means_no_download(tmp_path, monkeypatch, name):
    no_download(monkeypatch)  # images are only fetched once the (non-downloadable) split file is there
    with pytest.raises(TipkitError, match=rf"^{name}: missing split file "):
        data.get_dataset(name, root=tmp_path, download=True)


@pytest.mark.parametrize("name", JSON_DATASETS)
def test_missing_image_folder_names_it_and_the_source(tmp_path, name):
    write_json_tree(tmp_path, name, images=False)
    lay = dp.LAYOUTS[name]
    for d in lay.image_dirs:
        (tmp_path / lay.folder / d).rmdir()
    with pytest.raises(TipkitError) as e:
        data.get_dataset(name, root=tmp_path, download=False)
    msg = str(e.value)
    assert "\n" not in msg and f"missing {tmp_path / lay.folder / lay.image_dirs[0]}" in msg
    assert lay.source in msg and ("download=True" in msg) == (name in datasets_download.FETCHABLE)


def test_root_pointing_at_the_dataset_folder_gets_a_hint(tmp_path):
    write_json_tree(tmp_path, "oxford_pets")
    with pytest.raises(TipkitError, match="root must be the parent data folder"):
        data.get_dataset("oxford_pets", root=tmp_path / "oxford_pets", download=False)


@pytest.mark.parametrize("content, match", [
    ("{not json", r"is not valid JSON"),
    (json.dumps({"train": []}), r"is not a CoOp split file: expected lists under train, val, test; got \['train'\]"),
    (json.dumps({"train": [["a.jpg", "0", "x"]], "val": [], "test": []}),
     r"train\[0\] is \['a.jpg', '0', 'x'\]; expected \[relative image path, label >= 0, class name\]"),
    (json.dumps({"train": [["a.jpg", 0, "x"], ["b.jpg", 0, "y"]], "val": [], "test": []}),
     r"label 0 is named both 'x' and 'y'"),
    (json.dumps({"train": [["a.jpg", 0, "x"], ["b.jpg", 2, "y"]], "val": [], "test": []}),
     r"labels must run 0..C-1 without gaps; label 1 has no image"),
])
def test_malformed_split_files_are_clear_errors(tmp_path, content, match):
    write_json_tree(tmp_path, "dtd")
    (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text(content)
    with pytest.raises(TipkitError, match=match):
        data.get_dataset("dtd", root=tmp_path, download=False)


def corrupt_pets(tmp_path):
    """A pets tree with a truncated JPEG, a non-image and a listed-but-absent file in train."""
    write_json_tree(tmp_path, "oxford_pets")
    ds = data.get_dataset("oxford_pets", root=tmp_path, download=False)
    base, ids = tmp_path / "oxford_pets", ds.split("train").ids
    (base / ids[1]).write_bytes(jpeg_bytes(1)[:200])
    (base / ids[4]).write_bytes(b"not an image")
    (base / ids[7]).unlink()
    return ds, [str(base / ids[i]) for i in (1, 4, 7)]


def test_corrupt_files_raise_naming_the_file(tmp_path):
    ds, bad = corrupt_pets(tmp_path)
    tr = ds.split("train")
    with pytest.raises(TipkitError, match=rf"cannot read image {re.escape(bad[0])} \(OSError: .*[Tt]runcated"):
        tr.image(1)
    with pytest.raises(TipkitError, match=rf"cannot read image {re.escape(bad[1])} \(UnidentifiedImageError"):
        tr.image(4)
    with pytest.raises(TipkitError, match=rf"image file missing: {re.escape(bad[2])}$"):
        tr.image(7)
    assert tr.image(0).size == (8, 8)


def test_skip_corrupt_drops_and_records_bad_files(tmp_path, caplog):
    _, bad = corrupt_pets(tmp_path)
    with caplog.at_level(logging.WARNING, logger="tipkit"):
        ds = data.get_dataset("oxford_pets", root=tmp_path, skip_corrupt=True)
    assert sorted(ds.skipped) == sorted(bad) and "skipping 3 unreadable image files" in caplog.text
    tr = ds.split("train")
    assert len(tr) == 12 and len(tr.labels) == len(tr.ids) and len(ds.split("test")) == 9
    assert all(tr.image(i).mode == "RGB" for i in range(len(tr)))


class FakeTorchvisionDTD:
    """Stands in for torchvision.datasets.DTD: 'downloads' into <root>/dtd/dtd/images/<class>/."""

    calls = 0

    def __init__(self, root, download=False):
        assert download
        type(self).calls += 1
        split = json.loads((self.split_path).read_text())
        for j, (rel, _, _) in enumerate(e for v in split.values() for e in v):
            write_image(Path(root) / "dtd" / "dtd" / "images" / rel, seed=j)


def test_download_fetches_with_torchvision_into_coop_layout(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    write_json_tree(tmp_path, "dtd", images=False)
    (tmp_path / "dtd" / "images").rmdir()
    FakeTorchvisionDTD.split_path = tmp_path / "dtd" / "split_zhou_DescribableTextures.json"
    FakeTorchvisionDTD.calls = 0
    monkeypatch.setattr(tvd, "DTD", FakeTorchvisionDTD)
    ds = data.get_dataset("dtd", root=tmp_path, download=True)
    assert FakeTorchvisionDTD.calls == 1 and (tmp_path / "dtd" / "images").is_dir()
    assert not (tmp_path / datasets_download.STAGING / "dtd").exists()
    assert ds.split("train").image(0).size == (8, 8)
    data.get_dataset("dtd", root=tmp_path, download=True)
    assert FakeTorchvisionDTD.calls == 1  # images in place: nothing fetched again


def test_download_moves_fgvc_data_folder(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def fake(root, download=False):
        write_fgvc_tree(tmp_path / "stage")
        (Path(root) / "fgvc-aircraft-2013b").mkdir(parents=True)
        (tmp_path / "stage" / "fgvc_aircraft").rename(Path(root) / "fgvc-aircraft-2013b" / "data")

    monkeypatch.setattr(tvd, "FGVCAircraft", fake)
    ds = data.get_dataset("fgvc_aircraft", root=tmp_path, download=True)
    assert ds.classnames == FGVC_VARIANTS and (tmp_path / "fgvc_aircraft" / "variants.txt").is_file()


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*a, **k):
        raise OSError("network unreachable\nsecond line")

    write_json_tree(tmp_path, "eurosat", images=False)
    (tmp_path / "eurosat" / "2750").rmdir()
    monkeypatch.setattr(tvd, "EuroSAT", offline)
    with pytest.raises(TipkitError) as e:
        data.get_dataset("eurosat", root=tmp_path, download=True)
    assert str(e.value).startswith("eurosat: torchvision.datasets.EuroSAT download into") and "\n" not in str(e.value)
    assert "OSError: network unreachable" in str(e.value)


def test_download_false_never_downloads_and_default_root_is_tipkits_data_dir(tmp_path, monkeypatch):
    no_download(monkeypatch)
    from tipkit import paths

    write_json_tree(paths.data_dir(), "food101")  # TIPKIT_CACHE points into tmp_path (conftest)
    ds = data.get_dataset("food101", download=False)
    assert len(ds.split("val")) == 6
    with pytest.raises(TipkitError, match=r"torchvision cannot download 'ucf101'; it can fetch: caltech101, dtd"):
        datasets_download.fetch("ucf101", tmp_path / "ucf101")
