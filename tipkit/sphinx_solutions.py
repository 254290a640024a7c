"""A Sphinx extension for the book: the build switch that leaves the exercises' solutions out.

``TIPKIT_HIDE_SOLUTIONS=1 jupyter-book build .`` (``make book-nosolutions``), or ``tipkit_hide_solutions: true``
under ``sphinx: config:`` in ``_config.yml``, removes every solution — a ``{solution}`` directive or a gated
``{solution-start}`` … ``{solution-end}`` region with the notebook cells inside it — from the pages. It acts
after sphinx-exercise has merged the gated regions into solution nodes; sphinx-exercise's own
``hide_solutions`` drops only the directive and would leave the gated solution code on the page.
"""

from __future__ import annotations

import os
from typing import Any

from sphinx.transforms import SphinxTransform

ENV = "TIPKIT_HIDE_SOLUTIONS"


class RemoveSolutions(SphinxTransform):
    """Drop the (merged) solution nodes when the switch is on."""

    default_priority = 20  # after sphinx-exercise's MergeGatedSolutions (10)

    def apply(self, **kwargs: Any) -> None:
        if not self.config.tipkit_hide_solutions:
            return
        from sphinx_exercise.nodes import solution_end_node, solution_node

        for node in list(self.document.findall(lambda n: isinstance(n, (solution_node, solution_end_node)))):
            node.parent.remove(node)


def _from_environment(app: Any, config: Any) -> None:
    if os.environ.get(ENV, "").strip() not in ("", "0"):
        config.tipkit_hide_solutions = True


def setup(app: Any) -> dict[str, Any]:
    app.setup_extension("sphinx_exercise")
    app.add_config_value("tipkit_hide_solutions", False, "env")
    app.connect("config-inited", _from_environment)
    app.add_transform(RemoveSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
