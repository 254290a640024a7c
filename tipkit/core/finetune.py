"""Stage 5 of the paper: Tip-Adapter-F (the cache keys fine-tuned).

The keys become a bias-free linear layer initialised from the cache; values, the
text classifier and the encoders stay frozen (for the paper's "what to fine-tune"
ablation, ``train="values"`` or ``"both"`` makes the values a trainable ``[K, C]``
parameter initialised from the one-hot values). AdamW(lr 1e-3, eps 1e-4) with a
cosine schedule over all steps minimises cross-entropy on the fused logits, with
α and β fixed at their initial values. Each epoch sees a fresh augmented view of
the few-shot images (view ``epoch mod A`` of the cached views, as the official
code re-augments every epoch). The epoch kept is the one with the best
**validation** accuracy; the test set is never an input here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from tipkit.core import blas
from tipkit.core.cache import OneHot, as_one_hot, l2_normalize
from tipkit.core.fusion import Values, affinity_to_cache, apply_values, cache_weights, clip_logits
from tipkit.core.grid import row_chunks
from tipkit.core.metrics import accuracy
from tipkit.core.search import MEMORY_BUDGET
from tipkit.errors import TipkitError, choose

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    keys: torch.Tensor  # [K, D] the kept (best-on-val) keys
    best_epoch: int  # 1-based
    best_val_acc: float
    history: list[dict] = field(default_factory=list)  # per epoch: loss, train_acc, val_acc, lr
    values: torch.Tensor | None = None  # [K, C] the kept values (the input values unless they were trained)


TRAINABLE = ("keys", "values", "both")  # which part of the cache finetune() trains


def fused_logits(features: torch.Tensor, class_embeddings: torch.Tensor, adapter: torch.nn.Linear,
                 values: Values, alpha: float, beta: float) -> torch.Tensor:
    """Tip-Adapter-F logits with learnable keys ``adapter.weight [K, D]``: ``[N, D] -> [N, C]``."""
    return clip_logits(features, class_embeddings) + alpha * affinity_to_cache(adapter(features), values, beta)


def chunked_logits(features: torch.Tensor, class_embeddings: torch.Tensor, adapter: torch.nn.Linear, values: Values,
                   alpha: float, beta: float, memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """:func:`fused_logits` of ``features [N, D]`` streamed in chunks of queries: ``[N, C]``, working set
    (the ``[n, K]`` affinities and weights) under ``memory_budget`` bytes whatever N is."""
    k = adapter.weight.shape[0]
    chunks = row_chunks(features.shape[0], 4 * (2 * k + 4 * class_embeddings.shape[0]), memory_budget)
    return torch.cat([fused_logits(features[s:s + chunks.step], class_embeddings, adapter, values, alpha, beta)
                      for s in chunks])


def fused_adamw(device: "str | torch.device") -> bool:
    """Whether AdamW runs as one fused kernel on ``device`` (CPU and CUDA): one pass over the ``[K, D]`` keys and
    their moments per step instead of about ten. The update is AdamW's, in another float order (the keys move by
    at most a few ulps of 1e-3·lr; the accuracies and the chosen epoch stay the same, tests/test_finetune.py)."""
    return torch.device(device).type in ("cpu", "cuda")


def _val_logits(features: torch.Tensor, zero_shot: torch.Tensor, adapter: torch.nn.Linear, values: Values,
                alpha: float, beta: float, memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """:func:`chunked_logits` with the zero-shot logits ``[N, C]`` given (computed once, not once per epoch)."""
    k = adapter.weight.shape[0]
    chunks = row_chunks(features.shape[0], 4 * (2 * k + 4 * zero_shot.shape[1]), memory_budget)
    keys = adapter.weight.detach()
    return torch.cat([zero_shot[s:s + chunks.step] + alpha * apply_values(
        cache_weights(blas.matmul(features[s:s + chunks.step], keys.T), beta, inplace=True), values) for s in chunks])


def _keys_step(feats: torch.Tensor, labels: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.nn.Parameter,
               values: OneHot, alpha: float, beta: float, buf: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One training step's loss and logits (``[n, C]``), with ``keys.grad [K, D]`` set: the keys' gradient of
    :func:`fused_logits`'s cross-entropy, written out instead of taped, so that the ``[n, K]`` affinities live in
    one reused buffer and both products with the keys go through :func:`tipkit.core.blas.matmul`.

    With ``E = exp(−β(1 − f Kᵀ))`` and ``g = ∂loss/∂(E V)`` (autograd on the small ``[n, C]`` part), the
    gradient is ``∂loss/∂K = (β · E ⊙ g Vᵀ)ᵀ f``; ``g Vᵀ`` repeats each class's ``g`` over its keys. The float
    operations are autograd's own (``x·(−β)`` then a negation is ``x·β``, exactly), so with PyTorch's products
    the keys move bit for bit as through ``nn.Linear`` (tests/test_steps.py).
    ``feats [n, D]``, ``labels [n]``; ``buf`` a ``[≥ n, K]`` and ``grad`` a ``[K, D]`` float32 buffer.
    """
    n = feats.shape[0]
    weights = cache_weights(blas.matmul(feats, keys.detach().T, out=buf[:n]), beta, inplace=True)  # E, [n, K]
    cache = values.matmul(weights).requires_grad_()  # E V, [n, C]: the leaf autograd differentiates to
    logits = clip_logits(feats, class_embeddings) + alpha * cache
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    g = cache.grad  # [n, C]
    if values.group is not None:
        weights.view(n, values.num_classes, values.group).mul_(g.unsqueeze(-1))
    else:
        weights.mul_(g.index_select(1, values.labels))
    keys.grad = blas.matmul(weights.mul_(beta).T, feats, out=grad)
    return loss.detach(), logits.detach()


def finetune(view_features: torch.Tensor, labels: torch.Tensor, val_features: torch.Tensor,
             val_labels: torch.Tensor, class_embeddings: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
             alpha: float, beta: float, epochs: int = 20, lr: float = 1e-3, batch_size: int = 256, seed: int = 1,
             device: "str | torch.device" = "cpu", train: str = "keys") -> FinetuneResult:
    """Fine-tune the cache keys (or, for the ablation, the values or both).

    Args:
        view_features: ``[A, K, D]`` raw features of the few-shot images under A augmented views.
        labels: ``[K]``; val_features ``[Nv, D]`` (L2-normalised) and val_labels ``[Nv]`` choose the epoch.
        class_embeddings: ``[C, D]``; keys ``[K', D]`` and values ``[K', C]`` from :func:`tipkit.core.cache.build_cache`
            (usually K' = K; the cache may also hold fewer, e.g. group-averaged, entries).
        train: ``"keys"`` (Tip-Adapter-F), ``"values"`` or ``"both"``; what is not trained stays fixed.
            The result holds the kept keys and values, both on the CPU.
    """
    choose("finetune part", train, TRAINABLE)
    if epochs < 1:
        raise TipkitError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device)
    views = l2_normalize(view_features.float()).to(device)
    labels, val_labels = labels.to(device), val_labels.to(device)
    val_features, W, values = val_features.to(device), class_embeddings.to(device), values.to(device)
    adapter = torch.nn.Linear(keys.shape[1], keys.shape[0], bias=False).to(device)
    with torch.no_grad():
        adapter.weight.copy_(keys)
    params = []
    if train in ("keys", "both"):
        params.append(adapter.weight)
    else:
        adapter.weight.requires_grad_(False)
    onehot = as_one_hot(values) if train == "keys" else None  # fixed one-hot values: per-class sums, no [K, C] product
    manual = onehot is not None and onehot.scale is None  # the keys' gradient written out (_keys_step)
    if train in ("values", "both"):
        values = torch.nn.Parameter(values.float().clone())
        params.append(values)
    fixed = onehot.to(device) if onehot is not None else values
    opt = torch.optim.AdamW(params, lr=lr, eps=1e-4, fused=fused_adamw(device))
    steps_per_epoch = -(-labels.numel() // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    best = FinetuneResult(keys.clone(), 0, -1.0, values=values.detach().clone())
    val_zs = clip_logits(val_features, W)  # [Nv, C]: the frozen zero-shot part of every epoch's validation pass
    if manual:
        buf = torch.empty((min(batch_size, labels.numel()), keys.shape[0]), device=device)  # [B, K] affinities
        grad = torch.empty_like(adapter.weight)  # [K, D], reused by every step
    threads = torch.get_num_threads()
    with blas.torch_threads(1 if manual and blas.routes_to_numpy(len(buf), keys.shape[1], len(keys), device) else None):
        for epoch in tqdm(range(1, epochs + 1), desc="Tip-Adapter-F", unit="epoch", leave=False):
            feats = views[(epoch - 1) % views.shape[0]]
            order = torch.randperm(labels.numel(), generator=gen).to(device)
            adapter.train()
            loss_sum, correct = 0.0, 0
            for s in range(0, len(order), batch_size):
                b = order[s:s + batch_size]
                if manual:
                    loss, logits = _keys_step(feats[b], labels[b], W, adapter.weight, fixed, alpha, beta, buf, grad)
                else:
                    logits = fused_logits(feats[b], W, adapter, fixed, alpha, beta)
                    loss = F.cross_entropy(logits, labels[b])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                opt.step()
                sched.step()
                loss_sum += loss.item() * len(b)
                correct += int((logits.argmax(-1) == labels[b]).sum())
            adapter.eval()
            with torch.no_grad():
                val_acc = accuracy(_val_logits(val_features, val_zs, adapter, fixed, alpha, beta), val_labels)
            best.history.append({"epoch": epoch, "loss": loss_sum / len(order), "train_acc": 100.0 * correct / len(order),
                                 "val_acc": val_acc, "lr": opt.param_groups[0]["lr"]})
            if val_acc > best.best_val_acc:  # first maximum, as the official code
                best.best_val_acc, best.best_epoch = val_acc, epoch
                best.keys = adapter.weight.detach().clone()
                best.values = values.detach().clone()
    best.keys, best.values = best.keys.cpu(), best.values.cpu()
    log.info("Tip-Adapter-F: best val %.2f%% at epoch %d/%d", best.best_val_acc, best.best_epoch, epochs)
    return best
