"""Training progress on the driver: rank 0 posts to a tiny Ray actor, the driver draws a tqdm bar from it.

Ray Train workers run in other processes (other machines on a cluster); their prints reach the driver prefixed
and line by line, which cannot drive a bar. Rank 0 therefore `put`s its step and validation updates into a
`ProgressBoard` actor (fire-and-forget, one small dict every `train.log_every_steps` steps) and a driver thread
polls it. `train.progress`: `bar` draws the bar, `lines` keeps rank 0's printed lines, `auto` picks `bar` when the
driver's stderr is a terminal (an interactive `interest train`) and `lines` otherwise (logs, `ray job submit`).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Any, Iterator, TextIO


class ProgressBoard:
    """Latest step update and every validation summary so far (runs as a Ray actor; plain Python here)."""

    def __init__(self) -> None:
        self._step: dict | None = None
        self._validations: list[dict] = []

    def put_step(self, update: dict) -> None:
        self._step = update

    def put_validation(self, summary: dict) -> None:
        self._validations.append(summary)

    def read(self, seen: int) -> tuple[dict | None, list[dict]]:
        return self._step, self._validations[seen:]


def resolve_mode(mode: str, stream: TextIO | None = None) -> str:
    if mode != "auto":
        return mode
    stream = stream or sys.stderr
    return "bar" if hasattr(stream, "isatty") and stream.isatty() else "lines"


def validation_line(s: dict) -> str:
    return (f"[interest] step {s['step']} (epoch {s['epoch']:.2f}) validation: loss {s['train_loss']:.4f} valid "
            f"{s['metric']} {s['valid']:.4f} (best {s['best']:.4f} @ step {s['best_step']}) {s['seq_per_s']:.0f} seq/s")


class DriverProgress:
    """Polls a board (a Ray actor handle, or a plain object in tests) and draws the bar until `close()`."""

    def __init__(self, board: Any, total_steps: int, file: TextIO | None = None, interval_s: float = 0.5):
        from tqdm import tqdm

        self._board, self._interval, self._file = board, interval_s, file or sys.stderr
        self._seen = 0
        self._bar = tqdm(total=total_steps, unit="step", file=self._file, dynamic_ncols=True,
                         desc="train", mininterval=0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interest-progress", daemon=True)

    def _read(self) -> tuple[dict | None, list[dict]]:
        read = self._board.read
        if hasattr(read, "remote"):
            import ray

            return ray.get(read.remote(self._seen), timeout=10)
        return read(self._seen)

    def poll(self) -> None:
        step, validations = self._read()
        for s in validations:
            self._bar.write(validation_line(s), file=self._file)
        self._seen += len(validations)
        if step is not None:
            self._bar.set_description(f"epoch {step['epoch']}", refresh=False)
            self._bar.set_postfix(loss=f"{step['loss']:.4f}", seq_s=f"{step['seq_per_s']:.0f}",
                                  lr=f"{step['lr']:.1e}", refresh=False)
            self._bar.update(max(0, step["step"] - self._bar.n))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a progress bar must never take training down
                pass

    def start(self) -> "DriverProgress":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        try:
            self.poll()
        except Exception:  # noqa: BLE001 - the actor may be gone with a failed run
            pass
        self._bar.close()


@contextlib.contextmanager
def driver_progress(mode: str, total_steps: int) -> Iterator[str | None]:
    """Around `trainer.fit()`: with mode `bar` (after `auto` is resolved) starts the board actor and the bar and
    yields the board's name for the workers; otherwise yields None and rank 0 prints lines."""
    if resolve_mode(mode) != "bar":
        yield None
        return
    import ray

    name = f"interest-progress-{os.getpid()}-{int(time.time())}"
    board = ray.remote(num_cpus=0)(ProgressBoard).options(name=name).remote()
    progress = DriverProgress(board, total_steps).start()
    try:
        yield name
    finally:
        progress.close()
        ray.kill(board)
