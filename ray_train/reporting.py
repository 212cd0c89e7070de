"""Rank 0's outputs during training: the driver's progress board (or printed lines), TensorBoard and MLflow."""
from __future__ import annotations

import os
from pathlib import Path

from interest_core.config import Config, redacted
from ray_train.progress import validation_line


class Reporter:
    """Rank 0's outputs: the driver's progress board (or printed lines), TensorBoard and MLflow."""

    def __init__(self, run_dir: str, progress_board: str | None, config: dict, cfg: Config):
        import ray

        self.metric = cfg.eval.select
        self.board = ray.get_actor(progress_board) if progress_board else None
        self.writer = _tensorboard(run_dir)
        self.tracker = _MLflow(cfg.train.mlflow_tracking_uri, Path(run_dir).name, config)

    def step(self, p: dict) -> None:
        if self.board is not None:
            self.board.put_step.remote(p)
        else:
            print(f"[interest] epoch {p['epoch']} step {p['step']} loss {p['loss']:.4f} {p['seq_per_s']:.0f} seq/s "
                  f"lr {p['lr']:.2e}", flush=True)
        if self.writer:
            self.writer.add_scalar("train/loss", p["loss"], p["step"])

    def validation(self, entry: dict, state: dict) -> None:
        score = entry["valid"][self.metric]
        summary = {"step": entry["step"], "epoch": entry["epoch"], "train_loss": entry["train_loss"],
                   "metric": self.metric, "valid": score, "best": state["best"], "best_step": state["best_step"],
                   "seq_per_s": entry["seq_per_s"]}
        if self.board is not None:
            self.board.put_validation.remote(summary)
        else:
            print(validation_line(summary), flush=True)
        self.tracker.log({f"valid_{self.metric.replace('@', '_at_')}": score, "train_loss": entry["train_loss"],
                          "seq_per_s": entry["seq_per_s"]}, entry["step"])
        if self.writer:
            self.writer.add_scalar(f"valid/{self.metric}", score, entry["step"])
            self.writer.add_scalar("train/seq_per_s", entry["seq_per_s"], entry["step"])
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
            mlflow.log_params({f"{s}.{k}": v for s, sec in redacted(config).items() for k, v in sec.items()})
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
