"""The scale benchmark: every method at the paper's dataset shapes, and the plans priced from what it measured.

Modules: :mod:`.features` (synthetic CLIP-shaped features at each dataset's shape: ImageNet's 1,000 classes,
16 shots, 50,000 test images ...), :mod:`.runner` (``python -m tipkit bench``: one task per method, shape and
protocol, each in its own process with a timeout; one CSV per machine kind under ``benchmarks/results/``),
:mod:`.proc` (runs and measures one task: time, peak memory), :mod:`.encode` (times the image encoders) and
:mod:`.plan` (``sweep --plan`` and the paper profile: images to encode, disk, and time read from the
benchmark's CSVs).

What it may import: every stage below the CLI that it measures — core, data, models, methods and
:mod:`tipkit.experiments` (a plan reads a sweep's cells; a task takes the pipeline's per-dataset method
settings) — and the top-level helpers; never figures or the CLI. Only the CLI and the package face import it.
"""
