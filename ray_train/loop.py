"""`train_loop_per_worker`: what every Ray Train worker runs. Reads only its `config` argument, never driver
globals. One DeepSpeed rank per worker; validation each epoch on this rank's part of the valid split, with
exact all-reduced counts, drives checkpoint selection and early stopping (metric eval.select on protocol
eval.select_protocol).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from interest_core import decay
from interest_core.batches import read_decay_split, read_eval_split
from interest_core.binary import auc, brier
from interest_core.config import Config, config_from_dict, redacted
from interest_core.contract import item_categories
from interest_core.data_versions import local_data_dir
from interest_core.item_features import graph_arrays, item_arrays, text_matrix
from interest_core.modelargs import ModelArgs, model_args_for_data
from interest_core.scoring import new_accumulators, score_hazards, score_rows
from ray_train import checkpoints
from ray_train.data import arrow_train_collate
from ray_train.engine import build_engine, ensure_accelerator_env, gpu_record
from ray_train.logs import quiet_libraries
from ray_train.models import build_model
from ray_train.reporting import Reporter

VALID_PROTOCOLS = ("full", "full_exclude_seen")


def select_key(cfg: Config) -> str:
    """The name of the reported validation metric that selects checkpoints, e.g. valid_ndcg@10."""
    return f"valid_{cfg.eval.select}"


@dataclass
class Job:
    """Everything a worker needs, built by the driver (plain data so Ray can ship it)."""
    config: dict
    data_dir: str
    run_dir: str
    manifest: dict
    progress_board: str | None = None
    """Name of the driver's ProgressBoard actor when it draws a progress bar (rank 0 then posts, not prints)."""
    text_cache: str | None = None
    """The item text embeddings' cache, filled by the driver (ray_train/text_embed.py) when the model reads text."""
    data: dict | None = None
    """{"fingerprint", "vocab_fingerprint"} of the data (interest_core.contract), recorded in every checkpoint."""
    local_data: str | None = None
    """The driver's local copy of a remote data_dir: a worker on its node reads it, one elsewhere makes its own."""

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**d)


def steps_per_epoch(train_rows: int, world: int, cfg: Config) -> tuple[int, int]:
    """(optimizer steps per epoch, micro batch). The driver pads the train split to a multiple of the world size
    (padding rows carry no loss), each rank gets the same rows and runs ceil(rows / micro) micro-batches, the last
    one partial: every rank runs the same count, so no collective hangs, and no training row is dropped."""
    per_rank = -(-train_rows // world)
    if train_rows < world:
        raise ValueError(f"{train_rows} training windows cannot feed {world} workers; use fewer --workers")
    micro = min(cfg.train.micro_batch_size, per_rank)
    steps = max(1, -(-per_rank // micro) // cfg.train.grad_accum)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    return steps, micro


def validation_interval(cfg: Config, steps_per_epoch: int) -> int:
    """Optimizer steps between validations: train.val_every_steps, or one epoch clamped to [50, 1000] steps, so a
    tiny epoch does not make patience count a handful of steps and a huge one is still validated."""
    if cfg.train.val_every_steps is not None:
        return cfg.train.val_every_steps
    return min(max(steps_per_epoch, 50), 1000)


def _gathered(engine, stage: int):
    import contextlib

    if stage != 3:
        return contextlib.nullcontext()
    import deepspeed
    return deepspeed.zero.GatheredParameters(list(engine.module.parameters()), modifier_rank=None)


def _scoring_model(engine, args: ModelArgs, stage: int) -> torch.nn.Module:
    """The model to score with. Under ZeRO-3 each rank holds only a shard of every parameter and the engine's
    hooks re-partition them after each submodule's forward, so scoring runs on a plain copy of the gathered
    weights instead (scoring a whole catalog needs the whole item table on the rank anyway)."""
    if stage != 3:
        return engine.module
    with _gathered(engine, stage):
        state = {k: v.detach().clone() for k, v in engine.module.state_dict().items()}
    model = build_model(args)
    model.load_state_dict(state)
    return model


def _on_device(fn, model: torch.nn.Module):
    """fn (a model method on a collated batch) for CPU batches: on a GPU model each batch moves to the model's
    device and the output comes back to the CPU (collate builds CPU tensors; the metrics read numpy)."""
    device = next(model.parameters()).device
    if device.type == "cpu":
        return fn
    return lambda b: fn({k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}).cpu()


def validate(engine, args: ModelArgs, job: Job, cfg: Config, rows: dict, decay_rows: dict | None = None) -> dict:
    """{protocol: metrics} over the whole valid split (or eval.max_valid_users of it), all-reduced over ranks, and
    "decay" (decay head on decay_valid) when decay_rows are given."""
    model = _scoring_model(engine, args, cfg.train.zero_stage)
    model.eval()
    accs = new_accumulators(cfg.eval.ks, VALID_PROTOCOLS)
    score_rows(_on_device(model.score_all, model), rows, accs, max_len=args.max_len, batch_size=cfg.eval.batch_size)
    out = {}
    for proto, acc in accs.items():
        vec = acc.to_tensor(["all"])
        if dist.is_initialized():
            dist.all_reduce(vec)
        acc.from_tensor(vec, ["all"])
        out[proto] = acc.result()["all"]
    if decay_rows is not None:
        out["decay"] = _validate_decay(model, args, cfg, decay_rows, job.manifest["split"]["horizon_days"])
    engine.train()
    return out


def _validate_decay(model, args: ModelArgs, cfg: Config, rows: dict, horizon_days: float) -> dict:
    """The decay head's P(active within H) on this rank's decay_valid rows (uncalibrated), gathered from every
    rank: AUC, Brier and users, for history.json (checkpoint selection stays on eval.select)."""
    h = score_hazards(_on_device(model.decay_hazards, model), rows, max_len=args.max_len,
                      batch_size=cfg.eval.batch_size)
    p = decay.p_active_within(h, decay.elapsed_s(rows), horizon_days * decay.DAY_S)
    parts = [(p, np.asarray(rows["label"], dtype=np.float64))]
    if dist.is_initialized():
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, (p, np.asarray(rows["label"], dtype=np.float64)))
    p, y = np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])
    return {"auc": auc(p, y), "brier": brier(p, y), "n_users": int(len(y))}


def save_checkpoint(engine, state: dict, args: ModelArgs, job: Job, cfg: Config, rank: int) -> str:
    """Every rank writes its DeepSpeed shards; rank 0 adds model.pt + meta.json (what rebuilds the run)."""
    tmp = checkpoints.new_staging(job.run_dir, rank)
    engine.save_checkpoint(tmp, tag="ds", client_state={"state": state})
    with _gathered(engine, cfg.train.zero_stage):
        if rank == 0:
            sd = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
            torch.save(sd, os.path.join(tmp, "model.pt"))
            meta = {"model_args": asdict(args), "config": redacted(job.config), "step": state["step"],
                    "epoch": state["history"][-1]["epoch"], "data_dir": job.data_dir,
                    "vocab": job.manifest["vocab"], "split": job.manifest["split"], "world_size": cfg.train.workers,
                    "zero_stage": cfg.train.zero_stage, "data": job.data}
            Path(tmp, "meta.json").write_text(json.dumps(meta, indent=2))
            Path(tmp, "history.json").write_text(json.dumps(state["history"], indent=2))
            Path(tmp, "steps.json").write_text(json.dumps(state["steps"]))
    checkpoints.seal(tmp, rank, cfg.train.workers)
    return tmp


def _resume_from(ckpt, run_dir: str, rank: int):
    """The checkpoint to resume from: Ray's latest when it is complete (ray_train/checkpoints.py), else the latest
    complete one in the run directory (a crash while writing leaves a partial one; a worker killed after every rank
    sealed one, before Ray registered it, leaves it unlisted), None to start afresh. The driver refused a run
    directory of another model, data or world size, and a finished run without --force, before training started."""
    import ray.train

    if ckpt is None:  # Ray lists none; a worker killed right after every rank wrote one leaves it unlisted
        found = checkpoints.latest_complete(run_dir)
        if found is not None and rank == 0:
            print(f"[interest] Ray Train lists no checkpoint; the run directory holds a complete one, {found.name}",
                  flush=True)
        return ray.train.Checkpoint.from_directory(str(found)) if found is not None else None
    path = Path(ckpt.path)
    if not path.is_dir():  # remote storage: Ray downloads it, and only a finished upload is in its list
        return ckpt
    why = checkpoints.problem(path)
    if why is None:
        return ckpt
    fallback = checkpoints.latest_complete(run_dir)
    if rank == 0:
        print(f"[interest] checkpoint {path.name} is incomplete ({why}, e.g. a crash while it was written); "
              f"{f'resuming from {fallback.name}' if fallback else 'no complete checkpoint: starting afresh'}",
              flush=True)
    return ray.train.Checkpoint.from_directory(str(fallback)) if fallback else None


def _fresh_state() -> dict:
    """What a checkpoint carries to resume: the data cursor (epoch, micro-batches done in it), counters, the best
    validation so far and the curves."""
    return {"epoch": 0, "micro_in_epoch": 0, "micro": 0, "step": 0, "best": -1.0, "best_step": -1,
            "bad_validations": 0, "history": [], "steps": [], "wall_s": 0.0, "stopped_early": False}


class _Window:
    """Loss, sequences and time since the last validation (what a validation entry reports)."""

    def __init__(self):
        self.t0, self.seqs, self.loss_sum, self.loss_n = time.time(), 0, 0.0, 0

    def add(self, seqs: int, loss: float) -> None:
        self.seqs, self.loss_sum, self.loss_n = self.seqs + seqs, self.loss_sum + loss, self.loss_n + 1


def train_loop_per_worker(config: dict) -> None:
    job = Job.from_dict(config)
    cfg = config_from_dict(job.config)
    ensure_accelerator_env()
    quiet_libraries()
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(cfg.train.cpus_per_worker)))
    torch.manual_seed(cfg.train.seed + rank)
    args = model_args_for_data(cfg, job.manifest)
    # a remote version: this node's local copy of it (the driver's, or one made here with this node's credentials)
    data_dir = job.local_data if job.local_data and Path(job.local_data).is_dir() else str(local_data_dir(job.data_dir))
    model = build_model(args)
    if args.arch == "vae" and args.num_categories:  # the vae's bags hold their items' categories
        model.set_item_categories(item_categories(data_dir, args.num_items))
    if args.item_features:  # the content tower's per-item features
        text = text_matrix(data_dir, job.text_cache, args.num_items)[0] if "text" in args.item_features else None
        model.set_item_arrays(item_arrays(data_dir, args.num_items, args.brand_buckets, text))
    if args.graph_hops:  # the item-graph fusion's top-K neighbours
        model.set_item_graph(*graph_arrays(data_dir, args.num_items, args.graph_top_k))
    n_steps, micro = steps_per_epoch(job.manifest["rows"]["train"], world, cfg)
    every = validation_interval(cfg, n_steps)
    total = n_steps * cfg.train.epochs
    engine, _ = build_engine(model, cfg.train, world, total)
    state = _fresh_state()
    checkpoints.clear_staging(job.run_dir, rank)  # what a killed predecessor of this rank left on this node
    resume = _resume_from(ray.train.get_checkpoint(), job.run_dir, rank)
    if resume is not None:
        with resume.as_directory() as d:
            _, client = engine.load_checkpoint(d, tag="ds")
        state = client["state"]
        if rank == 0:
            print(f"[interest] resuming from checkpoint {resume.path} at step {state['step']}, "
                  f"epoch {state['epoch']} (best {select_key(cfg)}={state['best']:.4f})", flush=True)
    if rank == 0:
        print(f"[interest] model {args.arch}: {model.num_params():,} parameters, loss={args.loss}; global batch = "
              f"{micro} micro x {cfg.train.grad_accum} accum x {world} world = "
              f"{micro * cfg.train.grad_accum * world} sequences; {n_steps} steps/epoch, validation every {every} "
              f"steps, at most {total} steps; ZeRO-{cfg.train.zero_stage}", flush=True)
        if not args.event_type_input:
            print("[interest] the data has one event type: event-type input and next-event-type head off", flush=True)
        if args.decay_loss_weight > 0:
            end = dt.datetime.fromtimestamp(job.manifest["split"]["valid_cutoff_ts"], dt.timezone.utc)
            print(f"[interest] decay head on (weight {args.decay_loss_weight:g}): training gaps censored at "
                  f"{end.isoformat(timespec='seconds')} (cutoff - horizon)", flush=True)
        elif cfg.model.decay_loss_weight > 0 and job.manifest.get("split", {}).get("kind") != "time":
            # (a vae run on time-split data has no decay head either: the bag model has no per-event state)
            print("[interest] split=leave-one-out: no end of observation, decay head off (use --split time)",
                  flush=True)
    valid_rows = read_eval_split(data_dir, "valid", rank, world, cfg.eval.max_valid_users)
    decay_rows = read_decay_split(data_dir, "valid", rank, world) if args.decay_loss_weight > 0 else None
    out = Reporter(job.run_dir, job.progress_board, job.config, cfg, state.get("mlflow_run_id")) if rank == 0 else None
    if out is not None:
        state["mlflow_run_id"] = out.mlflow_run_id  # a resumed run continues this MLflow run
    shard = ray.train.get_dataset_shard("train")
    collate = arrow_train_collate(args.max_len)
    micro_per_epoch = n_steps * cfg.train.grad_accum
    window = _Window()

    def checkpoint_and_report() -> bool:
        """Validates, checkpoints and reports; True when early stopping ends training."""
        nonlocal window
        stop = _record_validation(engine, args, job, cfg, valid_rows, state, window, n_steps, out, decay_rows)
        entry = state["history"][-1]
        metrics = {select_key(cfg): entry["valid"][cfg.eval.select], "epoch": entry["epoch"], "step": state["step"],
                   "train_loss": entry["train_loss"], "best_step": state["best_step"],
                   "stopped_early": state["stopped_early"]}
        tmp = None
        try:  # the staging directory goes whatever happens: Ray has copied it into the run when report returns
            tmp = save_checkpoint(engine, state, args, job, cfg, rank)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        finally:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
        window = _Window()
        return stop

    try:
        stop = False
        while state["epoch"] < cfg.train.epochs and not stop:
            epoch, skip = state["epoch"], state["micro_in_epoch"]
            batches = shard.iter_torch_batches(batch_size=micro, collate_fn=collate, drop_last=False,
                                               local_shuffle_buffer_size=max(4 * micro, 1024),
                                               local_shuffle_seed=cfg.train.seed + epoch)
            for i, batch in enumerate(batches):
                if i < skip or i >= micro_per_epoch:
                    continue  # trained before the checkpoint we resumed from / keep draining with the other ranks
                _train_step(engine, batch, cfg, state, epoch, n_steps, world, window, out)
                state["micro_in_epoch"] = i + 1
                if state["micro_in_epoch"] == micro_per_epoch:
                    state["epoch"], state["micro_in_epoch"] = epoch + 1, 0
                if state["micro"] % cfg.train.grad_accum == 0 and state["step"] % every == 0:
                    if stop := checkpoint_and_report():
                        break
            if state["epoch"] == epoch and not stop:  # an epoch shorter than micro_per_epoch (max_steps_per_epoch)
                state["epoch"], state["micro_in_epoch"] = epoch + 1, 0
        if not stop and (not state["history"] or state["history"][-1]["step"] != state["step"]):
            checkpoint_and_report()  # the budget ended between two validations
    finally:
        if out:
            out.close()


def _train_step(engine, batch, cfg: Config, state: dict, epoch: int, n_steps: int, world: int, window: _Window,
                out: Reporter | None) -> None:
    loss, stats = engine(batch)
    engine.backward(loss)
    engine.step()
    state["micro"] += 1
    window.add(batch["items"].shape[0], float(stats["loss"]))
    if state["micro"] % cfg.train.grad_accum:
        return
    state["step"] += 1
    if state["step"] % cfg.train.log_every_steps == 0:
        now = time.time()
        point = {"epoch": epoch, "step": state["step"], "loss": window.loss_sum / window.loss_n,
                 "seq_per_s": window.seqs * world / max(now - window.t0, 1e-9), "lr": engine.get_lr()[0]}
        state["steps"].append({k: point[k] for k in ("step", "loss", "seq_per_s")} | {
            "wall_s": state["wall_s"] + now - window.t0})
        if out:
            out.step(point)


def _record_validation(engine, args: ModelArgs, job: Job, cfg: Config, valid_rows: dict, state: dict,
                       window: _Window, n_steps: int, out: Reporter | None, decay_rows: dict | None = None) -> bool:
    """Scores the valid split, appends a history entry, updates best/patience; True when training should stop."""
    train_s = time.time() - window.t0
    consumed = torch.tensor([window.seqs], dtype=torch.float64)
    dist.all_reduce(consumed)
    gpu = gpu_record(engine)  # before validation allocates: the peak of training since the last reset
    valid = validate(engine, args, job, cfg, valid_rows, decay_rows)
    score = valid[cfg.eval.select_protocol][cfg.eval.select]
    state["wall_s"] += time.time() - window.t0
    improved = score > state["best"]
    state.update(best=max(score, state["best"]), best_step=state["step"] if improved else state["best_step"],
                 bad_validations=0 if improved else state["bad_validations"] + 1)
    entry = {"validation": len(state["history"]), "epoch": round(state["step"] / n_steps, 4), "step": state["step"],
             "train_loss": window.loss_sum / max(window.loss_n, 1),
             "valid": _metric_values(valid[cfg.eval.select_protocol]),
             "valid_exclude_seen": _metric_values(valid["full_exclude_seen"]),
             "seq_per_s": float(consumed[0]) / max(train_s, 1e-9), "wall_s": state["wall_s"],
             "lr": engine.get_lr()[0], "sequences": int(consumed[0])}
    if "decay" in valid:
        entry["valid_decay"] = valid["decay"]
    if gpu is not None:  # on CUDA only: the CPU's history is unchanged
        entry["gpu"] = gpu
        torch.cuda.reset_peak_memory_stats()  # the next window's peak leaves this validation out
    state["history"].append(entry)
    stop = state["bad_validations"] >= cfg.train.early_stopping_patience
    state["stopped_early"] = stop and state["step"] < n_steps * cfg.train.epochs
    if out:
        out.validation(entry, state)
    return stop


def _metric_values(result: dict) -> dict:
    """hr/ndcg/mrr at every eval.ks cut-off, without the user counts."""
    return {k: v for k, v in result.items() if "@" in k}
