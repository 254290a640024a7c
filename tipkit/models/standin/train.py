"""The stand-in's pretraining recipe: contrastive image–caption training on Fashion-MNIST.

``python -m tipkit standin train`` runs it with the defaults below (fixed seed)
and writes the checkpoint atomically; ``--size tiny|small|base`` picks the architecture
(``base``, the default, is the committed ``tipkit-standin-mini``). Only the ``pretrain`` part of the
Fashion-MNIST training images is seen; the few-shot pool, val and test are disjoint.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.data import get_dataset
from tipkit.io import save_safetensors
from tipkit.models.standin import DEFAULT_SIZE, checkpoint_path, register, size_name
from tipkit.models.standin.captions import caption

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipe:
    seed: int = 0  # one seed for init, batches, captions and augmentation
    steps: int = 1000  # optimizer steps (~9 min on 2 CPU cores)
    batch_size: int = 256  # image–caption pairs per step (the contrastive negatives)
    lr: float = 1e-3  # AdamW peak learning rate
    weight_decay: float = 0.1  # AdamW weight decay (CLIP's value)
    warmup: int = 100  # linear warm-up steps, then cosine decay to 0
    noise: float = 0.2  # fraction of captions describing a random other class (web-like label noise)
    canonical: float = 0.002  # fraction of captions using the canonical class name instead of a synonym
    crop_area: tuple[float, float] = (0.5, 1.0)  # random-resized-crop area range, as Tip-Adapter's views
    threads: int = 2  # torch CPU threads (results are identical for a fixed thread count)


# Each size's default recipe (what ``standin train --size S`` runs). The smaller two are trained for fewer,
# smaller steps: the base recipe took 19 min on two idle cores, and a shared CPU is the budget here.
RECIPES: dict[str, Recipe] = {
    "base": Recipe(),
    "small": Recipe(steps=300, batch_size=128, warmup=30, threads=1),
    "tiny": Recipe(steps=300, batch_size=128, warmup=30, threads=1),
}


def augment(x: torch.Tensor, area: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """Random resized crop + horizontal flip on a batch ``[B, 1, H, W]`` (one affine grid_sample)."""
    b = x.shape[0]
    s = torch.sqrt(torch.empty(b).uniform_(*area, generator=gen))
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    tx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - s)
    ty = (torch.rand(b, generator=gen) * 2 - 1) * (1 - s)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = s * flip, tx, s, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def to_model_input(x: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]`` in [0, 1] -> ``[B, 3, H, W]`` normalised as open_clip's preprocess does."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x.expand(-1, 3, -1, -1) - mean) / std


def lr_at(step: int, r: Recipe) -> float:
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    t = (step - r.warmup) / max(1, r.steps - r.warmup)
    return 0.5 * r.lr * (1 + math.cos(math.pi * t))


def train(recipe: Recipe = Recipe(), out: "str | Path | None" = None,
          data_root: "str | Path | None" = None, size: str = DEFAULT_SIZE) -> dict:
    """Train the stand-in of ``size`` and save its fp16 state dict to ``out`` (safetensors; default: its
    committed path); return a summary dict."""
    import open_clip

    name = size_name(size)
    out = checkpoint_path(name) if out is None else out
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    register()
    split = get_dataset("fashion-mnist", root=data_root).split("pretrain")
    images = torch.from_numpy(np.stack([np.asarray(split.image(i)) for i in range(len(split))])).unsqueeze(1)
    labels = split.labels.tolist()
    model = open_clip.create_model(name, pretrained=None)
    tokenizer = open_clip.get_tokenizer(name)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=recipe.lr)
    gen = torch.Generator().manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    model.train()
    t0, losses = time.time(), []
    bar = tqdm(range(recipe.steps), desc=f"pretrain {name}", unit="step")
    for step in bar:
        idx = torch.randint(len(labels), (recipe.batch_size,), generator=gen)
        x = to_model_input(augment(images[idx].float() / 255.0, recipe.crop_area, gen))
        tokens = tokenizer([caption(labels[i], rng, recipe.noise, recipe.canonical) for i in idx.tolist()])
        for g in opt.param_groups:
            g["lr"] = lr_at(step, recipe)
        img, txt, scale = model(x, tokens)[:3]
        logits = scale * img @ txt.T
        target = torch.arange(len(idx))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    state = {k: v.detach().half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_safetensors(out, state)
    summary = {"recipe": asdict(recipe), "train_seconds": round(time.time() - t0, 1),
               "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
               "parameters": sum(p.numel() for p in model.parameters()),
               "image_parameters": sum(p.numel() for p in model.visual.parameters())}
    log.info("stand-in trained: %s", summary)
    return summary
