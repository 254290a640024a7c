"""Faults a user meets, on real files: damaged feature stores and records, a full disk, several writers on
one store without working locks, and the `tipkit cache` command. (Sweep processes killed or interrupted,
and a notebook cell that raises: tests/test_faults_processes.py.)"""

import errno
import io
import json
import logging
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tipkit import cli, data, models, paths
from tipkit.errors import TipkitError
from tipkit.experiments import report

SMOKE = dict(dataset="synthetic", pretrained="none", epochs=1, augment_views=1)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Two real run records (1 and 2 shots), made in a cache of their own."""
    import tipkit

    with pytest.MonkeyPatch.context() as mp_:
        mp_.setenv("TIPKIT_CACHE", str(tmp_path_factory.mktemp("records-cache")))
        return [tipkit.run(tipkit.make_config(**SMOKE, shots=k)) for k in (1, 2)]


def shard_files():
    """Every feature file on disk (shards of the store folders; or the old single-file stores)."""
    return sorted(paths.feature_cache_dir().rglob("*.pt"))


def all_files(root):
    return {p: p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def edit(path, fix_crc=False, **change):
    obj = torch.load(path, weights_only=True)
    for k, fn in change.items():
        obj[k] = fn(obj[k])
    if fix_crc and "crc32" in obj:  # only the check that is meant to catch it may catch it
        from tipkit.models.store import _checksum

        obj["crc32"] = _checksum(obj["indices"], obj["features"])
    torch.save(obj, path)


DAMAGE = {
    "cut-to-half": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "not-a-torch-file": lambda p: p.write_text("hello"),
    "wrong-layout": lambda p: torch.save(torch.load(p, weights_only=True)["features"], p),
    "fewer-indices-than-rows": lambda p: edit(p, indices=lambda i: i[1:]),
    "rows-reordered": lambda p: edit(p, features=lambda f: f.flip(0)),
    "indices-outside-the-split": lambda p: edit(p, fix_crc=True, indices=lambda i: i + 1000),
    "wrong-width": lambda p: edit(p, fix_crc=True, features=lambda f: f[:, :8].contiguous()),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_store_is_moved_aside_and_recomputed(bb, ds, caplog, damage):
    test = ds.split("test")
    clean = models.image_features(bb, ds.name, test)
    (shard,) = shard_files()
    DAMAGE[damage](shard)
    with caplog.at_level(logging.WARNING):
        again = models.image_features(bb, ds.name, test)
    assert torch.allclose(again, clean, atol=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "shard" in r.getMessage()]
    assert len(warnings) == 1 and str(shard) in warnings[0], warnings
    assert shard.with_name(shard.name + ".corrupt").exists()  # moved aside, not deleted
    assert cli.main(["cache", "verify"]) == 0  # the recomputed store reads back


def test_run_on_a_damaged_cache_gives_the_clean_numbers(capsys, tmp_path):
    argv = ["run", "--dataset", "synthetic", "--pretrained", "none", "--epochs", "1", "--augment-views", "1"]
    assert cli.main([*argv, "--out", str(tmp_path / "clean.json")]) == 0
    for shard in shard_files():
        DAMAGE["cut-to-half"](shard)
    capsys.readouterr()
    assert cli.main([*argv, "--out", str(tmp_path / "damaged.json")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    clean, damaged = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("clean", "damaged"))
    assert damaged["metrics"] == clean["metrics"]
    assert len(list(paths.feature_cache_dir().rglob("*.corrupt"))) == 3  # val, test and the view


def test_first_writer_wins_and_compaction_keeps_the_union(monkeypatch):
    from tipkit.models.store import FeatureStore

    store = FeatureStore(paths.feature_cache_dir() / "k", dim=2, size=10)
    store.add(np.array([4, 1, 2]), torch.tensor([[4.0, 4], [1, 1], [2, 2]]))
    store.add(np.array([2, 3]), torch.tensor([[-2.0, -2], [3, 3]]))  # row 2 again: the first writer's stays
    _, idx, f = store.read()
    assert idx.tolist() == [1, 2, 3, 4] and f[:, 0].tolist() == [1, 2, 3, 4]
    real_unlink = Path.unlink

    def crash(self, *a, **k):  # the process dies after writing the merged shard, before deleting any
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "unlink", crash)
    with pytest.raises(KeyboardInterrupt):
        store.compact()
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert len(store.shards()) == 3
    assert torch.equal(store.read()[2], f)  # the same union at every moment
    store.compact()
    assert len(store.shards()) == 1 and torch.equal(store.read()[2], f)


def _writer(cache, batches, barrier):
    """One of several processes extending one store at once, on a filesystem whose locks do nothing."""
    import fcntl

    fcntl.flock = lambda *a, **k: None  # NFS without working locks
    os.environ["TIPKIT_CACHE"] = cache
    torch.set_num_threads(1)
    bb = models.load_backbone(pretrained="none", init_seed=0)
    test = data.get_dataset("synthetic").split("test")
    barrier.wait()
    for idx in batches:
        models.image_features(bb, "synthetic", test, indices=idx, batch_size=2)


def stored_rows(root):
    """index -> row over every store (shard folders, or the old single files)."""
    out = {}
    for d in sorted(root.iterdir()):
        if d.is_dir():
            from tipkit.models.store import FeatureStore

            _, idx, feats = FeatureStore(d).read(move_aside=False)
        elif d.suffix == ".pt":
            obj = torch.load(d, weights_only=True)
            idx, feats = obj["indices"], obj["features"]
        else:
            continue
        assert len(set(idx.tolist())) == len(idx), "a row is duplicated"
        out.update({int(j): feats[r] for r, j in enumerate(idx.tolist())})
    return out


@pytest.mark.slow
def test_parallel_writers_lose_no_rows_without_locks(bb, ds):
    rng = np.random.default_rng(0)
    plans = [[rng.choice(40, 3, replace=False) for _ in range(8)] for _ in range(4)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(plans))
    procs = [ctx.Process(target=_writer, args=(os.environ["TIPKIT_CACHE"], p, barrier)) for p in plans]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    asked = sorted({int(j) for plan in plans for b in plan for j in b})
    rows = stored_rows(paths.feature_cache_dir())
    assert sorted(rows) == asked  # no row lost
    fresh = models.image_features(bb, ds.name, ds.split("test"), indices=asked, use_cache=False)
    assert torch.allclose(torch.stack([rows[j] for j in asked]), fresh, atol=1e-5)
    assert not list(paths.feature_cache_dir().rglob("*.lock"))  # no lock was taken


def full_disk(after_bytes=64, only=""):
    err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def torch_save(obj, f, *a, **k):  # writes a little, then the disk is full
        buf = io.BytesIO()
        REAL_SAVE(obj, buf)
        (f.write if hasattr(f, "write") else Path(f).write_bytes)(buf.getvalue()[:after_bytes])
        raise err

    def write_text(self, text, *a, **k):
        if self.name.endswith(".tmp") and self.name.startswith(only):
            with open(self, "w") as fh:
                fh.write(text[:after_bytes])
            raise err
        return REAL_WRITE_TEXT(self, text, *a, **k)
    return torch_save, write_text


REAL_SAVE, REAL_WRITE_TEXT = torch.save, Path.write_text


def test_full_disk_while_writing_a_store(bb, ds, monkeypatch):
    test = ds.split("test")
    first = models.image_features(bb, ds.name, test, indices=[0, 1, 2])
    before = all_files(paths.feature_cache_dir())
    monkeypatch.setattr(torch, "save", full_disk()[0])
    with pytest.raises(TipkitError, match=r"no space left to write .*nothing was written"):
        models.image_features(bb, ds.name, test, indices=[3, 4])
    assert all_files(paths.feature_cache_dir()) == before  # no partial file, the cache intact
    monkeypatch.setattr(torch, "save", REAL_SAVE)
    assert torch.equal(models.image_features(bb, ds.name, test, indices=[0, 1, 2]), first)


def test_full_disk_while_writing_a_record(capsys, monkeypatch, tmp_path):
    out = tmp_path / "records" / "rec.json"
    out.parent.mkdir()
    out.write_text('{"an": "earlier record"}\n')
    monkeypatch.setattr(Path, "write_text", full_disk(only=".rec.json.")[1])
    code = cli.main(["run", "--dataset", "synthetic", "--pretrained", "none", "--epochs", "1",
                     "--augment-views", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("tipkit:")] == [
        f"tipkit: error: no space left to write {out} (No space left on device); nothing was written and the file "
        "it would replace is unchanged: free space (python -m tipkit cache prune) or set TIPKIT_CACHE / "
        "TIPKIT_RESULTS to a disk with room"]
    assert list(out.parent.iterdir()) == [out] and out.read_text() == '{"an": "earlier record"}\n'


def write_records(records):
    folder = paths.records_dir() / report.MAIN_STUDY
    folder.mkdir(parents=True)
    files = []
    for i, r in enumerate(records):
        f = folder / f"run{i}.json"
        f.write_text(json.dumps(r))
        files.append(f)
    return files


def test_report_skips_damaged_records_and_writes_every_table(records, caplog, tmp_path):
    good = dict(records[0], config={**records[0]["config"], "seed": 7})
    files = write_records([records[0], records[1], {k: v for k, v in good.items() if k != "metrics"}, good])
    files[0].write_text(files[0].read_text()[:40])  # cut, as a full disk or a killed copy leaves it
    files[2].rename(files[2].with_name("nometrics.json"))
    with caplog.at_level(logging.WARNING):
        assert cli.main(["report", "--out", str(tmp_path / "tables")]) == 0
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for bad, why in ((files[0], "does not parse"), (files[2].with_name("nometrics.json"), "lacks metrics")):
        line = [w for w in warned if str(bad) in w]
        assert len(line) == 1 and why in line[0] and f"re-run its cell tip_adapter/{bad.stem}" in line[0]
    runs = pd.read_csv(tmp_path / "tables" / "runs.csv")
    assert sorted(set(zip(runs.shots, runs.seed))) == [(1, 7), (2, 1)]  # every good record, no damaged one
    assert {p.name for p in (tmp_path / "tables").iterdir()} == {"runs.csv", "summary.csv", "shift.csv",
                                                                 "histories.csv", "provenance.csv", "executions.csv"}


def test_sweep_runs_a_damaged_record_again(records, caplog, tmp_path):
    from tipkit.experiments.sweep import is_done, load_sweep

    spec = tmp_path / "s.yaml"
    spec.write_text(json.dumps({"fixed": SMOKE, "studies": [{"notebook": "notebooks/tip_adapter.ipynb",
                                                             "grid": {"shots": [1]}}]}))
    (cell,) = load_sweep(spec).cells
    cell.record.parent.mkdir(parents=True)
    cell.record.write_text(json.dumps(records[0]))
    cell.record.with_suffix(".inputs").write_text(cell.inputs + "\n")
    assert is_done(cell)
    cell.record.write_text(cell.record.read_text()[:40])
    with caplog.at_level(logging.WARNING):
        assert not is_done(cell)
    assert any(str(cell.record) in r.getMessage() and "running cell" in r.getMessage() for r in caplog.records)
