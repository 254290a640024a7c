"""CLIP-Adapter's training step for large problems on the CPU: NumPy arrays, feature-major, no PyTorch graph.

At ImageNet's shape a CLIP-Adapter fit is 100,000 SGD steps of batch 32 (200 epochs of 16,000 cached
features), each with seven small products (about 0.2 GFLOP: the two with the ``[1,000, 1,024]`` text
classifier are 60 % of it) and some forty elementwise operations on ``[32, 1,024]`` tensors. Written in
PyTorch on 2 cores a step took 7–9 ms, more than half of it outside the products (per-operation dispatch,
thread hand-offs, the optimiser's four passes over each weight). This step keeps every activation
*feature-major* (``[D, B]``: one column per sample) so that each product streams its large matrix as BLAS's
first operand (through NumPy's OpenBLAS, see :mod:`tipkit.core.blas`), does the elementwise work in NumPy on
preallocated buffers (single-threaded, so no thread pool competes with OpenBLAS's), and updates both weights
with PyTorch's fused SGD (one pass over each weight; ``torch.optim.SGD(fused=True)``'s kernel).

It computes the same function and gradients as :func:`tipkit.methods.clip_adapter._step` followed by
``torch.optim.SGD`` (tests/test_clip_adapter_cpu.py: the loss, the gradients and the weights after several steps
agree to float32 rounding), but not bit for bit: the products run in another BLAS, ``100·x/‖x‖`` is one
multiplication, and the fused update rounds once where SGD's passes round three times. So
:class:`~tipkit.methods.clip_adapter.ClipAdapter` uses it only where the classifier product of a step,
``2·B·D·C``, is at least :data:`MIN_FLOPS` and large products go through NumPy (:func:`enabled`); the demo's
fits (``2·32·64·10`` FLOP) keep the exact PyTorch step and their results.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from tipkit.core import blas

MIN_FLOPS = 1 << 24  # 2·B·D·C of a step's classifier product from which the CPU step is used (ImageNet: 6.6e7)
_EPS = 1e-12  # the norm's clamp, as tipkit.core.cache.l2_normalize


def enabled(batch: int, dim: int, classes: int, device: "str | torch.device") -> bool:
    """Whether a fit with this batch, feature width and class count on ``device`` trains with :class:`CpuStep`
    (a PyTorch without the fused SGD kernel keeps the exact step)."""
    return (torch.device(device).type == "cpu" and 2 * batch * dim * classes >= MIN_FLOPS
            and blas.cpu_backend() == "numpy" and hasattr(torch, "_fused_sgd_"))


class CpuStep:
    """One SGD step of CLIP-Adapter on a batch, updating the adapter's two weights in place.

    ``w1 [H, D]`` and ``w2 [D, H]`` are the adapter's weights (CPU float32 parameters; the step writes them
    through NumPy views of their memory), ``W [C, D]`` the frozen text classifier, ``ratio`` the residual blend.
    Buffers for a batch size are allocated at its first step and reused.
    """

    def __init__(self, w1: torch.nn.Parameter, w2: torch.nn.Parameter, W: torch.Tensor, ratio: float,
                 momentum: float, weight_decay: float) -> None:
        self.params = [w1, w2]
        self.w1, self.w2 = w1.detach().numpy(), w2.detach().numpy()
        self.W = np.ascontiguousarray(W.detach().float().numpy())  # [C, D]
        self.Wt = np.ascontiguousarray(self.W.T)  # [D, C]: BLAS streams a contiguous first operand faster
        self.ratio, self.momentum, self.weight_decay = np.float32(ratio), float(momentum), float(weight_decay)
        self.grads = [torch.empty_like(w1.detach()), torch.empty_like(w2.detach())]
        self.grad_arrays = [g.numpy() for g in self.grads]
        self.bufs = [torch.zeros_like(w1.detach()), torch.zeros_like(w2.detach())] if momentum != 0 else []
        self.first = True
        self._batch = -1

    def _allocate(self, batch: int) -> None:
        (hidden, dim), classes = self.w1.shape, self.W.shape[0]
        e = lambda rows: np.empty((rows, batch), np.float32)  # noqa: E731 — feature-major [rows, B]
        self.h, self.a, self.x, self.xs, self.tmp = e(hidden), e(dim), e(dim), e(dim), e(dim)
        self.logits, self.gl, self.gx, self.gh, self.mask_h = e(classes), e(classes), e(dim), e(hidden), e(hidden)
        self.ones_d, self.ones_c = np.ones(dim, np.float32), np.ones(classes, np.float32)  # column sums by BLAS
        self.cols = np.arange(batch)
        self.keep = np.eye(batch, dtype=np.float32) * (np.float32(1.0) - self.ratio)  # [B, B]
        self._batch = batch

    def __call__(self, f: torch.Tensor, y: np.ndarray, lr: float) -> "tuple[float, int]":
        """Train on the batch ``f [B, D]`` (contiguous float32 L2-normalised features) with labels ``y [B]``:
        returns ``(mean loss, correct predictions)``.

        Per-column scalings are folded together and column sums go through BLAS (``ones @ M``): NumPy's
        reductions and masked writes over ``[D, B]`` arrays cost several times a product's share of a step."""
        n = f.shape[0]
        if n != self._batch:
            self._allocate(n)
        r, h, a, x, tmp = self.ratio, self.h, self.a, self.x, self.tmp
        f = f.numpy()
        np.matmul(self.w1, f.T, out=h)
        np.fmax(h, np.float32(0), out=h)  # r1ᵀ = ReLU(W1 fᵀ)              [H, B]
        np.matmul(self.w2, h, out=a)
        np.fmax(a, np.float32(0), out=a)  # aᵀ = ReLU(W2 r1ᵀ)              [D, B]
        np.matmul(f.T, self.keep, out=tmp)  # (1 − ratio)·fᵀ, exactly: a product with a scaled identity is
        # BLAS's transposing copy (NumPy's strided copy of fᵀ costs 5x more); every other term is an exact 0
        np.multiply(a, r, out=x)
        x += tmp  # xᵀ = ratio·aᵀ + (1 − ratio)·fᵀ                          [D, B]
        np.multiply(x, x, out=tmp)
        norm = np.sqrt(self.ones_d @ tmp)  # ‖x‖                           [B]
        clamped = np.maximum(norm, np.float32(_EPS))
        np.multiply(x, np.float32(100.0) / clamped, out=self.xs)
        lg, gl = self.logits, self.gl
        np.matmul(self.W, self.xs, out=lg)  # logitsᵀ = 100·W x̂ᵀ            [C, B]
        top = lg.argmax(0)
        best = lg[top, self.cols]
        np.subtract(lg, best, out=gl)
        np.exp(gl, out=gl)
        total = self.ones_c @ gl
        loss = float((np.log(total) + best - lg[y, self.cols]).sum()) / n
        gl *= np.float32(1.0) / (total * np.float32(n))
        gl[y, self.cols] -= np.float32(1.0 / n)  # ∂loss/∂logitsᵀ = (softmax − onehot)/B
        g = self.gx
        np.matmul(self.Wt, gl, out=g)  # ∂loss/∂x̂ᵀ = 100·Wᵀ gl (the 100 folded below)  [D, B]
        np.multiply(g, x, out=tmp)
        dot = self.ones_d @ tmp
        coef = np.zeros(n, np.float32)  # the norm's backward: 0 where it was clamped
        np.divide(dot * (np.float32(-100.0) * r), clamped * clamped * clamped, out=coef, where=norm >= _EPS)
        g *= np.float32(100.0) * r / clamped
        np.multiply(x, coef, out=tmp)
        g += tmp  # ratio·∂/∂xᵀ = ratio·(ĝ/‖x‖ − xᵀ (ĝ·x)/‖x‖³), ĝ = 100·Wᵀ gl
        np.greater(a, 0, out=tmp)
        g *= tmp  # ∂/∂(W2 r1ᵀ): ReLU's backward                          [D, B]
        g1, g2 = self.grad_arrays
        np.matmul(g, h.T, out=g2)  # ∂W2                                  [D, H]
        np.matmul(self.w2.T, g, out=self.gh)
        np.greater(h, 0, out=self.mask_h)
        self.gh *= self.mask_h  # ∂/∂(W1 fᵀ)                               [H, B]
        np.matmul(self.gh, f, out=g1)  # ∂W1                              [H, D]
        self._sgd(lr)
        return loss, int((top == y).sum())

    def epoch_stepper(self, views: torch.Tensor, labels: np.ndarray
                      ) -> "Callable[[int, list[torch.Tensor], float], Iterator[tuple[float, int]]]":
        """``step(view, batches, lr)``: trains on the batches of one epoch (index tensors into the ``[A, K, D]``
        ``views``), yielding each batch's ``(mean loss, correct)``."""
        rows = torch.empty(0)

        def step(view: int, batches: "list[torch.Tensor]", lr: float) -> "Iterator[tuple[float, int]]":
            nonlocal rows
            for b in batches:
                if rows.shape != (len(b), views.shape[2]):
                    rows = torch.empty(len(b), views.shape[2])
                torch.index_select(views[view], 0, b, out=rows)
                yield self(rows, labels[b.numpy()], lr)
        return step

    def _sgd(self, lr: float) -> None:
        """SGD with momentum (no dampening, no Nesterov) and weight decay, one fused pass per weight."""
        with torch.no_grad():
            params = [p.detach() for p in self.params]
            torch._fused_sgd_(params, self.grads, self.bufs, weight_decay=self.weight_decay, momentum=self.momentum,
                              lr=float(lr), dampening=0.0, nesterov=False, maximize=False,
                              is_first_step=self.first)
        self.first = False
