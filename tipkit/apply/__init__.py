"""Apply a fitted adapter to your own images: the adapter kept as one file, and ``tipkit predict``.

Modules: :mod:`.adapter` (:class:`~tipkit.apply.adapter.Adapter`: a fitted Tip-Adapter, Tip-Adapter-F or
zero-shot classifier saved as safetensors plus a JSON header naming its backbone by sha256, loaded and used
on new images; :class:`~tipkit.apply.adapter.Prediction`, its top-k answers) and :mod:`.predict` (the
``tipkit predict`` command: image files and folders in, top-k tables, JSON or CSV out).

What it may import: :mod:`tipkit.core` (the logits), :mod:`tipkit.data` (image files, folder trees),
:mod:`tipkit.models` (the backbone that encodes new images), :mod:`tipkit.methods` (the fitted method a run
hands over) and the top-level helpers; never experiments, the benchmark, figures or the CLI. It sits below
experiments because a run saves its adapter (``--save-adapter``); the CLI calls :mod:`.predict`.
"""
