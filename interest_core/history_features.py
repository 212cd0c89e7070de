"""The evaluation rows' per-user features, computed on Arrow batches of whole histories (vectorized numpy).

The ETL's eval_rows, decay_rows and drift_rows (spark_jobs/sequences.py) run eval_features,
decay_features or drift_features on each partition (arrow_lists.batches) through Spark's mapInArrow: one
pass over each history in native numpy instead of some fifteen interpreted Spark array-lambda passes (Spark's
higher-order functions are evaluated element by element, without code generation). Input columns: user_id, hist
(array<struct<ts, item_idx, event_type_idx, category_idx, dt>>, oldest first, never empty), t (the target event,
same struct), user_features. Output: contract.EVAL_SCHEMA without target_is_cold_item (a join with the training
counts adds it). Definitions (every feature reads the history alone, never the target):

  items/event_types/ts/dt  the last max_len events;  history_len  the whole history's length
  seen_items            distinct items of the whole history, in order of first appearance
  top_categories        the 3 known categories (id > 0) with the most events, ties by smaller id
  time_since_last       target ts - last history event's ts
  drift_score           Jensen-Shannon divergence (base 2, in [0, 1]) between the known-category histograms of the
                        first floor(h / 2) events and the rest; 0 for a history of one event
  interest_categories   the INTEREST_CATEGORIES known categories with the most time-decayed weight, each event
                        weighing 0.5 ** ((last history ts - ts) / half_life), ties by smaller id;
  interest_weights      each one's share of the total weight of all known categories (0 when there is none)
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from interest_core.arrow_lists import distinct_in_order, flatten_events, lists, new_days
from interest_core.contract import DECAY_SCHEMA, DRIFT_SCHEMA, EVAL_SCHEMA, INTEREST_CATEGORIES
from interest_core.window_rows import DAY_S, counts_before

TOP_CATEGORIES = 3
EVAL_FEATURE_SCHEMA = pa.schema([f for f in EVAL_SCHEMA if f.name != "target_is_cold_item"])


def _top(row: np.ndarray, key: np.ndarray, score: np.ndarray, n_rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the indices (into row/key/score) of its k highest scores, ties by smaller key, best first; and the
    number kept per row. row must be sorted."""
    order = np.lexsort((key, -score, row))
    r = row[order]
    first = np.searchsorted(r, np.arange(n_rows))
    rank = np.arange(len(r)) - first[r]
    keep = order[rank < k]
    return keep, np.bincount(row[keep], minlength=n_rows)


def _per_row_key(row: np.ndarray, key: np.ndarray, n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (row, key) pairs, sorted, as (row, key) arrays, and each element's index among them."""
    uniq, inverse = np.unique(row.astype(np.int64) * n_keys + key, return_inverse=True)
    return uniq // n_keys, uniq % n_keys, inverse


def eval_features(batch: pa.RecordBatch, max_len: int, half_life_s: float) -> pa.RecordBatch:
    n = batch.num_rows
    ev = flatten_events(batch.column("hist"))
    h, start, row, pos = ev.length, ev.start, ev.row, ev.pos
    ts, item, cat = ev.fields["ts"], ev.fields["item_idx"], ev.fields["category_idx"]
    last_ts = ts[start + h - 1]
    _, seq = _tail(ev, max_len)
    first_seen, seen_len = distinct_in_order(row, item, n)

    known = cat > 0
    k_row, k_cat, k_pos = row[known], cat[known], pos[known]
    n_cats = int(cat.max(initial=0)) + 1
    u_row, u_cat, inv = _per_row_key(k_row, k_cat, n_cats)

    count = np.bincount(inv, minlength=len(u_row)).astype(np.float64)
    top, top_len = _top(u_row, u_cat, count, n, TOP_CATEGORIES)

    weight = np.power(0.5, (last_ts[k_row] - ts[known]) / float(half_life_s))
    mass = np.bincount(inv, weights=weight, minlength=len(u_row))
    total = np.bincount(u_row, weights=mass, minlength=n)
    best, best_len = _top(u_row, u_cat, mass, n, INTEREST_CATEGORIES)
    whole = total[u_row[best]]
    share = np.where(whole > 0, mass[best] / np.where(whole > 0, whole, 1.0), 0.0)

    early = k_pos < (h // 2)[k_row]
    n_early = np.bincount(k_row, weights=early, minlength=n)
    n_recent = np.bincount(k_row, weights=~early, minlength=n)
    p = np.bincount(inv, weights=early, minlength=len(u_row)) / np.maximum(n_early, 1)[u_row]
    q = np.bincount(inv, weights=~early, minlength=len(u_row)) / np.maximum(n_recent, 1)[u_row]
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda a: np.where(a > 0, a * np.log2(a / np.where(mid > 0, mid, 1.0)), 0.0)  # noqa: E731
        terms = (kl(p) + kl(q)) / 2
    drift = np.where(h >= 2, np.bincount(u_row, weights=terms, minlength=n), 0.0)

    t = batch.column("t")
    target = {f: pc.struct_field(t, f) for f in ("ts", "item_idx", "event_type_idx", "category_idx")}
    return _batch(seq | {
        "user_id": batch.column("user_id"), "target_item": target["item_idx"], "target_event_type": target["event_type_idx"],
        "target_ts": target["ts"], "target_category": target["category_idx"],
        "history_len": h,
        "seen_items": lists(seen_len, item[first_seen], np.int32),
        "top_categories": lists(top_len, u_cat[top], np.int32),
        "time_since_last": np.asarray(target["ts"]) - last_ts, "drift_score": drift,
        "interest_categories": lists(best_len, u_cat[best], np.int32),
        "interest_weights": lists(best_len, share, np.float64),
        "user_features": batch.column("user_features")}, EVAL_FEATURE_SCHEMA)


def _tail(ev, max_len: int) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """The last max_len events of each row: how many per row, and their items/event_types/ts/dt."""
    keep = np.nonzero(ev.pos >= (ev.length - max_len)[ev.row])[0]
    length = np.minimum(ev.length, max_len)
    f = ev.fields
    return length, {"items": lists(length, f["item_idx"][keep], np.int32),
                          "event_types": lists(length, f["event_type_idx"][keep], np.int32),
                          "ts": lists(length, f["ts"][keep], np.int64), "dt": lists(length, f["dt"][keep], np.int64)}


def _batch(columns: dict, schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array(columns[c.name]).cast(c.type) if isinstance(columns[c.name], np.ndarray)
                                       else columns[c.name].cast(c.type) for c in schema], schema=schema)


def decay_features(batch: pa.RecordBatch, max_len: int, end_ts: int, buy_type: int | None) -> pa.RecordBatch:
    """contract.DECAY_SCHEMA rows from columns user_id, hist, label: the last max_len events, the recency /
    frequency / repeat-day features of the whole history (BG/NBD's calibration summary on UTC days: x = active
    days - 1, t_x = last - first active day, T = end - the first active day's start; so x = 0 means t_x = 0)."""
    n = batch.num_rows
    ev = flatten_events(batch.column("hist"))
    h, start, row, f = ev.length, ev.start, ev.row, ev.fields
    tail_len, seq = _tail(ev, max_len)
    n_before = h - tail_len
    days_before, buys_before = (c[start + n_before] for c in counts_before(f["ts"], f["event_type_idx"], ev.pos,
                                                                           start, row, buy_type))
    first_ts, last_ts = f["ts"][start], f["ts"][start + h - 1]
    active_days = np.bincount(row, weights=new_days(f["ts"], ev.pos, DAY_S), minlength=n)
    buys = np.nonzero(f["event_type_idx"] == buy_type)[0] if buy_type is not None else np.zeros(0, np.int64)
    bought, bought_len = distinct_in_order(row[buys], f["item_idx"][buys], n)
    return _batch(seq | {
        "user_id": batch.column("user_id"), "end_ts": np.full(n, end_ts, np.int64), "label": batch.column("label"),
        "history_len": h, "n_before": n_before, "first_ts": first_ts, "days_before": days_before,
        "buys_before": buys_before, "recency_days": (end_ts - last_ts) / 86400.0,
        "frequency_90d": np.bincount(row, weights=f["ts"] > end_ts - 90 * 86400, minlength=n),
        "bg_x": active_days - 1, "bg_t_x": (last_ts // 86400 - first_ts // 86400).astype(np.float64),
        "bg_T": end_ts / 86400 - first_ts // 86400,
        "bought_items": lists(bought_len, f["item_idx"][buys][bought], np.int32)}, DECAY_SCHEMA)


def drift_features(batch: pa.RecordBatch, max_events: int, end_ts: int | None) -> pa.RecordBatch:
    """contract.DRIFT_SCHEMA rows from columns user_id, hist: the last max_events events and the end of
    observation (end_ts, or the last history event's time when it is None)."""
    ev = flatten_events(batch.column("hist"))
    tail_len, seq = _tail(ev, max_events)
    last_ts = ev.fields["ts"][ev.start + ev.length - 1]
    return _batch(seq | {"user_id": batch.column("user_id"), "history_len": ev.length,
                         "end_ts": last_ts if end_ts is None else np.full(batch.num_rows, end_ts, np.int64),
                         "n_before": ev.length - tail_len}, DRIFT_SCHEMA)
