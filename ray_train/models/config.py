"""Model hyper-parameters and the id / bucket conventions shared by every model file.

Plain dataclass on purpose: the training driver maps the typed ``interest.config.ModelConfig`` onto it, and the
model code depends on nothing but torch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

PAD_ID = 0  # padding id for items, event types and targets (targets: "no target here")
OOV_ID = 1  # out-of-vocabulary item id: a valid input, never a target, never recommended
NUM_TIME_BUCKETS = 32  # floor(log2(1 + dt seconds)) clamped to 31: bucket 31 starts at 2^31 s (68 years)
NUM_POS_BUCKETS = 32  # HSTU relative-position buckets: exact below 16, log-spaced up to max_len


@dataclass
class ModelArgs:
    num_items: int  # item vocabulary size incl. 0 = padding and 1 = OOV
    num_event_types: int  # event-type vocabulary incl. 0 = padding
    max_len: int = 50  # context length (longest sequence the position embedding covers)
    dim: int = 64  # embedding / hidden size D
    n_layers: int = 2  # number of backbone blocks
    n_heads: int = 2  # attention heads (dim must be divisible by it)
    dropout: float = 0.2  # dropout on embeddings and inside every block
    arch: str = "sasrec"  # "sasrec" | "hstu"
    loss: str = "full"  # "full" | "sampled"   (the caller resolves "auto" before building)
    num_negatives: int = 256  # uniform negatives per batch for the sampled softmax (plus in-batch ones)
    event_type_loss_weight: float = 0.1  # weight of the next-event-type head; 0 = head not built
    activation_checkpointing: bool = False  # recompute each block in backward (training only)

    def __post_init__(self):
        if self.num_items < 3:
            raise ValueError(f"num_items={self.num_items}: need ids 0 (padding), 1 (OOV) and at least one item")
        if self.num_event_types < 1:
            raise ValueError(f"num_event_types={self.num_event_types}: must include 0 = padding")
        if self.arch not in ("sasrec", "hstu"):
            raise ValueError(f"arch={self.arch!r}: expected 'sasrec' or 'hstu'")
        if self.loss not in ("full", "sampled"):
            raise ValueError(f"loss={self.loss!r}: expected 'full' or 'sampled' (resolve 'auto' before building)")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if min(self.max_len, self.n_layers, self.num_negatives) < 1:
            raise ValueError("max_len, n_layers and num_negatives must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout}: expected 0 <= dropout < 1")


def log2_bucket(dt: torch.Tensor) -> torch.Tensor:
    """floor(log2(1 + max(dt, 0))) clamped to NUM_TIME_BUCKETS - 1, computed exactly on integers.

    dt: int64 seconds, any shape -> int64 in [0, NUM_TIME_BUCKETS) of the same shape.
    bucket 0: dt = 0, 1: dt = 1..2, 2: dt = 3..6, ... (one bucket per doubling).
    """
    # boundaries [2, 4, ..., 2^31]; bucketize(right=True) counts how many are <= 1 + dt
    bounds = 2 ** torch.arange(1, NUM_TIME_BUCKETS, dtype=torch.int64, device=dt.device)
    return torch.bucketize(1 + dt.clamp(min=0), bounds, right=True)
