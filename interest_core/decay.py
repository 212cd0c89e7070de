"""Interest decay: survival read-outs of a discrete-time hazard head, calibration metrics, classical baselines.

Time axis: the gap (seconds) from a user's last event to the next one, cut into K = NUM_DECAY_BUCKETS buckets by
BUCKET_EDGES_S (0, then log-spaced from 1 hour to 365 days); bucket k = [edges[k], edges[k+1]). The head outputs
hazards (N, K): h_k = P(next event in bucket k | none before edges[k]). Inside bucket k the hazard *rate* is
constant, so S(edges[k] + u) = S(edges[k]) * (1 - h_k) ** (u / width_k), i.e. the cumulative hazard
Lambda(t) = -log S(t) is piecewise linear. Past the last edge (365 days) the last bucket's rate is extrapolated.
Hazards are clipped to 1 - 1e-12 (a hazard of exactly 1 would make log S infinite).

Conditional read-outs take elapsed a (seconds since the last event, at the end of observation, with no event in
(last, last + a]) and use S(a + t) / S(a) = exp(-(Lambda(a + t) - Lambda(a))), computed as a difference of
cumulative hazards, so S(a) ~ 0 needs no floor. All read-outs are exact per bucket and vectorised over users.

Histories (for the classical baselines) use the Arrow list layout: flat int64 unix seconds `ts` (E,) and
`offsets` (N+1,), user i's events being ts[offsets[i]:offsets[i+1]]; `flat_histories` builds it from a list of
arrays or a pyarrow list array. Numpy (and pyarrow) only; `lifetimes` is imported inside `fit_bgnbd` alone.
"""
from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from interest_core.binary import auc, brier

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


# --------------------------------------------------------------------------------------------- histories and RFM
def flat_histories(histories) -> tuple[np.ndarray, np.ndarray]:
    """(ts (E,) int64, offsets (N+1,) int64) from a list of per-user unix-second arrays or a pyarrow list array
    (chunked or not) of int64 unix seconds; a null list counts as empty."""
    if hasattr(histories, "combine_chunks"):
        histories = histories.combine_chunks()
    if hasattr(histories, "offsets") and hasattr(histories, "values"):
        off = np.asarray(histories.offsets, dtype=np.int64)
        values = histories.values.to_numpy(zero_copy_only=False)
        return np.asarray(values[off[0]:off[-1]], dtype=np.int64), off - off[0]
    arrays = [np.asarray(h, dtype=np.int64).reshape(-1) for h in histories]
    off = np.concatenate([[0], np.cumsum([a.size for a in arrays], dtype=np.int64)]).astype(np.int64)
    return (np.concatenate(arrays) if arrays else np.zeros(0, np.int64)), off


def rfm_features(ts: np.ndarray, offsets: np.ndarray, end_s: float | np.ndarray,
                 frequency_window_days: float = 90.0) -> dict[str, np.ndarray]:
    """Recency / frequency and BG/NBD's calibration summary per user, all in days (floats unless noted).

    ts (E,) int64 unix seconds, offsets (N+1,) (module docstring; any order within a user); end_s: observation
    end C (scalar or (N,) seconds). Every user needs >= 1 event and no event after C (ValueError naming counts).
    Returns recency_days = (C - last event) / 1 day; frequency_90d (int64) = events in (C - 90 d, C];
    x (int64) = distinct UTC days with an event - 1; t_x = last active day - first active day (whole days);
    T = C - start of the first active day. Time 0 of (t_x, T) is the first active day's midnight (UTC).
    """
    ts = np.asarray(ts, dtype=np.int64).reshape(-1)
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    if off.size < 1 or off[0] != 0 or off[-1] != ts.size or np.any(np.diff(off) < 0):
        raise ValueError(f"offsets must rise from 0 to len(ts)={ts.size}")
    n, counts = off.size - 1, np.diff(off)
    if np.any(counts == 0):
        raise ValueError(f"{int(np.count_nonzero(counts == 0))} users have no events")
    end = np.broadcast_to(np.asarray(end_s, dtype=np.float64), (n,))
    user = np.repeat(np.arange(n), counts)
    late = int(np.count_nonzero(ts > end[user]))
    if late:
        raise ValueError(f"{late} events lie after the observation end")
    if n == 0:
        z = np.zeros(0)
        return {"recency_days": z, "frequency_90d": z.astype(np.int64), "x": z.astype(np.int64), "t_x": z, "T": z}
    first, last = np.minimum.reduceat(ts, off[:-1]), np.maximum.reduceat(ts, off[:-1])
    frequency = np.bincount(user[ts > end[user] - frequency_window_days * DAY_S], minlength=n).astype(np.int64)
    day = ts // 86400
    if np.any((np.diff(ts) < 0) & (user[1:] == user[:-1])):  # unsorted within a user: sort (user, day)
        order = np.lexsort((day, user))
        day, user = day[order], user[order]
    new = np.ones(ts.size, dtype=bool)
    new[1:] = (day[1:] != day[:-1]) | (user[1:] != user[:-1])
    first_day = first // 86400
    return {
        "recency_days": (end - last) / DAY_S,
        "frequency_90d": frequency,
        "x": np.bincount(user[new], minlength=n).astype(np.int64) - 1,
        "t_x": (last // 86400 - first_day).astype(np.float64),
        "T": (end - first_day * DAY_S) / DAY_S,
    }


def recency_score(recency_days: np.ndarray) -> np.ndarray:
    """Ranking score: higher = more likely active soon. -recency_days (N,)."""
    return -np.asarray(recency_days, dtype=np.float64)


def frequency_score(frequency_90d: np.ndarray) -> np.ndarray:
    """Ranking score: events in the last 90 days (N,) as float64."""
    return np.asarray(frequency_90d, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------- BG/NBD
class BGNBDParams(NamedTuple):
    """BG/NBD parameters: Gamma(r, alpha) purchase rates (alpha in days), Beta(a, b) dropout probabilities."""
    r: float
    alpha: float
    a: float
    b: float


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, penalizer: float = 0.0) -> BGNBDParams:
    """Maximum-likelihood BG/NBD (lifetimes.BetaGeoFitter) on x (N,) repeat count, t_x (N,) and T (N,) in days.

    Identical (x, t_x, T) rows are merged into one weighted row first (same likelihood, faster fit). When
    lifetimes' BFGS stops without converging (typical when the optimum is at a boundary, e.g. no dropout at all:
    a, b -> inf) the same lifetimes likelihood is minimised with Nelder-Mead instead, with a RuntimeWarning.
    lifetimes changes global warning filters on import; ``warnings.catch_warnings`` confines that to this call.
    """
    summary = np.stack([np.asarray(v, dtype=np.float64).reshape(-1) for v in (x, t_x, T)], axis=1)
    rows, weights = np.unique(summary, axis=0, return_counts=True)
    with warnings.catch_warnings():
        from lifetimes import BetaGeoFitter
        from lifetimes.utils import ConvergenceError

        try:
            with contextlib.redirect_stdout(io.StringIO()):  # lifetimes prints the optimiser state on failure
                p = BetaGeoFitter(penalizer_coef=penalizer).fit(rows[:, 0], rows[:, 1], rows[:, 2],
                                                                weights=weights).params_
            return BGNBDParams(float(p["r"]), float(p["alpha"]), float(p["a"]), float(p["b"]))
        except ConvergenceError:
            from scipy.optimize import minimize

            scale = 1.0 / rows[:, 2].max()  # lifetimes' time scaling: max T = 1
            args = (rows[:, 0].astype(int), rows[:, 1] * scale, rows[:, 2] * scale, weights, penalizer)
            res = minimize(BetaGeoFitter._negative_log_likelihood, np.full(4, 0.1), args=args, method="Nelder-Mead",
                           options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-12})
    if not np.isfinite(res.fun):
        raise RuntimeError(f"BG/NBD fit failed: {res.message}")
    warnings.warn("BG/NBD: lifetimes' BFGS did not converge; Nelder-Mead on the same likelihood used instead",
                  RuntimeWarning, stacklevel=2)
    r, alpha, a, b = np.exp(res.x)
    return BGNBDParams(float(r), float(alpha / scale), float(a), float(b))


def bgnbd_p_alive(params: BGNBDParams | Sequence[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """P(alive at T | x, t_x, T) -> (N,), as lifetimes' conditional_probability_alive (Hardie's note 021):
    1 for x = 0, else 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))."""
    r, alpha, a, b = (float(v) for v in params)
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    log_odds_dead = np.log(a / (b + np.maximum(x, 1) - 1)) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(np.minimum(log_odds_dead, 700.0))), 1.0)


def bgnbd_p_active_within(params: BGNBDParams | Sequence[float], x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                          horizon_days: float) -> np.ndarray:
    """P(at least one purchase in (T, T + H]) = P(alive at T) * (1 - ((alpha + T) / (alpha + T + H))^(r + x)), (N,).

    Exact under BG/NBD: a customer can only drop out right after a purchase, so the first purchase of the window
    happens iff the customer is alive at T and the Poisson process fires in (T, T + H]; given alive and the
    history, lambda ~ Gamma(r + x, alpha + T), and E[1 - exp(-lambda H)] is the bracket.
    """
    r, alpha = float(params[0]), float(params[1])
    T = np.asarray(T, dtype=np.float64)
    fire = -np.expm1((r + np.asarray(x, np.float64)) * np.log((alpha + T) / (alpha + T + horizon_days)))
    return bgnbd_p_alive(params, x, t_x, T) * fire


# ------------------------------------------------------------------------------------------ Platt and baselines
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass(frozen=True)
class Platt:
    """p = sigmoid(slope * score + intercept)."""
    slope: float
    intercept: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * np.asarray(scores, dtype=np.float64) + self.intercept)


def platt(scores: np.ndarray, y: np.ndarray, l2: float = 1e-6, max_iter: int = 100) -> Platt:
    """1-D logistic calibration fitted by damped Newton on mean log-loss + l2/2 * (w^2 + c^2), where w, c are the
    slope and intercept on standardised scores; the tiny L2 keeps them finite on separable or one-class data."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if s.size != y.size or s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"need as many finite scores ({s.size}) as labels ({y.size}), at least one")
    mu, sd = s.mean(), s.std()
    sd = sd if sd > 0 else 1.0
    X = np.stack([(s - mu) / sd, np.ones_like(s)], axis=1)

    def loss(w: np.ndarray) -> float:
        z = X @ w
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w)

    w, f = np.zeros(2), loss(np.zeros(2))
    for _ in range(max_iter):
        q = _sigmoid(X @ w)
        grad = X.T @ (q - y) / s.size + l2 * w
        hess = (X * (q * (1 - q))[:, None]).T @ X / s.size + l2 * np.eye(2)
        step, lr = np.linalg.solve(hess, grad), 1.0
        while lr > 1e-10 and loss(w - lr * step) > f:
            lr *= 0.5
        w, f_old = w - lr * step, f
        f = loss(w)
        if abs(f_old - f) < 1e-14 and np.abs(grad).max() < 1e-10:
            break
    return Platt(slope=float(w[0] / sd), intercept=float(w[1] - w[0] * mu / sd))


def _col(d: dict, *names: str) -> np.ndarray:
    for name in names:
        if name in d:
            return np.asarray(d[name])
    raise KeyError(f"none of {names} in {sorted(d)}")


def decay_baselines(valid: dict, test: dict, horizon_days: float) -> dict[str, dict[str, float]]:
    """{"recency" | "frequency" | "bgnbd": {"auc", "brier"}} on the test users for "active within horizon_days".

    valid / test: dicts of (N,) arrays with rfm_features' keys (x / t_x / T may also be named bg_x / bg_t_x /
    bg_T, as in the data contract) and "label" (1 = an event in (C, C + H]). recency and frequency scores become
    probabilities through Platt scaling fitted on valid. BG/NBD needs no labels: it is fitted on the test users'
    own calibration summaries (their histories up to C), which is how BG/NBD is used, and predicts
    bgnbd_p_active_within for them.
    """
    y_valid, y_test = _col(valid, "label"), _col(test, "label")
    out: dict[str, dict[str, float]] = {}
    for name, key, score in (("recency", "recency_days", recency_score),
                             ("frequency", "frequency_90d", frequency_score)):
        s_valid, s_test = score(_col(valid, key)), score(_col(test, key))
        prob = platt(s_valid, y_valid).predict(s_test)
        out[name] = {"auc": auc(s_test, y_test), "brier": brier(prob, y_test)}
    x, t_x, T = _col(test, "x", "bg_x"), _col(test, "t_x", "bg_t_x"), _col(test, "T", "bg_T")
    with warnings.catch_warnings(record=True) as caught:  # a fallback fit is reported in the result, not printed
        warnings.simplefilter("always", RuntimeWarning)
        params = fit_bgnbd(x, t_x, T)
    prob = bgnbd_p_active_within(params, x, t_x, T, horizon_days)
    out["bgnbd"] = {"auc": auc(prob, y_test), "brier": brier(prob, y_test),
                    "params": dict(zip(("r", "alpha", "a", "b"), map(float, params))),
                    "fit": "nelder-mead" if any("Nelder-Mead" in str(w.message) for w in caught) else "lifetimes"}
    return out
