"""`train_loop_per_worker`: what every Ray Train worker runs. Reads only its `config` argument, never driver
globals. One DeepSpeed rank per worker; validation each epoch on this rank's part of the valid split, with
exact all-reduced counts, drives checkpoint selection and early stopping (metric eval.select on protocol
eval.select_protocol).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from interest_core.batches import read_eval_split
from interest_core.config import Config, config_from_dict
from interest_core.modelargs import ModelArgs, model_args_for_data
from interest_core.scoring import new_accumulators, score_rows
from ray_train.data import arrow_train_collate
from ray_train.engine import build_engine, ensure_accelerator_env
from ray_train.models.model import InterestModel
from ray_train.progress import epoch_line

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

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**d)


def steps_per_epoch(train_rows: int, world: int, cfg: Config) -> tuple[int, int]:
    """(optimizer steps per epoch, micro batch) — every rank runs the same count, so no collective hangs."""
    per_rank = train_rows // world
    if per_rank == 0:
        raise ValueError(f"{train_rows} training windows cannot feed {world} workers; use fewer --workers")
    micro = min(cfg.train.micro_batch_size, per_rank)
    steps = max(1, per_rank // micro // cfg.train.grad_accum)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    return steps, micro


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
    model = InterestModel(args)
    model.load_state_dict(state)
    return model


def validate(engine, args: ModelArgs, job: Job, cfg: Config, rows: dict) -> dict:
    """{protocol: metrics} over the whole valid split (or eval.max_valid_users of it), all-reduced over ranks."""
    model = _scoring_model(engine, args, cfg.train.zero_stage)
    model.eval()
    accs = new_accumulators(cfg.eval.ks, VALID_PROTOCOLS)
    score_rows(model.score_all, rows, accs, max_len=args.max_len, batch_size=cfg.eval.batch_size)
    out = {}
    for proto, acc in accs.items():
        vec = acc.to_tensor(["all"])
        if dist.is_initialized():
            dist.all_reduce(vec)
        acc.from_tensor(vec, ["all"])
        out[proto] = acc.result()["all"]
    engine.train()
    return out


def save_checkpoint(engine, state: dict, args: ModelArgs, job: Job, cfg: Config, rank: int) -> str:
    """Every rank writes its DeepSpeed shards; rank 0 adds model.pt + meta.json (what rebuilds the run)."""
    tmp = tempfile.mkdtemp(prefix="interest-ckpt-")
    engine.save_checkpoint(tmp, tag="ds", client_state={"state": state})
    with _gathered(engine, cfg.train.zero_stage):
        if rank == 0:
            sd = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
            torch.save(sd, os.path.join(tmp, "model.pt"))
            meta = {"model_args": asdict(args), "config": job.config, "step": state["step"],
                    "epoch": state["epoch"], "data_dir": job.data_dir, "vocab": job.manifest["vocab"],
                    "split": job.manifest["split"]}
            Path(tmp, "meta.json").write_text(json.dumps(meta, indent=2))
            Path(tmp, "history.json").write_text(json.dumps(state["history"], indent=2))
            Path(tmp, "steps.json").write_text(json.dumps(state["steps"]))
    return tmp


def _fresh_state() -> dict:
    return {"epoch": 0, "step": 0, "best": -1.0, "best_epoch": -1, "bad_epochs": 0, "history": [], "steps": [],
            "wall_s": 0.0, "stopped_early": False}


def train_loop_per_worker(config: dict) -> None:
    job = Job.from_dict(config)
    cfg = config_from_dict(job.config)
    ensure_accelerator_env()
    import ray.train

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(cfg.train.cpus_per_worker)))
    torch.manual_seed(cfg.train.seed + rank)
    args = model_args_for_data(cfg, job.manifest)
    model = InterestModel(args)
    n_steps, micro = steps_per_epoch(job.manifest["rows"]["train"], world, cfg)
    engine, _ = build_engine(model, cfg.train, world, n_steps * cfg.train.epochs)
    state = _fresh_state()
    ckpt = ray.train.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            _, client = engine.load_checkpoint(d, tag="ds")
        state = client["state"]
        if rank == 0:
            print(f"[interest] resuming from checkpoint {ckpt.path} at step {state['step']}, "
                  f"epoch {state['epoch']} (best {select_key(cfg)}={state['best']:.4f})", flush=True)
    if rank == 0:
        print(f"[interest] model {args.arch}: {model.num_params():,} parameters, loss={args.loss}; global batch = "
              f"{micro} micro x {cfg.train.grad_accum} accum x {world} world = "
              f"{micro * cfg.train.grad_accum * world} sequences; {n_steps} steps/epoch; ZeRO-{cfg.train.zero_stage}",
              flush=True)
    valid_rows = read_eval_split(job.data_dir, "valid", rank, world, cfg.eval.max_valid_users)
    out = _Reporter(job, cfg) if rank == 0 else None
    shard = ray.train.get_dataset_shard("train")
    collate = arrow_train_collate(args.max_len)
    try:
        for epoch in range(state["epoch"], cfg.train.epochs):
            t0 = time.time()
            batches = shard.iter_torch_batches(batch_size=micro, collate_fn=collate, drop_last=True,
                                               local_shuffle_buffer_size=max(4 * micro, 1024),
                                               local_shuffle_seed=cfg.train.seed + epoch)
            seqs, loss_mean = _train_epoch(engine, batches, n_steps * cfg.train.grad_accum, cfg, state, epoch,
                                           world, out)
            train_s = time.time() - t0
            consumed = torch.tensor([seqs], dtype=torch.float64)
            dist.all_reduce(consumed)
            valid = validate(engine, args, job, cfg, valid_rows)
            score = valid[cfg.eval.select_protocol][cfg.eval.select]
            state["wall_s"] += time.time() - t0
            improved = score > state["best"]
            state.update(epoch=epoch + 1, best=max(score, state["best"]),
                         best_epoch=epoch if improved else state["best_epoch"],
                         bad_epochs=0 if improved else state["bad_epochs"] + 1)
            entry = {"epoch": epoch, "step": state["step"], "train_loss": loss_mean,
                     "valid": _metric_values(valid[cfg.eval.select_protocol]),
                     "valid_exclude_seen": _metric_values(valid["full_exclude_seen"]),
                     "seq_per_s": float(consumed[0]) / max(train_s, 1e-9), "wall_s": state["wall_s"],
                     "lr": engine.get_lr()[0], "sequences": int(consumed[0])}
            state["history"].append(entry)
            stop = state["bad_epochs"] >= cfg.train.early_stopping_patience
            state["stopped_early"] = stop and epoch + 1 < cfg.train.epochs
            if out:
                out.epoch(entry, score, state)
            tmp = save_checkpoint(engine, state, args, job, cfg, rank)
            metrics = {select_key(cfg): score, "epoch": epoch, "step": state["step"], "train_loss": loss_mean,
                       "best_epoch": state["best_epoch"], "stopped_early": state["stopped_early"],
                       "rows_skipped": job.manifest["rows"]["train"] - int(consumed[0])}
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
            shutil.rmtree(tmp, ignore_errors=True)
            if stop:
                break
    finally:
        if out:
            out.close()


def _metric_values(result: dict) -> dict:
    """hr/ndcg/mrr at every eval.ks cut-off, without the user counts."""
    return {k: v for k, v in result.items() if "@" in k}


def _train_epoch(engine, batches, max_micro_steps: int, cfg: Config, state: dict, epoch: int, world: int,
                 out: "_Reporter | None") -> tuple[int, float]:
    """One pass over this rank's shard: (sequences trained on, mean loss). Every rank runs max_micro_steps."""
    t0, seqs, loss_sum, loss_n, micro_steps = time.time(), 0, 0.0, 0, 0
    for batch in batches:
        if micro_steps >= max_micro_steps:
            continue  # keep draining so every rank's iterator ends together
        loss, stats = engine(batch)
        engine.backward(loss)
        engine.step()
        micro_steps += 1
        seqs += batch["items"].shape[0]
        loss_sum, loss_n = loss_sum + float(stats["loss"]), loss_n + 1
        if micro_steps % cfg.train.grad_accum == 0:
            state["step"] += 1
            if state["step"] % cfg.train.log_every_steps == 0:
                point = {"epoch": epoch, "step": state["step"], "loss": loss_sum / loss_n,
                         "seq_per_s": seqs * world / max(time.time() - t0, 1e-9), "lr": engine.get_lr()[0]}
                state["steps"].append({k: point[k] for k in ("step", "loss", "seq_per_s")} | {
                    "wall_s": state["wall_s"] + time.time() - t0})
                if out:
                    out.step(point)
    return seqs, loss_sum / max(loss_n, 1)


class _Reporter:
    """Rank 0's outputs: the driver's progress board (or printed lines), TensorBoard and MLflow."""

    def __init__(self, job: Job, cfg: Config):
        import ray

        self.metric = cfg.eval.select
        self.board = ray.get_actor(job.progress_board) if job.progress_board else None
        self.writer = _tensorboard(job.run_dir)
        self.tracker = _MLflow(cfg.train.mlflow_tracking_uri, Path(job.run_dir).name, job.config)

    def step(self, p: dict) -> None:
        if self.board is not None:
            self.board.put_step.remote(p)
        else:
            print(f"[interest] epoch {p['epoch']} step {p['step']} loss {p['loss']:.4f} {p['seq_per_s']:.0f} seq/s "
                  f"lr {p['lr']:.2e}", flush=True)
        if self.writer:
            self.writer.add_scalar("train/loss", p["loss"], p["step"])

    def epoch(self, entry: dict, score: float, state: dict) -> None:
        summary = {"epoch": entry["epoch"], "train_loss": entry["train_loss"], "metric": self.metric, "valid": score,
                   "best": state["best"], "best_epoch": state["best_epoch"], "seq_per_s": entry["seq_per_s"]}
        if self.board is not None:
            self.board.put_epoch.remote(summary)
        else:
            print(epoch_line(summary), flush=True)
        self.tracker.log({f"valid_{self.metric.replace('@', '_at_')}": score, "train_loss": entry["train_loss"],
                          "seq_per_s": entry["seq_per_s"]}, state["step"])
        if self.writer:
            self.writer.add_scalar(f"valid/{self.metric}", score, entry["epoch"])
            self.writer.add_scalar("train/seq_per_s", entry["seq_per_s"], entry["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.close()
        self.tracker.close()


class _MLflow:
    """Rank 0's MLflow logging when train.mlflow_tracking_uri is set (the driver checked mlflow imports)."""

    def __init__(self, uri: str | None, run_name: str, config: dict):
        self.mlflow = None
        if uri:
            import mlflow
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("interest-trainer")
            mlflow.start_run(run_name=run_name)
            mlflow.log_params({f"{s}.{k}": v for s, sec in config.items() for k, v in sec.items()})
            self.mlflow = mlflow

    def log(self, metrics: dict, step: int) -> None:
        if self.mlflow:
            self.mlflow.log_metrics(metrics, step=step)

    def close(self) -> None:
        if self.mlflow:
            self.mlflow.end_run()


def _tensorboard(run_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(run_dir, "tensorboard"))
    except (ImportError, OSError) as exc:  # a read-only or remote run dir must not stop training
        print(f"[interest] tensorboard disabled: {exc}", flush=True)
        return None
