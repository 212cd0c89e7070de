"""Hand-computed checks of the ranking protocol and the mergeable accumulator."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interest_core import metrics
from interest_core.metrics import MetricAccumulator, draw_negatives, sampled_ranks, target_ranks

INF = math.inf


def t(x, dtype=torch.float32):
    return torch.tensor(x, dtype=dtype)


def ids(x):
    return torch.tensor(x, dtype=torch.long)


# --------------------------------------------------------------------------- target_ranks (full protocols)

def test_full_ranks_hand_computed():
    # ids:           0    1    2    3    4    5
    scores = t([[9.0, 9.0, 0.5, 0.9, 0.1, 0.3],   # target 3 (0.9) is the best candidate -> rank 1
                [9.0, 9.0, 0.5, 0.9, 0.1, 0.3],   # target 2 (0.5): only id 3 beats it -> rank 2
                [9.0, 9.0, 0.5, 0.9, 0.1, 0.3]])  # target 4 (0.1): 2, 3, 5 beat it -> rank 4
    ranks = target_ranks(scores, ids([3, 2, 4]))
    assert ranks.dtype == torch.float64
    assert ranks.tolist() == [1.0, 2.0, 4.0]  # ids 0/1 score 9 but are never candidates


def test_ties_count_against_the_model():
    # target 2 has score 1.0, equal to ids 3 and 4 -> rank 1 + 0 + 2 = 3
    scores = t([[5.0, 5.0, 1.0, 1.0, 1.0, 0.2]])
    assert target_ranks(scores, ids([2])).tolist() == [3.0]
    # a constant scorer over ids 2..11 (10 candidates) gets the worst rank, 10
    const = torch.zeros(1, 12)
    assert target_ranks(const, ids([7])).tolist() == [10.0]
    # NaN target score is treated as -inf: ties with the -inf item, loses to the rest -> worst rank
    nan_scores = t([[0.0, 0.0, float("nan"), 0.3, float("-inf"), 0.1]])
    assert target_ranks(nan_scores, ids([2])).tolist() == [4.0]


def test_exclusion_keeps_target_and_ignores_padding_ids():
    # ids:          0    1    2    3    4    5
    scores = t([[0.0, 0.0, 0.5, 0.9, 0.8, 0.1]])
    target = ids([2])
    assert target_ranks(scores, target).tolist() == [3.0]  # 3 and 4 beat it
    # remove 3 (seen); the target itself, 0, 1 and an out-of-range id in the list change nothing else
    assert target_ranks(scores, target, exclude=[ids([3, 2, 0, 1, 99, -5])]).tolist() == [2.0]
    # duplicated seen ids are removed once
    assert target_ranks(scores, target, exclude=[ids([3, 3, 4, 4])]).tolist() == [1.0]
    # empty exclusion list
    assert target_ranks(scores, target, exclude=[ids([])]).tolist() == [3.0]


def test_unrankable_targets():
    scores = torch.rand(4, 6)
    ranks = target_ranks(scores, ids([0, 1, 6, 2]))  # padding, OOV, out of range, rankable
    assert ranks[:3].tolist() == [INF, INF, INF]
    assert math.isfinite(ranks[3].item())
    assert target_ranks(torch.rand(2, 2), ids([0, 1])).tolist() == [INF, INF]


def _brute_rank(s, target, excluded):
    if target < 2 or target >= len(s):
        return INF
    s = [(-INF if math.isnan(v) else v) for v in s]
    cands = [j for j in range(2, len(s)) if j != target and j not in excluded]
    return 1 + sum(1 for j in cands if s[j] > s[target]) + sum(1 for j in cands if s[j] == s[target])


def test_full_ranks_match_brute_force_with_ties_and_blocking(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    b, n = 17, 40
    scores = torch.randint(0, 6, (b, n), generator=gen).float()  # many ties
    targets = torch.randint(0, n, (b,), generator=gen)
    exclude = [torch.randint(0, n + 3, (int(torch.randint(0, 10, (1,), generator=gen)),), generator=gen)
               for _ in range(b)]
    expected = [_brute_rank(scores[i].tolist(), int(targets[i]), set(exclude[i].tolist()) - {int(targets[i])})
                for i in range(b)]
    assert target_ranks(scores, targets, exclude).tolist() == expected
    monkeypatch.setattr(metrics, "_MAX_COMPARE_ELEMS", 3 * b)  # force column blocks of 3
    assert target_ranks(scores, targets, exclude).tolist() == expected


# --------------------------------------------------------------------------- sampled protocol

def test_sampled_ranks_hand_computed():
    # ids:          0    1    2    3    4    5    6
    scores = t([[9.0, 9.0, 0.1, 0.7, 0.4, 0.5, 0.5],
                [9.0, 9.0, 0.1, 0.7, 0.4, 0.5, 0.5]])
    negatives = ids([[2, 3, 4],    # target 5 (0.5): only 3 (0.7) beats it -> rank 2
                     [2, 4, 6]])   # target 5 (0.5): tie with 6 -> rank 2
    assert sampled_ranks(scores, ids([5, 5]), negatives).tolist() == [2.0, 2.0]
    # id 3 (0.7) is not a negative here, so target 4 (0.4) beats its only negative, id 2 (0.1) -> rank 1
    assert sampled_ranks(scores[:1], ids([4]), ids([[2]])).tolist() == [1.0]
    # negatives equal to the target or ids 0/1 are not candidates; unrankable target -> inf
    assert sampled_ranks(scores[:1], ids([5]), ids([[5, 0, 1, 2]])).tolist() == [1.0]
    assert sampled_ranks(scores[:1], ids([1]), ids([[2, 3]])).tolist() == [INF]


# --------------------------------------------------------------------------- accumulator

def test_accumulator_hand_computed():
    acc = MetricAccumulator(ks=(5, 10))
    acc.add(torch.tensor([1.0, 3.0, INF, 11.0]))
    acc.add(np.array([2.0, 7.0]), group="cold")
    res = acc.result()
    a = res["all"]
    assert a["n_users"] == 4 and a["n_unrankable"] == 1
    assert a["hr@5"] == pytest.approx(2 / 4)
    assert a["ndcg@5"] == pytest.approx((1.0 + 0.5) / 4)       # rank 1 -> 1, rank 3 -> 1/log2(4) = 0.5
    assert a["mrr@5"] == pytest.approx((1.0 + 1 / 3) / 4)
    assert a["hr@10"] == pytest.approx(2 / 4)                   # rank 11 is outside the top 10
    c = res["cold"]
    assert c["n_users"] == 2 and c["n_unrankable"] == 0
    assert c["hr@5"] == pytest.approx(0.5)
    assert c["ndcg@5"] == pytest.approx(0.6309297535714575 / 2)  # rank 2 -> 1/log2(3)
    assert c["ndcg@10"] == pytest.approx((0.6309297535714575 + 1 / 3) / 2)  # rank 7 -> 1/log2(8) = 1/3
    assert c["mrr@10"] == pytest.approx((0.5 + 1 / 7) / 2)
    assert list(a)[:3] == ["hr@5", "ndcg@5", "mrr@5"]


def test_accumulator_rejects_bad_ranks():
    acc = MetricAccumulator()
    for bad in ([0.0], [2.5], [float("nan")]):
        with pytest.raises(ValueError):
            acc.add(np.array(bad))


def test_empty_group_reports_nan():
    acc = MetricAccumulator(ks=(10,))
    acc.add(np.array([]), group="none")
    r = acc.result()["none"]
    assert r["n_users"] == 0 and math.isnan(r["ndcg@10"])


def test_merge_and_tensor_allreduce_are_exact():
    rng = np.random.default_rng(1)
    ranks = rng.integers(1, 60, size=5001).astype(np.float64)
    ranks[rng.random(ranks.size) < 0.05] = INF
    groups = rng.choice(["all", "cold", "warm"], size=ranks.size)

    whole = MetricAccumulator()
    for g in ("all", "cold", "warm"):
        whole.add(ranks[groups == g], group=g)

    halves = []
    for part in (slice(0, 2345), slice(2345, None)):
        acc = MetricAccumulator()
        for start in range(part.start or 0, part.stop or ranks.size, 97):  # many small batches
            stop = min(start + 97, part.stop or ranks.size)
            for g in ("all", "cold", "warm"):
                sel = groups[start:stop] == g
                if sel.any():
                    acc.add(ranks[start:stop][sel], group=g)
        halves.append(acc)

    merged = MetricAccumulator()
    merged.merge(halves[0].state())
    merged.merge(halves[1].state())
    assert merged.result() == whole.result()  # exact equality, not approx

    names = ["all", "cold", "warm", "never_seen"]
    reduced = halves[0].to_tensor(names) + halves[1].to_tensor(names)  # what all_reduce(SUM) computes
    assert reduced.dtype == torch.float64
    ar = MetricAccumulator()
    ar.from_tensor(reduced, names)
    res = ar.result()
    assert {k: res[k] for k in ("all", "cold", "warm")} == whole.result()
    assert res["never_seen"]["n_users"] == 0

    with pytest.raises(ValueError):
        MetricAccumulator(ks=(5,)).merge(whole.state())


# --------------------------------------------------------------------------- negatives

def test_draw_negatives_deterministic_per_user_regardless_of_batch():
    num_items = 500
    users = {f"u{i}": (np.arange(2 + i, 40 + 3 * i, 2), 100 + i) for i in range(6)}

    def draw(keys, seed=7):
        return draw_negatives(num_items, [users[k][0] for k in keys], np.array([users[k][1] for k in keys]),
                              100, seed, keys)

    batch_a = draw(["u0", "u1", "u2", "u3"])
    batch_b = draw(["u3", "u5", "u0"])
    single = draw(["u1"])
    np.testing.assert_array_equal(batch_a[0], batch_b[2])
    np.testing.assert_array_equal(batch_a[3], batch_b[0])
    np.testing.assert_array_equal(batch_a[1], single[0])
    assert not np.array_equal(batch_a[0], batch_a[1])          # different users differ
    assert not np.array_equal(draw(["u0"], seed=8)[0], batch_a[0])  # different seed differs
    assert batch_a.dtype == np.int64 and batch_a.shape == (4, 100)


@pytest.mark.parametrize("num_items", [300, 100_000])  # enumeration and rejection branches
def test_negatives_avoid_seen_and_target(num_items):
    rng = np.random.default_rng(3)
    b = 20
    seen = [rng.integers(0, num_items, size=rng.integers(0, 150)) for _ in range(b)]
    targets = rng.integers(2, num_items, size=b)
    neg = draw_negatives(num_items, seen, targets, 100, 11, [f"user-{i}" for i in range(b)])
    assert neg.shape == (b, 100)
    for i in range(b):
        row = neg[i]
        assert row.min() >= 2 and row.max() < num_items
        assert not np.isin(row, seen[i]).any()
        assert targets[i] not in row
        assert len(np.unique(row)) == 100  # without replacement when enough candidates exist


def test_negatives_with_replacement_when_too_few_candidates():
    # ids 2..11 (10 items); 3 seen + target leaves 6 candidates for 100 draws
    neg = draw_negatives(12, [np.array([2, 3, 4])], np.array([5]), 100, 0, ["x"])
    assert set(neg[0].tolist()) <= {6, 7, 8, 9, 10, 11}
    assert len(set(neg[0].tolist())) > 1
    # nothing left at all -> padding id 0, which sampled_ranks ignores
    none = draw_negatives(4, [np.array([2])], np.array([3]), 5, 0, ["y"])
    assert none.tolist() == [[0] * 5]
    assert sampled_ranks(torch.rand(1, 4), ids([3]), torch.from_numpy(none)).tolist() == [1.0]
