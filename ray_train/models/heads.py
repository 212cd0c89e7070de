"""Pluggable auxiliary heads on the backbone's hidden states.

A head is an nn.Module with a ``loss_weight`` and ``loss(hidden, batch) -> (loss, stats)``. InterestModel keeps its
heads in ``self.heads`` (an nn.ModuleDict) and adds ``head.loss_weight * loss`` of each to the next-item loss, so a
later decay / survival head only has to implement this interface and read its own target keys from the batch.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interest_core.contract import PAD_ID


class Head(nn.Module):
    """Base class. ``loss`` returns a scalar (mean over the positions that carry a target) and a dict of detached
    0-dim tensors whose keys are prefixed with the head's name."""

    def __init__(self, loss_weight: float):
        super().__init__()
        self.loss_weight = float(loss_weight)

    def loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError


class NextEventTypeHead(Head):
    """Predicts the type of the next event (view / click / cart / ...) from the hidden state at every position.

    Reads ``batch["target_event_types"]`` (B, L) int64, 0 = no target (ignored).
    """

    def __init__(self, dim: int, num_event_types: int, loss_weight: float):
        super().__init__(loss_weight)
        self.proj = nn.Linear(dim, num_event_types)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.proj(hidden)  # (B, L, E) logits

    def loss(self, hidden: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        target = batch["target_event_types"].reshape(-1)  # (B*L,)
        logits = self(hidden).reshape(target.numel(), -1).float()  # (B*L, E)
        n = (target != PAD_ID).sum()
        loss = F.cross_entropy(logits, target, ignore_index=PAD_ID, reduction="sum") / n.clamp(min=1)
        correct = ((logits.argmax(-1) == target) & (target != PAD_ID)).sum()
        stats = {
            "event_type_loss": loss.detach(),
            "event_type_acc": (correct / n.clamp(min=1)).detach(),
            "event_type_targets": n.detach(),
        }
        return loss, stats
