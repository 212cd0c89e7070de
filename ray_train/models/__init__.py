"""User-interest models in plain PyTorch (no Ray / DeepSpeed imports); built from interest_core.modelargs."""
from .heads import Head, NextEventTypeHead
from .losses import full_softmax_loss, sampled_softmax_loss
from .model import InterestModel
from .vae import MultVAE


def build_model(args) -> "InterestModel | MultVAE":
    """The model ModelArgs describe: the Mult-VAE bag model for arch=vae, else the sequence model."""
    return MultVAE(args) if args.arch == "vae" else InterestModel(args)

__all__ = ["InterestModel", "MultVAE", "build_model", "Head", "NextEventTypeHead", "full_softmax_loss", "sampled_softmax_loss"]
