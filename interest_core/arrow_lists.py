"""Arrow list columns <-> flat numpy arrays: what the vectorized per-user passes (history_features, window_rows,
the ETL's graph pairs) read and write. A batch's list column of event structs becomes one flat numpy array per
field plus, per element, its row and 0-based position in the row's list; lists are rebuilt from lengths."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

EVENT_FIELDS = ("ts", "item_idx", "event_type_idx", "category_idx", "dt")


@dataclass
class FlatEvents:
    """A batch's non-null lists of event structs, flattened: `length` and `start` per row, `row` and `pos` per
    element, and one array per struct field (fields[name])."""
    length: np.ndarray
    start: np.ndarray
    row: np.ndarray
    pos: np.ndarray
    fields: dict[str, np.ndarray]


def flatten_events(lists: pa.Array, fields: tuple[str, ...] = EVENT_FIELDS) -> FlatEvents:
    if lists.null_count:
        raise ValueError("flatten_events: a list is null; filter null lists before the vectorized pass")
    length = np.asarray(pc.list_value_length(lists), dtype=np.int64)
    flat = lists.flatten()
    start = np.zeros(len(length), dtype=np.int64)
    np.cumsum(length[:-1], out=start[1:])
    row = np.repeat(np.arange(len(length)), length)
    pos = np.arange(len(row)) - start[row]
    return FlatEvents(length, start, row, pos, {f: np.asarray(pc.struct_field(flat, f)) for f in fields})


def lists(length: np.ndarray, values: np.ndarray, dtype) -> pa.ListArray:
    """A list array of len(length) rows whose rows hold the consecutive runs of values of those lengths."""
    offsets = np.zeros(len(length) + 1, dtype=np.int32)
    np.cumsum(length, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(values).astype(dtype, copy=False)))


def runs(first: np.ndarray, length: np.ndarray) -> np.ndarray:
    """The indices first[k], first[k] + 1, .., first[k] + length[k] - 1 for every k, concatenated."""
    total = int(length.sum())
    ends = np.cumsum(length)
    return np.repeat(first - (ends - length), length) + np.arange(total)


def distinct_in_order(row: np.ndarray, values: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, its distinct values in order of first appearance (row sorted, as flatten_events gives it): the
    indices of those first appearances, and how many each row has."""
    n_values = int(values.max(initial=0)) + 1
    first = np.unique(row.astype(np.int64) * n_values + values, return_index=True)[1]
    first.sort()  # by row, then by first appearance
    return first, np.bincount(row[first], minlength=n_rows)


def prefix_counts(flags: np.ndarray, start: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Per element, how many flagged elements precede it in its row (each row's elements consecutive)."""
    before = np.cumsum(flags, dtype=np.int64) - flags
    return before - before[start[row]] if len(before) else before


def new_days(ts: np.ndarray, pos: np.ndarray, day_s: int = 86400) -> np.ndarray:
    """1 where an event opens a UTC day of its row, else 0: rows in time order, so a prefix's distinct days are the
    sum of these flags over it."""
    day = np.floor_divide(ts, day_s)
    flags = np.ones(len(day), dtype=np.int64)
    flags[1:] = (day[1:] != day[:-1]) | (pos[1:] == 0)
    return flags


def batches(rows: Callable[..., pa.RecordBatch], batches: Iterator[pa.RecordBatch], **kwargs
            ) -> Iterator[pa.RecordBatch]:
    """rows(batch, **kwargs) for each non-empty batch: the function Spark's mapInArrow calls once per partition."""
    for batch in batches:
        if batch.num_rows:
            yield rows(batch, **kwargs)
