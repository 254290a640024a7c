"""Linear-probe CLIP (Radford et al., ICML 2021, arXiv 2103.00020), with the regularisation search of
CoOp's ``lpclip/linear_probe.py`` (Zhou et al., "Learning to Prompt for Vision-Language Models",
IJCV 2022, arXiv 2109.01134).

Multinomial logistic regression on image features ``f``:

    logits = f Aᵀ + b,   (A, b) = argmin  Σ_i CE(f_i Aᵀ + b, y_i) + ‖A‖² / (2C)

(scikit-learn ``LogisticRegression(lbfgs, L2)``). The inverse strength ``C`` is chosen on the
validation split: first the grid ``{1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6}``, then ``search_steps``
rounds of bisection in log10-space on ``[C*/10, 10·C*]`` around the best grid value ``C*``,
keeping the better end each round, exactly as CoOp's script (ties keep the left, smaller C).

Stopping rule. CoOp's script ran scikit-learn < 1.2, whose lbfgs minimised ``C·Σ_i CE + ‖A‖²/2`` and stopped when
every gradient entry was below ``tol = 1e-4``. Current scikit-learn minimises that objective divided by
``C·n`` (the mean loss) with the same ``tol``, so at 1,000 classes and unit-norm features every gradient
entry is below ``1e-4`` at the all-zero start and the solver returns zero weights (chance accuracy).
tipkit keeps CoOp's rule by stopping at ``max |∇| ≤ tol / (C·n)`` on the mean-loss objective, the same
point, and fits with torch's L-BFGS (strong-Wolfe line search, float32) on the given device; each C is
warm-started from the fitted C nearest in log-space (the optimum is unique, so only the path changes).

Deviation: CoOp fits raw, un-augmented features; tipkit's cache holds augmented views, so the probe is
fitted on the cache keys (view-mean, L2-normalised, one row per image) and applied to L2-normalised
features. The zero-shot classifier is not used (the probe starts from scratch).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F

from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, register

log = logging.getLogger(__name__)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float, tol: float, max_iter: int,
                 init: "tuple[torch.Tensor, torch.Tensor] | None" = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """L2-regularised multinomial logistic regression: ``argmin mean_i CE(x_i Aᵀ + b, y_i) + ‖A‖² / (2 C n)``.

    ``x [n, D]``, ``y [n]`` in ``[0, num_classes)``. Stops when every gradient entry is at most
    ``tol / (C·n)`` (CoOp's scikit-learn rule, see the module docstring), after ``max_iter`` iterations, or
    when the loss stops changing. Returns ``(A [num_classes, D], b [num_classes], iterations)``.
    """
    n, d = x.shape
    a = torch.zeros(num_classes, d, dtype=x.dtype, device=x.device) if init is None else init[0].clone()
    b = torch.zeros(num_classes, dtype=x.dtype, device=x.device) if init is None else init[1].clone()
    a.requires_grad_(True)
    b.requires_grad_(True)
    reg = 1.0 / (2.0 * c * n)
    opt = torch.optim.LBFGS([a, b], lr=1.0, max_iter=max_iter, history_size=10, line_search_fn="strong_wolfe",
                            tolerance_grad=tol / (c * n), tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ a.T + b, y) + reg * (a * a).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    iterations = int(opt.state[opt._params[0]].get("n_iter", 0))
    return a.detach(), b.detach(), iterations


@register
class LinearProbe(Method):
    name = "linear_probe"

    def _fit_c(self, c: float) -> tuple[torch.Tensor, torch.Tensor]:
        if c not in self._fits:
            near = min(self._fits, key=lambda k: abs(math.log10(k) - math.log10(c)), default=None)
            a, b, its = fit_logistic(self._x, self._y, len(self._present), c, float(self.params["tol"]),
                                     int(self.params["max_iter"]), init=self._fits.get(near))
            log.debug("linear probe: C=%.3g in %d iterations", c, its)
            self._fits[c] = (a, b)
        return self._fits[c]

    def _val_acc(self, c: float) -> float:
        a, b = self._fit_c(c)
        pred = self._present[(self._xv @ a.T + b).argmax(1)]
        return float((pred == self._yv).double().mean())

    def _fit(self, data: FewShotData) -> None:
        grid = [float(c) for c in self.params["c_grid"]]
        if not grid or min(grid) <= 0:
            raise TipkitError(f"linear_probe: c_grid must hold positive values, got {self.params['c_grid']!r}")
        if int(self.params["search_steps"]) < 0:
            raise TipkitError("linear_probe: search_steps must be >= 0")
        dev = self.device
        self._present = torch.unique(data.labels).to(dev)  # classes absent from the few-shot set never win
        if len(self._present) < 2:
            raise TipkitError("linear_probe needs few-shot images of at least two classes")
        self._x = data.keys.float().to(dev)  # [K, D]
        self._y = torch.searchsorted(self._present, data.labels.to(dev))  # positions in self._present
        self._xv, self._yv = data.val.float().to(dev), data.val_labels.to(dev)
        self._fits: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}
        for c in sorted(grid):  # the regularisation path, strongest first: each fit warm-starts the next
            self._fit_c(c)

        accs = [self._val_acc(c) for c in grid]
        c_final = c_peak = grid[int(np.argmax(accs))]  # first maximum
        c_left, c_right = 0.1 * c_peak, 10.0 * c_peak
        for _ in range(int(self.params["search_steps"])):  # CoOp's binary search, verbatim in log10 space
            acc_left, acc_right = self._val_acc(c_left), self._val_acc(c_right)
            mid = 0.5 * (np.log10(c_right) + np.log10(c_left))
            if acc_left < acc_right:
                c_final, c_left, c_right = c_right, 10.0 ** mid, c_right
            else:
                c_final, c_left, c_right = c_left, c_left, 10.0 ** mid
        self.coef, self.intercept = self._fit_c(c_final)  # [C', D], [C']
        self.num_classes, self.classes = data.num_classes, self._present
        self.hyper = {"C": float(c_final), "val_acc": 100.0 * self._val_acc(c_final),
                      "grid_val_acc": [100.0 * a for a in accs]}
        log.info("linear probe: C=%.3g, val %.2f%% (%d fits)", c_final, self.hyper["val_acc"], len(self._fits))
        del self._x, self._xv, self._fits, self._y, self._yv

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        scores = features @ self.coef.T + self.intercept  # [N, C']
        logits = torch.full((features.shape[0], self.num_classes), -1e4, device=features.device)
        logits[:, self.classes.to(features.device)] = scores  # classes absent from the few-shot set never win
        return logits
