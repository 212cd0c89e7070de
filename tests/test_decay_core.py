"""interest_core.decay: hazard read-outs, calibration metrics, RFM features, BG/NBD and Platt baselines."""
from __future__ import annotations

import importlib.resources
import math

import numpy as np
import pandas as pd
import pytest

from interest_core import binary
from interest_core import decay as d
from interest_core import decay_baselines as db

DAY = 86400.0
K = d.NUM_DECAY_BUCKETS


def constant_rate_hazards(lam_per_s: float, n: int = 1) -> np.ndarray:
    """h_k = 1 - exp(-lambda * width_k): the same hazard rate lambda in every bucket."""
    return np.tile(-np.expm1(-lam_per_s * np.diff(d.BUCKET_EDGES_S)), (n, 1))


# ------------------------------------------------------------------------------------------------ buckets
def test_bucket_edges():
    e = d.BUCKET_EDGES_S
    assert e.dtype == np.float64 and e.shape == (K + 1,) and K == 24
    assert e[0] == 0 and e[1] == 3600 and e[-1] == pytest.approx(365 * DAY, rel=1e-15)
    assert np.all(np.diff(e) > 0)
    assert d.DECAY_DAYS == (1, 7, 14, 30, 60, 90, 180, 365)


def test_gap_bucket():
    e = d.BUCKET_EDGES_S
    g = np.array([0, 1, 3599.999, 3600, e[5], e[5] - 1e-6, e[-1] - 1, e[-1], 400 * DAY])
    got = d.gap_bucket(g)
    assert got.dtype == np.int64
    assert got.tolist() == [0, 0, 0, 1, 5, 4, K - 1, K, K]
    assert d.gap_bucket(np.array([3600], dtype=np.int64)).tolist() == [1]
    with pytest.raises(ValueError, match="2 gaps"):
        d.gap_bucket(np.array([5.0, -1.0, -3.0]))


# ------------------------------------------------------------------------------------------------ survival
def test_survival_monotone_and_starts_at_one():
    rng = np.random.default_rng(0)
    h = rng.uniform(0, 1, size=(50, K))
    h[0] = 0.0
    h[1, 3] = 1.0  # certain event in bucket 3: clipped, stays finite
    t = np.concatenate([[0.0], np.geomspace(1, 500 * DAY, 400)])
    s = d.survival_at(h, t)
    assert s.shape == (50, t.size)
    assert np.all(s[:, 0] == 1.0)
    assert np.all(np.diff(s, axis=1) <= 1e-15)
    assert np.all(s[0] == 1.0)
    assert np.all((s >= 0) & (s <= 1))
    # S at each bucket's end is the product of (1 - h_j) over the buckets so far
    np.testing.assert_allclose(d.survival_at(h[2:], d.BUCKET_EDGES_S[1:]), np.cumprod(1 - h[2:], axis=1), rtol=1e-12)
    # per-user times: (N,) and (N, M)
    np.testing.assert_allclose(d.survival(h, np.full(50, 7 * DAY)), d.survival_at(h, [7 * DAY])[:, 0])
    np.testing.assert_allclose(d.survival(h, np.tile(t, (50, 1))), s)


def test_geometric_interpolation_inside_a_bucket():
    h = np.full((1, K), 0.3)
    e = d.BUCKET_EDGES_S
    mid = e[6] + 0.25 * (e[7] - e[6])
    assert d.survival_at(h, [mid])[0, 0] == pytest.approx(0.7 ** 6 * 0.7 ** 0.25, rel=1e-12)
    beyond = e[-1] + 2 * (e[-1] - e[-2])  # extrapolated with the last bucket's rate
    assert d.survival_at(h, [beyond])[0, 0] == pytest.approx(0.7 ** K * 0.7 ** 2, rel=1e-12)


def test_constant_rate_is_exponential_and_memoryless():
    lam = 1 / (10 * DAY)
    h = constant_rate_hazards(lam, 4)
    elapsed = np.array([0.0, 1800.0, 20 * DAY, 400 * DAY])  # inside bucket 0, mid-range, beyond the last edge
    t = np.array([0, 600, 3600, DAY, 30 * DAY, 200 * DAY, 365 * DAY, 500 * DAY])
    np.testing.assert_allclose(d.survival_at(h, t), np.tile(np.exp(-lam * t), (4, 1)), rtol=1e-12)
    np.testing.assert_allclose(d.residual_survival(h, elapsed, t), np.tile(np.exp(-lam * t), (4, 1)), rtol=1e-10)
    np.testing.assert_allclose(d.p_active_within(h, elapsed, 7 * DAY), 1 - math.exp(-lam * 7 * DAY), rtol=1e-10)
    expected = (1 - math.exp(-lam * 365 * DAY)) / lam / DAY
    np.testing.assert_allclose(d.expected_days_to_next(h, elapsed), expected, rtol=1e-10)
    np.testing.assert_allclose(d.half_life_days(h, elapsed), math.log(2) / lam / DAY, rtol=1e-10)


def test_conditional_readouts_match_a_numeric_integral():
    rng = np.random.default_rng(1)
    h = rng.uniform(0.001, 0.3, size=(6, K))
    elapsed = np.array([0.0, 100.0, 3 * DAY, 45 * DAY, 364 * DAY, 600 * DAY])
    t = np.linspace(0, 365 * DAY, 400_001)
    ratio = d.residual_survival(h, elapsed, t)
    np.testing.assert_allclose(ratio, d.survival(h, elapsed[:, None] + t) / d.survival(h, elapsed)[:, None],
                               rtol=1e-9)
    trapezoid = ((ratio[:, 1:] + ratio[:, :-1]) / 2 * np.diff(t)).sum(axis=1) / DAY
    np.testing.assert_allclose(d.expected_days_to_next(h, elapsed), trapezoid, rtol=1e-6)
    hl = d.half_life_days(h, elapsed)
    for i in range(6):
        below = np.nonzero(ratio[i] <= 0.5)[0]
        if below.size:
            assert hl[i] == pytest.approx(t[below[0]] / DAY, abs=365 / 400_000 + 1e-9)
        else:
            assert np.isnan(hl[i])
    np.testing.assert_allclose(d.p_active_within(h, elapsed, 30 * DAY),
                               1 - d.residual_survival(h, elapsed, [30 * DAY])[:, 0])


def test_half_life_nan_when_not_reached_and_tiny_survival_is_safe():
    h = np.full((2, K), 1e-9)
    h[1] = 0.999999
    assert np.isnan(d.half_life_days(h, np.zeros(2))[0])
    assert d.expected_days_to_next(h, np.zeros(2))[0] == pytest.approx(365, rel=1e-6)
    # S(a) ~ 1e-144 after 24 near-certain buckets: the conditional read-outs stay finite
    out = d.residual_survival(h[1:], [30 * DAY], [DAY])
    assert np.all(np.isfinite(out)) and 0 <= out[0, 0] <= 1
    with pytest.raises(ValueError, match="1 elapsed_s"):
        d.p_active_within(h, np.array([1.0, -1.0]), DAY)
    with pytest.raises(ValueError, match="outside"):
        d.survival_at(np.full((1, K), 1.5), [1.0])


# ----------------------------------------------------------------------------------------------- calibration
def test_brier_reliability_ece_by_hand():
    p = np.array([0.1, 0.2, 0.8, 0.9, 1.0])
    y = np.array([0, 1, 1, 1, 0])
    assert binary.brier(p, y) == pytest.approx((0.01 + 0.64 + 0.04 + 0.01 + 1.0) / 5)
    r = binary.reliability(p, y, bins=2)  # [0, .5): 0.1, 0.2 ; [.5, 1]: 0.8, 0.9, 1.0
    assert r["count"].tolist() == [2, 3]
    np.testing.assert_allclose(r["mean_pred"], [0.15, 0.9])
    np.testing.assert_allclose(r["rate"], [0.5, 2 / 3])
    assert binary.ece(p, y, bins=2) == pytest.approx(2 / 5 * 0.35 + 3 / 5 * abs(0.9 - 2 / 3))
    r4 = binary.reliability(p, y, bins=4)  # [.25, .5) is empty
    assert r4["count"].tolist() == [2, 0, 0, 3]
    assert np.isnan(r4["mean_pred"][1]) and np.isnan(r4["rate"][2])
    assert binary.ece(p, y, bins=4) == pytest.approx(binary.ece(p, y, bins=2))
    with pytest.raises(ValueError):
        binary.brier(np.array([0.5]), np.array([2]))


def test_calibrated_sample_has_small_ece():
    rng = np.random.default_rng(2)
    p = rng.uniform(size=50_000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert binary.ece(p, y) < 0.02
    assert binary.ece(np.clip(p + 0.2, 0, 1), y) > 0.1


# ----------------------------------------------------------------------------------------------- RFM features
def test_rfm_features_by_hand():
    day0 = 19_000 * 86400  # a UTC midnight
    end = day0 + 100 * 86400 + 12 * 3600  # day 100, noon
    users = [
        [day0 + 3600, day0 + 7200, day0 + 5 * 86400 + 10, day0 + 95 * 86400],  # days 0, 0, 5, 95
        [day0 + 100 * 86400 + 12 * 3600],  # one event exactly at C
        [day0 + 9 * 86400 + 5, day0 + 2 * 86400 + 3600, day0 + 9 * 86400 + 1],  # unsorted: days 9, 2, 9
    ]
    ts, off = db.flat_histories([np.array(u) for u in users])
    assert off.tolist() == [0, 4, 5, 8]
    f = db.rfm_features(ts, off, end)
    np.testing.assert_allclose(f["recency_days"], [(end - users[0][-1]) / DAY, 0.0, (end - users[2][0]) / DAY])
    assert f["frequency_90d"].tolist() == [1, 1, 0]  # (C - 90 d, C] starts at day 10 noon
    assert f["x"].tolist() == [2, 0, 1]
    np.testing.assert_array_equal(f["t_x"], [95, 0, 7])
    np.testing.assert_allclose(f["T"], [100.5, 0.5, 98.5])
    assert f["x"].dtype == np.int64 and f["frequency_90d"].dtype == np.int64


def test_flat_histories_from_arrow_and_errors():
    pa = pytest.importorskip("pyarrow")
    arr = pa.array([[1, 2], [], [5, 6, 7], [9]], type=pa.list_(pa.int64())).slice(2, 2)
    ts, off = db.flat_histories(arr)
    assert ts.tolist() == [5, 6, 7, 9] and off.tolist() == [0, 3, 4]
    with pytest.raises(ValueError, match="1 users have no events"):
        db.rfm_features(np.array([5, 6]), np.array([0, 2, 2]), 10)
    with pytest.raises(ValueError, match="1 events lie after"):
        db.rfm_features(np.array([5, 60]), np.array([0, 1, 2]), np.array([10, 50]))


# ----------------------------------------------------------------------------------------------- BG/NBD
def cdnow() -> pd.DataFrame:
    path = importlib.resources.files("lifetimes") / "datasets" / "cdnow_customers_summary.csv"
    with importlib.resources.as_file(path) as p:
        return pd.read_csv(p)


@pytest.fixture(scope="module")
def cdnow_fit():
    df = cdnow()
    return df, db.fit_bgnbd(df["frequency"], df["recency"], df["T"])


def test_bgnbd_reproduces_published_cdnow_fit(cdnow_fit):
    _, params = cdnow_fit  # Fader, Hardie & Lee (2005): r 0.243, alpha 4.414, a 0.793, b 2.426
    np.testing.assert_allclose(params, [0.243, 4.414, 0.793, 2.426], atol=2e-3)


def test_bgnbd_p_alive_matches_lifetimes(cdnow_fit):
    from lifetimes import BetaGeoFitter

    df, params = cdnow_fit
    fitter = BetaGeoFitter()
    fitter.params_ = pd.Series(list(params), index=["r", "alpha", "a", "b"])
    x, t_x, T = df["frequency"].to_numpy(), df["recency"].to_numpy(), df["T"].to_numpy()
    np.testing.assert_allclose(db.bgnbd_p_alive(params, x, t_x, T), fitter.conditional_probability_alive(x, t_x, T),
                               rtol=1e-10)


def test_bgnbd_p_active_within_bounds_and_recency(cdnow_fit):
    _, params = cdnow_fit
    t_x = np.linspace(0, 38, 20)
    p = db.bgnbd_p_active_within(params, np.full(20, 3), t_x, np.full(20, 38.0), 10.0)
    assert np.all((p > 0) & (p < 1))
    assert np.all(np.diff(p) > 0)  # more recent last purchase (larger t_x, smaller T - t_x) -> more likely active
    T = np.array([1.0, 10, 30])  # x = 0: alive for sure, so only the NBD part is left
    np.testing.assert_allclose(db.bgnbd_p_active_within(params, np.zeros(3), np.zeros(3), T, 7.0),
                               1 - ((params.alpha + T) / (params.alpha + T + 7)) ** params.r, rtol=1e-12)


def test_bgnbd_p_active_within_is_exact_on_simulated_bgnbd():
    """Simulate the BG/NBD process itself; predicted and observed window rates agree within Monte-Carlo error."""
    rng = np.random.default_rng(3)
    params = db.BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=2.5)
    n, T, H = 40_000, 60.0, 20.0
    lam = rng.gamma(params.r, 1 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    t, alive = np.zeros(n), np.ones(n, bool)
    x, t_x, label = np.zeros(n), np.zeros(n), np.zeros(n, bool)
    while alive.any():
        t = np.where(alive, t + rng.exponential(1 / lam), t)
        alive &= t <= T + H
        in_cal, in_window = alive & (t <= T), alive & (t > T)
        x += in_cal
        t_x = np.where(in_cal, t, t_x)
        label |= in_window
        alive &= in_cal & (rng.uniform(size=n) >= drop)  # dropout right after a purchase; stop after the window's
    p = db.bgnbd_p_active_within(params, x, t_x, np.full(n, T), H)
    assert abs(p.mean() - label.mean()) < 3 * math.sqrt(0.25 / n)
    assert binary.ece(p, label.astype(int), bins=10) < 0.015


# ------------------------------------------------------------------------------------------- Platt, baselines
def test_platt_recovers_a_logistic_slope():
    rng = np.random.default_rng(4)
    s = rng.normal(1.0, 2.0, 40_000)
    y = (rng.uniform(size=s.size) < 1 / (1 + np.exp(-(1.5 * s - 0.5)))).astype(int)
    cal = db.platt(s, y)
    assert cal.slope == pytest.approx(1.5, abs=0.08) and cal.intercept == pytest.approx(-0.5, abs=0.08)
    assert np.all((cal.predict(s) > 0) & (cal.predict(s) < 1))


def test_platt_stays_finite_on_separable_and_one_class_data():
    s = np.array([0.0, 1.0, 2.0, 3.0])
    sep = db.platt(s, np.array([0, 0, 1, 1]))
    assert np.isfinite(sep.slope) and sep.slope > 0
    p = sep.predict(s)
    assert p[0] < 0.05 and p[3] > 0.95
    one = db.platt(s, np.ones(4))
    assert np.isfinite(one.intercept) and np.all(one.predict(s) > 0.95)


def test_fit_bgnbd_falls_back_to_nelder_mead(monkeypatch):
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    def fail(self, *args, **kwargs):
        raise ConvergenceError("forced")

    df = cdnow().iloc[::8]  # a subset keeps Nelder-Mead quick
    bfgs = db.fit_bgnbd(df["frequency"], df["recency"], df["T"])
    monkeypatch.setattr(BetaGeoFitter, "fit", fail)
    with pytest.warns(RuntimeWarning, match="Nelder-Mead"):
        params = db.fit_bgnbd(df["frequency"], df["recency"], df["T"])
    np.testing.assert_allclose(params, bfgs, rtol=2e-3)


def simulate_split(rng: np.random.Generator, n: int, end: float, horizon_days: float) -> dict:
    """BG/NBD-like users (Poisson events, dropout after a repeat event) observed up to end; label = an event in
    (end, end + H]."""
    lam = rng.gamma(1.0, 1 / (7 * DAY), n)  # events per second
    repeats_made = rng.geometric(rng.beta(1.0, 12.0, n))  # the user drops out right after this repeat event
    gaps = rng.exponential(1.0, (n, 80)) / lam[:, None]
    gaps[:, 0] = 0.0
    times = np.floor(end - rng.uniform(30, 300, n)[:, None] * DAY + np.cumsum(gaps, axis=1))
    made = np.arange(80) <= repeats_made[:, None]
    hist = made & (times <= end)
    ts, off = times[hist].astype(np.int64), np.concatenate([[0], np.cumsum(hist.sum(axis=1))])
    out = db.rfm_features(ts, off, end)
    out["label"] = (made & (times > end) & (times <= end + horizon_days * DAY)).any(axis=1).astype(np.int32)
    return out


def test_auc_is_the_pairwise_definition():
    rng = np.random.default_rng(6)
    s = rng.integers(0, 20, 400).astype(np.float64)  # many ties
    y = (rng.uniform(size=s.size) < s / 25).astype(int)
    pos, neg = s[y == 1], s[y == 0]
    pairwise = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert binary.auc(s, y) == pytest.approx(pairwise, rel=1e-12)
    assert binary.auc(np.array([1.0, 2, 3]), np.array([0, 1, 1])) == 1.0
    assert binary.auc(np.array([1.0, 1.0]), np.array([0, 1])) == 0.5
    assert np.isnan(binary.auc(np.array([1.0, 2.0]), np.array([1, 1])))


def test_decay_baselines_end_to_end():
    import warnings

    rng = np.random.default_rng(5)
    end = 19_500 * DAY
    valid, test = simulate_split(rng, 3000, end - 14 * DAY, 14), simulate_split(rng, 3000, end, 14)
    assert 0.2 < test["label"].mean() < 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # BFGS converges here: no fallback, no numpy warnings
        res = db.decay_baselines(valid, test, horizon_days=14)
    assert set(res) == {"recency", "frequency", "bgnbd"}
    assert res["bgnbd"]["fit"] == "lifetimes" and set(res["bgnbd"]["params"]) == {"r", "alpha", "a", "b"}
    for name, m in res.items():
        assert {"auc", "brier"} <= set(m)
        assert 0.6 < m["auc"] <= 1 and 0 < m["brier"] < 0.25, (name, m)
    assert res["bgnbd"]["brier"] < res["frequency"]["brier"]
    contract = {"bg_x": test["x"], "bg_t_x": test["t_x"], "bg_T": test["T"], "label": test["label"],
                "recency_days": test["recency_days"], "frequency_90d": test["frequency_90d"]}
    assert db.decay_baselines(valid, contract, horizon_days=14) == res  # the data contract's column names


def test_hazard_scale_recovers_a_proportional_drift():
    """Labels drawn from hazards with every rate x 0.4 are calibrated back by the fitted scale; ranks unchanged."""
    rng = np.random.default_rng(3)
    n = 20000
    h = rng.uniform(0.001, 0.2, (n, d.NUM_DECAY_BUCKETS)) * rng.uniform(0.2, 1.5, (n, 1))
    a = rng.uniform(0, 60, n) * d.DAY_S
    true = d.p_active_within(d.scale_hazards(h, 0.4), a, 30 * d.DAY_S)
    y = (rng.uniform(size=n) < true).astype(int)
    c = d.fit_hazard_scale(h, a, 30 * d.DAY_S, y)
    assert c == pytest.approx(0.4, rel=0.05)
    cal = d.p_active_within(d.scale_hazards(h, c), a, 30 * d.DAY_S)
    raw = d.p_active_within(h, a, 30 * d.DAY_S)
    assert binary.ece(cal, y) < 0.02 < binary.ece(raw, y)
    assert np.array_equal(np.argsort(cal, kind="stable"), np.argsort(raw, kind="stable"))
    np.testing.assert_allclose(d.survival_at(d.scale_hazards(h[:5], 2.0), np.array([7 * d.DAY_S])),
                               d.survival_at(h[:5], np.array([7 * d.DAY_S])) ** 2, rtol=1e-9)
