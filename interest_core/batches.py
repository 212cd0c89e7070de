"""Model batches from shard rows: the one collate, and the one way to read and deal evaluation rows.

Sequences are left-padded to max_len so the most recent event always sits at position max_len - 1. A training
window holds up to max_len + 1 events: positions [:-1] are the input, [1:] the next-item targets, so every position
of a window carries a loss. An evaluation row's history is the input; its target is scored at the last position.

Batch (dict of int64 tensors, (B, max_len) unless said otherwise):
    items, event_types, ts, dt      inputs (0 = padding; ts in unix seconds; dt = seconds since the previous
                                    event of the whole history, 0 for the first)
    n_before, first_ts,             (B,) the user's events before the first input, time of its first event,
    days_before, buys_before        distinct days and buys among those events (rows that carry them: training
                                    windows, decay rows)
    user_features                   (B, F) the user's side-feature ids (interest_core.user_features; 0 = unknown),
                                    when the rows carry a non-empty user_features list
    targets, target_event_types     next item / event type at each position (training batches only)
    target_gap                      seconds to the next event at each scored position, -1 = none (training only)
    target_censored                 bool: the gap ends at the end of observation, not at an event: the next
                                    "event" is the censoring marker (item 0) of a split=time training window
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from interest_core.contract import DECAY_COLUMNS, EVAL_COLUMNS, split_files

INPUT_COLUMNS = ("items", "event_types", "ts", "dt")
USER_COLUMNS = ("n_before", "first_ts", "days_before", "buys_before")


def pad_left(col: Any, length: int, drop_first: bool = False, drop_last: bool = False) -> np.ndarray:
    """A list column (Arrow, or a sequence of int sequences) -> (B, length) int64, left-padded with 0.

    Row r keeps the last `length` elements of seq[drop_first : n - drop_last]; vectorised (no loop over rows).
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    elif not isinstance(col, pa.Array):
        col = pa.array([np.asarray(x, dtype=np.int64) for x in col], type=pa.list_(pa.int64()))
    n = pc.list_value_length(col).to_numpy(zero_copy_only=False).astype(np.int64)
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    starts = np.cumsum(n) - n
    end = n - int(drop_last)
    take = np.clip(np.minimum(end - int(drop_first), length), 0, None)
    within = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    out = np.zeros((len(n), length), dtype=np.int64)
    out[np.repeat(np.arange(len(n)), take), np.repeat(length - take, take) + within] = \
        values[np.repeat(starts + end - take, take) + within]
    return out


def collate(rows: Any, max_len: int, targets: bool = False) -> dict[str, torch.Tensor]:
    """Rows (an Arrow table or a dict of list columns) -> model batch. targets=True: training windows, whose last
    event is only a target and whose first is only an input; targets before the row's `first_target` (when the
    rows have that column) are 0, i.e. carry no loss: an older window scores them with more context."""
    names = rows.column_names if isinstance(rows, pa.Table) else list(rows)
    if "dt" not in names:  # ad-hoc rows: gaps within the row, 0 at its first event
        ts = rows["ts"].to_pylist() if isinstance(rows["ts"], (pa.Array, pa.ChunkedArray)) else rows["ts"]
        gaps = [np.diff(np.asarray(t, dtype=np.int64), prepend=t[0] if len(t) else 0) for t in ts]
        rows = {k: rows[k] for k in names} | {"dt": gaps}
        names = [*names, "dt"]
    pad = lambda name, **kw: torch.from_numpy(pad_left(rows[name], max_len, **kw))  # noqa: E731
    if not targets:
        return {name: pad(name) for name in INPUT_COLUMNS} | _user_columns(rows, names)
    batch = {name: pad(name, drop_last=True) for name in INPUT_COLUMNS} | _user_columns(rows, names)
    batch["targets"] = pad("items", drop_first=True)
    batch["target_event_types"] = pad("event_types", drop_first=True)
    has_target = batch["items"] != 0  # (B, L): every input position has a next event or the marker
    batch["target_censored"] = has_target & (batch["targets"] == 0)
    batch["target_gap"] = torch.where(has_target, pad("ts", drop_first=True) - batch["ts"], -1)
    if "first_target" in names:
        items = rows["items"]
        lengths = (pc.list_value_length(items).to_numpy(zero_copy_only=False) if isinstance(items, (pa.Array,
                   pa.ChunkedArray)) else np.array([len(x) for x in items]))
        col = rows["first_target"]
        first = (col.to_numpy() if isinstance(col, (pa.Array, pa.ChunkedArray)) else np.asarray(col)).astype(np.int64)
        # Targets sit right-aligned: the last (length - first_target) of them carry a loss.
        scored = torch.from_numpy(np.arange(max_len)[None, :] >= max_len - (lengths - first)[:, None])
        batch["targets"] = batch["targets"] * scored
        batch["target_event_types"] = batch["target_event_types"] * scored
        batch["target_censored"] = batch["target_censored"] & scored
        batch["target_gap"] = torch.where(scored, batch["target_gap"], -1)
    return batch


def _user_columns(rows: Any, names: list[str]) -> dict[str, torch.Tensor]:
    """The per-row scalars of USER_COLUMNS as (B,) int64 tensors and user_features as (B, F), when the rows carry
    them."""
    out = {}
    if "user_features" in names:
        col = rows["user_features"]
        if isinstance(col, (pa.Array, pa.ChunkedArray)):
            width = int(pc.max(pc.list_value_length(col)).as_py() or 0)
        else:
            width = max((len(x) for x in col if x is not None), default=0)
        if width:
            out["user_features"] = torch.from_numpy(pad_left(col, width))
    for name in USER_COLUMNS:
        if name in names:
            col = rows[name]
            # a copy: Arrow's zero-copy arrays are read-only, which torch warns about
            out[name] = torch.from_numpy(np.array(col.to_numpy() if isinstance(col, (pa.Array, pa.ChunkedArray))
                                                  else col, dtype=np.int64))
    return out


def read_eval_split(data_dir: str | Path, split: str, rank: int = 0, world_size: int = 1,
                    max_rows: int | None = None) -> dict[str, list]:
    """This rank's part of a valid/test split as columns (files, then rows, dealt round-robin; nothing dropped)."""
    table = pq.ParquetDataset(split_files(data_dir, split)).read(columns=EVAL_COLUMNS)
    # Rows are in a deterministic order (sorted files, sorted rows), so rank r taking rows r, r+W, ... covers
    # every row exactly once across ranks.
    if max_rows is not None:
        table = table.slice(0, max_rows)
    idx = np.arange(rank, table.num_rows, world_size)
    return table.take(idx).to_pydict()


def read_decay_split(data_dir: str | Path, which: str, rank: int = 0, world_size: int = 1,
                     max_rows: int | None = None) -> dict[str, list] | None:
    """This rank's part of decay_valid / decay_test as columns (dealt like read_eval_split; max_rows: only the first
    rows in stored order are read); None when the data set has no decay rows (split=leave-one-out)."""
    if not (Path(data_dir) / f"decay_{which}").is_dir():
        return None
    table = read_head(split_files(data_dir, f"decay_{which}"), DECAY_COLUMNS, max_rows)
    return table.take(np.arange(rank, table.num_rows, world_size)).to_pydict()


def read_head(files: list[str], columns: list[str], max_rows: int | None = None) -> pa.Table:
    """The first max_rows rows (all when None) of Parquet files in their order, reading no more than that: one row
    group at a time, no read-ahead (a dataset scanner's read-ahead held more the larger the files were)."""
    if max_rows is None:
        import pyarrow.dataset as pads

        return pads.dataset(files, format="parquet").to_table(columns=columns)
    parts, n = [], 0
    schema = pq.ParquetFile(files[0]).schema_arrow if files else None
    for f in files:
        pf = pq.ParquetFile(f)
        for g in range(pf.num_row_groups):  # explicitly one row group at a time: no reader that reads ahead
            if n >= max_rows:
                break
            t = pf.read_row_group(g, columns=columns, use_threads=False)
            parts.append(t.slice(0, max_rows - n))
            n += parts[-1].num_rows
    if parts:
        return pa.concat_tables(parts)
    return pa.schema([schema.field(c) for c in columns]).empty_table() if schema else pa.table({})


def iter_batches(files: list[str], columns: list[str], batch_size: int = 8_192) -> Iterator[pa.RecordBatch]:
    """Record batches of Parquet files in their order, one file and one row group at a time: no reader that reads
    ahead (a dataset scanner reads several files ahead, so its memory grew with the files' number and size)."""
    for f in files:
        yield from pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def train_row_groups(data_dir: str | Path, seed: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """The train split's row groups in a seeded random order, one table each: a bounded, unbiased sample of
    windows for whoever reads only part of the split (the decay refit, the next-action transition baseline)."""
    import pyarrow.dataset as pads

    groups = [rg for f in pads.dataset(split_files(data_dir, "train")).get_fragments()
              for rg in f.split_by_row_group()]
    for i in np.random.default_rng(seed).permutation(len(groups)):
        yield groups[i].to_table(columns=columns)


def row_batches(rows: dict[str, list], batch_size: int) -> Iterator[tuple[slice, dict[str, list]]]:
    """(slice, the rows in it) for consecutive batches of at most batch_size rows (eval.batch_size)."""
    n = len(next(iter(rows.values()))) if rows else 0
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        yield sl, {k: v[sl] for k, v in rows.items()}
