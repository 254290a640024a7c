"""The α/β explorer in headless Chromium: pressing keys on a slider changes the numbers, and the numbers are
tipkit's (the grid search's validation accuracy, Tip-Adapter's softmax for the query). Standalone, and in the
built book's walkthrough when the book has been built."""

import shutil

import pytest
import torch

from cdp import Browser
from tipkit import paths
from tipkit.core.cache import build_cache
from tipkit.core.fusion import tip_logits
from tipkit.core.search import grid_search, paper_grid
from tipkit.figures import teach

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")
READ = """(() => { const r = document.querySelector('.tk-explorer');
  return {alpha: +r.querySelector('input.tk-alpha').value, beta: +r.querySelector('input.tk-beta').value,
          acc: r.querySelector('.tk-acc').textContent, pred: r.querySelector('.tk-pred').textContent,
          p: [...r.querySelectorAll('.tk-p')].map(e => e.textContent)}; })()"""


@pytest.fixture
def browser(tmp_path):
    b = Browser(CHROMIUM, tmp_path / "profile")
    yield b
    b.close()


def _move(browser, which, key, code, times):
    browser.js(f"document.querySelector('.tk-explorer input.tk-{which}').focus()")
    browser.press(key, code, times)
    return browser.js(READ)


def test_sliders_change_the_numbers_to_tipkits(problem, tmp_path, browser):
    keys, values = build_cache(problem["views"], problem["labels_k"], problem["C"])
    q, y = problem["queries"], problem["labels_q"]
    W = problem["W"] * 0.03  # softer zero-shot logits, so that no probability sits at 0.000 or 1.000
    betas, alphas = paper_grid((10.0, 10.0), (12, 8))
    search = grid_search(q, y, W, keys, values, betas, alphas)
    names = [f"class {c}" for c in range(problem["C"])]
    page = tmp_path / "explorer.html"
    page.write_text("<!doctype html><meta charset='utf-8'><body>"
                    + teach.explorer_html(teach.explorer_data(search, q[7], W, keys, values, names, int(y[7])))
                    + "</body>")
    browser.open(page.as_uri())
    start = browser.js(READ)

    def expect(state):
        i, j = state["beta"], state["alpha"]
        assert state["acc"] == f"{float(search.grid[i, j]):.2f}"
        p = torch.softmax(tip_logits(q[7:8].double(), W.double(), keys.double(), values.double(),
                                     float(alphas[j]), float(betas[i])), -1)[0]
        assert state["p"] == [f"{float(x):.3f}" for x in p]
        assert state["pred"] == names[int(p.argmax())]

    expect(start)
    flat = int(search.grid.flatten().argmax())
    assert (start["beta"], start["alpha"]) == divmod(flat, len(alphas))  # starts at the search's choice
    moved = _move(browser, "alpha", "Home", 36, 1)  # α to its smallest value
    assert moved["alpha"] == 0 and moved["p"] != start["p"]
    expect(moved)
    moved_b = _move(browser, "beta", "ArrowRight" if start["beta"] < len(betas) - 1 else "ArrowLeft",
                    39 if start["beta"] < len(betas) - 1 else 37, 3)
    assert moved_b["beta"] != start["beta"] and moved_b["p"] != moved["p"]
    expect(moved_b)


@pytest.mark.skipif(not (paths.REPO / "_build" / "html" / "notebooks" / "walkthrough.html").exists(),
                    reason="book not built: run `make book` first")
def test_explorer_works_in_the_built_walkthrough(browser):
    browser.open((paths.REPO / "_build" / "html" / "notebooks" / "walkthrough.html").as_uri())
    start = browser.js(READ)
    assert start["acc"] and len(start["p"]) >= 2 and all(p for p in start["p"])
    moved = _move(browser, "beta", "End", 35, 1)
    moved = _move(browser, "alpha", "End", 35, 1) if moved["p"] == start["p"] else moved
    assert (moved["alpha"], moved["beta"]) != (start["alpha"], start["beta"])
    assert moved["p"] != start["p"] or moved["acc"] != start["acc"]
