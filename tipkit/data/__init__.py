"""Stage 0 of the paper: datasets and few-shot data.

What this stage does: the dataset registry (:mod:`.registry`: :class:`Split`, :class:`Dataset`, builders by
name), the datasets themselves (:mod:`.fashion_mnist`, :mod:`.synthetic`, the CoOp-layout paper datasets in
:mod:`.paper`, ImageNet and its shifts in :mod:`.imagenet`, file-backed splits in :mod:`.imagefiles`,
torchvision downloads in :mod:`.download`, your own image folders as ``folder:PATH`` in
:mod:`.folder`), class names and prompt templates (:mod:`.classnames`), both
few-shot samplers (tipkit's in :mod:`.fewshot`, the official one in :mod:`.fewshot_official`),
``tipkit data check`` (:mod:`.check`), the pass over your own folder that ``data check`` and ``run`` make
before any work (:mod:`.preflight`) and the text files you write beside your images (:mod:`.textfiles`).

What it may import: :mod:`tipkit.errors`, :mod:`tipkit.paths`, :mod:`tipkit.io` and its own modules; never
models, methods, experiments or figures (declared in ``pyproject.toml``, checked by ``lint-imports``).

The dataset modules register themselves into :mod:`.registry`; this file imports them explicitly, so
``tipkit.data.get_dataset`` knows every dataset once ``tipkit.data`` is imported.
"""

from __future__ import annotations

from tipkit.data import fashion_mnist, fashion_shift, folder, imagenet, paper, synthetic  # noqa: F401 (each registers)
from tipkit.data.fewshot import few_shot_for, manifest, sample_few_shot, val_for
from tipkit.data.prompts import load_prompt_file
from tipkit.data.registry import Dataset, Split, dataset_for, get_dataset, list_datasets, register

__all__ = ["Dataset", "Split", "dataset_for", "few_shot_for", "get_dataset", "list_datasets", "load_prompt_file",
           "manifest", "register", "sample_few_shot", "val_for"]
