"""Installed like a tool: the wheel in a fresh venv, `tipkit run` from an empty folder, with no TIPKIT_*
variables: the feature cache goes to the user's cache directory, the record to ./_results, nothing into the
installed package. The venv reuses this environment's packages (a .pth line) so torch is not reinstalled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_from_an_empty_folder(tmp_path):
    src, wheels = tmp_path / "src", tmp_path / "wheels"  # built from a copy: no egg-info/build left in the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "_build", "_results", ".cache", "build",
                                                             "*.egg-info", "__pycache__", ".pytest_cache", ".whl"))
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TIPKIT_", "PYTHON", "XDG_"))}
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(wheels), str(src)], capture_output=True, text=True, cwd=tmp_path, env=clean)
    assert build.returncode == 0, build.stderr
    wheel = next(wheels.glob("tipkit-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           str(wheel)], capture_output=True, text=True, env=clean)
    assert inst.returncode == 0 and "Successfully installed tipkit" in inst.stdout, inst.stdout + inst.stderr
    # then this environment's packages (torch & co) by a .pth line; its tipkit (an editable install, whose own
    # .pth is not read from a folder added this way) stays behind the wheel's copy
    (site / "shared-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home, work = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    work.mkdir()
    env = dict(clean)
    env.update(HOME=str(home), PATH=f"{venv / 'bin'}:{env.get('PATH', '')}")
    where = subprocess.run([str(venv / "bin" / "tipkit"), "cache", "info"], cwd=work, env=env, capture_output=True,
                           text=True)
    assert where.returncode == 0, where.stderr
    cache = home / ".cache" / "tipkit" / "features"
    assert f"feature cache: {cache} (from the user's cache directory)" in where.stdout
    assert f"run records: {work / '_results' / 'records'} (from the current directory)" in where.stdout
    r = subprocess.run([str(venv / "bin" / "tipkit"), "run", "--dataset", "synthetic", "--shots", "2"], cwd=work,
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pkg = Path(subprocess.run([str(py), "-c", "import tipkit; print(tipkit.__file__)"], cwd=work, env=env,
                              capture_output=True, text=True, check=True).stdout.strip()).parent
    assert pkg.parent == site  # the wheel's copy ran, not this checkout
    records = list((work / "_results" / "records").rglob("*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["metrics"]["test"]["tip_adapter"] > 0
    assert any(cache.iterdir())
    assert not (pkg / "_results").exists() and not (pkg.parent / "_results").exists()
    assert not (pkg.parent / ".cache").exists()
    assert sorted(p.name for p in work.iterdir()) == ["_results"]
