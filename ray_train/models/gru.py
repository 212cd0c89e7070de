"""GRU4Rec-style recurrent backbone (Hidasi et al. 2016): a multi-layer GRU over the event embeddings.

The model's batches are left-padded (the most recent event at position L-1). A GRU run over them would step through
the padding first and start the real events from a state its biases moved away from zero, so the state after an
event would depend on how much padding the row had. Each row is therefore rotated so that its events come first
(padding last: it can only influence the outputs after the last event, which are dropped), run through the GRU and
rotated back. Rotations are gathers, so the backbone exports to ONNX as it is. The output at position t reads
events <= t only (causal by construction). Plain torch: no Ray / DeepSpeed here.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from interest_core.modelargs import ModelArgs


class GRUBackbone(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.gru = nn.GRU(args.dim, args.dim, num_layers=args.n_layers, batch_first=True,
                          dropout=args.dropout if args.n_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, L, D) event embeddings, zeros at padding; valid (B, L) bool, left-padded -> (B, L, D) states."""
        B, L, D = x.shape
        pads = (~valid).sum(1, keepdim=True)  # (B, 1)
        pos = torch.arange(L, device=x.device).unsqueeze(0)  # (1, L)
        # (pos + pads) mod L and (pos - pads) mod L, written without `%` (ONNX's exporter fails on the remainder by a
        # dynamic length): both stay within one period of [0, L)
        first = pos + pads - L * (pos + pads >= L).long()  # (B, L): events first, padding last
        out, _ = self.gru(x.gather(1, first.unsqueeze(-1).expand(B, L, D)))  # (B, L, D)
        back = (pos - pads + L * (pos < pads).long()).unsqueeze(-1).expand(B, L, D)
        return out.gather(1, back) * valid.unsqueeze(-1)  # (B, L, D), zeros at padding
