"""The paper's studies on cached features: its ablations and its efficiency table.

Modules: :mod:`.ablation_data` (the features an ablation needs, extracted once: few-shot keys per view, the
validation and test features, the text classifier), :mod:`.ablations` (α, β, cache size, augmented views,
prompts, which parts Tip-Adapter-F trains, its epochs: each a function from that data to a table) and
:mod:`.efficiency` (time, memory and accuracy per method, the paper's Table 1 on this machine). The book's
ablation and efficiency notebooks call these through ``tipkit.ablations`` and ``tipkit.efficiency``.

What it may import: the math (:mod:`tipkit.core`), :mod:`tipkit.data` (datasets, class names, prompt
templates), :mod:`tipkit.models` (it extracts its features once through the feature store),
:mod:`tipkit.methods` (the efficiency table times the registry's methods) and the top-level helpers. It runs no
pipeline, sweep, saved adapter or benchmark: a study is a few lines of the paper's math on features, beside the
runs of :mod:`tipkit.experiments`, not on top of them. Nothing of tipkit imports it but the package face.
"""
