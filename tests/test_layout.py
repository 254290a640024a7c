"""The package layout: one subpackage per stage, import directions enforced, no circles, a stable face."""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import grimp
import pytest

import tipkit

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
STAGES = ("core", "data", "models", "methods", "apply", "experiments", "studies", "figures", "bench")

# The names the issue fixes as the contract, plus the rest of the face (see tipkit/__init__.py).
CONTRACT = ("build_cache", "clip_logits", "cache_logits", "tip_logits", "paper_grid", "grid_search", "finetune",
            "get_dataset", "load_backbone", "image_features", "get_method", "list_methods", "FewShotData",
            "make_config", "RunConfig", "run")


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True)


def test_lint_imports_passes_on_the_package():
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("module, line", [
    ("core/fusion.py", "import tipkit.experiments.report"),   # the math may not reach into experiments
    ("data/registry.py", "from tipkit.models import backbone"),  # data may not import models
    ("figures/plots.py", "from tipkit.experiments import pipeline"),  # figures never run experiments
    ("methods/base.py", "from tipkit.models import features"),  # methods see features as tensors only
    ("experiments/pipeline.py", "from tipkit.bench import runner"),  # nothing below the benchmark imports it
    ("models/backbone.py", "from tipkit.apply import adapter"),  # the adapters sit above the stages they use
    ("studies/ablations.py", "from tipkit.experiments import pipeline"),  # studies run no pipeline
    ("apply/adapter.py", "from tipkit.experiments import report"),  # a saved adapter needs no run or record
    ("methods/tip.py", "import tipkit.studies.ablations"),  # methods never reach the studies
])
def test_lint_imports_fails_on_a_wrong_direction(tmp_path, module, line):
    """The contracts are not vacuous: one illegal import in a copy of the package breaks them."""
    shutil.copytree(REPO / "tipkit", tmp_path / "tipkit", ignore=shutil.ignore_patterns("__pycache__", "*.safetensors"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "tipkit" / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    r = _lint(tmp_path)
    assert r.returncode != 0, r.stdout
    assert "BROKEN" in r.stdout


def test_no_import_circles_between_modules():
    """No module reaches itself through its imports (the package face, which imports everything, aside)."""
    g = grimp.build_graph("tipkit", exclude_type_checking_imports=True)
    circles = []
    for a in sorted(m for m in g.modules if m != "tipkit"):
        for b in g.find_modules_directly_imported_by(a):
            assert b != "tipkit", f"{a} imports the package face; import the stage module instead"
            chain = g.find_shortest_chain(importer=b, imported=a)
            if chain:
                circles.append(" -> ".join((a, *chain)))
    assert not circles, circles


def test_every_stage_says_what_it_does_and_may_import():
    for stage in STAGES:
        doc = importlib.import_module(f"tipkit.{stage}").__doc__ or ""
        assert "import" in doc and len(doc) > 200, f"tipkit.{stage}.__init__ must say what it does and may import"


def _lines(folder: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in folder.rglob("*.py"))


def test_no_wing_holds_more_than_a_quarter_of_the_package():
    total = _lines(REPO / "tipkit")
    sizes = {d.name: _lines(d) for d in (REPO / "tipkit").iterdir() if (d / "__init__.py").exists()}
    assert set(STAGES) <= set(sizes), sorted(set(STAGES) - set(sizes))
    big = {name: f"{n / total:.0%}" for name, n in sizes.items() if n > total / 4}
    assert not big, f"wings over a quarter of tipkit's {total} lines: {big}"


def test_contract_names_are_public():
    missing = [n for n in CONTRACT if n not in tipkit.__all__]
    assert not missing, missing


@pytest.mark.parametrize("name", tipkit.__all__)
def test_public_name_is_the_stage_modules_object(name):
    obj = getattr(tipkit, name)
    if name == "__version__":
        assert obj == importlib.import_module("tipkit.version").__version__
        return
    if isinstance(obj, types.ModuleType):
        assert obj.__name__.split(".")[1] in STAGES, f"tipkit.{name} is {obj.__name__}, not a stage module"
        return
    if inspect.isfunction(obj) or inspect.isclass(obj):
        home = importlib.import_module(obj.__module__)
        assert obj.__module__ != "tipkit" and getattr(home, name) is obj, f"{name} is not {obj.__module__}.{name}"
        return
    # a constant (HPARAMS, PAPERS): the same object as in the module that defines it
    from tipkit.methods import hparams

    assert getattr(hparams, name) is obj
