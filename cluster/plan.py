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
Checkpoint: what DeepSpeed saves per checkpoint, the model states without gradients (bf16: 2 P weights + 12 P fp32
master weights and Adam moments; fp32: 4 + 8), times train.keep_checkpoints, plus the exported fp32 weights (4 P).
Export: scoring `--export-users` users is a forward pass (a third of the training FLOPs per token) over max_len
positions plus one dot product per catalog item (2 x dim x num_items), at the same MFU.
Fit: for a config that does not fit, `suggest` tries the changes in order of what they cost (ZeRO stage, activation
checkpointing, micro-batch with grad_accum keeping the global batch, the sampled softmax, then GPUs) and returns
the first single change that fits, else the cumulative set.
ETL: cluster/etl_plan.py (from a measured run).
"""
from __future__ import annotations

import argparse
import json
import math

from interest_core import contract
from interest_core.config import Config, load_config
from cluster.memory_model import rank_memory
from interest_core.modelargs import count_params, flops_per_token, largest_tensor, model_args
from interest_core.zero import reduce_bucket_elements

GIB = 1024 ** 3


def plan(cfg: Config, num_items: int, num_event_types: int | None = None, train_sequences: int = 1_000_000,
         gpus: int | None = None, gpu_mem_gib: float = 80.0, gpu_tflops: float = 312.0, mfu: float = 0.3,
         bf16: bool = True, export_users: int | None = None) -> dict:
    m, t = cfg.model, cfg.train
    world = gpus or t.workers
    args = model_args(cfg, num_items, num_event_types or contract.num_event_types(cfg.data.event_types),
                      cfg.data.max_len, user_feature_buckets=cfg.data.user_feature_buckets)
    loss = args.loss
    p = count_params(args)
    w, opt = (2, 12) if bf16 else (4, 8)
    b, length, d = t.micro_batch_size, cfg.data.max_len, m.dim
    act_bytes = 2 if bf16 else 4
    # Korthikanti et al.: 34 bytes per token and dim for a block in 16-bit (16 two-byte values + 2 one-byte
    # dropout masks): 66 in fp32; checkpointing keeps each block's input; plus the summed input embeddings
    per_block = act_bytes if t.activation_checkpointing else 16 * act_bytes + 2
    act = b * length * d * (per_block * m.n_layers + 4 * act_bytes)
    # sampled: the batch's distinct targets (at most one per position, at most the catalog) + the uniform draws
    candidates = num_items if loss == "full" else m.num_negatives + min(b * length, num_items)
    logits = 2 * b * length * candidates * 4  # fp32 logits and the log-softmax the backward keeps
    mem = rank_memory(p, largest_tensor(args), tied=args.arch != "vae", world=world, stage=t.zero_stage,
                      bf16=bf16, activations=act, logits=logits, bucket_elements=reduce_bucket_elements(t.zero_stage))
    total = mem["total"]
    sharded = (2 * w + 12) * p / world if t.zero_stage == 3 else None  # what more GPUs divide at ZeRO-3
    flops_token = flops_per_token(args)
    tokens_epoch = train_sequences * length
    seconds_epoch = flops_token * tokens_epoch / (world * gpu_tflops * 1e12 * mfu)
    state_bytes = (w + opt) * p
    export_users = train_sequences if export_users is None else export_users
    export_flops = export_users * (flops_token / 3 * length + 2 * d * num_items)
    return {
        "model": {"arch": m.arch, "params": p, "non_embedding_params": count_params(args, non_embedding=True),
                  "flops_per_token": flops_token, "loss": loss, "num_items": num_items},
        "parallel": {"world_size": world, "zero_stage": t.zero_stage, "micro_batch": b,
                     "global_batch": b * t.grad_accum * world, "activation_checkpointing": t.activation_checkpointing},
        "memory_gib_per_rank": {**{k: mem[k] / GIB for k in ("model_states", "activations", "loss_logits",
                                                             "transient", "total")},
                                "peak_phase": mem["peak_phase"], "gpu_mem": gpu_mem_gib,
                                "fits": total <= 0.9 * gpu_mem_gib * GIB},
        "time": {"train_sequences": train_sequences, "tokens_per_epoch": tokens_epoch,
                 "seconds_per_step": seconds_epoch * b * t.grad_accum * world / max(train_sequences, 1),
                 "seconds_per_epoch": seconds_epoch, "gpu_tflops": gpu_tflops, "mfu": mfu,
                 "gpu_hours_per_epoch": seconds_epoch * world / 3600},
        "checkpoint": {"gib": state_bytes / GIB, "keep": t.keep_checkpoints,
                       "storage_gib": (state_bytes * t.keep_checkpoints + 4 * p) / GIB},
        "export": {"users": export_users, "seconds": export_flops / (world * gpu_tflops * 1e12 * mfu)},
        "min_gpus_to_fit": _min_gpus(None if sharded is None else sharded * world, total - (sharded or 0), gpu_mem_gib),
    }


def _min_gpus(sharded_total: float | None, fixed: float, gpu_mem: float) -> int | None:
    if sharded_total is None:
        return None
    room = 0.9 * gpu_mem * GIB - fixed
    return math.ceil(sharded_total / room) if room > 0 else None


def _with(cfg: Config, **train) -> Config:
    model = {"loss": train.pop("loss")} if "loss" in train else {}
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=train),
                                  "model": cfg.model.model_copy(update=model)})


def suggest(cfg: Config, num_items: int, gpus: int | None = None, current: dict | None = None, **kw) -> dict | None:
    """None when the config fits; else the smallest change that makes it fit: {"change": text, "plan": plan}.
    current: plan(cfg, num_items, gpus=gpus, **kw) when the caller has it already."""
    current = current or plan(cfg, num_items, gpus=gpus, **kw)
    if current["memory_gib_per_rank"]["fits"]:
        return None
    t = cfg.train
    steps = [(f"train.zero_stage={z}", {"zero_stage": z}) for z in range(t.zero_stage + 1, 4)]
    if not t.activation_checkpointing:
        steps.append(("train.activation_checkpointing=true", {"activation_checkpointing": True}))
    b = t.micro_batch_size // 2
    while b >= 1:
        accum = t.grad_accum * t.micro_batch_size // b
        steps.append((f"train.micro_batch_size={b} train.grad_accum={accum}",
                      {"micro_batch_size": b, "grad_accum": accum}))
        b //= 2
    if current["model"]["loss"] == "full":
        steps.append(("model.loss=sampled", {"loss": "sampled"}))
    for text, change in steps:  # the first single change that fits
        r = plan(_with(cfg, **change), num_items, gpus=gpus, **kw)
        if r["memory_gib_per_rank"]["fits"]:
            return {"change": text, "plan": r}
    # none alone: every change at once (the strongest of each kind), then GPUs under ZeRO-3
    combined = {"zero_stage": 3, "activation_checkpointing": True, "micro_batch_size": 1,
                "grad_accum": t.grad_accum * t.micro_batch_size}
    texts = ["train.zero_stage=3", "train.activation_checkpointing=true", f"train.micro_batch_size=1 "
             f"train.grad_accum={combined['grad_accum']}"]
    if any(c.get("loss") for _, c in steps):
        combined["loss"], texts = "sampled", texts + ["model.loss=sampled"]
    c = _with(cfg, **combined)
    r = plan(c, num_items, gpus=gpus, **kw)
    if r["memory_gib_per_rank"]["fits"]:
        return {"change": " ".join(texts), "plan": r}
    need = r["min_gpus_to_fit"]
    if need is None:
        return {"change": "does not fit on any number of GPUs of this size (activations and logits alone exceed "
                          "one GPU)", "plan": r}
    return {"change": " ".join(texts) + f" --gpus {need}", "plan": plan(c, num_items, gpus=need, **kw)}


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _flat(prefix: str, d: dict) -> list[tuple[str, str]]:
    rows = []
    for k, v in d.items():
        rows += _flat(f"{prefix}.{k}", v) if isinstance(v, dict) else [(f"{prefix}.{k}", _fmt(v))]
    return rows


def format_table(result: dict) -> str:
    rows = []
    for section in ("model", "parallel", "memory_gib_per_rank", "time", "checkpoint", "export", "etl"):
        if section in result:
            rows += _flat(section, result[section])
    rows.append(("min_gpus_to_fit (ZeRO-3)", str(result["min_gpus_to_fit"])))
    if result.get("to_fit"):
        rows.append(("to_fit", result["to_fit"]))
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
    p.add_argument("--export-users", type=int, default=None,
                   help="users the export scores (default --train-sequences), e.g. --export-users 100000000")
    p.add_argument("--events", type=float, default=None,
                   help="raw events for the ETL sizing (cluster/etl_calibration.json), e.g. --events 1e10")
    p.add_argument("--executors", type=int, default=None,
                   help="Spark executors (default: enough for --etl-hours), e.g. --executors 50")
    p.add_argument("--executor-cores", type=int, default=4, help="cores per Spark executor, e.g. --executor-cores 8")
    p.add_argument("--etl-hours", type=float, default=1.0,
                   help="ETL wall-time target that sizes the executors when --executors is not given, e.g. 2")
    p.add_argument("--spark-env", action="store_true",
                   help="print only the shell exports the spark-submit templates read (needs --events), e.g. "
                        "eval \"$(interest plan --events 1e9 --spark-env)\"")
    p.add_argument("--json", action="store_true", help="print only the JSON")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    kw = {"train_sequences": args.train_sequences, "gpu_mem_gib": args.gpu_mem_gib, "gpu_tflops": args.gpu_tflops,
          "mfu": args.mfu, "export_users": args.export_users}
    result = plan(cfg, args.num_items, gpus=args.gpus, **kw)
    fix = suggest(cfg, args.num_items, gpus=args.gpus, current=result, **kw)
    result["to_fit"] = fix["change"] if fix else None
    if args.spark_env and args.events is None:
        raise SystemExit("interest plan: --spark-env sizes the ETL: give --events, e.g. --events 1e9")
    if args.events is not None:
        from cluster.etl_plan import load_calibration, plan_etl, spark_submit_env

        result["etl"] = plan_etl(int(args.events), cfg.data.num_files, load_calibration(), args.executors,
                                 args.executor_cores, args.etl_hours)
        if args.spark_env:
            print(spark_submit_env(result["etl"]))
            return 0
    if not args.json:
        print(format_table(result))
    print(json.dumps(result, indent=None if not args.json else 2))
    return 0
