"""Next-item losses over every position of a batch.

Both take hidden (B, L, D) (or (N, D)), the item embedding weight (num_items, D) that doubles as the output layer,
and targets (B, L) int64 (or (N,)). Targets 0 (no target) and 1 (OOV) are ignored; the loss is the mean over the
remaining positions (0 with a live graph when there are none). Logits are upcast to float32.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from interest_core.contract import OOV_ID


def _valid_rows(hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = hidden.reshape(-1, hidden.size(-1))  # (B*L, D)
    t = targets.reshape(-1)  # (B*L,)
    keep = t > OOV_ID
    return h[keep], t[keep]  # (N, D), (N,)


def full_softmax_loss(hidden: torch.Tensor, item_emb: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the whole catalog; padding (0) and OOV (1) columns get -inf (never predicted)."""
    h, t = _valid_rows(hidden, targets)  # (N, D), (N,)
    if t.numel() == 0:
        return hidden.sum() * 0.0
    logits = (h @ item_emb.T).float()  # (N, V)
    logits[:, : OOV_ID + 1] = float("-inf")
    return F.cross_entropy(logits, t)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    item_emb: torch.Tensor,
    targets: torch.Tensor,
    num_negatives: int,
    num_items: int,
    generator: torch.Generator | None = None,
    uniform: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sampled softmax with in-batch + uniform negatives and logQ correction; estimates full_softmax_loss.

    Each valid position's logits are [s_pos, s_j - log Q_j for every candidate j], s = h . e, with candidates
      * in-batch: the distinct valid targets of the batch (U of them);
      * uniform:  num_negatives = M draws with replacement from [2, num_items) (``generator`` must live on the
        device of ``targets``).
    log Q_j is the log of the expected number of times a column's item is drawn, per copy merged into the column:
      * uniform column:  Q = M / (V - 2)                 (V = num_items; M draws of 1 / (V - 2) each);
      * in-batch column: Q = N * (c_j / N) / c_j = 1    (the item's sampling probability is its frequency c_j / N
        among the N batch targets, there are N such draws, and the c_j copies are merged into one column:
        log Q = log(c_j / N) + log N - log c_j = 0).
    Using expected counts for both sources keeps them on one scale, so exp(s_pos) + sum exp(s_j - log Q_j) is an
    unbiased estimate of the full softmax denominator given the batch: in-batch items enter exactly once, items
    outside the batch through the uniform draws, each weighted (V - 2) / M. Masked to -inf:
      * accidental hits: a negative equal to the row's positive (its own in-batch column, uniform draws of it);
      * uniform draws of an item that is already an in-batch column (it is counted exactly there).
    With all items among the in-batch targets the loss equals full_softmax_loss; with M >> V it converges to it.
    uniform: the M uniform draws when the caller drew them (the item-graph fusion computes only the rows a step
    reads, so it must know them first); item_emb is then anything indexable by id tensors.
    """
    h, t = _valid_rows(hidden, targets)  # (N, D), (N,)
    if t.numel() == 0:
        return hidden.sum() * 0.0
    batch_items = torch.unique(t)  # (U,)
    if uniform is None:
        uniform = torch.randint(OOV_ID + 1, num_items, (num_negatives,), generator=generator, device=t.device)  # (M,)
    cand = torch.cat([batch_items, uniform])  # (U+M,)
    log_q = torch.zeros(cand.shape, dtype=torch.float32, device=t.device)  # (U+M,)
    log_q[len(batch_items) :] = math.log(num_negatives / (num_items - OOV_ID - 1))
    neg = (h @ item_emb[cand].T).float() - log_q  # (N, U+M)
    hit = cand[None, :] == t[:, None]  # (N, U+M) accidental hits
    covered = torch.cat([torch.zeros_like(batch_items, dtype=torch.bool), torch.isin(uniform, batch_items)])
    neg = neg.masked_fill(hit | covered, float("-inf"))
    pos = (h * item_emb[t]).sum(-1, keepdim=True).float()  # (N, 1)
    logits = torch.cat([pos, neg], dim=1)  # (N, 1+U+M), the positive is column 0
    return F.cross_entropy(logits, torch.zeros_like(t))
