"""Interest decay: survival read-outs of a discrete-time hazard head and their calibration (the classical
baselines are in interest_core/decay_baselines.py).

Time axis: the gap (seconds) from a user's last event to the next one, cut into K = NUM_DECAY_BUCKETS buckets by
BUCKET_EDGES_S (0, then log-spaced from 1 hour to 365 days); bucket k = [edges[k], edges[k+1]). The head outputs
hazards (N, K): h_k = P(next event in bucket k | none before edges[k]). Inside bucket k the hazard *rate* is
constant, so S(edges[k] + u) = S(edges[k]) * (1 - h_k) ** (u / width_k), i.e. the cumulative hazard
Lambda(t) = -log S(t) is piecewise linear. Past the last edge (365 days) the last bucket's rate is extrapolated.
Hazards are clipped to 1 - 1e-12 (a hazard of exactly 1 would make log S infinite).

Conditional read-outs take elapsed a (seconds since the last event, at the end of observation, with no event in
(last, last + a]) and use S(a + t) / S(a) = exp(-(Lambda(a + t) - Lambda(a))), computed as a difference of
cumulative hazards, so S(a) ~ 0 needs no floor. All read-outs are exact per bucket and vectorised over users.
Numpy only (scipy inside fit_hazard_scale).
"""
from __future__ import annotations

import math

import numpy as np


DAY_S = 86400.0
NUM_DECAY_BUCKETS = 24
BUCKET_EDGES_S = np.concatenate([[0.0], np.geomspace(3600.0, 365 * DAY_S, NUM_DECAY_BUCKETS)])
BUCKET_EDGES_S.flags.writeable = False
DECAY_DAYS = (1, 7, 14, 30, 60, 90, 180, 365)  # days at which S(t) is reported
_WIDTHS_S = np.diff(BUCKET_EDGES_S)  # (K,)
_MAX_HAZARD = 1.0 - 1e-12
_CAP_DAYS = 365.0


# ---------------------------------------------------------------------------------------------- hazard read-outs
def gap_bucket(gap_s: np.ndarray) -> np.ndarray:
    """int64 bucket index of each gap (seconds, any shape): k with edges[k] <= gap < edges[k+1]; K if >= 365 days.

    Raises ValueError (naming the count) on negative or NaN gaps.
    """
    g = np.asarray(gap_s, dtype=np.float64)
    bad = int(np.count_nonzero(~(g >= 0)))
    if bad:
        raise ValueError(f"{bad} gaps are negative or NaN")
    return (np.searchsorted(BUCKET_EDGES_S, g, side="right") - 1).astype(np.int64)


def _cum_hazards(hazards: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rate (N, K) per second, Lambda at each bucket's start (N, K)) from hazards (N, K)."""
    h = np.asarray(hazards, dtype=np.float64)
    if h.ndim != 2 or h.shape[1] != NUM_DECAY_BUCKETS:
        raise ValueError(f"hazards must be (N, {NUM_DECAY_BUCKETS}), got shape {h.shape}")
    bad = int(np.count_nonzero(~((h >= 0) & (h <= 1))))
    if bad:
        raise ValueError(f"{bad} hazards are outside [0, 1] or NaN")
    per_bucket = -np.log1p(-np.minimum(h, _MAX_HAZARD))  # Lambda gained over each whole bucket
    start = np.zeros_like(per_bucket)
    np.cumsum(per_bucket[:, :-1], axis=1, out=start[:, 1:])
    return per_bucket / _WIDTHS_S, start


def _lambda(rate: np.ndarray, start: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cumulative hazard at per-row times t (N, M) seconds >= 0; the last rate continues past the last edge."""
    k = np.minimum(np.searchsorted(BUCKET_EDGES_S, t, side="right") - 1, NUM_DECAY_BUCKETS - 1)
    return np.take_along_axis(start, k, 1) + np.take_along_axis(rate, k, 1) * (t - BUCKET_EDGES_S[k])


def _times(t_s: np.ndarray, name: str) -> np.ndarray:
    t = np.asarray(t_s, dtype=np.float64)
    bad = int(np.count_nonzero(~(t >= 0)))
    if bad:
        raise ValueError(f"{bad} {name} values are negative or NaN")
    return t


def survival(hazards: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """S(t) = P(no event in (0, t]) since the last event, at per-user times t_s (N,) or (N, M) seconds; same shape.

    Piecewise-constant rate inside each bucket; past 365 days the last bucket's rate is extrapolated.
    """
    rate, start = _cum_hazards(hazards)
    t = _times(t_s, "t_s")
    if t.shape[:1] != (rate.shape[0],) or t.ndim > 2:
        raise ValueError(f"t_s must be (N,) or (N, M) with N={rate.shape[0]}, got shape {t.shape}")
    return np.exp(-_lambda(rate, start, t.reshape(rate.shape[0], -1))).reshape(t.shape)


def survival_at(hazards: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """S(t) for every user at the same times t_s (M,) seconds -> (N, M). See :func:`survival`."""
    rate, start = _cum_hazards(hazards)
    t = _times(t_s, "t_s").reshape(-1)
    return np.exp(-_lambda(rate, start, np.broadcast_to(t, (rate.shape[0], t.size))))


def _elapsed(elapsed_s: np.ndarray, n: int) -> np.ndarray:
    a = _times(elapsed_s, "elapsed_s").reshape(-1)
    if a.size != n:
        raise ValueError(f"elapsed_s has {a.size} values for {n} hazard rows")
    return a[:, None]


def residual_survival(hazards: np.ndarray, elapsed_s: np.ndarray, t_s: np.ndarray) -> np.ndarray:
    """S(a + t) / S(a): P(no event in the next t seconds | none for a seconds). elapsed (N,), t (M,) -> (N, M)."""
    rate, start = _cum_hazards(hazards)
    a = _elapsed(elapsed_s, rate.shape[0])
    t = _times(t_s, "t_s").reshape(1, -1)
    return np.exp(-(_lambda(rate, start, a + t) - _lambda(rate, start, a)))


def p_active_within(hazards: np.ndarray, elapsed_s: np.ndarray, horizon_s: float | np.ndarray) -> np.ndarray:
    """P(an event within the next horizon_s seconds | none for elapsed_s) = 1 - S(a + H) / S(a) -> (N,).

    horizon_s: a scalar or (N,) seconds.
    """
    rate, start = _cum_hazards(hazards)
    a = _elapsed(elapsed_s, rate.shape[0])
    hz = np.broadcast_to(_times(horizon_s, "horizon_s"), (rate.shape[0],))[:, None]
    return -np.expm1(-(_lambda(rate, start, a + hz) - _lambda(rate, start, a)))[:, 0]


def elapsed_s(rows: dict) -> np.ndarray:
    """(N,) seconds from each decay row's last event (ts[-1]) to its end of observation (end_ts)."""
    return np.asarray(rows["end_ts"], dtype=np.float64) - np.asarray([t[-1] for t in rows["ts"]], dtype=np.float64)


def scale_hazards(hazards: np.ndarray, scale: float) -> np.ndarray:
    """Hazards whose every rate is multiplied by `scale` (proportional hazards): S becomes S ** scale, so every
    read-out above stays exact. h' = 1 - (1 - h) ** scale, (N, K)."""
    return -np.expm1(scale * np.log1p(-np.minimum(np.asarray(hazards, dtype=np.float64), _MAX_HAZARD)))


def fit_hazard_scale(hazards: np.ndarray, elapsed_s: np.ndarray, horizon_s: float, label: np.ndarray) -> float:
    """The rate scale c (max. likelihood of the binary labels under P = 1 - exp(-c * dLambda), dLambda the
    cumulative hazard over (a, a + H]) that calibrates the hazards on held-out users, e.g. the validation window
    before the cutoff: a one-parameter, rank-preserving correction for activity that drifts between the
    training period and the one scored (the CDNOW cohort buys less each month)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(label, dtype=np.float64).reshape(-1)
    dlam = -np.log1p(-np.minimum(p_active_within(hazards, elapsed_s, horizon_s), _MAX_HAZARD))  # (N,)
    if y.size == 0 or y.min() == y.max():
        return 1.0

    def nll(log_c: float) -> float:
        z = np.exp(log_c) * dlam
        return float(-np.sum(y * np.log(-np.expm1(-np.maximum(z, 1e-300))) - (1 - y) * z))

    return float(np.exp(minimize_scalar(nll, bounds=(-8.0, 8.0), method="bounded").x))


def _segments(hazards: np.ndarray, elapsed_s: np.ndarray, cap_s: float):
    """Per user, the K + 1 pieces of t in [0, cap_s] on which the rate is constant (piece j lies in bucket j; piece
    K is past the last edge): starts (N, K+1) s, lengths (N, K+1) s, rates (N, K+1) /s, Lambda(a+start)-Lambda(a)."""
    rate, start = _cum_hazards(hazards)
    a = _elapsed(elapsed_s, rate.shape[0])
    inner = np.clip(BUCKET_EDGES_S[1:] - a, 0.0, cap_s)  # (N, K)
    pts = np.concatenate([np.zeros_like(a), inner, np.full_like(a, cap_s)], axis=1)  # (N, K+2)
    begin, length = pts[:, :-1], np.diff(pts, axis=1)
    rates = np.concatenate([rate, rate[:, -1:]], axis=1)
    lam0 = _lambda(rate, start, a + begin) - _lambda(rate, start, a)
    return begin, length, rates, lam0


def expected_days_to_next(hazards: np.ndarray, elapsed_s: np.ndarray, cap_days: float = _CAP_DAYS) -> np.ndarray:
    """Restricted mean time to the next event, in days, capped at cap_days (365): int_0^cap S(a+t)/S(a) dt -> (N,).

    A user who would stay silent beyond the cap contributes the cap, so this is not the unrestricted mean.
    """
    _, length, rates, lam0 = _segments(hazards, elapsed_s, cap_days * DAY_S)
    x = rates * length
    safe = np.where(x > 1e-12, x, 1.0)
    frac = np.where(x > 1e-12, -np.expm1(-safe) / safe, 1.0 - x / 2)  # (1 - e^-x) / x, -> 1 as x -> 0
    return (np.exp(-lam0) * length * frac).sum(axis=1) / DAY_S


def half_life_days(hazards: np.ndarray, elapsed_s: np.ndarray, cap_days: float = _CAP_DAYS) -> np.ndarray:
    """Smallest t (days) with S(a + t) / S(a) <= 0.5 -> (N,); NaN when not reached within cap_days (365)."""
    begin, length, rates, lam0 = _segments(hazards, elapsed_s, cap_days * DAY_S)
    hit = (length > 0) & (lam0 + rates * length >= math.log(2.0))
    j = np.argmax(hit, axis=1)[:, None]
    r = np.take_along_axis(rates, j, 1)[:, 0]
    t = np.take_along_axis(begin, j, 1)[:, 0] + (math.log(2.0) - np.take_along_axis(lam0, j, 1)[:, 0]) / np.where(
        r > 0, r, 1.0)
    return np.where(hit.any(axis=1), t / DAY_S, np.nan)
