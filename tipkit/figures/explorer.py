"""The α/β explorer: two sliders over the grid search's (β, α) grid that show one query's class
probabilities and the validation accuracy at that point, interactive in a static HTML page.

The page needs no kernel and no library: the validation accuracies are the grid search's own
(:attr:`tipkit.SearchResult.grid`), embedded as numbers; the query's probabilities are
``softmax(100 f Wᵀ + α · exp(−β(1 − f Kᵀ)) V)``, computed in the browser from the embedded zero-shot logits
``[C]``, affinities ``[K]`` and values ``[K, C]`` (a few hundred numbers) by a short script written here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

import torch

from tipkit.core.fusion import clip_logits
from tipkit.core.search import SearchResult

_SCRIPT = """
(function () {
  var root = document.getElementById("%(id)s");
  var d = JSON.parse(root.querySelector("script[type='application/json']").textContent);
  var a = root.querySelector("input.tk-alpha"), b = root.querySelector("input.tk-beta");
  function probs(alpha, beta) {
    var z = d.zs.slice();
    for (var k = 0; k < d.affinity.length; k++) {
      var w = Math.exp(-beta * (1 - d.affinity[k]));
      for (var c = 0; c < z.length; c++) z[c] += alpha * w * d.values[k][c];
    }
    var m = Math.max.apply(null, z), s = 0;
    for (var c = 0; c < z.length; c++) { z[c] = Math.exp(z[c] - m); s += z[c]; }
    return z.map(function (v) { return v / s; });
  }
  function draw() {
    var j = +a.value, i = +b.value, alpha = d.alphas[j], beta = d.betas[i], p = probs(alpha, beta), top = 0;
    for (var c = 1; c < p.length; c++) if (p[c] > p[top]) top = c;
    root.querySelector(".tk-alpha-value").textContent = alpha.toFixed(3);
    root.querySelector(".tk-beta-value").textContent = beta.toFixed(3);
    root.querySelector(".tk-acc").textContent = d.grid[i][j].toFixed(2);
    root.querySelector(".tk-pred").textContent = d.classnames[top];
    root.querySelector(".tk-best").textContent = (i === d.best[0] && j === d.best[1]) ? " (the search's choice)" : "";
    root.querySelectorAll("tr.tk-class").forEach(function (row, c) {
      row.querySelector(".tk-p").textContent = p[c].toFixed(3);
      var bar = row.querySelector(".tk-bar");
      bar.style.width = (100 * p[c]).toFixed(1) + "%%";
      bar.style.background = c === top ? "#c0392b" : "#2e86c1";
    });
  }
  a.addEventListener("input", draw); b.addEventListener("input", draw);
  draw();
})();
"""


def explorer_data(search: SearchResult, query: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.Tensor,
                  values: torch.Tensor, classnames: Sequence[str], true_class: "int | None" = None) -> dict[str, Any]:
    """The numbers the explorer embeds: the search's grid ``[nβ, nα]`` (val accuracy %), its axes, and for
    ``query [D]`` the zero-shot logits ``[C]``, affinities to ``keys [K, D]`` ``[K]`` and ``values [K, C]``."""
    q = query.reshape(1, -1).double()
    flat = int(torch.argmax(search.grid.flatten()))
    return {
        "alphas": [round(float(x), 6) for x in search.alphas], "betas": [round(float(x), 6) for x in search.betas],
        "grid": [[round(float(x), 4) for x in row] for row in search.grid],
        "best": list(divmod(flat, len(search.alphas))),
        "zs": [float(x) for x in clip_logits(q, class_embeddings.double())[0]],
        "affinity": [float(x) for x in (q @ keys.double().T)[0]],
        "values": [[float(x) for x in row] for row in values.double()],
        "classnames": list(classnames), "true_class": true_class,
    }


def explorer_html(data: dict[str, Any]) -> str:
    """A self-contained HTML fragment (inline script and style, no external file) for :func:`explorer_data`."""
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the JSON
    wid = "tk-explorer-" + hashlib.sha1(blob.encode()).hexdigest()[:10]
    true = data.get("true_class")
    rows = "".join(
        f'<tr class="tk-class"><td style="padding-right:.6em;white-space:nowrap">{name}'
        f'{" (true class)" if c == true else ""}</td><td style="width:16em"><div class="tk-bar" '
        f'style="height:.9em;width:0"></div></td><td class="tk-p" style="padding-left:.6em;font-family:monospace">'
        f'</td></tr>' for c, name in enumerate(data["classnames"]))
    i, j = data["best"]
    slider = ('<label style="display:block;margin:.2em 0">{name} = <span class="tk-{cls}-value" '
              'style="font-family:monospace"></span><br><input type="range" class="tk-{cls}" min="0" max="{top}" '
              'step="1" value="{value}" style="width:22em" aria-label="{name}"></label>')
    return (f'<div id="{wid}" class="tk-explorer" style="border:1px solid #ccc;border-radius:6px;padding:.8em;'
            f'margin:.5em 0">'
            f'<script type="application/json">{blob}</script>'
            + slider.format(name="α", cls="alpha", top=len(data["alphas"]) - 1, value=j)
            + slider.format(name="β", cls="beta", top=len(data["betas"]) - 1, value=i)
            + '<p style="margin:.4em 0">validation accuracy: <b><span class="tk-acc"></span> %</b>'
              '<span class="tk-best"></span>; prediction: <b class="tk-pred"></b></p>'
            + f'<table style="border-collapse:collapse">{rows}</table>'
            + f'<script>{_SCRIPT % {"id": wid}}</script></div>')


def alpha_beta_explorer(search: SearchResult, query: torch.Tensor, class_embeddings: torch.Tensor,
                        keys: torch.Tensor, values: torch.Tensor, classnames: Sequence[str],
                        true_class: "int | None" = None) -> Any:
    """The explorer as a displayable ``IPython.display.HTML`` (a notebook cell's output; static in the book)."""
    from IPython.display import HTML

    return HTML(explorer_html(explorer_data(search, query, class_embeddings, keys, values, classnames, true_class)))
