"""APE-T, the trained variant of APE (Zhu et al., "Not All Features Matter: Enhancing Few-shot CLIP with
Adaptive Prior Refinement", ICCV 2023, arXiv 2304.01195; code github.com/yangyangyang127/APE ``main.py``).

A category residual ``R [C, Q]`` (zero-init) is added on the Q selected channels (APE's prior refinement,
:func:`tipkit.methods.ape.select_channels`) to both the keys of class c and W_c, and per-image value weights
``ω [K]`` (one-init) scale the one-hot values; both are trained with AdamW on

    logits = 100 · f (W + R)ᵀ + α · exp(−β (1 − f (K + R_y)ᵀ)) (ω ⊙ V)

(full features, α/β fixed during training, epoch chosen on val, then (β, α) searched on val). Training sees
one augmented view per epoch, like Tip-Adapter-F.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core import blas
from tipkit.core.cache import OneHot
from tipkit.core.fusion import apply_values, cache_weights
from tipkit.core.grid import row_chunks
from tipkit.core.search import grid_search
from tipkit.methods.ape import select_channels
from tipkit.methods.base import FewShotData, Method, linear_grid, register, require_positive, val_accuracy

log = logging.getLogger(__name__)


class _Residual(torch.nn.Module):
    """APE-T's trainable part: category residual ``R [C, Q]`` and value weights ``ω [K, 1]``."""

    def __init__(self, num_classes: int, q: int, k: int) -> None:
        super().__init__()
        self.res = torch.nn.Parameter(torch.zeros(num_classes, q))
        self.value_weights = torch.nn.Parameter(torch.ones(k, 1))

    def forward(self, keys, W, values, labels, idx):  # -> keys [K, D], W [C, D], values (one-hot ⊙ ω)
        keys, W = keys.clone(), W.clone()
        keys[:, idx] = keys[:, idx] + self.res[labels]
        W[:, idx] = W[:, idx] + self.res
        return keys, W, values.with_scale(self.value_weights.view(-1))


def _apet_logits(f, keys, W, values, alpha: float, beta: float) -> torch.Tensor:
    """APE-T's logits with the trained keys, classifier and values: ``[N, D] -> [N, C]``."""
    return blas.matmul(100.0 * f, W.T) + apply_values(cache_weights(blas.matmul(f, keys.T), beta, inplace=True),
                                                      values) * alpha


def _apet_train_logits(f, module: _Residual, keys, W, values, labels, idx, alpha: float, beta: float,
                       fk: "torch.Tensor | None" = None) -> torch.Tensor:
    """:func:`_apet_logits` of ``module(keys, W, values, labels, idx)`` without building ``K + R_y``: with
    ``f' = f[:, idx]``, ``f (K + R_y)ᵀ = f Kᵀ + (f' Rᵀ)[:, y]`` and ``f (W + R)ᵀ = f Wᵀ + f' Rᵀ``, so the only
    product with the keys is the constant ``f Kᵀ`` (no gradient flows into it) and the residual's gradient is a
    ``[C, Q]`` product: one matrix product with the keys per step, not three, and no ``[K, D]`` copy. ``fk``:
    ``f Kᵀ`` when the caller has it (the validation split's, once per fit: the keys never train)."""
    fr = blas.matmul(f[:, idx], module.res.T)  # [B, C]
    b, s = len(f), values.group
    if s is not None:  # keys grouped by class: R_y is R's row broadcast over each class's s keys (no gather)
        aff = (blas.matmul(f, keys.T).view(b, -1, s).add_(fr.unsqueeze(-1)) if fk is None
               else fk.view(b, -1, s) + fr.unsqueeze(-1)).view(b, -1)  # [B, K]
    else:
        aff = blas.matmul(f, keys.T).add_(fr.index_select(1, labels)) if fk is None else fk + fr.index_select(1, labels)
    weights = aff.sub_(1.0).mul_(beta).exp_()  # exp(−β(1 − aff)), in place: bit for bit the same values
    return 100.0 * (blas.matmul(f, W.T) + fr) + apply_values(weights, values.with_scale(module.value_weights.view(-1))) * alpha


def _apet_step(f: torch.Tensor, y: torch.Tensor, module: _Residual, keys: torch.Tensor, W: torch.Tensor,
               values: OneHot, labels: torch.Tensor, idx: torch.Tensor, alpha: float, beta: float,
               bufs: "tuple[torch.Tensor, torch.Tensor, torch.Tensor]") -> torch.Tensor:
    """One training step: the cross-entropy of :func:`_apet_train_logits` on ``f [n, D]``, ``y [n]``, with the
    gradients of ``R`` and ``ω`` set. Autograd differentiates only the ``[n, C]`` head (the cache term and
    ``f' Rᵀ``); the ``[n, K]`` part is written out in three reused buffers (``bufs``, each ``[≥ n, K]``):

        E = exp(−β(1 − f Kᵀ − (f' Rᵀ)[:, y]))   cache = (E ⊙ ω) V   G = g_cache Vᵀ (each class's g over its keys)
        ∂/∂ω = Σ_rows G ⊙ E                      ∂/∂aff = β · G ⊙ ω ⊙ E,  summed over each class's keys into f' Rᵀ

    in autograd's own float order, so the residual and the value weights move bit for bit as through autograd
    (tests/test_steps.py), without its six ``[n, K]`` temporaries per step.
    """
    n, group = len(f), values.group
    e, tmp, tmp2 = (b[:n] for b in bufs)
    fp = f[:, idx]
    omega = module.value_weights.detach().view(1, -1)  # [1, K]
    with torch.no_grad():
        fr = blas.matmul(fp, module.res.T)  # [n, C]
        aff = blas.matmul(f, keys.T, out=e)
        if group is not None:
            aff.view(n, -1, group).add_(fr.unsqueeze(-1))
        else:
            aff.add_(fr.index_select(1, labels))
        aff.sub_(1.0).mul_(beta).exp_()  # E, in e
        torch.mul(e, omega, out=tmp)
        cache = (tmp.view(n, -1, group).sum(-1) if group is not None
                 else torch.zeros(n, values.num_classes, dtype=f.dtype, device=f.device).index_add(1, labels, tmp))
    cache.requires_grad_()
    fr.requires_grad_()
    loss = F.cross_entropy(100.0 * (blas.matmul(f, W.T) + fr) + cache * alpha, y)
    loss.backward()
    with torch.no_grad():
        if group is not None:
            tmp.view(n, -1, group).copy_(cache.grad.unsqueeze(-1))  # G
        else:
            torch.index_select(cache.grad, 1, labels, out=tmp)
        module.value_weights.grad = torch.mul(tmp, e, out=tmp2).sum(0, keepdim=True).view(-1, 1)
        tmp.mul_(omega).mul_(e).mul_(beta)  # ∂loss/∂aff
        to_fr = (tmp.view(n, -1, group).sum(-1) if group is not None
                 else torch.zeros_like(cache).index_add_(1, labels, tmp))
        module.res.grad = blas.matmul((fr.grad + to_fr).t(), fp)
    return loss.detach()


@register
class APET(Method):
    name = "ape_t"

    def _fit(self, data: FewShotData) -> None:
        p, dev = self.params, self.device
        require_positive(self.name, epochs=p["epochs"], batch_size=p["batch_size"])
        idx = select_channels(data, p["feat_num"], p["w"]).to(dev)
        base = (data.keys.to(dev), data.class_embeddings.float().to(dev), OneHot(data.labels, data.num_classes).to(dev),
                data.labels.to(dev), idx)
        views, y = data.normalized_views.to(dev), data.labels.to(dev)
        fv, yv = data.val.float().to(dev), data.val_labels.to(dev)
        module = _Residual(data.num_classes, len(idx), len(y)).to(dev)
        opt = torch.optim.AdamW(module.parameters(), lr=p["lr"], eps=p["eps"], weight_decay=p["weight_decay"])
        steps = -(-len(y) // int(p["batch_size"]))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, int(p["epochs"]) * steps)
        gen = torch.Generator().manual_seed(data.seed)
        fits = 4 * len(fv) * len(y) <= self.memory_budget  # f_val Kᵀ kept for the whole fit (the keys never train)
        val_keys = blas.matmul(fv, base[0].T) if fits else None  # [Nv, K]
        one = blas.routes_to_numpy(min(len(y), int(p["batch_size"])), data.dim, len(y), dev)  # see blas.torch_threads
        with blas.torch_threads(1 if one else None):
            best_acc, best_epoch, best_state = self._train(data, module, base, views, y, fv, yv, val_keys, opt, sched, gen)
        module.load_state_dict(best_state)
        with torch.no_grad():
            self.keys, self.W, self.values = module(*base)
            betas, alphas = linear_grid(p["search_scale"][0], p["search_step"][0], 0.1), linear_grid(
                p["search_scale"][1], p["search_step"][1], 0.1)
            self.values = self.values.with_scale(self.values.scale.detach())
            s = grid_search(fv, yv, self.W, self.keys, self.values, betas, alphas, memory_budget=self.memory_budget)
        self.beta, self.alpha = s.best_beta, s.best_alpha
        self.hyper = {"alpha": self.alpha, "beta": self.beta, "best_epoch": best_epoch, "feat_num": len(idx),
                      "val_acc": s.best_acc}
        log.info("APE-T: best val %.2f%% at epoch %d, alpha=%.3g beta=%.3g", best_acc, best_epoch, self.alpha, self.beta)

    def _train(self, data: FewShotData, module: _Residual, base: tuple, views: torch.Tensor, y: torch.Tensor,
               fv: torch.Tensor, yv: torch.Tensor, val_keys: "torch.Tensor | None", opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, gen: torch.Generator) -> tuple[float, int, dict]:
        """The epochs (history appended to ``self.history``): ``(val_acc, epoch, state)`` of the first best epoch."""
        p, dev = self.params, self.device
        a0, b0 = p["init_alpha"], p["init_beta"]
        best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(module.state_dict())
        bufs = tuple(torch.empty((min(len(y), int(p["batch_size"])), len(y)), device=dev) for _ in range(3))
        for epoch in tqdm(range(1, int(p["epochs"]) + 1), desc="APE-T", unit="epoch", leave=False):
            feats, order = views[(epoch - 1) % views.shape[0]], torch.randperm(len(y), generator=gen).to(dev)
            loss_sum = 0.0
            for s in range(0, len(order), int(p["batch_size"])):
                b = order[s:s + int(p["batch_size"])]
                loss = _apet_step(feats[b], y[b], module, *base, a0, b0, bufs)
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(b)
            with torch.no_grad():
                chunks = row_chunks(len(fv), 4 * (4 * len(y) + 4 * data.num_classes), self.memory_budget)
                acc = val_accuracy(torch.cat([  # with f_val Kᵀ kept, each epoch adds only the residual's term
                    _apet_train_logits(fv[s:s + chunks.step], module, *base, a0, b0,
                                       fk=None if val_keys is None else val_keys[s:s + chunks.step])
                    for s in chunks]), yv)
            self.history.append({"epoch": epoch, "loss": loss_sum / len(y), "val_acc": acc, "lr": opt.param_groups[0]["lr"]})
            if acc > best_acc:  # first maximum
                best_acc, best_epoch, best_state = acc, epoch, copy.deepcopy(module.state_dict())
        return best_acc, best_epoch, best_state

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return _apet_logits(features, self.keys, self.W, self.values, self.alpha, self.beta)

    def _query_bytes(self) -> int:
        return 4 * (2 * len(self.keys) + 4 * self._classes)
