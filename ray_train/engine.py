"""DeepSpeed engine setup, applied to a plain model from outside (the model knows nothing of DeepSpeed).

ZeRO settings come from interest_core's deepspeed/zero{0,1,2,3}.json (interest_core.zero, which the capacity
planner reads too); batch sizes, clipping and precision are filled
in from the typed train config. fp32 on CPU (DS_ACCELERATOR=cpu, gloo), bf16 on GPU. The optimizer (AdamW) and the
schedule (linear warmup, then constant or cosine decay to min_lr_ratio: train.lr_schedule) are torch objects handed
to DeepSpeed, which steps both.
"""
from __future__ import annotations

import math
import os

import torch

from interest_core.config import TrainConfig
from interest_core.zero import zero_config
from ray_train.logs import library_stdout


def ensure_accelerator_env() -> None:
    """Must run before `import deepspeed`: DeepSpeed picks its accelerator at import time."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def skip_inference_comm_op() -> None:
    """DeepSpeed's CPU accelerator builds its shared-memory communication op (deepspeed_shm_comm: C++ compiled on
    first use, minutes on 2 cores, once per virtualenv, and a compiler on the machine) whenever its communication
    backend starts. Only inference_all_reduce (tensor-parallel inference) runs it; training's collectives are
    torch.distributed's. Training marks it unavailable, as DeepSpeed itself does where the op cannot be built."""
    from deepspeed import ops

    ops.__compatible_ops__["deepspeed_shm_comm"] = False


def gpu_record(engine) -> dict | None:
    """What a history entry records of the GPU path, None on the CPU (no CUDA device: build_engine's rule): the
    device, the process group's backend and size, whether DeepSpeed runs bf16 and the weights' dtype, and the peak
    of GPU memory this rank allocated since the peak was last reset (torch.cuda.max_memory_allocated: tensors, not
    the CUDA context or the allocator's cache)."""
    if not torch.cuda.is_available():
        return None
    import torch.distributed as dist

    group = dist.is_initialized()
    return {"device": torch.cuda.get_device_name(), "backend": dist.get_backend() if group else None,
            "world_size": dist.get_world_size() if group else 1, "bf16": bool(engine.bfloat16_enabled()),
            "param_dtype": str(next(engine.module.parameters()).dtype).removeprefix("torch."),
            "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20}


def deepspeed_config(train: TrainConfig, world_size: int, on_gpu: bool) -> dict:
    cfg = zero_config(train.zero_stage)
    cfg.update({
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "train_batch_size": train.micro_batch_size * train.grad_accum * world_size,
        "gradient_clipping": train.grad_clip,
    })
    if on_gpu:
        cfg["bf16"] = {"enabled": True}
    return cfg


def lr_lambda(total_steps: int, warmup_ratio: float, min_lr_ratio: float, schedule: str = "cosine",
              warmup_max_steps: int | None = None):
    """Multiplier of the base lr at each optimizer step: linear warmup, then constant or cosine decay."""
    warmup = max(1, int(total_steps * warmup_ratio))
    if warmup_max_steps is not None:
        warmup = max(1, min(warmup, warmup_max_steps))

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def use_weights_only_loading(engine) -> None:
    """Makes DeepSpeed's checkpoint loading use torch.load(weights_only=True).

    DeepSpeed 0.19's TorchCheckpointEngine loads with weights_only=False (arbitrary code on unpickling). Its ZeRO
    optimizer files hold three DeepSpeed classes besides tensors and plain containers; only those are allowed.
    """
    import torch
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
        def load(self, path: str, map_location=None):
            with torch.serialization.safe_globals([LossScaler, ZeroStageEnum, fragment_address]):
                return torch.load(path, map_location=map_location, weights_only=True)

    if type(engine.checkpoint_engine) is not TorchCheckpointEngine:
        raise RuntimeError(f"unexpected DeepSpeed checkpoint engine {type(engine.checkpoint_engine).__name__}")
    engine.checkpoint_engine = WeightsOnlyCheckpointEngine()


def build_engine(model: torch.nn.Module, train: TrainConfig, world_size: int, total_steps: int):
    """Returns (engine, ds_config). Every rank calls this collectively."""
    ensure_accelerator_env()
    import deepspeed

    on_gpu = torch.cuda.is_available()
    skip_inference_comm_op()
    ds_cfg = deepspeed_config(train, world_size, on_gpu)
    if train.zero_stage == 3 and hasattr(model, "item_emb"):
        # The tied output layer reads the item embedding outside the embedding module's own forward; ZeRO-3
        # must gather it for the whole model forward.
        item = model.embed.item  # the ID table, or the content tower whose parameters build the item rows
        for p in ([item.weight] if isinstance(item, torch.nn.Embedding) else item.parameters()):
            deepspeed.zero.register_external_parameter(model, p)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.dim() < 2 or "norm" in name or "embed" in name else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": train.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=train.lr, betas=(0.9, train.adam_beta2))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(total_steps, train.warmup_ratio, train.min_lr_ratio, train.lr_schedule,
                             train.warmup_max_steps))
    with library_stdout():  # DeepSpeed's notes on the engine it built, on every rank
        engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                               config=ds_cfg, dist_init_required=False)
    use_weights_only_loading(engine)
    return engine, ds_cfg
