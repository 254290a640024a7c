"""The command line as a new user meets it: help that says what each option accepts and starts without torch,
one clear line (no traceback, nothing written) for no CUDA or a backbone without its weights, and Ctrl-C at
any moment ending with exit 130."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tipkit import cli, paths

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "open_clip", "pandas", "torchvision", "matplotlib")
SUBCOMMANDS = (["run"], ["predict"], ["sweep"], ["report"], ["cache"], ["data"], ["data", "check"], ["standin"],
               ["bench"], ["classroom"])


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_help_of_every_command_imports_no_torch_open_clip_or_pandas():
    code = ("import sys, json\nfrom tipkit.cli import build_parser\n"
            f"for argv in {json.dumps([[]] + [list(s) for s in SUBCOMMANDS])}:\n"
            "    try:\n        build_parser().parse_args(argv + ['--help'])\n    except SystemExit as e:\n"
            "        assert e.code == 0, argv\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stderr.strip().splitlines()[-1]) == []
    r = subprocess.run([sys.executable, "-m", "tipkit", "--help"], capture_output=True, text=True, env=env())
    assert r.returncode == 0 and "usage: python -m tipkit" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import sys, tipkit; print(sorted(m for m in %r if m in sys.modules))"
                        % (HEAVY,)], capture_output=True, text=True, env=env())
    assert r.stdout.strip() == "[]"  # the package face is lazy


def _options(parser: argparse.ArgumentParser, name: str = "tipkit"):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub, p in a.choices.items():
                yield from _options(p, f"{name} {sub}")
        elif not isinstance(a, argparse._HelpAction):
            yield name, a


def test_every_option_says_what_it_accepts():
    helps = {}
    for name, a in _options(cli.build_parser()):
        text = re.sub(r"\(default:[^)]*\)", "", a.help or "").strip()
        assert len(text) > 8, (name, a.option_strings or a.dest, a.help)
        helps[(name, (a.option_strings or [a.dest])[-1])] = a.help
    assert "folder:PATH" in helps[("tipkit run", "--dataset")]
    assert all(w in helps[("tipkit run", "--pretrained")] for w in ("standin", "none", "PATH", "tag"))
    from tipkit.methods import list_methods

    assert all(m in helps[("tipkit run", "--methods")] for m in list_methods())


def test_the_light_method_list_is_the_registry():
    from tipkit.labels import METHOD_LABELS
    from tipkit.methods import list_methods

    assert sorted(METHOD_LABELS) == sorted(list_methods())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("argv, message", [
    (["--device", "cuda"], "device 'cuda': this machine has no CUDA"),
    (["--device", "gpu"], "unknown device 'gpu'; known: cpu, cuda, cuda:N, mps"),
    (["--backbone", "RN50"], "--pretrained standin is the stand-in's checkpoint, for the stand-in backbones "
                             "(tipkit-standin-mini, tipkit-standin-small, tipkit-standin-tiny) only; for RN50 pass "
                             "--pretrained openai"),
])
def test_no_cuda_and_a_backbone_without_its_weights_are_one_line(capsys, argv, message):
    code = cli.main(["run", "--dataset", "synthetic", *argv])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("tipkit: error: ") and message in err
    assert not paths.results_dir().exists() and not paths.feature_cache_dir().exists()


@pytest.mark.parametrize("delay", [0.4, 1.5, 4.0])
def test_ctrl_c_at_any_moment_is_exit_130_without_traceback(tmp_path, delay):
    e = {**env(), "TIPKIT_RESULTS": str(tmp_path / "results"), "TIPKIT_CACHE": str(tmp_path / "cache")}
    p = subprocess.Popen([sys.executable, "-m", "tipkit", "run", "--dataset", "synthetic", "--pretrained", "none",
                          "--epochs", "500"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)  # during the imports, loading the model, extracting features ...
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "tipkit: interrupted"
    assert not (tmp_path / "results" / "records").exists()


def test_where_files_go_inside_and_outside_a_checkout(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("TIPKIT_CACHE")
    monkeypatch.delenv("TIPKIT_RESULTS")
    assert paths.CHECKOUT  # the tests run from a source checkout: today's defaults
    assert paths.cache_dir() == paths.REPO / ".cache" / "tipkit" and paths.results_dir() == paths.REPO / "_results"
    monkeypatch.setattr(paths, "CHECKOUT", False)  # as in site-packages
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    assert paths.feature_cache_dir() == tmp_path / "xdg" / "tipkit" / "features"
    assert paths.records_dir() == tmp_path / "_results" / "records"
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == [f"feature cache: {tmp_path / 'xdg' / 'tipkit' / 'features'} (from the user's cache directory)",
                       f"run records: {tmp_path / '_results' / 'records'} (from the current directory)"]
    monkeypatch.setenv("TIPKIT_RESULTS", str(tmp_path / "mine"))
    assert cli.main(["cache", "info"]) == 0
    assert f"run records: {tmp_path / 'mine' / 'records'} (from TIPKIT_RESULTS)" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # info creates nothing


def test_every_tipkit_name_the_notebooks_and_book_use_resolves_in_a_fresh_process():
    """The lazy face: ``tipkit.<name>`` as written in the notebooks and book pages works right after
    ``import tipkit`` (modules such as ``tipkit.paths``; the public names are checked by test_layout)."""
    used = set()
    for f in [*REPO.glob("notebooks/*.ipynb"), *REPO.glob("book/*.md")]:
        used |= set(re.findall(r"\btipkit\.([A-Za-z_]\w*)\b(?!\.ipynb)", f.read_text()))
    used -= {"l", "ipynb", "py"}  # the regex's false hits: tipkit.l... in prose, file names
    code = ("import json, sys, tipkit\nbad = [n for n in json.loads(sys.argv[1]) if not hasattr(tipkit, n)]\n"
            "print(json.dumps(bad))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(sorted(used - set(__import__("tipkit").__all__)))],
                       capture_output=True, text=True, env=env(), cwd=REPO)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr
