"""Scoring a grid of fusion weights without materialising one logit tensor per grid point.

Every searched method fuses logits linearly in its weights: Tip-Adapter's ``z + α·c`` (one axis), Tip-X's
``z + α·c + γ·k`` (two axes), APE's ``z + α·c_γ`` (one axis per γ). For one query the logits are affine in
the weights, so over a box of the grid the winning class is the same everywhere once it is the same at the
box's corners: the box is the convex hull of its corners, and an affine function that is largest at every
corner is largest inside. :func:`grid_argmax` therefore evaluates the corners of the whole grid for every
query, and splits a box further only for the queries whose corners disagree — typically a few percent, at
the few weights where their prediction changes. The result equals scoring every grid point (up to float
rounding at a near-tie, which can differ by one query in a cell at the paper's largest shape). Small
problems (grid points × N × C up to ``DENSE_LIMIT``) are scored point by point, which is cheaper there.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

import torch

DENSE_LIMIT = 1 << 22  # grid points × N × C up to which every point is scored directly (cheaper when small)
POINT_CHUNK = 1 << 22  # logits materialised at once on the direct path
BOX_LIMIT = 1 << 20  # box points × unsettled queries × C below which a box is scored directly, not split


def _point_logits(base: torch.Tensor, terms: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                  point: tuple[int, ...]) -> torch.Tensor:
    """``base + Σ_a terms[a] · weights[a][point[a]]`` (``base`` broadcast over the terms' leading dims),
    summed left to right as the official codes do."""
    logits = None
    for t, w, i in zip(terms, weights, point):
        term = t * w[i]
        logits = term.add_(base) if logits is None else logits.add_(term)
    return logits


def _dense_argmax(base: torch.Tensor, terms: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Every grid point scored directly, in chunks of points: ``[N, J_1, ..., J_d]``."""
    shape = tuple(len(w) for w in weights)
    points = list(itertools.product(*(range(j) for j in shape)))
    idx = torch.tensor(points, dtype=torch.long).view(len(points), len(shape))
    ws = [w.to(device=base.device, dtype=base.dtype) for w in weights]
    step = max(1, POINT_CHUNK // max(1, base.numel()))
    out = []
    for s in range(0, len(points), step):
        logits = base.unsqueeze(0)
        for a, (t, w) in enumerate(zip(terms, ws)):
            logits = logits + t.unsqueeze(0) * w[idx[s:s + step, a].to(base.device)].view(-1, 1, 1)
        out.append(logits.argmax(-1))  # [p, N]
    return torch.cat(out).T.reshape(base.shape[0], *shape)


def grid_argmax(base: torch.Tensor, terms: Sequence[torch.Tensor], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Top-1 class of ``base + Σ_a weights[a][j_a] · terms[a]`` at every grid point.

    Args:
        base: ``[N, C]`` logits that no weight multiplies (e.g. zero-shot logits).
        terms: one ``[R, C]`` tensor per grid axis, ``R`` a multiple of ``N``: row ``r`` adds to ``base[r mod N]``
            (``R / N`` stacked variants of the same queries, e.g. APE's γ, share one ``base``, never repeated).
        weights: one 1-D tensor per axis (any order; duplicates allowed), the axis' grid values.

    Returns:
        ``[R, J_1, ..., J_d]`` int64 predictions (ties go to the lowest class index, as ``argmax``).
    """
    if len(terms) != len(weights) or not terms:
        raise ValueError("grid_argmax needs one weight vector per term, and at least one term")
    (n, c), nb = terms[0].shape, base.shape[0]
    if n % nb or any(t.shape != terms[0].shape for t in terms):
        raise ValueError(f"grid_argmax: terms {[tuple(t.shape) for t in terms]} do not stack over base {tuple(base.shape)}")
    if n * c * int(torch.tensor([len(w) for w in weights]).prod()) <= DENSE_LIMIT:
        return _dense_argmax(base if n == nb else base.repeat(n // nb, 1), terms, weights)
    order = [torch.argsort(w.detach().cpu(), stable=True) for w in weights]
    ws = [w.to(base.dtype)[o.to(w.device)] for w, o in zip(weights, order)]  # each axis ascending
    shape = tuple(len(w) for w in ws)
    pred = torch.empty((n, *shape), dtype=torch.long, device=base.device)
    box = tuple((0, j - 1) for j in shape)
    stacked = [t.reshape(n // nb, nb, c) for t in terms]
    for corner in set(itertools.product(*box)):  # the whole grid's corners, every row (base broadcast)
        pred[(slice(None), *corner)] = _point_logits(base, stacked, ws, corner).view(n, c).argmax(-1)
    # a box's unsettled rows are gathered once (ids, base rows, term rows) and shared by its two halves
    stack = [(box, torch.arange(n, device=base.device), None, None)]
    while stack:
        box, ids, b, ts = stack.pop()
        corners = list(itertools.product(*box))
        first = pred[(ids, *corners[0])]
        agree = torch.ones_like(first, dtype=torch.bool)
        for k in corners[1:]:
            agree &= pred[(ids, *k)] == first
        if bool(agree.any()):
            pred[(ids[agree], *(slice(lo, hi + 1) for lo, hi in box))] = first[agree].view(-1, *([1] * len(box)))
        spans = [hi - lo for lo, hi in box]
        axis = max(range(len(box)), key=lambda a: spans[a])
        if bool(agree.all()) or spans[axis] < 2:
            continue  # settled, or every point of the box is a corner: all are evaluated
        keep = ~agree
        ids = ids[keep]
        b, ts = (base[ids % nb], [t[ids] for t in terms]) if b is None else (b[keep], [t[keep] for t in ts])
        points = int(torch.tensor([s + 1 for s in spans]).prod())
        if points * len(ids) * c <= BOX_LIMIT:  # small: score the box's points directly
            sub = _dense_argmax(b, ts, [w[lo:hi + 1] for w, (lo, hi) in zip(ws, box)])
            pred[(ids, *(slice(lo, hi + 1) for lo, hi in box))] = sub
            continue
        lo, hi = box[axis]
        mid = (lo + hi) // 2
        plane = [(x if a != axis else (mid, mid)) for a, x in enumerate(box)]
        for point in set(itertools.product(*plane)):
            pred[(ids, *point)] = _point_logits(b, ts, ws, point).argmax(-1)
        stack.append((tuple(x if a != axis else (lo, mid) for a, x in enumerate(box)), ids, b, ts))
        stack.append((tuple(x if a != axis else (mid, hi) for a, x in enumerate(box)), ids, b, ts))
    for a, o in enumerate(order):  # back to the caller's order of each axis
        if not torch.equal(o, torch.arange(len(o))):
            inverse = torch.empty_like(o)
            inverse[o] = torch.arange(len(o))
            pred = pred.index_select(a + 1, inverse.to(pred.device))
    return pred


def grid_correct(base: torch.Tensor, terms: Sequence[torch.Tensor], weights: Sequence[torch.Tensor],
                 labels: torch.Tensor) -> torch.Tensor:
    """Number of correct top-1 predictions at every grid point: ``[J_1, ..., J_d]`` int64 (see :func:`grid_argmax`)."""
    pred = grid_argmax(base, terms, weights)
    return (pred == labels.view(-1, *([1] * len(terms)))).sum(0)


def line_argmax(base: torch.Tensor, term: torch.Tensor, weights: torch.Tensor,
                scratch: "torch.Tensor | None" = None) -> torch.Tensor:
    """Top-1 class of ``base + w · term`` at every weight ``w`` of one axis, for ``G`` stacked variants of the queries.

    Along the axis each class's logit is a line. A row whose winner ``A`` at the smallest weight also wins at the
    largest keeps it at every weight (as in :func:`grid_argmax`). In the other rows, with ``Z`` the winner at the
    largest weight, any class that wins somewhere must rise above ``max(A, Z)``, and then it does so at the
    weight where A's and Z's lines meet; one pass there keeps the few such classes (three on average at
    ImageNet's shape), and only they, A and Z are scored at every weight, with the arithmetic of scoring each
    point directly (``term · w + base``, ties to the lowest class). The result equals scoring every point (up
    to float rounding at a near-tie, as :func:`grid_argmax`).

    Args:
        base: ``[N, C]`` logits no weight multiplies, shared by the ``G`` variants of a query (APE's γ), or
            ``[N, G, C]``, one per variant (Tip-X: ``zs + α·cache`` for each α, the axis being γ).
        term: ``[N, G, C]`` (the variants of a query side by side), or ``[N, C]`` shared by the variants.
        weights: ``[J]`` the axis' values, any order.
        scratch: an optional ``[N, G, C]`` buffer to work in (saves allocating one per call).

    Returns:
        ``[N, G, J]`` int64 predictions.
    """
    shapes = [tuple(x.shape) for x in (base, term)]
    if base.dim() == term.dim() == 2 or base.dim() not in (2, 3) or term.dim() not in (2, 3):
        raise ValueError(f"line_argmax: base and term {shapes}: one of them must be [N, G, C], the other [N, C] or that")
    n, g, c = (term if term.dim() == 3 else base).shape
    if any(tuple(x.shape) not in ((n, c), (n, g, c)) for x in (base, term)):
        raise ValueError(f"line_argmax: term {tuple(term.shape)} does not stack over base {tuple(base.shape)}")
    j = len(weights)
    b3 = base if base.dim() == 3 else base.unsqueeze(1)  # [N, G or 1, C]
    t3 = term if term.dim() == 3 else term.unsqueeze(1)
    w = weights.to(device=base.device, dtype=base.dtype)
    if g * n * c * j <= DENSE_LIMIT:
        return _dense_argmax(b3.expand(n, g, c).reshape(n * g, c), [t3.expand(n, g, c).reshape(n * g, c)],
                             [w]).view(n, g, j)
    buf = scratch if scratch is not None else torch.empty((n, g, c), dtype=base.dtype, device=base.device)
    ends = []
    for x in (w.min(), w.max()):  # the winners at both ends, scored as directly
        torch.mul(t3.expand(n, g, c), x, out=buf)
        ends.append(buf.add_(b3).argmax(-1).view(-1))  # [N·G]
    first, last = ends
    pred = first.unsqueeze(1).repeat(1, j)  # [N·G, J]
    rows = (first != last).nonzero().view(-1)
    if len(rows):
        def gather(x):  # the unsettled rows of a [N, G, C] or shared [N, C] tensor: [U, C]
            return x.reshape(-1, c).index_select(0, rows) if x.dim() == 3 else x.index_select(0, rows // g)
        t, b = gather(term), gather(base)
        a, z = first[rows].unsqueeze(1), last[rows].unsqueeze(1)  # winners at the two ends
        # A class that wins anywhere on the axis rises above max(A, Z) there; its gap to max(A, Z) is concave
        # (a line minus a convex kink) and at most 0 at both ends, so it is above at the kink x, where A and Z meet
        x = (b.gather(1, a) - b.gather(1, z)) / (t.gather(1, z) - t.gather(1, a))  # [U, 1]
        odd = ~((x >= w.min()) & (x <= w.max())).view(-1)  # parallel, or meeting off the axis (rounding)
        at_x = torch.addcmul(b, t, x.nan_to_num(0.0), out=buf.view(-1, c)[:len(rows)])
        keep = at_x >= torch.maximum(at_x.gather(1, a), at_x.gather(1, z))
        keep.scatter_(1, a, True).scatter_(1, z, True)
        keep[odd] = True  # such rows: every class is a candidate
        r, k = keep.nonzero(as_tuple=True)  # candidates, classes ascending within a row
        v = t[r, k].unsqueeze(1) * w  # [P, J], as direct scoring: term · w + base
        v += b[r, k].unsqueeze(1)
        best = torch.full((len(rows), j), float("-inf"), dtype=v.dtype, device=v.device)
        best.scatter_reduce_(0, r.unsqueeze(1).expand(-1, j), v, "amax")
        low = torch.full((len(rows), j), c, dtype=torch.long, device=v.device)  # the lowest class reaching it
        low.scatter_reduce_(0, r.unsqueeze(1).expand(-1, j), torch.where(v == best[r], k.unsqueeze(1), c), "amin")
        pred[rows] = low
    return pred.view(n, g, j)


def row_chunks(n: int, bytes_per_row: int, budget: int) -> range:
    """Starts of row chunks so that ``rows × bytes_per_row`` stays under ``budget`` (at least one row)."""
    return range(0, n, max(1, budget // max(1, bytes_per_row)))


def exp_schedule(distance: torch.Tensor, betas: Sequence[float], anchor_every: int = 8) -> Iterator[torch.Tensor]:
    """Yield ``exp(−β·distance)`` for each β in turn, reusing one buffer (do not keep the yielded tensor).

    On an evenly spaced β grid (the paper's) consecutive terms differ by the factor ``exp(−Δβ·distance)``, so
    between exact ``exp`` anchors (every ``anchor_every`` β) each term costs one multiply per element instead of
    one ``exp``; the relative error stays within a few ulp of float32 (``anchor_every`` multiplies).
    """
    betas = [float(b) for b in betas]
    steps = [b2 - b1 for b1, b2 in zip(betas, betas[1:])]
    even = len(betas) > 2 and all(abs(s - steps[0]) <= 1e-9 * max(1.0, abs(steps[0])) for s in steps)
    out = torch.empty_like(distance)
    factor = torch.exp(distance * -steps[0]) if even else None
    for i, beta in enumerate(betas):
        if factor is None or i % anchor_every == 0:
            torch.mul(distance, -beta, out=out)
            out.exp_()
        else:
            out.mul_(factor)
        yield out
