"""Few-shot CLIP methods on one shared feature cache.

Every method follows :class:`~tipkit.methods.base.Method`: ``fit(FewShotData)`` (tuning on the
validation split only) then ``predict(features [N, D]) -> logits [N, C]``. Build one by name::

    from tipkit.methods import FewShotData, get_method
    m = get_method("tip_x", search_step=[50, 10, 10]).fit(data)
    logits = m.predict(test_features)      # m.hyper: the chosen hyperparameters

Hyperparameter defaults and their sources live in :mod:`tipkit.methods.hparams`.
"""

from __future__ import annotations

from tipkit.methods import (  # noqa: F401
                            ape,
                            ape_t,
                            clap,
                            clip_adapter,
                            coop,
                            gda,
                            linear_probe,
                            lpplusplus,
                            tip,
                            tipx,
                            zero_shot,  # (each registers its methods)
)
from tipkit.methods.base import METHODS, FewShotData, Method, get_method, list_methods
from tipkit.methods.hparams import HPARAMS, PAPERS

__all__ = ["METHODS", "HPARAMS", "PAPERS", "FewShotData", "Method", "get_method", "list_methods"]
