import json
import subprocess
import sys

import pytest

from tipkit import cli, paths


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "cifar"], "unknown dataset 'cifar'; known: caltech101, dtd, eurosat, fashion-mnist, fashion-mnist-sketch, "
                              "fashion-mnist-v2, fgvc_aircraft"),
    (["--backbone", "RN5000", "--dataset", "synthetic"], "unknown backbone 'RN5000'; known: "),
    (["--shots", "0", "--dataset", "synthetic"], "shots must be a positive integer, got 0"),
    (["--shots", "21", "--dataset", "synthetic"], "shots=21 is more than class 'horizontal stripes' holds (20 images)"),
    (["--pretrained", "/no/such.pt", "--dataset", "synthetic"], "checkpoint not found: /no/such.pt"),
    (["--dataset", "fashion-mnist", "--data-root", "/nonexistent"], "Fashion-MNIST not found in /nonexistent"),
    (["--config", "/no/config.yaml"], "config file not found: /no/config.yaml"),
])
def test_bad_input_is_one_clear_line_and_writes_nothing(capsys, argv, message):
    code, out, err = run_cli(capsys, "run", *argv)
    assert code == 2
    lines = [l for l in err.splitlines() if l.startswith("tipkit: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not paths.results_dir().exists() and not paths.feature_cache_dir().exists()


def test_not_a_checkpoint_file(capsys, tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"\x00garbage")
    code, _, err = run_cli(capsys, "run", "--dataset", "synthetic", "--pretrained", str(bad))
    assert code == 2 and f"{bad} is not a checkpoint" in err
    assert not paths.results_dir().exists()


def test_yaml_config_unknown_key_and_wrong_type(capsys, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("dataset: synthetic\nshotz: 4\n")
    code, _, err = run_cli(capsys, "run", "--config", str(f))
    assert code == 2 and "unknown config key 'shotz'" in err
    f.write_text("dataset: synthetic\nshots: four\n")
    code, _, err = run_cli(capsys, "run", "--config", str(f))
    assert code == 2 and "config key 'shots' must be int, got 'four'" in err


def test_run_from_yaml_writes_record_and_prints_table(capsys, tmp_path):
    f = tmp_path / "c.yaml"
    out = tmp_path / "rec.json"
    f.write_text(f"dataset: synthetic\npretrained: none\nshots: 2\nseed: 3\nout: {out}\n")
    code, stdout, _ = run_cli(capsys, "run", "--config", str(f), "--epochs", "1")
    assert code == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["shots"] == 2 and rec["config"]["epochs"] == 1  # flags override the file
    assert set(rec["metrics"]["test"]) == {"zero_shot", "tip_adapter", "tip_adapter_f"}
    assert {"torch", "open_clip_torch", "tipkit"} <= set(rec["versions"]) and rec["git_sha"]
    assert len(rec["manifest"]) == 2 * 4
    assert "Tip-Adapter-F" in stdout and str(out) in stdout


def test_module_entry_point_exit_code_and_no_traceback():
    p = subprocess.run([sys.executable, "-m", "tipkit", "run", "--shots", "-1", "--dataset", "synthetic"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == "tipkit: error: shots must be a positive integer, got -1"
