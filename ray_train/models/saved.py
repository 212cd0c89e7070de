"""A trained model as `interest train` leaves it in RUN/model: model.pt (state dict) and meta.json (model_args,
config, epoch, vocab, split)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from interest_core.modelargs import ModelArgs

from . import build_model
from .model import InterestModel
from .vae import MultVAE


def load_model(run_dir: str | Path) -> tuple[InterestModel | MultVAE, dict]:
    """(model in eval mode on the CPU, meta.json). Weights load with weights_only=True (no code on unpickling)."""
    model_dir = Path(run_dir) / "model"
    if not (model_dir / "model.pt").exists():
        raise FileNotFoundError(f"{model_dir}/model.pt missing: train first (`interest train --output {run_dir}`)")
    meta = json.loads((model_dir / "meta.json").read_text())
    model = build_model(ModelArgs(**meta["model_args"]))
    model.load_state_dict(torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True))
    return model.eval(), meta
