"""Folders as cameras and desktops make them: images read as a viewer shows them (EXIF orientation, 16-bit,
transparency, CMYK, animated GIFs), text files from any editor, and every problem of a folder reported in one
pass, by `data check` and before any work by `run`. Test images are made with PIL in tmp folders."""

from __future__ import annotations

import numpy as np
import pytest
from folder_fakes import write_pictures, write_tree
from PIL import Image

import tipkit
from tipkit import cli, paths
from tipkit.data.folder import read_classnames, read_templates
from tipkit.data.imagefiles import BACKGROUND, open_image
from tipkit.errors import TipkitError


def upright() -> Image.Image:
    """A portrait picture (20 wide, 40 high) whose top quarter is red: which way is up shows."""
    a = np.zeros((40, 20, 3), np.uint8)
    a[:10] = (255, 0, 0)
    a[10:, :, 2] = np.arange(20, dtype=np.uint8)[None, :] * 10  # left-right asymmetric too (no mirror passes)
    return Image.fromarray(a)


def save_rotated(path, orientation: int) -> None:
    """``upright()`` stored as a camera stores it: pixels rotated, the EXIF tag saying how to turn them back."""
    stored = upright().transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif)


@pytest.mark.parametrize("orientation", [6, 8])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_exif_orientation_is_applied_for_own_images_not_for_paper_datasets(tmp_path, orientation, ext):
    path = tmp_path / f"phone{ext}"
    save_rotated(path, orientation)
    seen = np.asarray(open_image(path), dtype=float)
    want = np.asarray(upright(), dtype=float)
    assert seen.shape == want.shape == (40, 20, 3)
    assert np.abs(seen - want).mean() < (0.01 if ext == ".png" else 6.0)
    official = open_image(path, "official")  # the paper's loaders: Image.open(...).convert("RGB"), no rotation
    assert official.size == (40, 20)


def test_folder_dataset_and_predict_read_photos_upright(tmp_path):
    root = write_tree(tmp_path / "p", per_class=10, classes=("a", "b"), junk=False)
    save_rotated(root / "a" / "phone.jpg", 6)
    ds = tipkit.get_dataset(f"folder:{root}")
    split = next(s for s in ds.splits.values() if "a/phone.jpg" in s.ids)
    assert split.image(split.ids.index("a/phone.jpg")).size == (20, 40)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    a = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 ... 65472
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    seen = np.asarray(open_image(tmp_path / "deep.png"))
    assert seen.shape == (32, 32, 3) and (seen[..., 0] == seen[..., 2]).all()
    np.testing.assert_array_equal(seen[..., 0], (a.astype(np.int64) // 257).astype(np.uint8))
    assert len(np.unique(seen)) > 200  # clipping would leave {0, 255}
    i32 = Image.fromarray(a.astype(np.int32), mode="I")
    np.testing.assert_array_equal(np.asarray(tipkit.data.imagefiles.to_rgb(i32))[..., 1], a // 257)


def test_transparency_and_palettes_are_composited_on_the_background(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4] = (0, 0, 255, 255)  # opaque blue top, fully transparent (black) bottom
    Image.fromarray(rgba, "RGBA").save(tmp_path / "logo.png")
    seen = np.asarray(open_image(tmp_path / "logo.png"))
    assert (seen[:4] == (0, 0, 255)).all() and (seen[4:] == BACKGROUND).all()
    half = rgba.copy()
    half[4:] = (0, 0, 0, 128)
    Image.fromarray(half, "RGBA").save(tmp_path / "half.png")
    assert abs(int(np.asarray(open_image(tmp_path / "half.png"))[6, 0, 0]) - 127) <= 1  # 50 % black on white
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    p.paste(0, (0, 0, 8, 4))
    p.save(tmp_path / "pal.gif", transparency=0)
    seen = np.asarray(open_image(tmp_path / "pal.gif"))
    assert (seen[:4] == BACKGROUND).all() and (seen[4:] == (0, 255, 0)).all()
    la = Image.fromarray(np.dstack([np.full((4, 4), 0, np.uint8), np.zeros((4, 4), np.uint8)]), "LA")
    la.save(tmp_path / "la.png")
    assert (np.asarray(open_image(tmp_path / "la.png")) == BACKGROUND).all()


def test_cmyk_is_converted_and_animated_gifs_are_their_first_frame(tmp_path, capsys):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "print.jpg")  # red in ink
    seen = np.asarray(open_image(tmp_path / "print.jpg"), dtype=int)
    assert seen.shape == (8, 8, 3) and seen[..., 0].mean() > 200 and seen[..., 1:].mean() < 40
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert (np.asarray(open_image(tmp_path / "anim.gif")) == (255, 0, 0)).all()
    root = write_tree(tmp_path / "p", per_class=10, classes=("a", "b"), junk=False)
    frames[0].save(root / "b" / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    assert cli.main(["data", "check", "--dataset", f"folder:{root}"]) == 0
    out = capsys.readouterr().out
    assert f"note: {root.resolve() / 'b' / 'anim.gif'}: animated, 3 frames: first frame read" in out


def test_text_files_with_bom_and_crlf_are_read_and_other_encodings_named(tmp_path):
    (tmp_path / "classnames.txt").write_bytes("\ufeffa_b perro\r\nc gato\r\n".encode("utf-8"))
    (tmp_path / "templates.txt").write_bytes("\ufeffuna foto de un {}.\r\n\r\nun {} pequeño.\r\n".encode("utf-8"))
    assert read_classnames(tmp_path, ["a_b", "c"]) == ["perro", "gato"]
    assert read_templates(tmp_path) == ["una foto de un {}.", "un {} pequeño."]
    (tmp_path / "templates.txt").write_bytes("a photo of a {}.\nun {} pequeño.\n".encode("latin-1"))
    with pytest.raises(TipkitError, match=r"templates.txt:2: byte 0xf1 at column 12 is not UTF-8") as e:
        read_templates(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "classnames.txt").write_bytes("a_b perro\n".encode("utf-16"))
    with pytest.raises(TipkitError, match=r"classnames.txt:1: the file is UTF-16; save it as UTF-8"):
        read_classnames(tmp_path, ["a_b", "c"])


def messy_tree(tmp_path):
    """train/test folders with every kind of problem at once."""
    root = tmp_path / "messy"
    for c, name in enumerate(("cat", "t-shirt", "t_shirt", "t shirt")):
        write_pictures(root / "train" / name, c % 4, 6, seed0=10 * c)
        write_pictures(root / "test" / name, c % 4, 2, seed0=10 * c + 100)
    write_pictures(root / "train" / "owl", 2, 6, seed0=500)  # no test images
    (root / "train" / "empty").mkdir()
    (root / "train" / "empty" / "notes.txt").write_text("x")
    (root / "train" / "cat" / "img_001.png").write_bytes(b"\x89PNG broken")
    (root / "test" / "cat" / "Thumbs.db").write_text("junk")
    return root


def test_data_check_reports_every_problem_in_one_pass(tmp_path, capsys):
    root = messy_tree(tmp_path)
    assert cli.main(["data", "check", "--dataset", f"folder:{root}", "--shots", "8"]) == 1
    out = capsys.readouterr().out
    problems = [ln for ln in out.splitlines() if ln.startswith("  - ")]
    for want in ("class folder train/empty holds no images (1 non-image files ignored)",
                 "class folders 't shirt', 't-shirt', 't_shirt' all read as class name 't shirt'",
                 "1 class without test images: 'owl'",
                 "shots=8 is more than",
                 f"unreadable image {root.resolve() / 'train' / 'cat' / 'img_001.png'} (",
                 ):
        assert sum(want in p for p in problems) == 1, (want, out)
    assert "class 0" not in out and "label 0" not in out
    assert "ignored: 2 non-image files (first: test/cat/Thumbs.db; -v lists them all)" in out
    assert cli.main(["data", "check", "--dataset", f"folder:{root}", "-v"]) == 1
    out = capsys.readouterr().out
    assert "    test/cat/Thumbs.db\n    train/empty/notes.txt\n" in out


def test_run_stops_on_a_corrupt_file_before_any_work(tmp_path, capsys, monkeypatch):
    root = write_tree(tmp_path / "p", per_class=10, classes=("a", "b"), junk=False)
    bad = root / "b" / "img_003.png"
    bad.write_bytes(bad.read_bytes()[:50])
    import tipkit.experiments.pipeline as pipeline

    def no_model(*a, **k):
        raise AssertionError("a model was loaded before the folder was checked")

    monkeypatch.setattr(pipeline, "load_backbone", no_model)
    code = cli.main(["run", "--dataset", f"folder:{root}", "--shots", "2", "--pretrained", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert str(bad.resolve()) in err and "--skip-corrupt" in err and "skip_corrupt=True" not in err
    assert not paths.results_dir().exists() and not paths.feature_cache_dir().exists()


def test_classes_without_test_images_stop_a_run(tmp_path, capsys):
    root = tmp_path / "s"
    for c, name in enumerate(("cat", "dog")):
        write_pictures(root / "train" / name, c, 8, seed0=10 * c)
    write_pictures(root / "test" / "cat", 0, 3, seed0=99)
    code = cli.main(["run", "--dataset", f"folder:{root}", "--shots", "2", "--pretrained", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "1 class without test images: 'dog'" in err
    assert not paths.results_dir().exists()
