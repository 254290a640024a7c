"""``check_dataset`` / ``main_check`` findings on fake trees, and the paper's per-dataset configs."""

import json
import re
from pathlib import Path

import pytest
from datasets_fakes import jpeg_bytes, write_json_tree, write_v2_tree

from tipkit import config
from tipkit.data import check as datacheck
from tipkit.data import paper as dp
from tipkit.errors import TipkitError

FAKE = {"classes": 3, "sizes": {"train": 15, "val": 6, "test": 9}}


def test_clean_tree_passes(tmp_path, monkeypatch, capsys):
    write_json_tree(tmp_path, "oxford_pets")
    monkeypatch.setitem(datacheck.EXPECTED, "oxford_pets", FAKE)
    assert datacheck.check_dataset("oxford_pets", tmp_path) == []
    assert datacheck.main_check("oxford_pets", tmp_path) == 0
    assert capsys.readouterr().out.startswith(f"oxford_pets: OK ({tmp_path / 'oxford_pets'} matches")


def test_sizes_and_classes_differing_from_coop_are_reported(tmp_path, capsys):
    write_json_tree(tmp_path, "oxford_pets")
    lines = datacheck.check_dataset("oxford_pets", tmp_path, images=False)
    assert lines == ["oxford_pets: 3 classes; expected 37",
                     "oxford_pets train: 15 images; CoOp's split has 2944",
                     "oxford_pets val: 6 images; CoOp's split has 736",
                     "oxford_pets test: 9 images; CoOp's split has 3669"]
    assert datacheck.main_check("oxford_pets", tmp_path, images=False) == 1
    assert capsys.readouterr().out.splitlines() == lines


def test_empty_classes_and_per_class_counts(tmp_path, monkeypatch):
    split = write_json_tree(tmp_path, "dtd")
    split["val"] = [e for e in split["val"] if e[1] != 1]  # class 1 loses its val images
    (tmp_path / "dtd" / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    monkeypatch.setitem(datacheck.EXPECTED, "dtd", {"classes": 3, "sizes": {"train": 15, "val": 6, "test": 9},
                                                   "per_class": {"train": 5, "val": 2, "test": 4}})
    assert datacheck.check_dataset("dtd", tmp_path, images=False) == [
        "dtd val: 4 images; CoOp's split has 6",
        "dtd val: 1 of 3 classes have no image (first: label 1, 'apple pie')",
        "dtd test: 3 classes do not hold 4 images each (first: 'Apply Eye Makeup' holds 3)"]


def test_missing_and_unreadable_images_are_listed_and_capped(tmp_path, monkeypatch):
    write_json_tree(tmp_path, "eurosat")
    monkeypatch.setitem(datacheck.EXPECTED, "eurosat", FAKE)
    monkeypatch.setattr(datacheck, "MAX_FILE_LINES", 2)
    base = tmp_path / "eurosat" / "2750"
    files = sorted(base.rglob("*.jpg"))
    for f in files[:3]:
        f.unlink()
    files[3].write_bytes(jpeg_bytes(3)[:150])
    lines = datacheck.check_dataset("eurosat", tmp_path)
    assert lines[:2] == [f"eurosat: missing image {f}" for f in files[:2]]
    assert lines[2] == "eurosat: ... and 1 more missing images"
    assert re.fullmatch(rf"eurosat: unreadable image {re.escape(str(files[3]))} \(OSError: .*\)", lines[3])
    assert len(lines) == 4


def test_missing_split_file_is_the_only_finding(tmp_path):
    lines = datacheck.check_dataset("ucf101", tmp_path)
    assert len(lines) == 1 and lines[0].startswith(f"ucf101: missing split file {tmp_path / 'ucf101'}")


def test_test_only_dataset_checks_its_test_split(tmp_path, monkeypatch):
    write_v2_tree(tmp_path)
    assert datacheck.check_dataset("imagenet_v2", tmp_path, images=False) == [
        "imagenet_v2 test: 6 images; CoOp's split has 10000",
        "imagenet_v2 test: 997 of 1000 classes have no image (first: label 1, 'goldfish')",
        "imagenet_v2 test: 3 classes do not hold 10 images each (first: 'tench' holds 2)"]


def test_unknown_dataset_lists_the_paper_datasets():
    with pytest.raises(TipkitError, match=r"unknown dataset 'cifar'; known: .*caltech101, .*dtd, .*fashion-mnist-sketch"):
        datacheck.check_dataset("cifar", None)


def test_expected_numbers_cover_every_paper_dataset():
    assert sorted(datacheck.EXPECTED) == sorted(dp.PAPER_DATASETS)
    for name, exp in datacheck.EXPECTED.items():
        for split, per in exp.get("per_class", {}).items():
            assert per * exp["classes"] == exp["sizes"][split], name


OFFICIAL = {  # paper_tables.md "Official per-dataset settings": search_scale [beta, alpha], init_alpha, epochs
    "imagenet": ([7, 3], 1.17, 20), "caltech101": ([12, 5], 3, 20), "dtd": ([13, 13], 2, 20),
    "eurosat": ([12, 10], 2, 100), "fgvc_aircraft": ([30, 30], 5, 20), "food101": ([10, 10], 1.17, 20),
    "flowers102": ([50, 50], 10, 20), "oxford_pets": ([7, 3], 1.17, 20), "stanford_cars": ([20, 10], 3, 20),
    "sun397": ([12, 10], 1.17, 20), "ucf101": ([7, 3], 3, 20),
}
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "paper"


def test_paper_configs_hold_the_official_settings():
    assert sorted(p.stem for p in CONFIGS.glob("*.yaml")) == sorted(dp.FEW_SHOT_DATASETS) == sorted(OFFICIAL)
    for name, (scale, alpha, epochs) in OFFICIAL.items():
        path = CONFIGS / f"{name}.yaml"
        assert re.match(r"# Source: official Tip-Adapter repository github.com/gaopengcuhk/Tip-Adapter, "
                        rf"configs/{name}\.yaml \(the official per-dataset settings", path.read_text())
        cfg = config.make_config(**config.load_yaml(path))
        assert (cfg.dataset, cfg.backbone, cfg.pretrained, cfg.shots) == (name, "RN50", "openai", 16)
        assert (cfg.search_scale, cfg.search_step, cfg.init_alpha, cfg.init_beta) == (scale, [200, 20], alpha, 1.0)
        assert (cfg.augment_views, cfg.lr, cfg.epochs) == (10, 0.001, epochs)
