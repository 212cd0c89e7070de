"""Interest migration's core (interest_core/drift.py): windows, divergences, change candidates, threshold."""
from __future__ import annotations

import numpy as np
import pytest

from interest_core import drift

DAY = drift.DAY_S


def test_windows_split_at_end_minus_w_and_skip_users_without_both():
    end = 100 * DAY
    items = [[2, 3, 4, 5], [2, 3], [6, 7, 8]]
    ts = [[10 * DAY, 80 * DAY, 86 * DAY + 1, 99 * DAY],  # early: events <= 86 days; recent: after
          [90 * DAY, 95 * DAY],  # recent only
          [10 * DAY, 20 * DAY, 86 * DAY]]  # early only (86 days is E - W exactly: early)
    w = drift.cut(items, ts, [end] * 3, 14 * DAY)
    assert w.rows.tolist() == [0]
    assert w.early[0].tolist() == [2, 3] and w.recent[0].tolist() == [4, 5] and w.split_at.tolist() == [2]
    # events after the end of observation are in neither window
    w = drift.cut([[2, 3, 4]], [[10 * DAY, 95 * DAY, 101 * DAY]], [end], 14 * DAY)
    assert w.recent[0].tolist() == [3]


def test_js_divergence_bounds_and_symmetry():
    p, q = {1: 0.5, 2: 0.5}, {3: 1.0}
    assert drift.js_divergence(p, q) == pytest.approx(1.0)
    assert drift.js_divergence(p, p) == pytest.approx(0.0)
    r = {1: 0.9, 3: 0.1}
    assert drift.js_divergence(p, r) == pytest.approx(drift.js_divergence(r, p))
    assert 0 < drift.js_divergence(p, r) < 1
    cats = np.array([0, 0, 1, 1, 2, 0])
    assert drift.category_distribution(np.array([2, 3, 4, 5]), cats) == {1: 2 / 3, 2: 1 / 3}


def test_gaussian_divergences_match_closed_forms():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    lv1, lv2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    assert np.allclose(drift.gaussian_w2(m1, lv1, m1, lv1), 0)
    assert np.allclose(drift.symmetric_kl(m1, lv1, m1, lv1), 0)
    # one dimension by hand: KL(N(a, s^2) || N(b, t^2)) = log(t/s) + (s^2 + (a-b)^2) / (2 t^2) - 1/2
    a, b, s, t = 0.3, -1.0, 0.5, 2.0
    kl = lambda a, b, s, t: np.log(t / s) + (s**2 + (a - b) ** 2) / (2 * t**2) - 0.5  # noqa: E731
    got = drift.symmetric_kl(np.array([[a]]), np.array([[2 * np.log(s)]]), np.array([[b]]), np.array([[2 * np.log(t)]]))
    assert got[0] == pytest.approx(kl(a, b, s, t) + kl(b, a, t, s))
    w2 = drift.gaussian_w2(np.array([[a]]), np.array([[2 * np.log(s)]]), np.array([[b]]), np.array([[2 * np.log(t)]]))
    assert w2[0] == pytest.approx((a - b) ** 2 + (s - t) ** 2)


def test_change_candidates_are_day_boundaries_evenly_thinned():
    ts = np.array([0, 100, DAY + 5, DAY + 7, 3 * DAY, 4 * DAY, 9 * DAY])
    assert drift.change_candidates(ts, 10).tolist() == [2, 4, 5, 6]
    assert drift.change_candidates(ts, 2).tolist() == [2, 6]
    assert len(drift.change_candidates(np.array([5, 6, 7]), 4)) == 0


def test_best_threshold_maximises_f1_between_distinct_scores():
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 0, 1, 0])
    t, f1 = drift.best_threshold(scores, labels)
    flagged = scores > t
    tp = (flagged & (labels == 1)).sum()
    assert f1 == pytest.approx(2 * tp / (flagged.sum() + labels.sum()))
    assert f1 == pytest.approx(max(2 * labels[:k].sum() / (k + 3) for k in range(1, 6)))
    # ties: a threshold never splits equal scores
    t, _ = drift.best_threshold(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0]))
    assert (np.array([0.5, 0.5, 0.1]) > t).sum() in (0, 2)


def test_zscore_and_cosine_distance():
    assert np.allclose(drift.zscore(np.array([1.0, 1.0])), 0)
    z = drift.zscore(np.array([1.0, 2.0, 3.0]))
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    assert np.allclose(drift.cosine_distance(a, b), [1.0, 0.0, 1.0])


def test_flag_rule_without_truth_is_a_z_threshold_that_does_not_depend_on_the_batch():
    from interest.migration_scores import fit_rule
    from interest_core.migration_config import MigrationConfig

    rng = np.random.default_rng(0)
    seq = np.r_[rng.normal(0.2, 0.05, 500), [0.9, 0.95]]  # two clear outliers
    scored = {"latent": None, "latent_divergence": None, "sequence": seq, "category_js": rng.random(502)}
    rule = fit_rule(None, scored, MigrationConfig(threshold_z=3.0), truth=None, valid_rows=None)
    assert rule.score == "sequence" and rule.chosen_on == "migration.threshold_z" and rule.latent_stats is None
    flags = rule.flags(scored)
    assert flags[-2:].all() and flags.sum() == ((seq - seq.mean()) / seq.std() > 3).sum()
    # the export applies the rule batch by batch: the same users are flagged whatever the batching
    halves = [rule.flags({"sequence": part}) for part in (seq[:200], seq[200:])]
    assert (np.concatenate(halves) == flags).all()


def test_trajectory_windows_slide_back_from_the_end_and_skip_empty_ones():
    from interest.migration_map import window_bags

    ts = np.array([1, 2, 10, 11, 30], dtype=np.int64) * DAY
    items = np.array([2, 3, 4, 5, 6])
    bags, days = window_bags(ts, items, 31 * DAY, window_s=6 * DAY, step_s=3 * DAY)
    # windows (end - 6 d, end] for end = 31, 28, ..., > the first event at day 1; oldest first, empty ones left out
    # ends 4, 7, 10, 13, 16 hold events; 19, 22, 25, 28 none; 31 holds the last event
    assert [b.tolist() for b in bags] == [[2, 3], [3], [4], [4, 5], [5], [6]]
    assert days == [27.0, 24.0, 21.0, 18.0, 15.0, 0.0]


def test_candidate_splits_cut_at_day_boundaries_and_time_them_mid_gap():
    from interest.migration_scores import DriftScorer
    from interest_core.migration_config import MigrationConfig

    rows = {"ts": [[1 * DAY, 1 * DAY + 5, 3 * DAY, 9 * DAY, 20 * DAY], [4 * DAY, 4 * DAY + 1]],
            "items": [[2, 3, 4, 5, 6], [7, 8]], "end_ts": [10 * DAY, 5 * DAY]}  # row 0's last event is after its end
    scorer = DriftScorer(np.zeros(10, np.int64), MigrationConfig(change_candidates=8))
    bags, owner, at = scorer.candidate_splits(rows, np.array([0, 1]))
    assert owner.tolist() == [0, 0]  # row 1 spans one day: no candidate
    assert [b.tolist() for b in bags] == [[2, 3], [4, 5], [2, 3, 4], [5]]
    assert at.tolist() == [(1 * DAY + 5 + 3 * DAY) // 2, 6 * DAY]
