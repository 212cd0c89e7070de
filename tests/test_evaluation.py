"""Evaluation: per-rank scoring merges to exactly the single-process result; baselines score as documented."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from interest_core.baselines import Baselines
from interest_core.batches import read_eval_split
from interest_core.contract import EVAL_SCHEMA, GRAPH_SCHEMA, ITEMS_SCHEMA, TRAIN_SCHEMA
from interest_core.metrics import PROTOCOLS, MetricAccumulator
from interest_core.modelargs import ModelArgs
from interest_core.scoring import draw_split_negatives, new_accumulators, results, row_segments, score_rows
from interest_core.windows import WindowRule
from ray_train.models.model import InterestModel

NUM_ITEMS = 40


def _eval_rows(n, rng):
    rows = []
    for u in range(n):
        hist = rng.integers(2, NUM_ITEMS, size=rng.integers(1, 12)).tolist()
        ts = sorted(rng.integers(1_700_000_000, 1_700_100_000, size=len(hist)).tolist())
        rows.append({"user_id": f"user{u:04d}", "items": hist, "event_types": [1] * len(hist), "ts": ts,
                     "dt": [0] + np.diff(ts).tolist(), "target_item": int(rng.integers(2, NUM_ITEMS)),
                     "target_event_type": int(rng.integers(1, 6)), "target_ts": ts[-1] + 10,
                     "target_category": int(rng.integers(0, 4)), "history_len": len(hist),
                     "seen_items": sorted(set(hist)), "top_categories": [1, 2], "time_since_last": 10,
                     "drift_score": 0.0, "target_is_cold_item": bool(u % 7 == 0)})
    return rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaldata")
    rng = np.random.default_rng(0)
    rows = _eval_rows(203, rng)
    (d / "valid").mkdir()
    for i, part in enumerate((rows[:90], rows[90:])):  # two files, like Spark's output
        pq.write_table(pa.Table.from_pylist(part, schema=EVAL_SCHEMA), d / "valid" / f"part-{i}.parquet")
    return d


def test_ranks_merged_across_ranks_equal_single_process_exactly(data_dir):
    torch.manual_seed(0)
    model = InterestModel(ModelArgs(num_items=NUM_ITEMS, num_event_types=6, max_len=8, dim=16)).eval()
    names = ["<pad>", "view", "click", "cart", "fav", "buy"]

    def run(rank, world, batch_size):
        rows = read_eval_split(data_dir, "valid", rank, world)
        accs = new_accumulators([5, 10, 20])
        negatives = draw_split_negatives(rows, NUM_ITEMS, 20, seed=7)
        score_rows(model.score_all, rows, accs, segments=lambda i: row_segments(rows, i, 3, names),
                   max_len=8, batch_size=batch_size, negatives=negatives)
        return accs

    single = results(run(0, 1, 32))
    for world in (2, 3):
        merged = new_accumulators([5, 10, 20])
        for rank in range(world):
            part = run(rank, world, 17)
            for p in PROTOCOLS:
                merged[p].merge(part[p].state())
        assert results(merged) == single
    assert single["full"]["all"]["n_users"] == 203
    assert single["full"]["cold_items"]["n_users"] == len(range(0, 203, 7))


def test_all_reduce_layout_sums_like_merge():
    a, b = MetricAccumulator([1, 3]), MetricAccumulator([1, 3])
    a.add(np.array([1, 2, np.inf]))
    b.add(np.array([3, 1]))
    a.from_tensor(a.to_tensor(["all"]) + b.to_tensor(["all"]), ["all"])
    r = a.result()["all"]
    assert r["n_users"] == 5 and r["n_unrankable"] == 1
    assert r["hr@1"] == pytest.approx(2 / 5) and r["hr@3"] == pytest.approx(4 / 5)


def test_baselines_score_as_documented(tmp_path):
    # items 2..6; train counts make 3 the most popular; categories: 2,3 -> 1; 4,5,6 -> 2
    items = [{"item_idx": i, "item_id": str(i), "count": c, "category": None, "category_idx": cat, "brand": None,
              "price": None, "price_bucket": 0, "title": None, "description": None, "first_seen_ts": 0, "train_count": c}
             for i, c, cat in [(2, 5, 1), (3, 9, 1), (4, 1, 2), (5, 2, 2), (6, 3, 2)]]
    (tmp_path / "items").mkdir()
    pq.write_table(pa.Table.from_pylist(items, schema=ITEMS_SCHEMA), tmp_path / "items" / "p.parquet")
    (tmp_path / "graph").mkdir()
    edges = [{"src": 4, "dst": 5, "weight": 2.0, "rank": 1}, {"src": 4, "dst": 2, "weight": 1.0, "rank": 2}]
    pq.write_table(pa.Table.from_pylist(edges, schema=GRAPH_SCHEMA), tmp_path / "graph" / "p.parquet")
    (tmp_path / "train").mkdir()
    windows = [{"user_id": "a", "items": [2, 6, 6], "event_types": [1, 1, 1], "ts": [0, 86400 * 10, 86400 * 10],
                "dt": [0, 864000, 0], "window": 0}]
    pq.write_table(pa.Table.from_pylist(windows, schema=TRAIN_SCHEMA), tmp_path / "train" / "p.parquet")
    base = Baselines(tmp_path, 7, recent_days=1.0, rule=WindowRule(max_len=2, stride=2))
    s = base.scorers()
    batch = {"items": torch.tensor([[0, 0, 4]]), "event_types": torch.tensor([[0, 0, 1]]),
             "ts": torch.tensor([[0, 0, 5]])}
    order = lambda name: torch.argsort(s[name](batch)[0, 2:], descending=True).add(2).tolist()  # noqa
    assert order("popularity") == [3, 2, 6, 5, 4]
    assert order("recent_popularity")[0] == 6  # only item 6 occurs in the last day of training
    assert order("cooccurrence")[:2] == [5, 2]  # graph neighbours of the last item, by weight
    assert order("repeat_last_category")[:3] == [6, 5, 4]  # category 2 first, by popularity
    repeat = torch.argsort(s["repeat_last"]({"items": torch.tensor([[5, 2, 5, 1, 4, 0]])})[0, 2:], descending=True)
    assert repeat.add(2).tolist() == [4, 5, 2, 3, 6]  # own items most recent first (5 at its last place), then
    # the rest by popularity; the OOV id (1) and padding (0) are no items
