"""Interest tags (interest_core.tags): catalog levels, sources of tag weight and their ranking, precision@k."""
import numpy as np
import pytest
import torch

from interest_core.tags import (category_mass, category_names, pad_lists, popular_tags, precision_at_k, tag_levels, top_tags,
                                window_shares)

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
