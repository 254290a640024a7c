"""The stand-ins' model cards: measured facts in ``model_card.json``, rendered to ``MODEL_CARD.md`` (the default,
``tipkit-standin-mini``; the smaller sizes: ``model_card_<size>.json`` and ``MODEL_CARD_<size>.md``).

Every number in the card is written by code: ``standin train`` records the recipe
and training summary, ``standin card`` measures accuracy of the committed
checkpoint through the normal pipeline and renders the Markdown.

The card lives beside the stand-in it describes, in stage 1 (models). Measuring its accuracy runs the whole
pipeline (stage 6, :mod:`tipkit.experiments.pipeline`), which this stage may not import: so :func:`evaluate`
takes the run function as an argument, and the caller above both (the CLI's ``standin card``) passes
``tipkit.experiments.pipeline.run`` in. Rendering and the training section need nothing above this stage.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from tipkit import paths
from tipkit.io import write_json, write_text
from tipkit.models.standin import LABEL, NAME, card_data_path, card_md_path, checkpoint_path, config_path, size_of

CARD_MD = paths.STANDIN_DIR / "MODEL_CARD.md"
CARD_SHOTS = (1, 4, 16)


def load(name: str = NAME) -> dict[str, Any]:
    path = card_data_path(name)
    return json.loads(path.read_text()) if path.exists() else {}


def save_training(summary: dict[str, Any], name: str = NAME) -> None:
    from tipkit.models.backbone import file_sha256

    card, ckpt = load(name), checkpoint_path(name)
    card["training"] = {**summary, "checkpoint_sha256": file_sha256(ckpt), "checkpoint_bytes": ckpt.stat().st_size}
    card.pop("evaluation", None)  # stale: measured on other weights
    write_json(card_data_path(name), card)


RunFn = Callable[..., dict[str, Any]]  # a RunConfig in, a run record out (tipkit.experiments.pipeline.run)


def evaluate(run: RunFn, shots: tuple[int, ...] = CARD_SHOTS, seed: int = 1, name: str = NAME) -> list[dict[str, Any]]:
    """Accuracy rows of the committed checkpoint, one per shot count, measured by ``run`` (the pipeline)."""
    from tipkit.config import make_config

    rows = []
    for k in shots:
        rec = run(replace(make_config(shots=k, seed=seed, backbone=name)))
        rows.append({"shots": k, "seed": seed, **{m: round(a, 2) for m, a in rec["metrics"]["test"].items()}})
    return rows


def render(card: dict[str, Any], name: str = NAME) -> str:
    """The Markdown card of stand-in ``name`` from its measured facts (the default's text is unchanged)."""
    tr, ev = card["training"], card.get("evaluation", [])
    size = size_of(name)
    smaller = "" if name == NAME else f"""
A smaller sibling of the default stand-in `{NAME}` (size `{size}`), trained by `python -m tipkit standin train --size {size}` on the same data and captions with a
shorter recipe (below), so that the book can compare backbones of different capacity (the paper's Table 3).
"""
    recipe = "\n".join(f"| `{k}` | {v} |" for k, v in tr["recipe"].items())
    acc = "\n".join(f"| {r['shots']} | {r['zero_shot']:.2f} | {r['tip_adapter']:.2f} | {r['tip_adapter_f']:.2f} |"
                    for r in ev) or "| (not measured yet: run `python -m tipkit standin card`) | | | |"
    return f"""# Model card: {name}, the {LABEL}

**This is not CLIP.** It is a {tr['parameters']:,}-parameter model with CLIP's architecture (a ViT image
tower and a Transformer text tower trained with the symmetric contrastive loss), which tipkit trains
itself on Fashion-MNIST because no real CLIP weights can be installed offline. It stands in for CLIP so
that every code path of the book (open_clip loading with `pretrained=<path>`, feature caching, Tip-Adapter,
Tip-Adapter-F) runs for real on a laptop. Its accuracies say nothing about CLIP's.
{smaller}
## Files
- Architecture: `tipkit/models/standin/{config_path(name).name}` (an open_clip model config, registered with
  `open_clip.add_model_config`).
- Weights: `tipkit/models/standin/{checkpoint_path(name).name}`, fp16 state dict (safetensors), {tr['checkpoint_bytes']:,} bytes,
  sha256 `{tr['checkpoint_sha256']}`.
- Load: `open_clip.create_model_and_transforms("{name}", pretrained="<that path>")` after
  `tipkit.models.standin.register()`.

## Training data (pretraining)
The `pretrain` part of the Fashion-MNIST training images: 5,000 per class (50,000), a fixed stratified
partition (seed 0) disjoint from the few-shot pool (800 per class), the validation split (200 per class) and
the official 10,000-image test set. Each image is paired at every step with a fresh caption drawn from
synonyms of its class ("jeans", "trainers", "chelsea boots", ...) in varied web-like templates; a fraction
(`noise`) of captions describe a random other class. The canonical class names used for zero-shot
classification ("trouser", "sneaker", "ankle boot", ...) appear only in a small fraction (`canonical`) of
captions, as a rare word in alt-text would, so zero-shot transfer to them is real but imperfect, as CLIP's
is on specialised datasets. (With no canonical names at all, zero-shot stayed near chance; with 3 % of
captions it nearly matched the 16-shot cache, leaving Tip-Adapter nothing to show.)

## Recipe (`python -m tipkit standin train{'' if name == NAME else f' --size {size}'}`)
| knob | value |
|---|---|
{recipe}

Training took {tr['train_seconds']:.0f} s on a shared 2-core CPU; final contrastive loss {tr['final_loss']}.
The weights are byte-reproducible: the same recipe writes the same file (checked by the tests on a short run).

## Measured accuracy (Fashion-MNIST test, top-1 %, seed 1, clean protocol)
| shots | zero-shot | Tip-Adapter | Tip-Adapter-F |
|---|---|---|---|
{acc}

Measured by `python -m tipkit standin card{'' if name == NAME else f' --size {size}'}` through the same pipeline as `python -m tipkit run`: α, β and
Tip-Adapter-F's epoch chosen on min(K, 4) validation images per class, the test set read once.

## Limits
28×28 grayscale images only; ten clothing classes; the text tower knows only the caption vocabulary above.
Not for any use beyond demonstrating and testing the Tip-Adapter pipeline.
"""


def write_card(run: RunFn | None = None, name: str = NAME) -> Path:
    """Render stand-in ``name``'s card; with ``run`` (the pipeline's run function), re-measure the accuracy first."""
    card = load(name)
    if "training" not in card:
        raise FileNotFoundError(f"{card_data_path(name)} has no training section: run `standin train` first")
    if run is not None:
        card["evaluation"] = evaluate(run, name=name)
        write_json(card_data_path(name), card)
    return write_text(card_md_path(name), render(card, name))
