"""CLIP-Adapter, visual adapter (Gao et al., "CLIP-Adapter: Better Vision-Language Models with Feature
Adapters", IJCV 2024, arXiv 2110.04544; code github.com/gaopengcuhk/CLIP-Adapter ``clip_adapter.py``).

A bottleneck MLP ``A(f) = ReLU(ReLU(f W₁ᵀ) W₂ᵀ)`` (``D -> D/reduction -> D``, no biases) is blended
with the frozen image feature and classified by the frozen text classifier:

    f' = ratio · A(f) + (1 − ratio) · f,     logits = 100 · (f' / ‖f'‖) Wᵀ

with ``ratio = 0.2`` and ``reduction = 4`` (official values). Trained with cross-entropy on the
cached few-shot features, one augmented view per epoch (view ``epoch mod A``, like Tip-Adapter-F),
SGD with Dassl's schedule; the epoch kept is the one with the best validation accuracy (first
maximum). The official code applies the adapter to raw encoder outputs; here it acts on
L2-normalised features, so training and ``predict`` see the same input scale.
"""

from __future__ import annotations

import copy
import logging
from typing import Iterator

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core import blas
from tipkit.errors import TipkitError
from tipkit.methods import clip_adapter_cpu
from tipkit.methods.base import FewShotData, Method, dassl_lr, epoch_batches, register, require_positive, val_accuracy

log = logging.getLogger(__name__)


class Adapter(torch.nn.Module):
    """``[N, D] -> [N, D]`` residual-blended bottleneck MLP (weights initialised from ``gen``)."""

    def __init__(self, dim: int, reduction: int, ratio: float, gen: torch.Generator) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.fc1 = torch.nn.Linear(dim, hidden, bias=False)
        self.fc2 = torch.nn.Linear(hidden, dim, bias=False)
        self.ratio = ratio
        with torch.no_grad():  # nn.Linear's default (kaiming-uniform, a=√5): U(±1/√fan_in), seeded
            for lin in (self.fc1, self.fc2):
                bound = 1.0 / lin.in_features ** 0.5
                lin.weight.copy_((torch.rand(lin.weight.shape, generator=gen) * 2 - 1) * bound)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc2(F.relu(self.fc1(f))))
        return self.ratio * x + (1.0 - self.ratio) * f


def _forward(adapter: Adapter, f: torch.Tensor, W: torch.Tensor) -> tuple:
    """``100 · (f' / ‖f'‖) Wᵀ`` without autograd, as ``Adapter.forward`` and :func:`l2_normalize` compute it:
    ``(r1, a, x, norm, clamped, logits)`` (the hidden and output activations, the blend, its norm, the clamped
    norm, and the ``[n, C]`` logits). Products go through :func:`tipkit.core.blas.matmul`."""
    w1, w2, ratio = adapter.fc1.weight.detach(), adapter.fc2.weight.detach(), adapter.ratio
    with torch.no_grad():
        r1 = F.relu(blas.matmul(f, w1.T))  # [n, D/r]
        a = F.relu(blas.matmul(r1, w2.T))  # [n, D]
        x = ratio * a + (1.0 - ratio) * f
        norm = x.norm(dim=-1, keepdim=True)
        clamped = norm.clamp_min(1e-12)
        return r1, a, x, norm, clamped, blas.matmul(100.0 * (x / clamped), W.T)


def _step(adapter: Adapter, f: torch.Tensor, y: torch.Tensor, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step's loss and logits ``[n, C]``, with both weights' gradients set.

    The cross-entropy of :func:`_forward`'s logits is differentiated by hand in autograd's own float operations
    (ReLU as ``threshold_backward``, the division's and the norm's backward as autograd writes them), so the
    gradients are bit for bit autograd's (tests/test_steps.py), without building an autograd graph at each of the
    100,000 steps a fit takes at ImageNet's shape.
    """
    r1, a, x, norm, clamped, logits = _forward(adapter, f, W)
    logits.requires_grad_()
    loss = F.cross_entropy(logits, y)
    loss.backward()
    with torch.no_grad():
        g = blas.matmul(logits.grad, W) * 100.0  # ∂/∂(x / ‖x‖)
        to_norm = torch.where(norm >= 1e-12, (-g * ((x / clamped) / clamped)).sum(-1, keepdim=True), 0.0)
        g = g / clamped + to_norm * (x / norm).masked_fill_(norm == 0, 0)  # ∂/∂x
        g = torch.ops.aten.threshold_backward(g * adapter.ratio, a, 0)  # ∂/∂(r1 W2ᵀ)
        adapter.fc2.weight.grad = blas.matmul(g.t(), r1)
        g = torch.ops.aten.threshold_backward(blas.matmul(g, adapter.fc2.weight.detach()), r1, 0)
        adapter.fc1.weight.grad = blas.matmul(g.t(), f)  # ∂/∂W1 from ∂/∂(f W1ᵀ)
    return loss.detach(), logits.detach()


def _sgd_step(params: "list[torch.nn.Parameter]", bufs: "list[torch.Tensor | None]", lr: float, momentum: float,
              weight_decay: float) -> None:
    """``torch.optim.SGD``'s update (momentum, no dampening, no Nesterov) in its own float operations, on gradients
    :func:`_step` made (so the weight decay is added to them in place): bit for bit SGD's (tests/test_steps.py),
    without the optimiser's per-step bookkeeping. ``bufs`` holds the momentum buffers (``None`` before step 1)."""
    with torch.no_grad():
        for i, param in enumerate(params):
            grad = param.grad.add_(param, alpha=weight_decay) if weight_decay != 0 else param.grad
            if bufs[i] is None:
                bufs[i] = grad.clone()
            else:
                bufs[i].mul_(momentum).add_(grad, alpha=1.0)
            param.add_(bufs[i], alpha=-lr)


@register
class ClipAdapter(Method):
    name = "clip_adapter"

    def _logits(self, adapter: Adapter, f: torch.Tensor) -> torch.Tensor:
        return _forward(adapter, f, self.W)[-1]

    def _fit(self, data: FewShotData) -> None:
        p = self.params
        require_positive(self.name, epochs=p["epochs"], batch_size=p["batch_size"], reduction=p["reduction"])
        if not 0.0 <= p["ratio"] <= 1.0:
            raise TipkitError(f"clip_adapter: ratio must lie in [0, 1], got {p['ratio']}")
        dev = self.device
        gen = torch.Generator().manual_seed(data.seed)
        self.W = data.class_embeddings.float().to(dev)
        views = data.normalized_views.to(dev)
        y, fv, yv = data.labels.to(dev), data.val.float().to(dev), data.val_labels.to(dev)
        adapter = Adapter(data.dim, int(p["reduction"]), float(p["ratio"]), gen).to(dev)
        best_acc, best_epoch, best_state = self._train(adapter, views, y, fv, yv, gen)
        adapter.load_state_dict(best_state)
        adapter.eval()
        self.adapter = adapter
        self.hyper = {"best_epoch": best_epoch, "val_acc": best_acc}
        log.info("CLIP-Adapter: best val %.2f%% at epoch %d/%d", best_acc, best_epoch, p["epochs"])

    def _train(self, adapter: Adapter, views: torch.Tensor, y: torch.Tensor,
               fv: torch.Tensor, yv: torch.Tensor, gen: torch.Generator) -> tuple[float, int, dict]:
        """The epochs (history appended to ``self.history``): ``(val_acc, epoch, state)`` of the first best epoch.

        Large CPU problems train with :class:`~tipkit.methods.clip_adapter_cpu.CpuStep` (PyTorch on one thread
        meanwhile, see :func:`tipkit.core.blas.torch_threads`); everything else with :func:`_step` and
        :func:`_sgd_step`. Both draw the same batches from ``gen``."""
        p, dev = self.params, self.device
        best_acc, best_epoch, best_state = -1.0, 0, copy.deepcopy(adapter.state_dict())
        batch = int(p["batch_size"])
        if clip_adapter_cpu.enabled(batch, self.W.shape[1], self.W.shape[0], dev):
            cpu = clip_adapter_cpu.CpuStep(adapter.fc1.weight, adapter.fc2.weight, self.W, adapter.ratio,
                                           p["momentum"], p["weight_decay"])
            step, threads = cpu.epoch_stepper(views, y.numpy()), 1
        else:
            params = list(adapter.parameters())
            bufs: "list[torch.Tensor | None]" = [None] * len(params)  # SGD's momentum buffers

            def step(view: int, batches: "list[torch.Tensor]", lr: float) -> "Iterator[tuple[float, int]]":
                for b in batches:
                    b = b.to(dev)
                    loss, logits = _step(adapter, views[view][b], y[b], self.W)
                    _sgd_step(params, bufs, lr, p["momentum"], p["weight_decay"])
                    yield loss.item(), int((logits.argmax(-1) == y[b]).sum())
            threads = None
        with blas.torch_threads(threads):
            for epoch in tqdm(range(int(p["epochs"])), desc="CLIP-Adapter", unit="epoch", leave=False):
                lr = dassl_lr(epoch, p["lr"], int(p["epochs"]), int(p["warmup_epochs"]), p["warmup_lr"])
                adapter.train()
                loss_sum, correct, seen = 0.0, 0, 0
                batches = epoch_batches(len(y), batch, gen)
                for b, (loss, right) in zip(batches, step(epoch % views.shape[0], batches, lr)):
                    loss_sum += loss * len(b)
                    correct += right
                    seen += len(b)
                adapter.eval()
                with torch.no_grad():
                    acc = val_accuracy(self._logits(adapter, fv), yv)
                self.history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_acc": 100.0 * correct / seen,
                                     "val_acc": acc, "lr": lr})
                if acc > best_acc:  # first maximum
                    best_acc, best_epoch, best_state = acc, epoch + 1, copy.deepcopy(adapter.state_dict())
        return best_acc, best_epoch, best_state

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        return self._logits(self.adapter, features)
