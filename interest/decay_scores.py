"""The decay head applied to decay rows (contract.DECAY_SCHEMA): per-user survival outputs, the evaluation against
the classical baselines, and what the report plots. Used by `interest evaluate` and `interest export`.

Every output is conditional on what the end of observation already shows: the user has been silent for
a = end_ts - last event, so S(t) below is P(no event in (end, end + t] | none in (last, end]) (interest_core.decay).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from interest_core import decay
from interest_core.batches import read_decay_split
from interest_core.binary import auc, brier, ece, reliability
from interest_core.decay_baselines import decay_baselines
from interest_core.scoring import score_hazards

# Report / export outputs: P(active within H) at these horizons (days), S(t) at decay.DECAY_DAYS.
P_ACTIVE_DAYS = (7, 30, 90)
HISTORY_SEGMENTS = ((1, 3, "1-3 events"), (4, 20, "4-20 events"), (21, None, "21+ events"))


def hazards(model, rows: dict[str, list], max_len: int, batch_size: int) -> np.ndarray:
    """(N, K) hazards of the next event after each row's most recent event."""
    model.eval()
    return score_hazards(model.decay_hazards, rows, max_len=max_len, batch_size=batch_size)


def user_outputs(h: np.ndarray, a: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user outputs: p_active_{7,30,90}d, expected_days_to_next (restricted to 365 days), half_life_days (days
    until the chance of a next event has reached one half; NaN beyond 365 days), survival (N, len(DECAY_DAYS))."""
    out = {f"p_active_{d}d": decay.p_active_within(h, a, d * decay.DAY_S) for d in P_ACTIVE_DAYS}
    out["expected_days_to_next"] = decay.expected_days_to_next(h, a)
    out["half_life_days"] = decay.half_life_days(h, a)
    out["survival"] = decay.residual_survival(h, a, np.asarray(decay.DECAY_DAYS, dtype=np.float64) * decay.DAY_S)
    return out


def _segment_masks(history_len: np.ndarray) -> dict[str, np.ndarray]:
    return {name: (history_len >= lo) & (history_len <= (hi if hi is not None else np.inf))
            for lo, hi, name in HISTORY_SEGMENTS}


def calibrated(model, data_dir: str | Path, horizon_days: float, max_len: int, batch_size: int):
    """(valid rows, test rows, raw test hazards, calibrated test hazards, scale): the hazard scale is fitted on
    decay_valid (labels in the horizon before the cutoff) and applied to the test users (decay.fit_hazard_scale).
    None when the model has no decay head or the data no decay rows."""
    if "decay" not in model.heads:
        return None
    valid, test = read_decay_split(data_dir, "valid"), read_decay_split(data_dir, "test")
    if test is None or valid is None:
        return None
    scale = _fit_scale(model, valid, horizon_days, max_len, batch_size)
    raw = hazards(model, test, max_len, batch_size)
    return valid, test, raw, decay.scale_hazards(raw, scale), scale


def hazard_scale(model, data_dir: str | Path, horizon_days: float, max_len: int, batch_size: int,
                 max_rows: int | None = None) -> float | None:
    """The calibration `calibrated` applies, fitted on the first max_rows decay_valid rows (all when None);
    None without a decay head or decay rows."""
    valid = read_decay_split(data_dir, "valid", max_rows=max_rows) if "decay" in model.heads else None
    return None if valid is None else _fit_scale(model, valid, horizon_days, max_len, batch_size)


def _fit_scale(model, valid: dict, horizon_days: float, max_len: int, batch_size: int) -> float:
    hv = hazards(model, valid, max_len, batch_size)
    return decay.fit_hazard_scale(hv, decay.elapsed_s(valid), horizon_days * decay.DAY_S, np.asarray(valid["label"]))


def decay_metrics(model, data_dir: str | Path, horizon_days: float, max_len: int, batch_size: int) -> dict | None:
    """metrics.json["decay"]: the head's P(active within H) on decay_test (hazards calibrated on decay_valid)
    against the labels, the uncalibrated head, the baselines (recency and frequency calibrated on decay_valid,
    BG/NBD fitted on the test users' histories), a reliability table, survival curves (population and per
    history-length segment) and the half-life distribution."""
    got = calibrated(model, data_dir, horizon_days, max_len, batch_size)
    if got is None:
        return None
    valid, test, raw, h, scale = got
    a = decay.elapsed_s(test)
    y = np.asarray(test["label"], dtype=np.float64)
    p = decay.p_active_within(h, a, horizon_days * decay.DAY_S)
    p_raw = decay.p_active_within(raw, a, horizon_days * decay.DAY_S)
    outs = user_outputs(h, a)
    days = np.asarray(decay.DECAY_DAYS, dtype=np.float64)
    hl = outs["half_life_days"]
    hist_len = np.asarray(test["history_len"])
    rel = reliability(p, y)
    edges = np.geomspace(1 / 24, 365, 13)
    counts, _ = np.histogram(hl[np.isfinite(hl)], bins=edges)
    return {
        "horizon_days": horizon_days, "n_users": int(len(y)), "positive_rate": float(y.mean()) if len(y) else None,
        "auc": auc(p, y), "brier": brier(p, y), "ece": ece(p, y),
        "calibration": {"hazard_scale": scale, "fitted_on": "decay_valid", "n_users": len(valid["label"]),
                        "uncalibrated": {"brier": brier(p_raw, y), "ece": ece(p_raw, y)}},
        "baselines": decay_baselines(valid, test, horizon_days),
        "reliability": {k: np.asarray(v).tolist() for k, v in rel.items()},
        "survival": {"days": days.tolist(), "all": outs["survival"].mean(0).tolist(),
                     "segments": {name: {"n_users": int(m.sum()), "curve": outs["survival"][m].mean(0).tolist()}
                                  for name, m in _segment_masks(hist_len).items() if m.any()},
                     # the share of users with no event within the horizon: the curves' value at H should match
                     "observed_at_horizon": float(1 - y.mean()) if len(y) else None},
        "half_life_days": {"median": float(np.nanmedian(hl)) if np.isfinite(hl).any() else None,
                           "beyond_365_days": float(np.mean(~np.isfinite(hl))) if len(hl) else None,
                           "histogram_edges": edges.tolist(), "histogram_counts": counts.tolist()},
    }
