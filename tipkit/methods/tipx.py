"""Tip-X (Udandarao et al., "SuS-X: Training-Free Name-Only Transfer of Vision-Language Models",
ICCV 2023, arXiv 2211.16198; code github.com/vishaal27/SuS-X ``tipx.py``).

Tip-Adapter plus an image-text-image term. With ``p(x) = softmax(x Wᵀ / T)`` (``T = 0.5``, cosine
logits, no ×100) the "signature" of an image over the C classes, the KL divergence between the
query's signature and each cache image's is ``KL_ij = Σ_c p_c(f_i) log(p_c(f_i) / p_c(k_j))``. Then

    logits = 100 · f Wᵀ + α · exp(−β (1 − f Kᵀ)) V + γ · (−ψ(KL)) V

where ψ rescales KL linearly into the [min, max] range of the affinities ``f Kᵀ`` (``scale_`` in
the official code). (α, β, γ) are searched on the validation split over the official grid: β from 1
to 50 (200 steps), α from 0.1 to 50 (20), γ from 0.1 to 30 (50); ties keep the first maximum in the
official α-β-γ loop order.

Deviation: the official ψ uses the min/max of whichever KL matrix it is given (so a test image's
logits depend on the rest of its batch). Here the KL and affinity ranges are measured once on the
validation split in ``fit`` and reused by ``predict``, which makes predictions per-image.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from tipkit.methods.base import (
    FewShotData,
    Method,
    alpha_chunks,
    count_correct,
    grid_or,
    register,
    require_positive,
    zero_shot_logits,
)

log = logging.getLogger(__name__)


def signatures(features: torch.Tensor, class_embeddings: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log-probabilities ``log softmax(f Wᵀ / T)``: ``[N, D] -> [N, C]``."""
    return torch.log_softmax(features @ class_embeddings.T / temperature, dim=-1)


def kl_divergence(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``KL(p_i ‖ q_j)`` for every pair: ``[N, C], [K, C] -> [N, K]`` (inputs are log-probabilities)."""
    p = log_p.exp()
    return (p * log_p).sum(-1, keepdim=True) - p @ log_q.T


@register
class TipX(Method):
    name = "tip_x"

    def _kl_logits(self, features: torch.Tensor) -> torch.Tensor:
        """``−ψ(KL) V``: ``[N, D] -> [N, C]``."""
        kl = kl_divergence(signatures(features, self.W, self.temperature), self.cache_sig)
        lo, hi, a_lo, a_hi = self.ranges
        scaled = (kl - lo) / max(hi - lo, 1e-12) * (a_hi - a_lo) + a_lo
        return -scaled @ self.values

    def _fit(self, data: FewShotData) -> None:
        p = self.params
        require_positive(self.name, temperature=p["temperature"])
        (sb, sa, sg), (nb, na, ng) = p["search_scale"], p["search_step"]
        betas = grid_or(p["betas"], sb, nb, 1.0)
        alphas = grid_or(p["alphas"], sa, na, 0.1)
        gammas = grid_or(p["gammas"], sg, ng, 0.1)
        dev = self.device
        self.temperature = float(p["temperature"])
        self.W = data.class_embeddings.float().to(dev)
        self.keys, self.values = data.keys.to(dev), data.values.to(dev)
        self.cache_sig = signatures(self.keys, self.W, self.temperature)  # [K, C]
        fv, yv = data.val.float().to(dev), data.val_labels.to(dev)
        affinity = fv @ self.keys.T  # [Nv, K]
        kl = kl_divergence(signatures(fv, self.W, self.temperature), self.cache_sig)
        self.ranges = (float(kl.min()), float(kl.max()), float(affinity.min()), float(affinity.max()))
        zs, kl_logits = zero_shot_logits(fv, self.W), self._kl_logits(fv)

        a, g = torch.tensor(alphas, device=dev), torch.tensor(gammas, device=dev)
        ag = torch.stack(torch.meshgrid(a, g, indexing="ij"), -1).reshape(-1, 2)  # [nα·nγ, 2], α-major
        coef = torch.cat([torch.ones(len(ag), 1, device=dev), ag], dim=1)  # rows (1, α, γ)
        correct = torch.empty(len(betas), len(ag), dtype=torch.long)
        n, c = zs.shape
        starts = alpha_chunks(n, c, len(ag))
        for i, beta in enumerate(tqdm(betas, desc="Tip-X search", unit="beta", leave=False)):
            cache = torch.exp(-beta * (1.0 - affinity)) @ self.values  # [Nv, C]
            terms = torch.stack([zs, cache, kl_logits]).reshape(3, n * c)
            for s in starts:  # every (α, γ) of the chunk in one product: zs + α·cache + γ·kl
                logits = (coef[s:s + starts.step] @ terms).view(-1, n, c)
                correct[i, s:s + len(logits)] = count_correct(logits, yv).cpu()
        grid = correct.reshape(len(betas), len(alphas), len(gammas)).permute(1, 0, 2)  # official order α, β, γ
        ia, ib, ig = torch.unravel_index(torch.argmax(grid.flatten()), grid.shape)  # first maximum
        self.alpha, self.beta, self.gamma = alphas[int(ia)], betas[int(ib)], gammas[int(ig)]
        self.hyper = {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
                      "val_acc": 100.0 * float(grid.max()) / n}
        log.info("Tip-X: alpha=%.3g beta=%.3g gamma=%.3g, val %.2f%%", self.alpha, self.beta, self.gamma,
                 self.hyper["val_acc"])

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        logits = zero_shot_logits(features, self.W)
        if self.alpha != 0:
            logits = logits + self.alpha * torch.exp(-self.beta * (1.0 - features @ self.keys.T)) @ self.values
        if self.gamma != 0:
            logits = logits + self.gamma * self._kl_logits(features)
        return logits
