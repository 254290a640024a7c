"""APE and APE-T (Zhu et al., "Not All Features Matter: Enhancing Few-shot CLIP with Adaptive Prior
Refinement", ICCV 2023, arXiv 2304.01195; code github.com/yangyangyang127/APE ``main.py``, ``utils.py``).

Prior refinement keeps the Q of D channels that best separate the classes. Over the text embeddings
and cache keys of every class (``S_c`` = text row plus the class's keys), channel d scores

    J_d = −w₀ · mean_{i≠j, m, n} S_i,m,d · S_j,n,d  +  w₁ · Var_c(W_c,d)

(inter-class similarity, to be low; variance of the text classifier across classes, to be high) and
the top-Q channels are kept (``f'``, ``K'``, ``W'``: those channels, L2-renormalised).

APE (training-free):

    logits = 100 · f Wᵀ + α · exp(−β (1 − f' K'ᵀ)) (V ⊙ exp(γ · KL(V ‖ softmax(K' W'ᵀ))))

with the KL in bits per cache image (``1e-6`` smoothing, as the code), (β, α, γ) searched on val
(β, α from 0.1, γ from 0; β-α-γ loop order, first maximum).

APE-T: a category residual ``R [C, Q]`` (zero-init) added on the selected channels to both the keys of
class c and W_c, and per-image value weights ``ω [K]`` (one-init), trained with AdamW on

    logits = 100 · f (W + R)ᵀ + α · exp(−β (1 − f (K + R_y)ᵀ)) (ω ⊙ V)

(full features, α/β fixed during training, epoch chosen on val, then (β, α) searched on val).
Training sees one augmented view per epoch, like Tip-Adapter-F.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core.cache import OneHot, l2_normalize
from tipkit.core.fusion import apply_values, cache_weights
from tipkit.core.grid import exp_schedule, line_argmax, row_chunks
from tipkit.core.search import grid_search
from tipkit.errors import TipkitError
from tipkit.methods.base import (
    FewShotData,
    Method,
    grid_or,
    linear_grid,
    register,
    require_positive,
    val_accuracy,
    zero_shot_logits,
)

log = logging.getLogger(__name__)


def criterion(W: torch.Tensor, keys: torch.Tensor, labels: torch.Tensor, w: "list[float]") -> torch.Tensor:
    """APE's channel score ``J [D]`` from ``W [C, D]``, ``keys [K, D]``, ``labels [K]`` (vectorised ``cal_criterion``)."""
    c = W.shape[0]
    sums = W.double().clone().index_add_(0, labels, keys.double())  # [C, D]: text + keys of each class
    n = 1.0 + torch.bincount(labels, minlength=c).double()  # samples per class (text counts once)
    pair_sum = sums.sum(0) ** 2 - (sums ** 2).sum(0)  # Σ_{i≠j} S_i S_j, per channel
    pairs = n.sum() ** 2 - (n ** 2).sum()
    sim = pair_sum / pairs
    return (-w[0] * sim + w[1] * W.double().var(dim=0)).float()


def select_channels(data: FewShotData, feat_num: "int | float", w: "list[float]") -> torch.Tensor:
    """Indices ``[Q]`` of the top-Q channels; ``feat_num`` is a count (int) or a fraction of D (float)."""
    q = int(feat_num) if isinstance(feat_num, int) else int(round(float(feat_num) * data.dim))
    if not 1 <= q <= data.dim:
        raise TipkitError(f"APE: feat_num must select between 1 and {data.dim} channels, got {feat_num!r}")
    if len(w) != 2:
        raise TipkitError(f"APE: w must be [similarity weight, variance weight], got {w!r}")
    return torch.topk(criterion(data.class_embeddings.float(), data.keys, data.labels, w), k=q).indices


@register
class APE(Method):
    name = "ape"

    def _fit(self, data: FewShotData) -> None:
        p, dev = self.params, self.device
        (sb, sa, sg), (nb, na, ng) = p["search_scale"], p["search_step"]
        betas, alphas = grid_or(p["betas"], sb, nb, 0.1), grid_or(p["alphas"], sa, na, 0.1)
        gammas = grid_or(p["gammas"], sg, ng, 0.0)
        self.idx = select_channels(data, p["feat_num"], p["w"]).to(dev)
        self.W, self.values = data.class_embeddings.float().to(dev), OneHot(data.labels, data.num_classes).to(dev)
        self.keys_sel = l2_normalize(data.keys.to(dev)[:, self.idx])  # K' [K, Q]
        w_sel = l2_normalize(self.W[:, self.idx])  # W' [C, Q]
        key_probs = torch.softmax(self.keys_sel @ w_sel.T, dim=1)  # [K, C]
        v = data.values.to(dev)
        self.div = (v * torch.log2((v + 1e-6) / (key_probs + 1e-6))).sum(1, keepdim=True)  # [K, 1] bits
        del key_probs, v
        scales = torch.exp(torch.tensor(gammas, device=dev)[:, None] * self.div.view(1, -1))  # [nγ, K]: V ⊙ exp(γ·div)

        fv, yv = data.val.float().to(dev), data.val_labels.to(dev)
        a = torch.tensor(alphas, device=dev)
        correct = torch.zeros(len(betas), len(alphas), len(gammas), dtype=torch.long)
        k, g, c = len(self.keys_sel), len(gammas), data.num_classes
        chunks = row_chunks(len(fv), 4 * (3 * k + (5 * g + 6) * c), self.memory_budget)
        for s in chunks:
            f, y = fv[s:s + chunks.step], yv[s:s + chunks.step]
            zs = zero_shot_logits(f, self.W)
            distance = (l2_normalize(f[:, self.idx]) @ self.keys_sel.T).neg_().add_(1.0)  # 1 − f' K'ᵀ
            # buffers reused for every β (at ImageNet's shape each is ~160 MB: allocating it costs page faults)
            raw, lines, scratch = (torch.empty(x, device=dev) for x in ((c, len(f), g), (len(f), g, c), (len(f), g, c)))
            for i, e in enumerate(tqdm(exp_schedule(distance, betas), total=len(betas), desc="APE search",
                                       unit="beta", leave=False)):
                caches = self.values.matmul_scales(e, scales, out=raw)  # [nγ, n, C]: e (V ⊙ exp(γ·div)), every γ
                lines.copy_(caches.transpose(0, 1))  # [n, nγ, C] class-last: a query's γ variants side by side
                pred = line_argmax(zs, lines, a, scratch=scratch)  # [n, nγ, nα]: one α-axis problem per row
                correct[i] += (pred == y.view(-1, 1, 1)).sum(0).T.cpu()  # [nα, nγ]
            del distance, raw, lines, scratch
        ib, ia, ig = torch.unravel_index(torch.argmax(correct.flatten()), correct.shape)  # β-α-γ order, first max
        self.beta, self.alpha, self.gamma = betas[int(ib)], alphas[int(ia)], gammas[int(ig)]
        self.soft_values = self.values.with_scale(torch.exp(self.gamma * self.div).view(-1))  # V ⊙ exp(γ·div)
        self.hyper = {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma, "feat_num": len(self.idx),
                      "val_acc": 100.0 * float(correct.max()) / len(yv)}
        log.info("APE: %d/%d channels, alpha=%.3g beta=%.3g gamma=%.3g, val %.2f%%", len(self.idx), data.dim,
                 self.alpha, self.beta, self.gamma, self.hyper["val_acc"])

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        zs = zero_shot_logits(features, self.W)
        if self.alpha == 0:
            return zs
        aff = l2_normalize(features[:, self.idx]) @ self.keys_sel.T
        return zs + apply_values(cache_weights(aff, self.beta, inplace=True), self.soft_values) * self.alpha

    def _query_bytes(self) -> int:
        return 4 * (2 * len(self.keys_sel) + 4 * self._classes)


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
    return 100.0 * f @ W.T + apply_values(torch.exp(-beta * (1.0 - f @ keys.T)), values) * alpha


def _apet_train_logits(f, module: _Residual, keys, W, values, labels, idx, alpha: float, beta: float,
                       fk: "torch.Tensor | None" = None) -> torch.Tensor:
    """:func:`_apet_logits` of ``module(keys, W, values, labels, idx)`` without building ``K + R_y``: with
    ``f' = f[:, idx]``, ``f (K + R_y)ᵀ = f Kᵀ + (f' Rᵀ)[:, y]`` and ``f (W + R)ᵀ = f Wᵀ + f' Rᵀ``, so the only
    product with the keys is the constant ``f Kᵀ`` (no gradient flows into it) and the residual's gradient is a
    ``[C, Q]`` product: one matrix product with the keys per step, not three, and no ``[K, D]`` copy. ``fk``:
    ``f Kᵀ`` when the caller has it (the validation split's, once per fit: the keys never train)."""
    fr = f[:, idx] @ module.res.T  # [B, C]
    b, s = len(f), values.group
    if s is not None:  # keys grouped by class: R_y is R's row broadcast over each class's s keys (no gather)
        aff = ((f @ keys.T).view(b, -1, s).add_(fr.unsqueeze(-1)) if fk is None
               else fk.view(b, -1, s) + fr.unsqueeze(-1)).view(b, -1)  # [B, K]
    else:
        aff = (f @ keys.T).add_(fr.index_select(1, labels)) if fk is None else fk + fr.index_select(1, labels)
    weights = aff.sub_(1.0).mul_(beta).exp_()  # exp(−β(1 − aff)), in place: bit for bit the same values
    return 100.0 * (f @ W.T + fr) + apply_values(weights, values.with_scale(module.value_weights.view(-1))) * alpha


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
        a0, b0 = p["init_alpha"], p["init_beta"]
        best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(module.state_dict())
        fits = 4 * len(fv) * len(y) <= self.memory_budget  # f_val Kᵀ kept for the whole fit (the keys never train)
        val_keys = fv @ base[0].T if fits else None  # [Nv, K]
        for epoch in tqdm(range(1, int(p["epochs"]) + 1), desc="APE-T", unit="epoch", leave=False):
            feats, order = views[(epoch - 1) % views.shape[0]], torch.randperm(len(y), generator=gen).to(dev)
            loss_sum = 0.0
            for s in range(0, len(order), int(p["batch_size"])):
                b = order[s:s + int(p["batch_size"])]
                loss = F.cross_entropy(_apet_train_logits(feats[b], module, *base, a0, b0), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
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

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return _apet_logits(features, self.keys, self.W, self.values, self.alpha, self.beta)

    def _query_bytes(self) -> int:
        return 4 * (2 * len(self.keys) + 4 * self._classes)
