"""The claims page: verdicts computed from records and reference/, on fabricated records in a temp results folder."""

import json

import pandas as pd
import pytest

from tipkit.experiments import report
from tipkit.figures import claims
from tipkit.figures.claim_rules import FAILS, HOLDS, UNTESTABLE

BASE = {"zero_shot": 58.0, "linear_probe": 70.0, "clip_adapter": 78.0, "tip_adapter": 77.5, "tip_adapter_f": 80.0}
GAIN = {1: 4.0, 16: 19.5}  # Tip-Adapter's gain over zero-shot at 1 and 16 shots


def record(dataset, backbone, shots, seed, metrics, extra=None, history=None, pretrained="standin"):
    return {"schema": 1, "config": {"dataset": dataset, "backbone": backbone, "pretrained": pretrained,
                                    "shots": shots, "seed": seed, "protocol": "clean"},
            "metrics": {"test": metrics, "val": metrics, **(extra or {})}, "timings": {"total_s": 1.0},
            "model": {"name": backbone, "weights": "sha256:x"}, "versions": {"torch": "x"}, "git_sha": "abc",
            "created": "2026-01-01T00:00:00+00:00", "history": history or {}}


def standin_records():
    out = []
    for shots in (1, 16):
        for seed in (1, 2):
            m = dict(BASE, tip_adapter=BASE["zero_shot"] + GAIN[shots])
            hist = {"tip_adapter_f": [{"epoch": e, "val_acc": min(80.0, 70.0 + 2 * e)} for e in range(1, 21)],
                    "clip_adapter": [{"epoch": e, "val_acc": min(78.0, 50.0 + e / 5)} for e in range(1, 201)]}
            shift = {"test:fashion-mnist-v2": {k: v - 5 for k, v in m.items()},
                     "test:fashion-mnist-sketch": {**{k: v - 30 for k, v in m.items()}, "tip_adapter": 20.0}}
            out.append(record("fashion-mnist", "tipkit-standin-mini", shots, seed, m, shift, hist))
    return out


def write(records, root):
    folder = root / "records" / "tip_adapter"
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(records):
        (folder / f"run{i}.json").write_text(json.dumps(r))
    return root / "records"


def verdicts(tmp_path, records, parity=None):
    out = tmp_path / "tables"
    report.aggregate(write(records, tmp_path / "results"), out)
    pcsv = tmp_path / "parity.csv"
    if parity is not None:
        parity.to_csv(pcsv, index=False)
    v = claims.verdicts(claims.load_sides(out, parity_csv=pcsv))
    return {(r.claim, r.side): r for r in v.itertuples()}


def test_paper_side_is_computed_from_reference():
    v = claims.verdicts()
    paper = {r.claim: r for r in v[v.side == "paper"].itertuples()}
    assert paper[1].verdict == HOLDS and "11 of 11" in paper[1].text
    assert paper[7].verdict == HOLDS and "35.4" in paper[7].text and "57.1" in paper[7].text  # Table 5
    assert paper[8].verdict == HOLDS and "ViT-B-16" in paper[8].text  # Table 3
    assert paper[6].verdict == HOLDS  # the α, β ablations peak inside their grids
    assert paper[2].verdict == FAILS  # ImageNet: Tip-Adapter 62.03 vs CLIP-Adapter 63.59, more than 1 point
    assert paper[9].verdict == HOLDS and "×1.02" in paper[9].text


def test_a_changed_record_changes_the_verdict(tmp_path):
    recs = standin_records()
    v = verdicts(tmp_path / "a", recs)
    assert v[1, "stand-in"].verdict == HOLDS and "+19.5 (16)" in v[1, "stand-in"].text
    assert v[5, "stand-in"].verdict == HOLDS
    assert v[4, "stand-in"].verdict == HOLDS and "epoch 5" in v[4, "stand-in"].text
    assert v[1, "CLIP"].verdict == UNTESTABLE  # no real-CLIP records
    recs[0]["metrics"]["test"]["tip_adapter"] = 50.0  # one seed at 1 shot: Tip-Adapter now below zero-shot on average
    v = verdicts(tmp_path / "b", recs)
    assert v[1, "stand-in"].verdict == FAILS


def test_linear_probe_above_tip_f_fails_claim_3_and_says_why(tmp_path):
    recs = standin_records()
    for r in recs:
        r["metrics"]["test"]["linear_probe"] = 81.0
    out = tmp_path / "tables"
    report.aggregate(write(recs, tmp_path / "results"), out)
    sides = claims.load_sides(out, parity_csv=tmp_path / "none.csv")
    v = claims.verdicts(sides)
    row = v[(v.claim == 3) & (v.side == "stand-in")].iloc[0]
    assert row.verdict == FAILS and "Linear probe 81.0" in row.text
    text = claims.departures(v, sides)
    assert "Claim 3 does not hold" in text and "linear probe reaches 81.0" in text and "(56.1 vs 62.0)" in text


def test_shift_and_backbones_on_fabricated_clip_records(tmp_path):
    m = {"zero_shot": 60.3, "linear_probe": 56.1, "clip_adapter": 63.6, "tip_adapter": 62.0, "tip_adapter_f": 65.5}
    shift = {"test:imagenet_v2": {k: v - 7 for k, v in m.items()},
             "test:imagenet_sketch": {k: v - 25 for k, v in m.items()}}
    clip = [record("imagenet", "RN50", 16, 1, m, shift, pretrained="openai")]
    v = verdicts(tmp_path / "a", standin_records() + clip)
    assert v[7, "CLIP"].verdict == HOLDS and "imagenet_v2" in v[7, "CLIP"].text
    assert v[7, "stand-in"].verdict == FAILS  # the fabricated sketch set: Tip-Adapter 20.0 below zero-shot 28.0
    assert v[8, "CLIP"].verdict == UNTESTABLE  # one backbone
    assert v[3, "CLIP"].verdict == HOLDS and v[2, "CLIP"].verdict == FAILS  # 62.0 vs 63.6
    clip.append(record("imagenet", "RN101", 16, 1, {k: v + 2 for k, v in m.items()}, pretrained="openai"))
    v = verdicts(tmp_path / "b", standin_records() + clip)
    assert v[8, "CLIP"].verdict == HOLDS and "RN101" in v[8, "CLIP"].text
    clip[-1]["metrics"]["test"]["tip_adapter_f"] = 60.0  # RN101's Tip-F now below its Tip-Adapter
    v = verdicts(tmp_path / "c", standin_records() + clip)
    assert v[8, "CLIP"].verdict == FAILS and "RN101" in v[8, "CLIP"].text


def test_parity_pending_then_read(tmp_path):
    v = verdicts(tmp_path / "a", standin_records())
    assert v[10, "stand-in"].verdict == UNTESTABLE and "parity.csv" in v[10, "stand-in"].text
    rows = pd.DataFrame([{"method": "tip_adapter", "backbone": "tipkit-standin-mini", "difference": 0.0,
                          "tolerance": 0.05},
                         {"method": "clap", "backbone": "tipkit-standin-mini", "difference": 0.3, "tolerance": 0.5}])
    v = verdicts(tmp_path / "b", standin_records(), rows)
    assert v[10, "stand-in"].verdict == HOLDS and "2 of 2" in v[10, "stand-in"].text
    rows.loc[1, "difference"] = -6.5
    v = verdicts(tmp_path / "c", standin_records(), rows)
    assert v[10, "stand-in"].verdict == FAILS and "CLAP -6.50" in v[10, "stand-in"].text


def test_parity_cells_not_measured_leave_the_claim_open(tmp_path):
    """Every measured row within tolerance is not the claim while cells wait in parity_pending.csv."""
    rows = pd.DataFrame([{"method": "gda", "backbone": "tipkit-standin-mini", "difference": 0.0, "tolerance": 0.05}])
    (tmp_path / "d").mkdir()
    pd.DataFrame([{"method": "ape", "shots": 16, "why": "not measured yet"}]).to_csv(
        tmp_path / "d" / "parity_pending.csv", index=False)
    v = verdicts(tmp_path / "d", standin_records(), rows)
    assert v[10, "stand-in"].verdict == UNTESTABLE
    assert "1 of 1" in v[10, "stand-in"].text and "APE 16-shot" in v[10, "stand-in"].text


def test_table_has_one_row_per_claim_and_commands_in_one_block(tmp_path):
    out = tmp_path / "tables"
    report.aggregate(write(standin_records(), tmp_path / "results"), out)
    plans = pd.DataFrame([{"shots": k, "total_s": 600.0, "lower_bound": False, "missing": 0,
                           "machine": "cuda-h200"} for k in claims.SHOTS])
    t = claims.claims_table(claims.verdicts(claims.load_sides(out, parity_csv=tmp_path / "x.csv")), plans)
    assert len(t) == len(claims.CLAIMS) == 10
    clip = t["real CLIP (records here)"]
    assert clip.iloc[0].endswith("≈ 50 min on cuda-h200; command A</small>")  # 5 shot counts × 10 min
    assert clip.iloc[1].endswith("≈ 10 min on cuda-h200; command A</small>")
    assert "✓ holds here" in t["stand-in (this book)"].iloc[0]
    block = claims.commands_block()
    assert all(f"# {k}" in block for k in claims.COMMANDS) and "--extra-test imagenet_v2 imagenet_sketch" in block
    assert "<table" in claims.styled(t).to_html()


@pytest.mark.parametrize("text,seconds", [("0", 0.0), ("5 min", 300.0), ("14 h 40 min", 52800.0)])
def test_paper_training_times_are_parsed(text, seconds):
    assert claims._seconds(text) == seconds
