"""Linear-probe CLIP (Radford et al., ICML 2021, arXiv 2103.00020), with the regularisation search of
CoOp's ``lpclip/linear_probe.py`` (Zhou et al., "Learning to Prompt for Vision-Language Models",
IJCV 2022, arXiv 2109.01134).

Multinomial logistic regression on image features ``f``:

    logits = f Aᵀ + b,   (A, b) = argmin  Σ_i CE(f_i Aᵀ + b, y_i) + ‖A‖² / (2C)

(scikit-learn ``LogisticRegression(lbfgs, L2)``). The inverse strength ``C`` is chosen on the
validation split: first the grid ``{1e6, 1e4, 1e2, 1, 1e-2, 1e-4, 1e-6}``, then ``search_steps``
rounds of bisection in log10-space on ``[C*/10, 10·C*]`` around the best grid value ``C*``,
keeping the better end each round, exactly as CoOp's script (ties keep the left, smaller C).

Deviation: CoOp fits raw, un-augmented features; tipkit's cache holds augmented views, so the probe is
fitted on the cache keys (view-mean, L2-normalised, one row per image) and applied to L2-normalised
features. The zero-shot classifier is not used (the probe starts from scratch).
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

from tipkit.errors import TipkitError
from tipkit.methods.base import FewShotData, Method, register

if TYPE_CHECKING:  # pragma: no cover
    from sklearn.linear_model import LogisticRegression

log = logging.getLogger(__name__)


@register
class LinearProbe(Method):
    name = "linear_probe"

    def _fit_c(self, c: float) -> "LogisticRegression":
        from sklearn.exceptions import ConvergenceWarning  # lazy: scikit-learn is slow to import
        from sklearn.linear_model import LogisticRegression

        if c not in self._fits:
            clf = LogisticRegression(solver="lbfgs", max_iter=int(self.params["max_iter"]), C=c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(self._x, self._y)
            self._fits[c] = clf
        return self._fits[c]

    def _val_acc(self, c: float) -> float:
        return float((self._fit_c(c).predict(self._xv) == self._yv).mean())

    def _fit(self, data: FewShotData) -> None:
        grid = [float(c) for c in self.params["c_grid"]]
        if not grid or min(grid) <= 0:
            raise TipkitError(f"linear_probe: c_grid must hold positive values, got {self.params['c_grid']!r}")
        if int(self.params["search_steps"]) < 0:
            raise TipkitError("linear_probe: search_steps must be >= 0")
        self._x = data.keys.double().numpy()  # [K, D]
        self._y = data.labels.numpy()
        self._xv, self._yv = data.val.double().cpu().numpy(), data.val_labels.numpy()
        self._fits: dict[float, "LogisticRegression"] = {}
        if len(np.unique(self._y)) < 2:
            raise TipkitError("linear_probe needs few-shot images of at least two classes")

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
        clf = self._fit_c(c_final)
        self.num_classes = data.num_classes
        self.classes = torch.as_tensor(clf.classes_, dtype=torch.long)
        self.coef = torch.as_tensor(clf.coef_, dtype=torch.float32).to(self.device)  # [C' or 1, D]
        self.intercept = torch.as_tensor(clf.intercept_, dtype=torch.float32).to(self.device)
        self.hyper = {"C": float(c_final), "val_acc": 100.0 * self._val_acc(c_final),
                      "grid_val_acc": [100.0 * a for a in accs]}
        log.info("linear probe: C=%.3g, val %.2f%% (%d fits)", c_final, self.hyper["val_acc"], len(self._fits))
        del self._x, self._xv, self._fits

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        scores = features @ self.coef.T + self.intercept  # [N, C'] (or [N, 1] for two classes)
        if scores.shape[1] == 1:  # scikit-learn's binary case: the score of classes_[1]
            scores = torch.cat([torch.zeros_like(scores), scores], dim=1)
        logits = torch.full((features.shape[0], self.num_classes), -1e4, device=features.device)
        logits[:, self.classes.to(features.device)] = scores  # classes absent from the few-shot set never win
        return logits
