"""SASRec backbone (Kang & McAuley 2018): pre-LN causal multi-head self-attention + point-wise feed-forward.

The block sees only the boolean attention mask built by the model (causal, padded keys hidden), so position t never
reads t+1.. and never reads a padding position.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from interest_core.modelargs import ModelArgs


class CausalSelfAttention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.dropout = args.dropout
        self.qkv = nn.Linear(args.dim, 3 * args.dim)
        self.proj = nn.Linear(args.dim, args.dim)
        self.resid_drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).split(D, dim=-1)  # 3 x (B, L, D)
        q, k, v = (t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        drop = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop)  # (B, H, L, Dh)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.resid_drop(self.proj(y))


class PointWiseFeedForward(nn.Module):
    """SASRec's FFN on every position independently: D -> ffn_mult * D -> D (SASRec: ffn_mult 1, ReLU)."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        hidden = args.ffn_mult * args.dim
        self.net = nn.Sequential(
            nn.Linear(args.dim, hidden),
            nn.GELU() if args.ffn_activation == "gelu" else nn.ReLU(),
            nn.Dropout(args.dropout),
            nn.Linear(hidden, args.dim),
            nn.Dropout(args.dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, L, D)


class SASRecBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.post_norm = args.norm == "post"
        self.ln_attn = nn.LayerNorm(args.dim)
        self.attn = CausalSelfAttention(args)
        self.ln_ffn = nn.LayerNorm(args.dim)
        self.ffn = PointWiseFeedForward(args)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, ts: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, D); mask (B, 1, L, L) bool, True = query may attend key; ts unused (HSTU signature)."""
        if self.post_norm:  # BERT / RecBole: normalise each residual sum
            x = self.ln_attn(x + self.attn(x, mask))  # (B, L, D)
            return self.ln_ffn(x + self.ffn(x))  # (B, L, D)
        x = x + self.attn(self.ln_attn(x), mask)  # (B, L, D)
        x = x + self.ffn(self.ln_ffn(x))  # (B, L, D)
        return x
