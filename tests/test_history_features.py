"""The vectorized per-user passes (interest_core.history_features, window_rows) against plain per-row Python
written from their definitions, on random histories (ties, unknown categories, one-event rows, long rows)."""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from interest_core import history_features as hf
from interest_core.contract import INTEREST_CATEGORIES
from interest_core.window_rows import windows
from interest_core.windows import WindowRule

EVENT = pa.struct([("ts", pa.int64()), ("item_idx", pa.int32()), ("event_type_idx", pa.int32()),
                   ("category_idx", pa.int32()), ("dt", pa.int64())])
DAY = 86400


def _histories(rng, n_rows: int, min_len: int = 1) -> list[list[dict]]:
    out = []
    for _ in range(n_rows):
        n = int(rng.choice([min_len, min_len + 1, 3, 7, 30, 80]))
        ts = np.sort(rng.integers(0, 20 * DAY, n)) if rng.random() < 0.7 else np.full(n, 5 * DAY)  # ties
        ev = [{"ts": int(t), "item_idx": int(rng.integers(2, 12)), "event_type_idx": int(rng.integers(1, 4)),
               "category_idx": int(rng.integers(0, 5)), "dt": int(t - (ts[i - 1] if i else t))}
              for i, t in enumerate(ts)]
        out.append(ev)
    return out


def _distinct(xs):
    return list(dict.fromkeys(xs))


def _top(counter: dict, k: int) -> list:
    return [c for c, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


def test_eval_features_follow_their_definitions():
    rng = np.random.default_rng(0)
    hists = _histories(rng, 60)
    targets = [{**h[-1], "ts": h[-1]["ts"] + 7, "item_idx": 3} for h in hists]
    batch = pa.RecordBatch.from_pydict({"user_id": [f"u{i}" for i in range(len(hists))],
                                        "hist": pa.array(hists, pa.list_(EVENT)), "t": pa.array(targets, EVENT),
                                        "user_features": pa.array([[1, 2]] * len(hists), pa.list_(pa.int32()))})
    half_life = 3 * DAY
    got = hf.eval_features(batch, max_len=5, half_life_s=half_life).to_pylist()
    for h, t, row in zip(hists, targets, got):
        cats = [e["category_idx"] for e in h if e["category_idx"] > 0]
        assert row["items"] == [e["item_idx"] for e in h[-5:]] and row["dt"] == [e["dt"] for e in h[-5:]]
        assert row["history_len"] == len(h) and row["time_since_last"] == t["ts"] - h[-1]["ts"]
        assert row["seen_items"] == _distinct(e["item_idx"] for e in h)
        assert row["top_categories"] == _top(Counter(cats), 3)
        mass: dict = {}
        for e in h:
            if e["category_idx"] > 0:
                mass[e["category_idx"]] = mass.get(e["category_idx"], 0.0) + 0.5 ** ((h[-1]["ts"] - e["ts"]) / half_life)
        total = sum(mass.values())
        want = _top(mass, INTEREST_CATEGORIES)
        assert row["interest_categories"] == want
        assert row["interest_weights"] == pytest.approx([mass[c] / total for c in want])
        half = len(h) // 2
        early = Counter(e["category_idx"] for e in h[:half] if e["category_idx"] > 0)
        recent = Counter(e["category_idx"] for e in h[half:] if e["category_idx"] > 0)
        ne, nr = max(sum(early.values()), 1), max(sum(recent.values()), 1)
        js = 0.0
        for c in set(early) | set(recent):
            p, q = early[c] / ne, recent[c] / nr
            m = (p + q) / 2
            js += sum(a * math.log2(a / m) for a in (p, q) if a > 0) / 2
        assert row["drift_score"] == pytest.approx(js if len(h) >= 2 else 0.0, abs=1e-12)
        assert row["target_ts"] == t["ts"] and row["user_features"] == [1, 2]


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_window_rows_follow_the_rule_and_count_days_and_buys(stride):
    rng = np.random.default_rng(stride)
    rule = WindowRule(max_len=4, stride=stride)
    hists = _histories(rng, 40, min_len=2)
    scored_from = [int(rng.integers(2, len(h) + 1)) for h in hists]
    batch = pa.RecordBatch.from_pydict({"user_id": [f"u{i}" for i in range(len(hists))],
                                        "ev": pa.array(hists, pa.list_(EVENT)),
                                        "user_features": pa.array([[]] * len(hists), pa.list_(pa.int32())),
                                        "scored_from": pa.array(scored_from, pa.int32())})
    for scored in (False, True):
        got = windows(batch, rule, buy_type=2, scored=scored).to_pylist()
        want = []
        for i, h in enumerate(hists):
            m, n = len(h), rule.n_windows(len(h))
            for k in range(n):
                end = rule.end(m, k)
                start = rule.start(end)
                first = rule.first_target(k, n)
                if scored:
                    if end < scored_from[i]:
                        continue
                    first = max(first, scored_from[i] - start)
                head = h[:start - 1]
                want.append({"user_id": f"u{i}", "items": [e["item_idx"] for e in h[start - 1:end]], "window": k,
                             "first_target": first, "n_before": start - 1, "first_ts": h[0]["ts"],
                             "days_before": len({e["ts"] // DAY for e in head}),
                             "buys_before": sum(e["event_type_idx"] == 2 for e in head)})
        assert [{k: r[k] for k in want[0]} for r in got] == want


def test_decay_and_drift_features_follow_their_definitions():
    rng = np.random.default_rng(5)
    hists = _histories(rng, 50)
    end = 21 * DAY
    batch = pa.RecordBatch.from_pydict({"user_id": [f"u{i}" for i in range(len(hists))],
                                        "hist": pa.array(hists, pa.list_(EVENT)),
                                        "label": pa.array([i % 2 for i in range(len(hists))], pa.int32())})
    for row, h in zip(hf.decay_features(batch, max_len=3, end_ts=end, buy_type=2).to_pylist(), hists):
        days = sorted({e["ts"] // DAY for e in h})
        head = h[:max(len(h) - 3, 0)]
        assert row["items"] == [e["item_idx"] for e in h[-3:]] and row["n_before"] == len(head)
        assert row["days_before"] == len({e["ts"] // DAY for e in head})
        assert row["buys_before"] == sum(e["event_type_idx"] == 2 for e in head)
        assert row["recency_days"] == pytest.approx((end - h[-1]["ts"]) / DAY)
        assert row["frequency_90d"] == sum(e["ts"] > end - 90 * DAY for e in h)
        assert (row["bg_x"], row["bg_t_x"], row["bg_T"]) == (len(days) - 1, days[-1] - days[0], end / DAY - days[0])
        assert row["bought_items"] == _distinct(e["item_idx"] for e in h if e["event_type_idx"] == 2)
    for end_ts in (None, end):
        for row, h in zip(hf.drift_features(batch, max_events=4, end_ts=end_ts).to_pylist(), hists):
            assert row["ts"] == [e["ts"] for e in h[-4:]] and row["n_before"] == max(len(h) - 4, 0)
            assert row["end_ts"] == (h[-1]["ts"] if end_ts is None else end_ts)
