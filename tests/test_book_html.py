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


@pytest.mark.parametrize("page", chapters())
def test_no_python_object_is_printed_in_place_of_its_content(page):
    """A cell whose value is, e.g., an empty ``Markdown("")`` shows its repr (``<IPython...Markdown object>``)."""
    raw = (HTML / f"{page}.html").read_text()
    assert " object at 0x" not in raw and "IPython.core.display." not in raw, page


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


MEASURE = """<script>
window.addEventListener('load', () => {
  const out = {tall: [], wide: [], numeric: 0};
  const num = /^\\s*[-+]?\\d[\\d,]*(\\.\\d+)?(\\s*±\\s*\\d+(\\.\\d+)?)?\\s*$/;
  for (const td of document.querySelectorAll('main table td')) {
    const t = td.textContent.trim();
    if (!num.test(t)) continue;
    out.numeric += 1;
    const r = document.createRange();
    r.selectNodeContents(td);
    const tops = new Set([...r.getClientRects()].filter(x => x.width > 0).map(x => Math.round(x.top)));
    if (tops.size > 1) out.tall.push(t);
  }
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth + 1) out.wide.push('page: ' + doc.scrollWidth + ' px');
  for (const el of document.querySelectorAll('main *')) {
    const s = getComputedStyle(el).overflowX;
    if ((s === 'auto' || s === 'scroll') && el.querySelector('table') && el.scrollWidth > el.clientWidth + 1)
      out.wide.push((el.className || el.tagName) + ': ' + el.scrollWidth + ' > ' + el.clientWidth + ' px');
  }
  const pre = document.createElement('pre');
  pre.id = 'tipkit-measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure_tables(tmp_path: Path, page: str, width: int = 1280) -> dict:
    """Lay ``page`` out in Chromium at ``width`` px: the numeric table cells that take more than one line and
    any table container that scrolls sideways (a copy of the page with a measuring script, beside it)."""
    import json
    import re

    src = HTML / f"{page}.html"
    probe = src.with_name(f"_measure_{src.name}")
    probe.write_text(src.read_text().replace("</body>", MEASURE + "</body>"))
    try:
        p = chromium(tmp_path, f"--window-size={width},900", "--dump-dom", probe.as_uri())
    finally:
        probe.unlink()
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r'<pre id="tipkit-measure"[^>]*>(.*?)</pre>', p.stdout, flags=re.S)
    assert m, "the measuring script did not run"
    import html as html_mod

    return json.loads(html_mod.unescape(m.group(1)))


@pytest.mark.parametrize("page", ["book/results", "book/miniature", "book/claims"])
def test_numbers_stay_on_one_line_and_no_table_scrolls_sideways(tmp_path, page):
    if not (HTML / f"{page}.html").exists():
        pytest.skip(f"{page} not in this build")
    m = measure_tables(tmp_path, page)
    assert m["tall"] == [], f"numeric cells broken over lines at 1280 px: {m['tall'][:5]}"
    assert m["wide"] == [], f"scrolls sideways at 1280 px: {m['wide']}"
    if page != "book/claims":
        assert m["numeric"] > 0  # the check saw the tables' numbers


def test_the_measure_catches_a_wrapped_number(tmp_path):
    page = HTML / "book" / "_wrapped_probe.html"
    page.write_text("<html><body><main><table><tr><td style='width:20px'>80.52 ± 0.37</td></tr></table>"
                    "<div style='overflow-x:auto;width:100px'><table><tr><td style='white-space:nowrap'>"
                    + "9" * 80 + "</td></tr></table></div></main></body></html>")
    try:
        m = measure_tables(tmp_path, "book/_wrapped_probe")
    finally:
        page.unlink()
    assert m["tall"] == ["80.52 ± 0.37"] and len(m["wide"]) == 1
