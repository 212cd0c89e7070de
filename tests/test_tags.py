"""Interest tags (interest_core.tags): catalog levels, sources of tag weight and their ranking, precision@k; their
evaluation (interest.tag_scores): the same events for every scorer, settings chosen on other users."""
import json
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from interest.profiles import ProfileScorer, ProfileSettings
from interest.tag_scores import tag_metrics
from interest_core import drift
from interest_core.batches import collate
from interest_core.modelargs import ModelArgs
from interest_core.tags import (category_mass, category_names, pad_lists, popular_tags, precision_at_k, tag_levels, top_tags,
                                window_shares)
from ray_train.models import InterestModel

DAY = 86400.0


def _levels():
    # items 2..6 in categories 1..4 ("A/x", "A/y", "B/z", "B"); item 6 has no category (id 0); category 5 ("C/w")
    # has no item in the items table (its items were all below min_count)
    return tag_levels([None, "A/x", "A/y", "B/z", "B", "C/w"], np.array([2, 3, 4, 5, 6]), np.array([1, 2, 3, 4, 0]),
                      num_items=7)


def test_levels_follow_the_category_path_and_short_paths_keep_their_whole_path():
    lv = _levels()
    assert lv.depth == 2
    assert lv.names[0] == ["", "A", "B", "C"]
    assert lv.names[1] == ["", "A/x", "A/y", "B/z", "B", "C/w"]
    assert lv.item_tag[0].tolist() == [0, 0, 1, 1, 2, 2, 0]
    assert lv.item_tag[1].tolist() == [0, 0, 1, 2, 3, 4, 0]
    assert lv.category_tag[0].tolist() == [0, 1, 1, 2, 2, 3] and lv.category_tag[1].tolist() == [0, 1, 2, 3, 4, 5]


def test_category_names_and_items_naming_a_category_the_vocabulary_lacks():
    assert category_names(["B", "A/x"], [2, 1]) == [None, "A/x", "B"]
    with pytest.raises(ValueError, match="rerun `interest etl`"):
        tag_levels([None, "A"], np.array([2]), np.array([3]), num_items=3)


def test_a_recent_interest_outranks_an_old_frequent_one_only_with_a_short_half_life():
    lv = _levels()
    # three old events in A/x (30 days ago), one recent in B/z, left padding and an uncategorised item
    items = np.array([[0, 2, 2, 2, 6, 4]])
    ts = np.array([[0, 0, 0, 0, 29 * DAY, 30 * DAY]])
    leaf = lv.item_tag[1]
    t, w = top_tags([window_shares(items, ts, np.array([2 * DAY]), leaf)], top=3)
    assert t[0].tolist() == [3, 1, -1] and w[0, 0] > 0.9 and abs(w[0].sum() - 1) < 1e-9
    t, w = top_tags([window_shares(items, ts, np.array([np.inf]), leaf)], top=3)
    assert t[0].tolist() == [1, 3, -1] and np.allclose(w[0, :2], [0.75, 0.25])


def test_history_shares_and_the_model_s_category_mass_add_up_per_level():
    lv = _levels()
    # next-item probabilities over ids 0..6: B/z (item 4) 0.5, B (item 5) 0.25, A/x (item 2) 0.25
    probs = torch.tensor([[0.0, 0.0, 0.25, 0.0, 0.5, 0.25, 0.0]])
    tags, mass = category_mass(probs, torch.from_numpy(lv.item_tag[1]), top=3)
    assert tags[0].tolist() == [3, 1, 4] and np.allclose(mass[0], [0.5, 0.25, 0.25])
    # the ETL's whole-history shares: category 1 (A/x) all of it; ragged lists padded with id 0
    cats, shares = pad_lists([[1]], 4, np.int64), pad_lists([[1.0]], 4, np.float64)
    history = (lv.category_tag[1][cats], 0.5 * shares)
    t, w = top_tags([history, (tags, 0.5 * mass)], top=4)
    assert t[0].tolist() == [1, 3, 4, -1] and np.allclose(w[0, :3], [0.5 + 0.125, 0.25, 0.125])
    # level 1 sums the categories under a top category
    tags1, mass1 = category_mass(probs, torch.from_numpy(lv.item_tag[0]), top=5)
    assert tags1[0].tolist()[:2] == [2, 1] and np.allclose(mass1[0, :2], [0.75, 0.25])
    t1, w1 = top_tags([(lv.category_tag[0][cats], 0.5 * shares), (tags1, 0.5 * mass1)], top=2)
    assert t1[0].tolist() == [1, 2] and np.allclose(w1[0], [0.625, 0.375])


def test_ties_rank_by_tag_id_and_users_are_independent():
    lv = _levels()
    items = np.array([[3, 2], [0, 0]])
    t, _ = top_tags([window_shares(items, np.zeros((2, 2)), np.array([np.inf, np.inf]), lv.item_tag[1])], top=2)
    assert t.tolist() == [[1, 2], [-1, -1]]


def test_popular_tags_and_precision():
    lv = _levels()
    items = np.array([[2, 2, 4], [4, 4, 0]])
    assert popular_tags(items, lv.item_tag[1], 2).tolist() == [3, 1]
    p, n = precision_at_k(np.array([[1, 3, 2], [2, -1, -1], [1, 2, 3]]), [{1, 2, 4, 5}, {2}, set()], k_max=3)
    # user 1: k=3, [1, 3, 2] holds 1 and 2 -> 2/3; user 2: k=1, [2] -> 1; user 3 has no truth
    assert n == 2 and p == pytest.approx((2 / 3 + 1) / 2)


CATEGORIES = ["A/x", "A/y", "B/z", "B", "C/w"]  # ids 1..5, as _levels()


def _scorer(tmp_path) -> ProfileScorer:
    """A ProfileScorer of a small untrained model and the catalogue of _levels() (items 2..6)."""
    torch.manual_seed(0)
    args = ModelArgs(num_items=7, num_event_types=2, max_len=4, dim=8, n_layers=1, n_heads=2, dropout=0.0)
    (tmp_path / "run" / "model").mkdir(parents=True)
    torch.save(InterestModel(args).state_dict(), tmp_path / "run" / "model" / "model.pt")
    (tmp_path / "run" / "model" / "meta.json").write_text(json.dumps({"model_args": asdict(args)}))
    (tmp_path / "data" / "vocab").mkdir(parents=True)
    pq.write_table(pa.table({"item_idx": [2, 3, 4, 5, 6], "item_id": ["i2", "i3", "i4", "i5", "i6"],
                             "category_idx": [1, 2, 3, 4, 0]}), tmp_path / "data" / "items")
    pq.write_table(pa.table({"category": CATEGORIES, "category_idx": [1, 2, 3, 4, 5]}),
                   tmp_path / "data" / "vocab" / "categories")
    settings = ProfileSettings(top_k=3, tags_per_level=3, tag_half_life_days=30.0, tag_predicted_weight=0.25,
                               batch_size=8, horizon_days=30.0, buy_type=0)
    return ProfileScorer(tmp_path / "run", tmp_path / "data", settings)


def _rows(users: list[str]) -> dict[str, list]:
    """Test rows: a history of three A/x events, days 0-2, whose whole-history weights are all A/x; the target, on
    day 10, is item 5 (category B), which the history does not hold."""
    n = len(users)
    return {"user_id": users, "items": [[2, 2, 2]] * n, "event_types": [[1, 1, 1]] * n,
            "ts": [[0, int(DAY), int(2 * DAY)]] * n, "dt": [[0, int(DAY), int(DAY)]] * n, "history_len": [3] * n,
            "target_item": [5] * n, "target_event_type": [1] * n, "target_ts": [int(10 * DAY)] * n,
            "interest_categories": [[1]] * n, "interest_weights": [[1.0]] * n, "top_categories": [[1]] * n}


def test_the_model_s_tags_in_evaluation_read_the_history_alone_as_the_baselines_do(tmp_path, monkeypatch):
    scorer = _scorer(tmp_path)
    rows = _rows(["a" * 64])
    read = []
    score_all = scorer.model.score_all
    monkeypatch.setattr(scorer.model, "score_all", lambda batch: read.append(batch) or score_all(batch))
    scorer.tag_ids(rows, beta=0.5)
    (batch,) = read
    # the baselines' events: the history; not the target's item or time
    assert batch["items"].tolist() == collate(rows, scorer.max_len)["items"].tolist() == [[0, 2, 2, 2]]
    assert int(batch["ts"].max()) == rows["ts"][0][-1]


def test_tag_settings_are_chosen_on_users_disjoint_from_the_users_scored(tmp_path):
    scorer = _scorer(tmp_path)
    users = [f"{i:064x}" for i in range(24)]  # pseudonyms
    held = ~drift.fitting_users(users)
    assert 0 < held.sum() < len(users)
    # every history says A/x; the fitting half had A/x planted, the held-out half B/z
    (tmp_path / "data" / "planted").mkdir()
    pq.write_table(pa.table({"user_id": users, "interests": [["B/z"] if h else ["A/x"] for h in held],
                             "interests_before": pa.nulls(len(users), pa.list_(pa.string()))}),
                   tmp_path / "data" / "planted" / "part-0.parquet")
    rows = _rows(users)
    reported = tag_metrics(scorer, tmp_path / "data", rows)  # as `interest evaluate` calls it
    chosen_on = tag_metrics(scorer, tmp_path / "data", rows, users="fitting")  # as bench/tags_bench.py sweeps
    assert reported["users"] == "held_out" and chosen_on["users"] == "fitting"
    for m, n, p in ((reported, int(held.sum()), 0.0), (chosen_on, int((~held).sum()), 1.0)):
        for t in [m, *m["baselines"].values()]:
            assert (t["n_users"], t["precision@3"]) == (n, p)
    with pytest.raises(ValueError, match="one of held_out, fitting"):
        tag_metrics(scorer, tmp_path / "data", rows, users="valid")
