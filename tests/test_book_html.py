"""The built HTML book, checked in headless Chromium: every chapter loads, tables and figures are there,
math is rendered, a screenshot is not blank. Runs after `make book` (CI builds the book first)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tipkit import paths

HTML = paths.REPO / "_build" / "html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(not (HTML / "index.html").exists(), reason="book not built: run `make book` first"),
              pytest.mark.skipif(CHROMIUM is None, reason="Debian package chromium not installed")]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chapters() -> list[str]:
    toc = yaml.safe_load((paths.REPO / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]
    return [str(Path(f).with_suffix("")) for f in files]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args],
                          capture_output=True, text=True, timeout=120)


def dom(tmp_path: Path, page: str) -> str:
    p = chromium(tmp_path, "--dump-dom", (HTML / f"{page}.html").as_uri())
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.parametrize("page", chapters())
def test_chapter_loads_with_rendered_math(tmp_path, page):
    html = dom(tmp_path, page)
    assert "<main" in html and "<h1" in html
    raw = (HTML / f"{page}.html").read_text()
    if "math notranslate" in raw:  # the page has math: MathJax (served locally) must have typeset it
        assert "<mjx-container" in html, "math left untypeset (is MathJax served offline?)"
        text = _visible_text(html.split("<main", 1)[1].split("</main>")[0])
        assert "\\[" not in text and "\\begin{" not in text, "raw TeX left on the page"


def _visible_text(fragment: str) -> str:
    import re

    text = re.sub(r"<(script|style|mjx-assistive-mml)[^>]*>.*?</\1>", "", fragment, flags=re.S)
    return re.sub(r"<[^>]+>", "", text)


def test_results_page_has_table_and_figures(tmp_path):
    html = dom(tmp_path, "book/results")
    assert "<table" in html
    assert html.count("<img") >= 1
    assert "not CLIP" in _visible_text(html)


def test_screenshot_is_not_blank(tmp_path):
    from PIL import Image

    shot = tmp_path / "results.png"
    p = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1600", (HTML / "book" / "results.html").as_uri())
    assert p.returncode == 0 and shot.exists(), p.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert px.std() > 10  # a blank page is one flat colour
    assert (px < 128).mean() > 0.005  # some dark ink: text, axes
