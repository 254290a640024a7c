"""Stage 6: experiments — one run, sweeps of runs, their records and the tables made from them.

Modules: :mod:`.pipeline` (one run: fit every method on one feature cache, evaluate once on test, two
protocols), :mod:`.sweep`, :mod:`.notebooks` and :mod:`.workers` (papermill grids, local or Slurm; how
their worker processes stop), :mod:`.report` (one JSON record per run, aggregation into the book's CSV
tables) and :mod:`.classroom` (the walkthrough's student and teacher notebooks, from one tagged source).

Beside it, each in a wing of its own: the paper's studies on cached features (:mod:`tipkit.studies`), a fitted
adapter kept as a file and applied to new images (:mod:`tipkit.apply`, which a run uses to save its adapter)
and the scale benchmark with the plans priced from it (:mod:`tipkit.bench`, which uses this stage).

What it may import: every stage below it (core, data, models, methods), :mod:`tipkit.apply` and the top-level
helpers; never figures, studies, the benchmark or the CLI. Only the benchmark and the CLI import it.
"""
