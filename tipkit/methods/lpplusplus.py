"""LP++ (Huang, Shakeri, Dolz, Boudiaf, Bahig, Ben Ayed, "LP++: A Surprisingly Strong Linear Probe for
Few-Shot CLIP", CVPR 2024, arXiv 2404.02285; code github.com/FereshteShakeri/FewShot-CLIP-Strong-Baseline
``methods/linear_probe_p2.py``).

A linear probe on the visual features blended with the text classifier by learnable class-wise
weights ``a [C]``:

    logits = f Aᵀ + b + a ⊙ (f Wᵀ)

trained full-batch with cross-entropy on the few-shot features (one augmented view per image, as the
code's single pass of the augmented train loader). Everything else is data-driven, as in the code:

- ``A`` starts at the per-class SUM of the features (``compute_centroids``), ``b`` at nn.Linear's default;
- ``a`` starts at ``250 · mean_c mean_{i∈c} f_i·t_c`` for every class;
- step sizes from Lipschitz bounds: ``η_A = 4N / λ_max(FᵀF)`` (SGD, momentum 0.9) and
  ``η_a = N / (4 · max_c Σ_i (f_i·t_c)²)``;
- ``a`` takes a plain gradient step every 10 epochs with its gradient accumulated since the start
  (the code never zeroes it);
- 300 epochs; the epoch kept is the LAST with the best validation accuracy (the code's ``>=``).

The code chooses that epoch on K validation images per class (``generate_fewshot_dataset_(shots, "val")``).
``val_shots="shots"`` does the same: K per class drawn from the run's validation split with Dassl's sampler
and the run's seed (the ``paper`` protocol sets it); ``None`` (default) uses the validation split as given
(``clean``: min(K, 4) per class); an int draws that many per class.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.data.fewshot_official import sample_few_shot_official
from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, register, require_positive, val_accuracy

log = logging.getLogger(__name__)


def step_sizes(features: torch.Tensor, class_embeddings: torch.Tensor) -> tuple[float, float]:
    """``(η_A, η_a)`` of LP++ for ``features [N, D]`` and ``class_embeddings [C, D]``."""
    n = features.shape[0]
    lam_max = float(torch.linalg.eigvalsh(features.double().T @ features.double()).max())
    lr_w = 4.0 * n / lam_max
    lr_alpha = n / (4.0 * float(((features @ class_embeddings.T) ** 2).sum(0).max()))
    return lr_w, lr_alpha


def own_val(data: FewShotData, val_shots: "int | str | None") -> torch.Tensor:
    """Indices into ``data.val`` that LP++ chooses on: all (``None``), K per class (``"shots"``, K = few-shot
    images per class) or ``val_shots`` per class, drawn as Dassl's ``generate_fewshot_dataset`` (seed: the run's)."""
    if val_shots is None:
        return torch.arange(len(data.val_labels))
    if val_shots == "shots":
        k = len(data.labels) // data.num_classes
    elif isinstance(val_shots, int) and not isinstance(val_shots, bool) and val_shots > 0:
        k = val_shots
    else:
        raise TipkitError(f"lp_plus_plus: val_shots must be None, 'shots' or a positive int, got {val_shots!r}")
    return torch.from_numpy(sample_few_shot_official(data.val_labels.numpy(), k, data.seed))


@register
class LPPlusPlus(Method):
    name = "lp_plus_plus"

    def _logits(self, f: torch.Tensor, weight, bias, alpha) -> torch.Tensor:
        return f @ weight.T + bias + alpha * (f @ self.W.T)

    def _fit(self, data: FewShotData) -> None:
        p, dev = self.params, self.device
        require_positive(self.name, epochs=p["epochs"], alpha_every=p["alpha_every"])
        gen = torch.Generator().manual_seed(data.seed)
        f, y = data.normalized_views[0].to(dev), data.labels.to(dev)  # one augmented view per image
        vi = own_val(data, p["val_shots"])
        fv, yv = data.val[vi].float().to(dev), data.val_labels[vi].to(dev)
        c, d = data.num_classes, data.dim
        self.W = data.class_embeddings.float().to(dev)
        weight = torch.zeros(c, d, device=dev).index_add_(0, y, f).requires_grad_(True)  # class sums
        bias = ((torch.rand(c, generator=gen) * 2 - 1) / d ** 0.5).to(dev).requires_grad_(True)
        counts = torch.bincount(y, minlength=c).clamp_min(1)
        true_sim = torch.zeros(c, device=dev).index_add_(0, y, (f * self.W[y]).sum(-1)) / counts
        alpha = torch.full((c,), float(p["init_alpha_scale"]) * float(true_sim.mean()), device=dev, requires_grad=True)
        lr_w, lr_alpha = step_sizes(f, self.W)
        opt = torch.optim.SGD([weight, bias], lr=lr_w, momentum=p["momentum"])
        best = (-1.0, 0, None)
        for epoch in tqdm(range(int(p["epochs"])), desc="LP++", unit="epoch", leave=False):
            loss = F.cross_entropy(self._logits(f, weight, bias, alpha), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # alpha.grad accumulates across epochs, as in the code
            opt.step()
            if (epoch + 1) % int(p["alpha_every"]) == 0:
                with torch.no_grad():
                    alpha -= lr_alpha * alpha.grad
            with torch.no_grad():
                acc = val_accuracy(self._logits(fv, weight, bias, alpha), yv)
            self.history.append({"epoch": epoch + 1, "loss": loss.item(), "val_acc": acc,
                                 "alpha_mean": float(alpha.detach().mean())})
            if acc >= best[0]:  # last maximum, as the code
                best = (acc, epoch + 1, (weight.detach().clone(), bias.detach().clone(), alpha.detach().clone()))
        self.weight, self.bias, self.alpha = best[2]
        self.hyper = {"best_epoch": best[1], "val_acc": best[0], "lr_w": lr_w, "lr_alpha": lr_alpha,
                      "alpha_mean": float(self.alpha.mean()), "val_images": len(vi)}
        log.info("LP++: best val %.2f%% at epoch %d/%d", best[0], best[1], p["epochs"])

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return self._logits(features, self.weight, self.bias, self.alpha)
