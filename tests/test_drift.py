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


def _drift_dir(tmp_path, users: list[tuple[str, int, bool]]):
    """A data dir whose drift_valid and drift_test hold the same rows (as the ETL's do: the same users, the same
    planted time behind both labels): per user (pseudonym, recent level, migrated). Early window: two category-1
    events; recent: level 0 = two category-1 events (JS 0), 1 = one of each (JS 0.31), 2 = two category-2 (JS 1)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from interest_core.contract import DRIFT_SCHEMA

    recent = {0: [2, 2], 1: [2, 3], 2: [3, 3]}
    ts = [10 * DAY, 20 * DAY, 90 * DAY, 95 * DAY]
    rows = {"user_id": [u for u, _, _ in users], "items": [[2, 2] + recent[lv] for _, lv, _ in users],
            "event_types": [[1] * 4] * len(users), "ts": [ts] * len(users),
            "dt": [[0] + np.diff(ts).tolist()] * len(users), "end_ts": [100 * DAY] * len(users),
            "history_len": [4] * len(users), "n_before": [0] * len(users)}
    for split in ("drift_valid", "drift_test"):
        (tmp_path / split).mkdir()
        pq.write_table(pa.Table.from_pydict(rows, schema=DRIFT_SCHEMA), tmp_path / split / "part-0.parquet")
    (tmp_path / "planted").mkdir()
    pq.write_table(pa.table({"user_id": rows["user_id"], "migration_ts": pa.array(
        [50 * DAY if m else None for _, _, m in users], pa.int64())}), tmp_path / "planted" / "part-0.parquet")
    return tmp_path


def test_flag_is_fitted_on_one_half_of_the_users_and_measured_on_the_other(tmp_path):
    """Issue 36.4: a user's valid and test labels share one planted time, so the threshold is fitted on the fitting
    half (drift.fitting_users) and precision / recall / F1 / AUC come from the held-out half only. Planted: on the
    fitting half, level 1 and 2 migrated (the best threshold is below level 1); on the held-out half, level 1 did
    not migrate (fitted on it too, the threshold would move above level 1 and precision would read 1.0)."""
    from interest.migration_scores import migration_metrics
    from interest_core.migration_config import MigrationConfig

    ids = [f"user-{i}" for i in range(200)]
    fit = drift.fitting_users(ids)
    assert 0.4 < fit.mean() < 0.6 and (drift.fitting_users(ids[::-1])[::-1] == fit).all()  # per user, not per batch
    fitting, held = [u for u, f in zip(ids, fit) if f], [u for u, f in zip(ids, fit) if not f]
    users = ([(u, 1, True) for u in fitting[:3]] + [(u, 2, True) for u in fitting[3:5]]
             + [(u, 0, False) for u in fitting[5:10]]
             + [(u, 1, False) for u in held[:8]] + [(u, 2, True) for u in held[8:10]])
    data = _drift_dir(tmp_path, users)
    m, flagged = migration_metrics(data, MigrationConfig(), np.array([0, 0, 1, 2]), ["?", "old", "new"])
    assert m["flag_score"] == "category_js" and m["threshold"]["chosen_on"] == "validation F1"
    assert m["threshold"]["n_fit_users"] == 10 and m["threshold"]["valid_f1"] == pytest.approx(1.0)
    assert 0 < m["threshold"]["value"] < drift.js_divergence({1: 1.0}, {1: 0.5, 2: 0.5})
    # every test user is flagged with that rule (the `migrated` segment, as the export flags them) ...
    assert m["n_users"] == 20 and m["n_flagged"] == 15 and len(flagged) == 15
    assert flagged == {u for u, lv, _ in users if lv > 0}
    # ... but measured on the held-out half only: 8 level-1 false positives, 2 true positives
    assert m["n_held_out"] == 10 and m["n_migrated"] == 2 and m["n_flagged_held_out"] == 10
    assert (m["precision"], m["recall"]) == pytest.approx((0.2, 1.0)) and m["f1"] == pytest.approx(4 / 12)
    assert m["auc"]["category_js"] == pytest.approx(1.0) and m["auc"]["latent"] is None
