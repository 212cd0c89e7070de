"""Training-window rows (contract.TRAIN_SCHEMA) cut from Arrow batches of whole event lists by the core's window
rule (windows.py), vectorized: the ETL runs `windows` on each partition (arrow_lists.batches) through Spark's mapInArrow.

Input columns: user_id, ev (array<struct<ts, item_idx, event_type_idx, category_idx, dt>>, oldest first, at least
two events), user_features and, for the next-action windows, scored_from (1-based position of the first held-out
event). One row per window k = 0 (most recent) .. n_windows - 1, in that order within a user; with scored_from
only the windows ending at or after it, their first_target moved up to it. Per window: n_before (the user's
events before it), first_ts (the user's first event), days_before (distinct UTC days with an event among those
n_before events) and buys_before (events of the buy type among them): the whole-history counts the decay head
continues inside a window (batches.py). Events are in time order, so the distinct days of a prefix are its day
changes: every count is a prefix sum, linear in the events.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from interest_core.arrow_lists import flatten_events, lists, new_days, prefix_counts, runs
from interest_core.contract import TRAIN_SCHEMA
from interest_core.windows import Ops, WindowRule

NUMPY = Ops(greatest=np.maximum, ceil=lambda x: np.ceil(x).astype(np.int64), where=np.where)
DAY_S = 86400


def counts_before(ts: np.ndarray, event_type: np.ndarray, pos: np.ndarray, start: np.ndarray, row: np.ndarray,
                  buy_type: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Per event, the distinct UTC days and the buys (events of buy_type; none when it is None) among the events
    before it in its row: days_before / buys_before of a row that starts there."""
    buys = (event_type == buy_type).astype(np.int64) if buy_type is not None else np.zeros(len(ts), np.int64)
    return prefix_counts(new_days(ts, pos, DAY_S), start, row), prefix_counts(buys, start, row)


def windows(batch: pa.RecordBatch, rule: WindowRule, buy_type: int | None, scored: bool) -> pa.RecordBatch:
    ev = flatten_events(batch.column("ev"))
    m, start, row = ev.length, ev.start, ev.row
    f = ev.fields
    n_win = rule.n_windows(m, NUMPY)
    last = n_win - 1
    if scored:
        scored_from = np.asarray(batch.column("scored_from"), dtype=np.int64)
        last = np.minimum(last, (m - scored_from) // rule.stride)
    count = np.maximum(last + 1, 0)
    w_row = np.repeat(np.arange(len(m)), count)
    k = np.arange(len(w_row)) - np.repeat(np.cumsum(count) - count, count)
    end = rule.end(m[w_row], k)
    w_start = rule.start(end, NUMPY)
    first = rule.first_target(k, n_win[w_row], NUMPY)
    if scored:
        keep = end >= scored_from[w_row]
        w_row, k, end, w_start = w_row[keep], k[keep], end[keep], w_start[keep]
        first = np.maximum(first[keep], scored_from[w_row] - w_start)
    n_before = w_start - 1
    length = end - n_before
    idx = runs(start[w_row] + n_before, length)
    at = start[w_row] + n_before  # the window's first element: its prefix counts are those before the window
    days_before, buys_before = (c[at] for c in counts_before(f["ts"], f["event_type_idx"], ev.pos, start, row,
                                                            buy_type))
    columns = {
        "user_id": batch.column("user_id").take(pa.array(w_row)),
        "items": lists(length, f["item_idx"][idx], np.int32),
        "event_types": lists(length, f["event_type_idx"][idx], np.int32),
        "ts": lists(length, f["ts"][idx], np.int64), "dt": lists(length, f["dt"][idx], np.int64),
        "window": pa.array(k.astype(np.int32)), "first_target": pa.array(first.astype(np.int32)),
        "n_before": pa.array(n_before.astype(np.int32)), "first_ts": pa.array(f["ts"][start[w_row]]),
        "days_before": pa.array(days_before.astype(np.int32)), "buys_before": pa.array(buys_before.astype(np.int32)),
        "user_features": batch.column("user_features").take(pa.array(w_row)),
    }
    return pa.RecordBatch.from_arrays([columns[c.name].cast(c.type) for c in TRAIN_SCHEMA], schema=TRAIN_SCHEMA)
