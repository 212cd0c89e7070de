"""Rank 0's outputs during training: the driver's progress board (or printed lines), TensorBoard and MLflow.

Tracking is best effort: an MLflow or TensorBoard error is one warning, after which that tracker is off; training
goes on. A resumed run (resubmitted, or restarted after a worker failed) continues its MLflow run.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from interest_core.config import Config, redacted
from ray_train.progress import validation_line


class Reporter:
    """Rank 0's outputs: the driver's progress board (or printed lines), TensorBoard and MLflow."""

    def __init__(self, run_dir: str, progress_board: str | None, config: dict, cfg: Config,
                 mlflow_run_id: str | None = None):
        import ray

        self.metric = cfg.eval.select
        self.board = ray.get_actor(progress_board) if progress_board else None
        self.writer = _tensorboard(run_dir)
        self.tracker = _MLflow(cfg.train.mlflow_tracking_uri, Path(run_dir).name, config, mlflow_run_id)

    @property
    def mlflow_run_id(self) -> str | None:
        return self.tracker.run_id

    def _write(self, fn, *args) -> None:
        """A TensorBoard write; an error turns TensorBoard off with one warning."""
        if self.writer is None:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a full disk or a dead remote must not end training
            _warn("TensorBoard", exc)
            self.writer = None

    def step(self, p: dict) -> None:
        if self.board is not None:
            self.board.put_step.remote(p)
        else:
            print(f"[interest] epoch {p['epoch']} step {p['step']} loss {p['loss']:.4f} {p['seq_per_s']:.0f} seq/s "
                  f"lr {p['lr']:.2e}", flush=True)
        self._write(lambda: self.writer.add_scalar("train/loss", p["loss"], p["step"]))

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
        self._write(lambda: (self.writer.add_scalar(f"valid/{self.metric}", score, entry["step"]),
                             self.writer.add_scalar("train/seq_per_s", entry["seq_per_s"], entry["step"]),
                             self.writer.flush()))

    def close(self) -> None:
        self._write(lambda: self.writer.close())
        self.tracker.close()


def _warn(tracker: str, exc: BaseException) -> None:
    first = (str(exc).splitlines() or [""])[0][:300]
    print(f"[interest] WARNING: {tracker} failed ({type(exc).__name__}: {first}); {tracker} is off for the rest of "
          f"this run, training goes on", file=sys.stderr, flush=True)


class _MLflow:
    """Rank 0's MLflow logging when train.mlflow_tracking_uri is set (the driver checked mlflow imports); run_id:
    the run to continue (a resumed training run's, kept in its checkpoints)."""

    def __init__(self, uri: str | None, run_name: str, config: dict, run_id: str | None = None):
        self.mlflow, self.run_id = None, run_id
        if not uri:
            return
        try:
            import mlflow
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("interest-trainer")
            if run_id:
                mlflow.start_run(run_id=run_id)
            else:
                self.run_id = mlflow.start_run(run_name=run_name).info.run_id
                mlflow.log_params({f"{s}.{k}": v for s, sec in redacted(config).items() for k, v in sec.items()})
            self.mlflow = mlflow
        except Exception as exc:  # noqa: BLE001 - an unreachable tracking server must not end training
            _warn("MLflow", exc)

    def log(self, metrics: dict, step: int) -> None:
        if self.mlflow:
            try:
                self.mlflow.log_metrics(metrics, step=step)
            except Exception as exc:  # noqa: BLE001
                _warn("MLflow", exc)
                self.mlflow = None

    def close(self) -> None:
        if self.mlflow:
            try:
                self.mlflow.end_run()
            except Exception as exc:  # noqa: BLE001
                _warn("MLflow", exc)


def _tensorboard(run_dir: str):
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(run_dir, "tensorboard"))
    except (ImportError, OSError) as exc:  # a read-only or remote run dir must not stop training
        print(f"[interest] tensorboard disabled: {exc}", flush=True)
        return None
