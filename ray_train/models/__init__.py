"""User-interest models in plain PyTorch (no Ray / DeepSpeed imports); built from interest_core.modelargs."""
from .heads import Head, NextEventTypeHead
from .losses import full_softmax_loss, sampled_softmax_loss
from .model import InterestModel

__all__ = ["InterestModel", "Head", "NextEventTypeHead", "full_softmax_loss", "sampled_softmax_loss"]
