"""User-interest models in plain PyTorch (no Ray / DeepSpeed imports)."""
from .config import NUM_POS_BUCKETS, NUM_TIME_BUCKETS, OOV_ID, PAD_ID, ModelArgs, log2_bucket
from .heads import Head, NextEventTypeHead
from .losses import full_softmax_loss, sampled_softmax_loss
from .model import InterestModel

__all__ = [
    "ModelArgs",
    "InterestModel",
    "Head",
    "NextEventTypeHead",
    "full_softmax_loss",
    "sampled_softmax_loss",
    "log2_bucket",
    "PAD_ID",
    "OOV_ID",
    "NUM_TIME_BUCKETS",
    "NUM_POS_BUCKETS",
]
