"""ZS-LP / CLAP (Silva-Rodríguez et al., "A Closer Look at the Few-Shot Adaptation of Large
Vision-Language Models", CVPR 2024, arXiv 2312.12730; code github.com/jusiro/CLAP
``trainers/adapters.py``).

A linear probe whose class prototypes ``w_c`` start at the zero-shot prototypes ``t_c`` (ZS-LP),
trained with a class-wise penalty toward them (CLAP, the code's ``l2`` constraint):

    logits = s · (f/‖f‖) (w/‖w‖)ᵀ,   L = CE + (1/C) Σ_c λ_c ‖w_c − t_c‖²

with ``t_c`` the RAW (unnormalised) text features of class c — the mean of its template embeddings before
any normalisation (``_get_base_text_features``; ``data.raw_class_embeddings``) — and ``s`` the model's own
``logit_scale.exp()`` (``forward_lp``; 100 for CLIP, ``data.logit_scale``), as the code does.

The multipliers are set once from the few-shot data, with no validation set: ``λ_c`` is the mean
zero-shot probability of the true class over class c's augmented few-shot samples
(``init_lagrangian_multipliers``). Training follows the code: SGD (lr 0.1, momentum 0.9, no weight
decay), 300 epochs of Dassl's warm-up + cosine schedule; each epoch draws ``max(1, K // 256)``
batches of 256 from the shuffled pool of all augmented views; the last epoch is kept.

The code's templates are one CoOp prompt per dataset (plus 7 on ImageNet); tipkit averages the dataset's own
templates. ``init="normalized"`` keeps tipkit's earlier variant, labelled as such: prototypes from the
L2-normalised template-ensemble rows (``data.class_embeddings``, so the penalty acts on unit-scale
prototypes, which lets them move further relative to their norm) and the scale fixed at 100. Without raw
features (``data.raw_class_embeddings`` is None) ``init="raw"`` starts from ``data.class_embeddings``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core.cache import l2_normalize
from tipkit.errors import choose
from tipkit.methods.base import FewShotData, Method, dassl_lr, register, require_positive, val_accuracy

log = logging.getLogger(__name__)


def class_multipliers(zs_logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``λ [C]``: per class, the mean zero-shot softmax probability of the true class (0 for an empty class)."""
    probs = torch.softmax(zs_logits, dim=-1).gather(1, labels[:, None]).squeeze(1)
    total = torch.zeros(num_classes, device=probs.device).index_add_(0, labels, probs)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1)
    return total / counts


@register
class CLAP(Method):
    name = "clap"

    def _fit(self, data: FewShotData) -> None:
        p, dev = self.params, self.device
        require_positive(self.name, epochs=p["epochs"], batch_size=p["batch_size"])
        a, k, d = data.views.shape
        pool = data.normalized_views.reshape(a * k, d).to(dev)  # every augmented view is a sample
        y = data.labels.repeat(a).to(dev)
        init = choose("CLAP init", p["init"], ["normalized", "raw"])
        raw = init == "raw" and data.raw_class_embeddings is not None
        t = (data.raw_class_embeddings if raw else data.class_embeddings).float().to(dev)  # [C, D]
        scale = p["logit_scale"] if p["logit_scale"] is not None else (data.logit_scale if init == "raw" else 100.0)
        require_positive(self.name, logit_scale=scale)
        self.scale = float(scale)
        self.lambdas = class_multipliers(self.scale * pool @ (l2_normalize(t) if raw else t).T, y, data.num_classes)
        prototypes = torch.nn.Parameter(t.clone())
        opt = torch.optim.SGD([prototypes], lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])
        gen = torch.Generator().manual_seed(data.seed)
        bs, epochs = int(p["batch_size"]), int(p["epochs"])
        n_batches = max(1, k // bs)  # Dassl's loader length over the K images, drawn from the larger pool
        for epoch in tqdm(range(epochs), desc="CLAP", unit="epoch", leave=False):
            lr = dassl_lr(epoch, p["lr"], epochs, int(p["warmup_epochs"]), p["warmup_lr"])
            for g in opt.param_groups:
                g["lr"] = lr
            order = torch.randperm(len(y), generator=gen).to(dev)
            loss_sum, ce_sum = 0.0, 0.0
            for i in range(n_batches):
                b = order[i * bs:(i + 1) * bs]
                ce = F.cross_entropy(self.scale * pool[b] @ l2_normalize(prototypes).T, y[b])
                penalty = (self.lambdas * (prototypes - t).pow(2).sum(-1)).mean()
                loss = ce + penalty
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum, ce_sum = loss_sum + loss.item(), ce_sum + ce.item()
            self.history.append({"epoch": epoch + 1, "loss": loss_sum / n_batches, "ce": ce_sum / n_batches, "lr": lr})
        self.prototypes = l2_normalize(prototypes.detach())
        with torch.no_grad():
            val_acc = val_accuracy(self._predict(data.val.float().to(dev)), data.val_labels)
        self.hyper = {"lambdas": [float(v) for v in self.lambdas], "val_acc": val_acc,  # val only reported, not used
                      "init": init if raw or init == "normalized" else "normalized (no raw features given)",
                      "logit_scale": self.scale}
        log.info("CLAP: %d epochs, mean lambda %.3f, val %.2f%%", epochs, float(self.lambdas.mean()), val_acc)

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * l2_normalize(features) @ self.prototypes.T
