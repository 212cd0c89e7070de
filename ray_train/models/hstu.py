"""HSTU backbone (Zhai et al. 2024, "Actions Speak Louder than Words", arXiv:2402.17152).

One layer:
    U, V, Q, K = split(SiLU(Linear(LayerNorm(x))))
    A          = SiLU(Q K^T / sqrt(Dh) + rab_pos + rab_time) / max_len      pointwise, NOT softmax
    Y          = x + Linear(Dropout(LayerNorm(A V) * U))
with A zeroed outside the causal + padding mask. rab_pos is a learned per-head bias per bucket of the relative
position i - j; rab_time a learned per-head bias per log2 bucket of |ts_i - ts_j|.

Normalisation: the attention is divided by the constant max_len (the reference implementation divides by the padded
length), not by the number of visible keys, so A V still carries how *much* history supports a preference (the point
of dropping the softmax), and the result does not depend on how much left padding a sequence has.

``hstu_attention_reference`` is a loop version used by the tests to check the vectorised path.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from interest_core.modelargs import NUM_POS_BUCKETS, NUM_TIME_BUCKETS, ModelArgs

from .buckets import log2_bucket


def position_bucket(distance: int, max_distance: int, num_buckets: int = NUM_POS_BUCKETS) -> int:
    """T5-style bucket of a relative distance >= 0: exact below num_buckets // 2, log-spaced up to max_distance."""
    exact = num_buckets // 2
    if distance < exact:
        return distance
    span = math.log(max(max_distance, 2 * exact) / exact)
    return min(exact + int(math.log(distance / exact) / span * (num_buckets - exact)), num_buckets - 1)


def time_bucket(dt: int) -> int:
    """Scalar twin of buckets.log2_bucket: floor(log2(1 + |dt|)) clamped to NUM_TIME_BUCKETS - 1."""
    return min((1 + abs(dt)).bit_length() - 1, NUM_TIME_BUCKETS - 1)


class RelativeAttentionBias(nn.Module):
    """rab(i, j) = pos_bias[bucket(i - j)] + time_bias[log2 bucket(|ts_i - ts_j|)], one value per head."""

    def __init__(self, args: ModelArgs):
        super().__init__()
        self.pos_bias = nn.Embedding(NUM_POS_BUCKETS, args.n_heads)
        self.time_bias = nn.Embedding(NUM_TIME_BUCKETS, args.n_heads)
        table = [position_bucket(d, args.max_len) for d in range(args.max_len)]
        self.register_buffer("pos_buckets", torch.tensor(table, dtype=torch.int64), persistent=False)

    def forward(self, ts: torch.Tensor) -> torch.Tensor:
        L = ts.size(1)
        idx = torch.arange(L, device=ts.device)
        distance = (idx[:, None] - idx[None, :]).clamp(0, len(self.pos_buckets) - 1)  # (L, L), keys after i -> 0
        pos = self.pos_bias(self.pos_buckets[distance])  # (L, L, H)
        time = self.time_bias(log2_bucket((ts[:, :, None] - ts[:, None, :]).abs()))  # (B, L, L, H)
        return (pos + time).permute(0, 3, 1, 2)  # (B, H, L, L)


def hstu_attention(q, k, v, bias, mask, norm: int) -> torch.Tensor:
    """Pointwise attention. q, k, v (B, H, L, Dh); bias (B, H, L, L); mask (B, 1, L, L) bool -> (B, H, L, Dh)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)) + bias  # (B, H, L, L)
    attn = F.silu(scores) * mask / norm  # (B, H, L, L), zero outside the mask
    return attn @ v  # (B, H, L, Dh)


def hstu_attention_reference(q, k, v, ts, valid, pos_bias, time_bias, max_len: int, norm: int) -> torch.Tensor:
    """Loop twin of RelativeAttentionBias + hstu_attention (slow; tests only).

    q, k, v (B, H, L, Dh); ts (B, L) int64; valid (B, L) bool; pos_bias (NUM_POS_BUCKETS, H) and
    time_bias (NUM_TIME_BUCKETS, H) weights. Query i reads key j iff j <= i and (j is valid or j == i).
    """
    B, H, L, Dh = q.shape
    rows = []
    for b in range(B):
        for h in range(H):
            for i in range(L):
                out = torch.zeros_like(v[b, h, i])
                for j in range(i + 1):
                    if not (bool(valid[b, j]) or j == i):
                        continue
                    rab = pos_bias[position_bucket(i - j, max_len), h]
                    rab = rab + time_bias[time_bucket(int(ts[b, i]) - int(ts[b, j])), h]
                    score = torch.dot(q[b, h, i], k[b, h, j]) / math.sqrt(Dh) + rab
                    out = out + F.silu(score) / norm * v[b, h, j]
                rows.append(out)
    return torch.stack(rows).view(B, H, L, Dh)


class HSTUBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.max_len = args.max_len
        self.norm_in = nn.LayerNorm(args.dim)
        self.uvqk = nn.Linear(args.dim, 4 * args.dim)
        self.rab = RelativeAttentionBias(args)
        self.norm_attn = nn.LayerNorm(args.dim)
        self.proj = nn.Linear(args.dim, args.dim)
        self.drop = nn.Dropout(args.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
        """x (B, L, D); mask (B, 1, L, L) bool, True = query may attend key; ts (B, L) int64 seconds."""
        B, L, D = x.shape
        u, v, q, k = F.silu(self.uvqk(self.norm_in(x))).split(D, dim=-1)  # 4 x (B, L, D)
        q, k, v = (t.view(B, L, self.n_heads, D // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        y = hstu_attention(q, k, v, self.rab(ts), mask, self.max_len)  # (B, H, L, Dh)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return x + self.proj(self.drop(self.norm_attn(y) * u))  # (B, L, D)
