"""Classical baselines of interest decay: recency, frequency (Platt-calibrated on the validation window) and the
BG/NBD model of Fader, Hardie & Lee (2005) through `lifetimes`, plus the RFM / calibration-summary features they
read (the ETL computes the same features in Spark for decay rows; `rfm_features` is their numpy definition).

Histories use the Arrow list layout: flat int64 unix seconds `ts` (E,) and `offsets` (N+1,), user i's events being
ts[offsets[i]:offsets[i+1]]; `flat_histories` builds it from a list of arrays or a pyarrow list array. Numpy only;
`lifetimes` is imported inside `fit_bgnbd` alone.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from interest_core.binary import auc, brier
from interest_core.decay import DAY_S


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
