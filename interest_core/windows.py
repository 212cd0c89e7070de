"""The one rule that cuts a user's training events into windows, written once for every engine that applies it.

A user's training part holds m events (oldest first, positions 1..m). Windows hold at most span = max_len + 1
events (the model reads max_len inputs and predicts the next event at each); they are counted back from the most
recent event, one every `stride` events:

    window k (k = 0 is the most recent):  end_k = m - k * stride,  start_k = max(1, end_k - span + 1)
    number of windows:                     1 + max(0, ceil((m - span) / stride))

So window k > 0 shares its last `overlap = span - stride` events with window k - 1, and only its first
`length - overlap` events are new.

Loss: each target (every event but a window's first) carries a loss in exactly one window, the oldest window that
holds it as a target, where it has the most left context. So the oldest window scores all its targets
(first_target = 1) and every other window only its last `stride` ones (first_target = span - stride): every target
sees at least max_len - stride + 1 events before it (or its whole history), and an epoch costs about
max_len / stride times a pass of non-overlapping windows, not max_len times (one sample per prefix).

The Spark ETL cuts the windows and stores first_target with these formulas (on Columns), the collate masks the
targets before first_target, the evaluator counts each training event once with `new_events` (on numpy arrays);
all go through the same methods, given the operations of their engine.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Ops:
    """Element-wise max, ceil and if-then-else of one engine (Python ints, numpy arrays, Spark Columns)."""
    greatest: Callable[[Any, Any], Any]
    ceil: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]


PYTHON = Ops(greatest=max, ceil=math.ceil, where=lambda c, a, b: a if c else b)


@dataclass(frozen=True)
class WindowRule:
    max_len: int
    stride: int

    def __post_init__(self):
        if self.max_len < 1:
            raise ValueError(f"max_len={self.max_len}: must be >= 1; set data.max_len")
        if not 1 <= self.stride <= self.max_len:
            raise ValueError(f"stride={self.stride}: must be in [1, max_len={self.max_len}]; set data.stride")

    @classmethod
    def from_manifest(cls, manifest: dict) -> "WindowRule":
        split = manifest["split"]
        return cls(split["max_len"], split["stride"])

    @property
    def span(self) -> int:
        """Events per full window: max_len inputs plus the last target."""
        return self.max_len + 1

    @property
    def overlap(self) -> int:
        """Events window k > 0 shares with window k - 1."""
        return self.span - self.stride

    def n_windows(self, m: Any, ops: Ops = PYTHON) -> Any:
        return 1 + ops.greatest(0, ops.ceil((m - self.span) / self.stride))

    def end(self, m: Any, k: Any) -> Any:
        """1-based position of window k's last event."""
        return m - k * self.stride

    def start(self, end: Any, ops: Ops = PYTHON) -> Any:
        """1-based position of the first event of the window that ends at `end`."""
        return ops.greatest(1, end - self.span + 1)

    def first_target(self, k: Any, n_windows: Any, ops: Ops = PYTHON) -> Any:
        """0-based position in window k of the first event whose prediction carries a loss."""
        return ops.where(k == n_windows - 1, 1, self.span - self.stride)

    def new_events(self, k: Any, length: Any) -> Any:
        """Leading events of window k (of `length` events) that no more recent window holds (ints or arrays)."""
        return np.where(np.asarray(k) == 0, length, np.maximum(np.asarray(length) - self.overlap, 0))
