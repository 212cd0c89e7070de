"""Capacity planner: memory per GPU and time per epoch for a config, from the model's arguments alone (parameters
and FLOPs are counted analytically by interest_core.modelargs; no model is built).

Memory per rank (bytes), P = parameters, N = world size, mixed precision (bf16 weights/grads, fp32 master
weights + Adam moments = 12 bytes/param) as DeepSpeed's ZeRO paper counts it:
  ZeRO-0: 16 P;  ZeRO-1: 4 P + 12 P / N;  ZeRO-2: 2 P + 14 P / N;  ZeRO-3: 16 P / N
(fp32 on CPU: weights and grads 4 bytes each, so 4+4+8 = 16 P at stage 0 and the same split rule.)
Activations per rank: micro_batch x max_len x dim x n_layers x 34 bytes (Korthikanti et al. for a transformer
block, without the L^2 attention term that fused attention avoids) plus the logits of the loss
(micro_batch x max_len x candidates x 4 bytes); activation checkpointing keeps only block inputs
(2 bytes x B x L x D per layer) and recomputes the rest.
Time: flops_per_token (6 N_nonembedding + output layer + attention, from the model) x tokens / (GPU peak x MFU).
"""
from __future__ import annotations

import argparse
import json
import math

from interest_core import contract
from interest_core.config import Config, load_config
from interest_core.modelargs import count_params, flops_per_token, model_args

GIB = 1024 ** 3


def plan(cfg: Config, num_items: int, num_event_types: int | None = None, train_sequences: int = 1_000_000,
         gpus: int | None = None, gpu_mem_gib: float = 80.0, gpu_tflops: float = 312.0, mfu: float = 0.3,
         bf16: bool = True) -> dict:
    m, t = cfg.model, cfg.train
    world = gpus or t.workers
    args = model_args(cfg, num_items, num_event_types or contract.num_event_types(cfg.data.event_types),
                      cfg.data.max_len, user_feature_buckets=cfg.data.user_feature_buckets)
    loss = args.loss
    p = count_params(args)
    w, g = (2, 2) if bf16 else (4, 4)
    opt = 12 if bf16 else 8
    per_rank = {0: (w + g + opt) * p, 1: (w + g) * p + opt * p / world, 2: w * p + (g + opt) * p / world,
                3: (w + g + opt) * p / world}[t.zero_stage]
    b, length, d = t.micro_batch_size, cfg.data.max_len, m.dim
    act = (2 * b * length * d * m.n_layers) if t.activation_checkpointing else 34 * b * length * d * m.n_layers
    candidates = num_items if loss == "full" else m.num_negatives + b * length
    logits = b * length * candidates * 4
    total = per_rank + act + logits
    flops_token = flops_per_token(args)
    tokens_epoch = train_sequences * length
    seconds_epoch = flops_token * tokens_epoch / (world * gpu_tflops * 1e12 * mfu)
    return {
        "model": {"arch": m.arch, "params": p, "non_embedding_params": count_params(args, non_embedding=True),
                  "flops_per_token": flops_token, "loss": loss, "num_items": num_items},
        "parallel": {"world_size": world, "zero_stage": t.zero_stage, "micro_batch": b,
                     "global_batch": b * t.grad_accum * world, "activation_checkpointing": t.activation_checkpointing},
        "memory_gib_per_rank": {"model_states": per_rank / GIB, "activations": act / GIB, "loss_logits": logits / GIB,
                                "total": total / GIB, "gpu_mem": gpu_mem_gib,
                                "fits": total <= 0.9 * gpu_mem_gib * GIB},
        "time": {"train_sequences": train_sequences, "tokens_per_epoch": tokens_epoch,
                 "seconds_per_epoch": seconds_epoch, "gpu_tflops": gpu_tflops, "mfu": mfu,
                 "gpu_hours_per_epoch": seconds_epoch * world / 3600},
        "min_gpus_to_fit": _min_gpus(per_rank * world if t.zero_stage == 3 else None, act + logits, gpu_mem_gib),
    }


def _min_gpus(sharded_total: float | None, fixed: float, gpu_mem: float) -> int | None:
    if sharded_total is None:
        return None
    room = 0.9 * gpu_mem * GIB - fixed
    return math.ceil(sharded_total / room) if room > 0 else None


def format_table(result: dict) -> str:
    rows = []
    for section in ("model", "parallel", "memory_gib_per_rank", "time"):
        for k, v in result[section].items():
            rows.append((f"{section}.{k}", f"{v:,.3f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int)
                         and not isinstance(v, bool) else str(v)))
    rows.append(("min_gpus_to_fit (ZeRO-3)", str(result["min_gpus_to_fit"])))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="base", help="preset or YAML file, e.g. --config large")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="e.g. --set model.dim=512")
    p.add_argument("--num-items", type=int, default=1_000_000, help="catalog size, e.g. --num-items 4000000")
    p.add_argument("--train-sequences", type=int, default=10_000_000,
                   help="training windows per epoch (manifest rows.train), e.g. --train-sequences 50000000")
    p.add_argument("--gpus", type=int, default=None, help="world size (default train.workers), e.g. --gpus 16")
    p.add_argument("--gpu-mem-gib", type=float, default=80.0, help="memory per GPU, e.g. --gpu-mem-gib 40")
    p.add_argument("--gpu-tflops", type=float, default=312.0, help="peak bf16 TFLOPs per GPU (A100: 312)")
    p.add_argument("--mfu", type=float, default=0.3, help="assumed model FLOPs utilisation, e.g. --mfu 0.4")
    p.add_argument("--json", action="store_true", help="print only the JSON")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    result = plan(cfg, args.num_items, train_sequences=args.train_sequences, gpus=args.gpus,
                  gpu_mem_gib=args.gpu_mem_gib, gpu_tflops=args.gpu_tflops, mfu=args.mfu)
    if not args.json:
        print(format_table(result))
    print(json.dumps(result, indent=None if not args.json else 2))
    return 0
