"""GDA (Wang et al., "A Hard-to-Beat Baseline for Training-free CLIP-based Adaptation", ICLR 2024,
arXiv 2402.04087; code github.com/mrflogs/ICLR24 ``main_few_shots.py``).

Gaussian discriminant analysis on the visual features: class means ``μ_c`` and one shared covariance
``Σ`` estimated from every augmented view (each view L2-normalised), with the code's shrinkage
("KS estimator") for the precision

    P = D · pinv((N − 1) Σ + tr(Σ) · I)          (Σ the unbiased covariance of the centred views)

give the linear discriminant ``f (P μ_c) − ½ μ_cᵀ P μ_c + log(1/C)`` (uniform prior), fused with
zero-shot CLIP:

    logits = 100 · f Wᵀ + α · (f Pμᵀ + b)

α is searched on val over ``{1e-4, 1e-3, …, 100}`` (first maximum). Computed in float64.
"""

from __future__ import annotations

import logging
import math

import torch

from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, count_correct, register, zero_shot_logits

log = logging.getLogger(__name__)


def fit_lda(vectors: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminant weights ``[C, D]`` and biases ``[C]`` from ``vectors [N, D]`` with ``labels [N]``."""
    x = vectors.double()
    counts = torch.bincount(labels, minlength=num_classes)
    if int(counts.min()) == 0:
        missing = int((counts == 0).nonzero()[0])
        raise TipkitError(f"GDA needs few-shot images of every class; class {missing} has none")
    mus = torch.zeros(num_classes, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, labels, x)
    mus = mus / counts[:, None].to(x)
    centred = x - mus[labels]
    n, d = centred.shape
    cov = torch.cov(centred.T) if n > 1 else torch.zeros(d, d, dtype=x.dtype, device=x.device)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    precision = d * torch.linalg.pinv((n - 1) * cov + torch.trace(cov) * eye)
    weights = mus @ precision  # [C, D] (precision is symmetric)
    bias = math.log(1.0 / num_classes) - 0.5 * ((mus @ precision) * mus).sum(-1)
    return weights, bias


@register
class GDA(Method):
    name = "gda"

    def discriminant(self, features: torch.Tensor) -> torch.Tensor:
        """The GDA term ``f Pμᵀ + b``: ``[N, D] -> [N, C]`` (float64)."""
        return features.double() @ self.weights.T + self.bias

    def _fit(self, data: FewShotData) -> None:
        alphas = [float(a) for a in self.params["alphas"]]
        if not alphas:
            raise TipkitError("gda: alphas must not be empty")
        dev = self.device
        a, k, d = data.views.shape
        vecs = data.normalized_views.reshape(a * k, d).to(dev)
        self.weights, self.bias = fit_lda(vecs, data.labels.repeat(a).to(dev), data.num_classes)
        self.W = data.class_embeddings.float().to(dev)
        fv, yv = data.val.float().to(dev), data.val_labels.to(dev)
        zs, disc = zero_shot_logits(fv, self.W).double(), self.discriminant(fv)
        correct = [int(count_correct(zs + al * disc, yv)) for al in alphas]
        best = max(range(len(alphas)), key=lambda i: (correct[i], -i))  # first maximum
        self.alpha = alphas[best]
        self.hyper = {"alpha": self.alpha, "val_acc": 100.0 * correct[best] / len(yv)}
        log.info("GDA: alpha=%g, val %.2f%%", self.alpha, self.hyper["val_acc"])

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        zs = zero_shot_logits(features, self.W).double()
        return zs if self.alpha == 0 else zs + self.alpha * self.discriminant(features)
