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

APE-T, the trained variant, lives in :mod:`tipkit.methods.ape_t`.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from tipkit.core import blas
from tipkit.core.cache import OneHot, l2_normalize
from tipkit.core.fusion import apply_values, cache_weights
from tipkit.core.grid import exp_schedule, line_argmax, row_chunks
from tipkit.errors import TipkitError
from tipkit.methods.base import (
    FewShotData,
    Method,
    grid_or,
    register,
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
            distance = blas.matmul(l2_normalize(f[:, self.idx]), self.keys_sel.T).neg_().add_(1.0)  # 1 − f' K'ᵀ
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
        aff = blas.matmul(l2_normalize(features[:, self.idx]), self.keys_sel.T)
        return zs + apply_values(cache_weights(aff, self.beta, inplace=True), self.soft_values) * self.alpha

    def _query_bytes(self) -> int:
        return 4 * (2 * len(self.keys_sel) + 4 * self._classes)
