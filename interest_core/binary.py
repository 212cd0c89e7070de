"""Metrics of binary outcomes with scores or probabilities: AUC, Brier score, reliability table, ECE.

Numpy only (the torch-free planner imports interest_core.decay, which uses these).
"""
from __future__ import annotations

import numpy as np


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Mann-Whitney AUC of binary labels (N,) for scores (N,), ties counted as one half; NaN when only one class
    is present."""
    s = np.asarray(score, dtype=np.float64).reshape(-1)
    lab = np.asarray(label).reshape(-1).astype(bool)
    n_pos = int(lab.sum())
    n_neg = lab.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    mid_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    return float((mid_rank[inv.reshape(-1)][lab].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _py(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    y = np.asarray(y).reshape(-1)
    if p.size != y.size:
        raise ValueError(f"{p.size} probabilities for {y.size} labels")
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probabilities must lie in [0, 1] (and not be NaN)")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    return p, y.astype(np.float64)


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of probabilities p (N,) against binary labels y (N,)."""
    p, y = _py(p, y)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins on [0, 1] (p = 1 falls in the last bin): {"edges" (bins+1,), "count" (bins,) int64,
    "mean_pred" (bins,), "rate" (bins,) observed positive rate}; an empty bin has count 0 and NaN means."""
    p, y = _py(p, y)
    b = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(b, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pred = np.bincount(b, weights=p, minlength=bins) / count
        rate = np.bincount(b, weights=y, minlength=bins) / count
    return {"edges": np.linspace(0.0, 1.0, bins + 1), "count": count.astype(np.int64), "mean_pred": mean_pred,
            "rate": rate}


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over non-empty equal-width bins of count / N * |mean_pred - rate|."""
    r = reliability(p, y, bins)
    n = r["count"].sum()
    if n == 0:
        return float("nan")
    keep = r["count"] > 0
    return float(np.sum(r["count"][keep] / n * np.abs(r["mean_pred"][keep] - r["rate"][keep])))


def roc_points(score: np.ndarray, label: np.ndarray, points: int = 50) -> dict[str, list[float]]:
    """The ROC curve (false / true positive rates, from (0, 0) to (1, 1)) at up to `points` score quantiles."""
    s, y = np.asarray(score, dtype=np.float64).reshape(-1), np.asarray(label).reshape(-1).astype(bool)
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    cuts = np.unique(np.quantile(s, np.linspace(0, 1, points))) if s.size else np.zeros(0)
    fpr = [float(((s >= c) & ~y).sum() / neg) for c in cuts[::-1]]
    tpr = [float(((s >= c) & y).sum() / pos) for c in cuts[::-1]]
    return {"fpr": [0.0, *fpr, 1.0], "tpr": [0.0, *tpr, 1.0]}
