"""``folder:PATH``: your own image tree as a dataset (layouts, split rule, class names, prompts, junk and
bad files), its fingerprint, ``tipkit data check`` on it, and the bad inputs the CLI must refuse."""

import json
import os

import numpy as np
import pytest
from folder_fakes import CLASSES, write_pictures, write_tree

import tipkit
from tipkit import cli, paths
from tipkit.config import make_config
from tipkit.errors import TipkitError


def build(root, **kw):
    return tipkit.get_dataset(f"folder:{root}", **kw)


def test_flat_tree_is_split_stratified_and_junk_is_ignored(tmp_path):
    root = write_tree(tmp_path / "photos", per_class=40)
    ds = build(root)
    assert ds.name == f"folder:{root.resolve()}"
    assert ds.classnames == ["checker", "horizontal stripes", "rings", "vertical stripes"]  # sorted folders, _ - read as spaces
    assert ds.templates == ["a photo of a {}."]
    for split, n in {"train": 24, "val": 8, "test": 8}.items():
        assert np.bincount(ds.split(split).labels).tolist() == [n] * 4, split
    ids = {s: set(ds.split(s).ids) for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])
    assert sum(len(v) for v in ids.values()) == 160  # every image once, the nested sub-folder's too
    assert any(i.startswith("horizontal_stripes/more/") for v in ids.values() for i in v)
    info = ds.info
    assert info["ignored_files"] == 1 + 3 * 4  # README.txt at the top, 3 junk files per class; .hidden/ skipped
    assert info["layout"] == "one pool, split by fractions" and info["fractions"] == {"val": 0.2, "test": 0.2}
    assert info["class_folders"] == sorted(CLASSES)
    assert ds.split("test").image(0).mode == "RGB"


def test_split_is_deterministic_and_in_the_fingerprint(tmp_path):
    root = write_tree(tmp_path / "p", per_class=20, junk=False)
    a, b = build(root), build(root)
    assert a.split("train").ids == b.split("train").ids
    assert a.split("test").fingerprint() == b.split("test").fingerprint()
    other = tipkit.get_dataset(f"folder:{root}?seed=5")
    assert other.split("train").ids != a.split("train").ids
    assert np.bincount(other.split("test").labels).tolist() == [4] * 4
    rule = tipkit.get_dataset(f"folder:{root}?val=0.1&test=0.3")
    assert [len(rule.split(s)) for s in ("train", "val", "test")] == [48, 8, 24]
    assert rule.split("test").fingerprint() != a.split("test").fingerprint()
    # the same images and labels under another rule still differ in fingerprint (the rule is part of it)
    same_ids = tipkit.get_dataset(f"folder:{root}?val=0.2&test=0.2&seed=0")
    assert same_ids.split("val").ids == a.split("val").ids
    assert same_ids.split("val").fingerprint() == a.split("val").fingerprint()
    f = root / a.split("val").ids[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # an edited image: no stale features
    assert build(root).split("val").fingerprint() != a.split("val").fingerprint()
    assert build(root).split("test").fingerprint() == a.split("test").fingerprint()


def test_adding_images_to_one_class_keeps_the_others_split(tmp_path):
    root = write_tree(tmp_path / "p", per_class=20, junk=False)
    before = build(root)
    write_pictures(root / "rings" / "extra", 2, 5, seed0=9000)
    after = build(root)
    keep = [i for i in before.split("test").ids if not i.startswith("rings/")]
    assert [i for i in after.split("test").ids if not i.startswith("rings/")] == keep


def test_split_folders_train_test_carve_val_from_train(tmp_path):
    root = write_tree(tmp_path / "p", split={"train": 20, "test": 6})
    ds = build(root)
    assert [len(ds.split(s)) for s in ("train", "val", "test")] == [64, 16, 24]
    assert all(i.startswith("test/") for i in ds.split("test").ids)
    assert all(i.startswith("train/") for s in ("train", "val") for i in ds.split(s).ids)
    assert ds.info["layout"] == "train/test folders, val carved from train" and ds.info["fractions"] == {"val": 0.2}
    three = write_tree(tmp_path / "q", split={"train": 10, "val": 4, "test": 5}, junk=False)
    ds3 = build(three)
    assert [len(ds3.split(s)) for s in ("train", "val", "test")] == [40, 16, 20]
    assert ds3.info["fractions"] == {}
    with pytest.raises(TipkitError, match=r"option test= does not apply to .*its test/ folder is the test split"):
        tipkit.get_dataset(f"folder:{root}?test=0.3")


def test_classnames_and_templates_files(tmp_path):
    root = write_tree(tmp_path / "p", per_class=10, junk=False)
    (root / "classnames.txt").write_text("# folder name\nrings concentric rings\nchecker a checkerboard\n")
    (root / "templates.txt").write_text("a picture of {}.\n\n{}, a pattern.\n")
    ds = build(root)
    assert ds.classnames == ["a checkerboard", "horizontal stripes", "concentric rings", "vertical stripes"]
    assert ds.templates == ["a picture of {}.", "{}, a pattern."]
    assert ds.info["ignored_files"] == 0  # the two files are read, not ignored
    (root / "templates.txt").write_text("a photo.\n")
    with pytest.raises(TipkitError, match=r"templates.txt:1: template 'a photo.' must hold exactly one '\{\}'"):
        build(root)
    (root / "templates.txt").unlink()
    (root / "classnames.txt").write_text("circles round things\n")
    with pytest.raises(TipkitError, match=r"classnames.txt:1: 'circles round things' must be '<class folder> <class name>'"):
        build(root)


@pytest.mark.parametrize("make, spec, message", [
    (lambda t: None, "missing", "missing: no such folder; pass folder:PATH"),
    (lambda t: (t / "afile").write_text("x"), "afile", "afile: not a folder"),
    (lambda t: write_tree(t / "one", per_class=5, classes=("cats",)), "one",
     "1 class folder (cats) in"),
    (lambda t: write_tree(t / "tr", split={"train": 5}), "tr", "split folders need at least train/ and test/"),
    (lambda t: (write_tree(t / "odd", split={"train": 5, "test": 2}, classes=("a", "b")),
                write_pictures(t / "odd" / "test" / "c", 0, 2, 0)), "odd", "class folder test/c has no train/c"),
])
def test_bad_folders_are_one_clear_error(tmp_path, make, spec, message):
    make(tmp_path)
    with pytest.raises(TipkitError) as e:
        build(tmp_path / spec)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_empty_class_error_names_the_folder_and_its_junk(tmp_path):
    root = write_tree(tmp_path / "p", per_class=5, classes=("cats", "dogs"))
    (root / "owls").mkdir()
    (root / "owls" / "readme.txt").write_text("x")
    with pytest.raises(TipkitError, match=r"class folder .*/owls holds no images \(1 non-image files ignored\); add images"):
        build(root)


@pytest.mark.parametrize("query, message", [
    ("?vall=0.1", "unknown option 'vall'"), ("?val=abc", "must be a fraction in (0, 1)"),
    ("?test=1.5", "must be a fraction in (0, 1)"), ("?val=0.5&test=0.5", "leaves no training images"),
    ("?seed=x", "must be an integer"),
])
def test_bad_split_options(tmp_path, query, message):
    root = write_tree(tmp_path / "p", per_class=5, junk=False)
    with pytest.raises(TipkitError) as e:
        tipkit.get_dataset(f"folder:{root}{query}")
    assert message in str(e.value)


def test_relative_path_under_data_root(tmp_path):
    write_tree(tmp_path / "data" / "photos", per_class=5, junk=False)
    ds = tipkit.get_dataset("folder:photos", root=tmp_path / "data")
    assert ds.info["path"] == str((tmp_path / "data" / "photos").resolve())


def test_unreadable_image_follows_the_corrupt_image_policy(tmp_path):
    root = write_tree(tmp_path / "p", per_class=10, junk=False)
    bad = root / "rings" / "img_002.JPG"
    bad.write_bytes(bad.read_bytes()[:60])
    ds = build(root)
    split = next(s for s in ds.splits.values() if "rings/img_002.JPG" in s.ids)
    with pytest.raises(TipkitError, match="cannot read image .*img_002.JPG"):
        split.image(split.ids.index("rings/img_002.JPG"))
    kept = build(root, skip_corrupt=True)
    assert kept.skipped == [str(bad.resolve())]
    assert all("rings/img_002.JPG" not in s.ids for s in kept.splits.values())


def test_data_check_reports_classes_counts_ignored_and_bad_files(tmp_path, capsys):
    root = write_tree(tmp_path / "p", per_class=10)
    assert cli.main(["data", "check", "--dataset", f"folder:{root}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"folder:{root.resolve()}: 4 classes; one pool, split by fractions (val 0.2, test 0.2, seed 0)"
    assert out[1].split() == ["class", "train", "val", "test"]
    assert out[2].split() == ["checker", "6", "2", "2"]
    assert out[6].split() == ["total", "24", "8", "8"]
    assert "shots up to 6" in out[7] and "ignored: 13 non-image files (first: README.txt; -v lists them all)" in out[8]
    assert out[-1].endswith("OK (every image decodes)")
    (root / "checker" / "img_001.png").write_bytes(b"\x89PNG broken")
    assert cli.main(["data", "check", "--dataset", f"folder:{root}"]) == 1
    out = capsys.readouterr().out
    assert "unreadable image" in out and "checker/img_001.png" in out
    assert cli.main(["data", "check", "--dataset", f"folder:{tmp_path / 'nope'}"]) == 1
    assert capsys.readouterr().out.strip().endswith("no such folder; pass folder:PATH with PATH/<class>/<image> "
                                                    "or PATH/train|test/<class>/<image>")


def test_run_name_and_configs_accept_folder_datasets(tmp_path):
    root = write_tree(tmp_path / "my photos", per_class=10, junk=False)
    cfg = make_config(dataset=f"folder:{root}", shots=2)
    name = cfg.run_name()
    assert name.startswith("folder-my-photos-") and "/" not in name and ":" not in name and "?" not in name
    assert make_config(dataset=f"folder:{root}?seed=1").run_name() != name  # another split, another record
    f = tmp_path / "run.yaml"
    f.write_text(f"dataset: 'folder:{root}'\nshots: 2\n")
    assert tipkit.make_config(**tipkit.load_yaml(f)).dataset == f"folder:{root}"
    from tipkit.experiments.sweep import load_sweep

    sweep = tmp_path / "s.yaml"
    sweep.write_text(json.dumps({"fixed": {"dataset": f"folder:{root}", "pretrained": "none"},
                                 "studies": [{"notebook": "notebooks/tip_adapter.ipynb", "grid": {"shots": [1, 2]}}]}))
    cells = load_sweep(sweep).cells
    assert [c.record.parent for c in cells] == [paths.records_dir() / "tip_adapter"] * 2
    assert all(c.record.name.startswith("folder-my-photos-") for c in cells)


def test_too_few_validation_images_for_the_clean_protocol(tmp_path, capsys):
    root = write_tree(tmp_path / "p", per_class=10, junk=False)  # 2 val images per class
    code = cli.main(["run", "--dataset", f"folder:{root}", "--shots", "4", "--pretrained", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "the clean protocol chooses on min(shots, 4) = 4 validation images per class, but 4 " \
                         "classes hold fewer ('checker' 2, 'horizontal stripes' 2, 'rings' 2, 'vertical stripes' 2); " \
                         "use --shots 2 or fewer" in err
    assert not paths.results_dir().exists() and not paths.feature_cache_dir().exists()
