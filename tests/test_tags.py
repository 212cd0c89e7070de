"""Interest tags (interest_core.tags): catalog levels, recency and prediction weighting, precision@k."""
import numpy as np
import pytest

from interest_core.tags import category_mass, popular_tags, precision_at_k, tag_levels, user_tags

DAY = 86400.0


def _levels():
    # items 2..6; item 6 has no category
    return tag_levels(np.array([2, 3, 4, 5, 6]), ["A/x", "A/y", "B/z", "B", None], num_items=7)


def test_levels_follow_the_category_path_and_short_paths_keep_their_whole_path():
    lv = _levels()
    assert lv.depth == 2
    assert lv.names[0] == ["", "A", "B"]
    assert lv.names[1] == ["", "A/x", "A/y", "B/z", "B"]
    assert lv.item_tag[0].tolist() == [0, 0, 1, 1, 2, 2, 0]
    assert lv.item_tag[1].tolist() == [0, 0, 1, 2, 3, 4, 0]


def test_recent_interest_outranks_an_old_frequent_one_only_with_a_short_half_life():
    lv = _levels()
    # three old events in A/x (30 days ago), one recent in B/z, left padding and an uncategorised item
    items = np.array([[0, 2, 2, 2, 6, 4]])
    ts = np.array([[0, 0, 0, 0, 29 * DAY, 30 * DAY]])
    leaf = lv.item_tag[1]
    t, w = user_tags(items, ts, np.array([2 * DAY]), leaf, None, 0.0, top=3)
    assert t[0].tolist() == [3, 1, -1] and w[0, 0] > 0.9 and abs(w[0].sum() - 1) < 1e-9
    t, w = user_tags(items, ts, np.array([np.inf]), leaf, None, 0.0, top=3)
    assert t[0].tolist() == [1, 3, -1] and np.allclose(w[0, :2], [0.75, 0.25])


def test_the_model_s_next_item_distribution_adds_its_category_mass_with_weight_beta():
    import torch

    lv = _levels()
    # next-item probabilities over ids 0..6: B/z (item 4) 0.5, B (item 5) 0.25, A/x (item 2) 0.25
    probs = torch.tensor([[0.0, 0.0, 0.25, 0.0, 0.5, 0.25, 0.0]])
    tags, mass = category_mass(probs, torch.from_numpy(lv.item_tag[1]), top=3)
    assert tags[0].tolist() == [3, 1, 4] and np.allclose(mass[0], [0.5, 0.25, 0.25])
    items, ts = np.array([[2, 2]]), np.array([[0, DAY]])
    t, w = user_tags(items, ts, np.array([np.inf]), lv.item_tag[1], (tags, mass), 0.5, top=4)
    # history: A/x 1.0 * 0.5; model: B/z 0.5, A/x 0.25, B 0.25, each * 0.5
    assert t[0].tolist() == [1, 3, 4, -1]
    assert np.allclose(w[0, :3], [0.5 + 0.125, 0.25, 0.125])
    # level 1 sums the items of a top category
    tags1, mass1 = category_mass(probs, torch.from_numpy(lv.item_tag[0]), top=5)
    assert tags1[0].tolist()[:2] == [2, 1] and np.allclose(mass1[0, :2], [0.75, 0.25])


def test_ties_rank_by_tag_id_and_users_are_independent():
    lv = _levels()
    items = np.array([[3, 2], [0, 0]])
    ts = np.zeros((2, 2))
    t, _ = user_tags(items, ts, np.array([np.inf, np.inf]), lv.item_tag[1], None, 0.0, top=2)
    assert t.tolist() == [[1, 2], [-1, -1]]


def test_popular_tags_and_precision():
    lv = _levels()
    items = np.array([[2, 2, 4], [4, 4, 0]])
    assert popular_tags(items, lv.item_tag[1], 2).tolist() == [3, 1]
    p, n = precision_at_k(np.array([[1, 3, 2], [2, -1, -1], [1, 2, 3]]), [{1, 2, 4, 5}, {2}, set()], k_max=3)
    # user 1: k=3, hits {1} of [1,3,2]∩... = {1, 2} -> 2/3; user 2: k=1, [2] -> 1; user 3 has no truth
    assert n == 2 and p == pytest.approx((2 / 3 + 1) / 2)
