"""Time-gap buckets shared by the embeddings and HSTU's relative attention bias."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from interest_core.modelargs import NUM_TIME_BUCKETS


def log2_bucket(dt: torch.Tensor) -> torch.Tensor:
    """floor(log2(1 + max(dt, 0))) clamped to NUM_TIME_BUCKETS - 1, computed exactly on integers.

    dt: int64 seconds, any shape -> int64 in [0, NUM_TIME_BUCKETS) of the same shape.
    bucket 0: dt = 0, 1: dt = 1..2, 2: dt = 3..6, ... (one bucket per doubling).
    """
    # boundaries [2, 4, ..., 2^31]; bucketize(right=True) counts how many are <= 1 + dt
    bounds = 2 ** torch.arange(1, NUM_TIME_BUCKETS, dtype=torch.int64, device=dt.device)
    return torch.bucketize(1 + dt.clamp(min=0), bounds, right=True)


def time_since_previous(ts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, L) -> (B, L) time-embedding ids: 0 = padding, 1 = no previous event in the window, 2 + log2 bucket(dt)."""
    prev_valid = F.pad(valid[:, :-1], (1, 0), value=False)  # (B, L)
    dt = ts - F.pad(ts[:, :-1], (1, 0))  # (B, L)
    ids = torch.where(prev_valid, 2 + log2_bucket(dt), 1)
    return torch.where(valid, ids, 0)
