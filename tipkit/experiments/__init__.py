"""Stage 6: experiments — one run, sweeps of runs, their records and the tables made from them.

Modules: :mod:`.pipeline` (one run: fit every method on one feature cache, evaluate once on test, two
protocols), :mod:`.sweep`, :mod:`.notebooks` and :mod:`.workers` (papermill grids, local or Slurm; how
their worker processes stop), :mod:`.report` (one JSON record per run, aggregation into the book's CSV
tables), :mod:`.ablation_data` and :mod:`.ablations` (the paper's ablations on cached features),
:mod:`.efficiency` (time and memory per method), the scale benchmark (:mod:`.scale`: every method at the
paper's shapes, each in its own process, on :mod:`.scale_data`'s synthetic features; :mod:`.scale_proc` runs
and measures one task, :mod:`.scale_encode` times the image encoders), :mod:`.plan` (what a sweep or the paper
profile needs: images to encode, disk, time from the benchmark), :mod:`.standin_card` (measures the stand-in
for its model card), :mod:`.adapter` (a fitted adapter saved as one portable file, loaded and used on new
images) and :mod:`.predict` (``tipkit predict``: image files and folders in, top-k tables, JSON or CSV out).

What it may import: every stage below it (core, data, models, methods) and the top-level helpers; never
figures or the CLI. Nothing below imports it.
"""
