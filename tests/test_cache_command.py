"""`python -m tipkit cache info|verify|compact|prune` on real feature stores."""

import os
import time

import torch

from tipkit import cli, models, paths


def run(capsys, *argv):
    code = cli.main(["cache", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def snapshot():
    return {p: p.read_bytes() for p in sorted(paths.feature_cache_dir().rglob("*")) if p.is_file()}


def test_info_compact_and_verify(bb, ds, capsys):
    test = ds.split("test")
    models.image_features(bb, ds.name, test, indices=[0, 1])
    feats = models.image_features(bb, ds.name, test, indices=[3, 2, 1, 0])  # adds a second shard
    code, out, _ = run(capsys, "info")
    assert code == 0
    row = next(ln.split() for ln in out.splitlines() if " test " in ln)
    assert row[1:8] == ["tipkit-standin-mini", "random-init:0", "synthetic", "test", "-", "4", "2"]
    assert "1 stores, 2 shards" in out
    code, out, _ = run(capsys, "compact")
    assert code == 0 and "1 stores compacted" in out
    (shard,) = list(paths.feature_cache_dir().rglob("*.pt"))
    assert torch.equal(models.image_features(bb, ds.name, test, indices=[3, 2, 1, 0]), feats)
    assert run(capsys, "verify")[0] == 0
    shard.write_bytes(shard.read_bytes()[:100])
    code, out, _ = run(capsys, "verify")
    assert code == 1 and f"damaged: {shard}: unreadable" in out and "1 damaged files" in out
    assert shard.exists()  # verify only reports; the next run moves it aside


def test_prune_lists_then_removes_only_what_no_input_produces(bb, ds, capsys, tmp_path):
    test = ds.split("test")
    keep = models.image_features(bb, ds.name, test, indices=[0, 1])
    models.image_features(bb, ds.name, test, indices=[2])
    ck = tmp_path / "w.pt"
    torch.save(bb.model.state_dict(), ck)
    models.image_features(models.load_backbone(pretrained=str(ck)), ds.name, test, indices=[0])
    sd = bb.model.state_dict()
    sd["visual.proj"] = sd["visual.proj"] * 2
    torch.save(sd, ck)  # the checkpoint changed: its old store can never be produced again
    root = paths.feature_cache_dir()
    (root / "0123abcd.pt").write_bytes(b"old single-file store")
    (root / "0123abcd.lock").write_bytes(b"")
    (root / "nometa").mkdir()
    (root / "nometa" / "00000000000000000001-h-1-ab.pt").write_bytes(b"x")
    current = next(d for d in root.iterdir() if d.is_dir() and len(list(d.glob("*.pt"))) == 2)
    shard = sorted(current.glob("*.pt"))[1]
    shard.rename(shard.with_name(shard.name + ".corrupt"))
    stale, fresh = current / ".x.pt.1.tmp", current / ".y.pt.2.tmp"
    stale.write_bytes(b"a killed writer's")
    fresh.write_bytes(b"a running writer's")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    before = snapshot()

    code, out, _ = run(capsys, "prune")
    assert code == 0 and snapshot() == before  # a dry run by default
    lines = [ln for ln in out.splitlines() if ln.startswith("would remove: ")]
    listed = {ln.split("would remove: ")[1].split(" (")[0]: ln for ln in lines}
    expect = {root / "0123abcd.pt": "old format", root / "0123abcd.lock": "old format",
              root / "nometa": "no readable meta.json", shard.with_name(shard.name + ".corrupt"): "damaged shard",
              stale: "writer that stopped"}
    stale_store = [p for p in listed if "weights" in listed[p]]
    assert len(stale_store) == 1 and "today's inputs give another key (weights changed)" in listed[stale_store[0]]
    assert {str(p) for p in expect} | set(stale_store) == set(listed)
    for p, why in expect.items():
        assert why in listed[str(p)]
    assert "run again with --apply" in out

    code, out, _ = run(capsys, "prune", "--apply")
    assert code == 0 and "removed 6 items" in out
    left = set(snapshot())
    assert not any(str(p) in map(str, left) for p in expect if not str(p).endswith("nometa"))
    assert not (root / "nometa").exists() and not (root / stale_store[0]).exists()
    assert fresh in left and all(p in left for p in current.glob("*.pt"))
    assert torch.equal(models.image_features(bb, ds.name, test, indices=[0, 1]), keep)

    code, out, _ = run(capsys, "prune", "--older-than", "2999-01-01")
    assert code == 0 and str(current) in out and "before the given date" in out
    code, _, err = run(capsys, "prune", "--older-than", "last week")
    assert code == 2 and "--older-than expects a date like 2025-01-31 (or an ISO date-time), got 'last week'" in err
