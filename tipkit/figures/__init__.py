"""Stage 7: every figure and table the book and the classroom walkthrough draw.

Modules: :mod:`.plots` (results, comparison with the paper, provenance), :mod:`.ablation_plots` (ablation
curves, heat maps, the efficiency table), :mod:`.scale_plots` (the scale benchmark: cost against scale, what
fits a laptop CPU), :mod:`.teach` (the walkthrough's pictures of the cache and one query; with the exercise checks of
:mod:`.checks` and the α/β explorer of :mod:`.explorer`), :mod:`.own_images`
(the "your own images" chapter: accuracy by shots, new images with their top-k).

What it may import: :mod:`tipkit.core` (to show the math on one query), :mod:`tipkit.data` (to show
images), the stand-in's label from :mod:`tipkit.models.standin`, and the top-level helpers (paths, labels).
Figures read results — the CSV tables in ``book/_data`` — and never run experiments: importing
:mod:`tipkit.experiments` or :mod:`tipkit.methods` from here is a contract violation.
"""
