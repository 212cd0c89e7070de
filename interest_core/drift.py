"""Interest migration: the windows a user's history is cut into and the divergences between them (numpy only).

A drift row (contract.DRIFT_SCHEMA) holds a user's most recent events up to the end of observation E. With the
recent window W (migration.window_days):
  early  = events at or before E - W      ("all but the last W days")
  recent = events in (E - W, E]           ("the last W days")
A user is scored when both windows hold at least one event. Three drift scores compare them: the latent one
(a divergence between the Mult-VAE posteriors of the two bags), the sequence one (cosine distance between the
sequence model's user state after the early events and after all events) and the classical baseline, the
Jensen-Shannon divergence of the two windows' category distributions.

The migration time is the change point of the latent trajectory: every UTC day boundary between two of the user's
events (at most max_candidates of them, evenly spaced) splits the history into a before and an after bag; the
boundary whose two posteriors are furthest apart is the change point, and the estimated migration time is the
midpoint of the gap between the last event before that boundary and the first event after it (the change lies
somewhere in the gap; the midpoint has the smallest worst-case error).

Where the data has planted truth, the users are split in two halves by a fixed hash of the pseudonym
(`fitting_users`): the flag's threshold and the bench's settings are fitted on one half, and precision, recall, F1
and AUC are measured on the other, whose labels never touch a fitted setting.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

DAY_S = 86_400


@dataclass
class Windows:
    """Per scored user (rows with events in both windows): row index, and the early / recent items as lists."""
    rows: np.ndarray  # (U,) index into the drift rows
    early: list[np.ndarray]
    recent: list[np.ndarray]
    split_at: np.ndarray  # (U,) number of events in early: the history's first split_at events


def cut(items: list, ts: list, end_ts: list, window_s: float) -> Windows:
    """Early / recent windows of every drift row (columns as read); rows without events in both are left out."""
    rows, early, recent, split = [], [], [], []
    for i, (it, t, end) in enumerate(zip(items, ts, end_ts)):
        t = np.asarray(t, dtype=np.int64)
        k = int(np.searchsorted(t, end - window_s, side="right"))  # events at or before E - W
        upto = int(np.searchsorted(t, end, side="right"))
        if 0 < k < upto:
            it = np.asarray(it, dtype=np.int64)
            rows.append(i)
            early.append(it[:k])
            recent.append(it[k:upto])
            split.append(k)
    return Windows(np.asarray(rows, dtype=np.int64), early, recent, np.asarray(split, dtype=np.int64))


def observed(rows: dict[str, list], i: int) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps, items) of drift row i (columns as read) up to its end of observation."""
    ts = np.asarray(rows["ts"][i], dtype=np.int64)
    ts = ts[ts <= rows["end_ts"][i]]
    return ts, np.asarray(rows["items"][i][:len(ts)], dtype=np.int64)


FIT_KEY = b"interest-migration-fitting-half"  # keys the hash that splits users (changing it reshuffles the halves)


def fitting_users(user_ids: list[str]) -> np.ndarray:
    """(N,) bool: True for the users whose labels fit settings (the flag's threshold, the bench's sweep), False
    for the held-out users every reported precision, recall, F1 and AUC is measured on. The lowest bit of a keyed
    BLAKE2b hash of the pseudonym: about half each, and a user is on the same side in drift_valid and drift_test,
    in every run, evaluation and export."""
    return np.fromiter((hashlib.blake2b(u.encode(), digest_size=1, key=FIT_KEY).digest()[0] & 1 == 1
                        for u in user_ids), dtype=bool, count=len(user_ids))


def pad_bags(bags: list[np.ndarray], width: int | None = None) -> np.ndarray:
    """Lists of item ids -> (N, width) int64, right-padded with 0 (a bag model ignores order and padding); longer
    bags keep their most recent `width` items."""
    width = width or max((len(b) for b in bags), default=1) or 1
    out = np.zeros((len(bags), width), dtype=np.int64)
    for i, b in enumerate(bags):
        b = b[-width:]
        out[i, :len(b)] = b
    return out


def category_distribution(items: np.ndarray, item_category: np.ndarray) -> dict[int, float]:
    """Share of each known category (id > 0) among a bag's events."""
    cats = item_category[items]
    cats = cats[cats > 0]
    if not len(cats):
        return {}
    keys, counts = np.unique(cats, return_counts=True)
    return dict(zip(keys.tolist(), (counts / counts.sum()).tolist()))


def js_divergence(p: dict[int, float], q: dict[int, float]) -> float:
    """Jensen-Shannon divergence in bits (0 = same distribution, 1 = disjoint); an empty side gives 0."""
    if not p or not q:
        return 0.0
    keys = sorted(set(p) | set(q))
    a = np.array([p.get(k, 0.0) for k in keys])
    b = np.array([q.get(k, 0.0) for k in keys])
    m = (a + b) / 2

    def kl(x):
        nz = x > 0
        return float((x[nz] * np.log2(x[nz] / m[nz])).sum())

    return (kl(a) + kl(b)) / 2


def gaussian_w2(m1: np.ndarray, lv1: np.ndarray, m2: np.ndarray, lv2: np.ndarray) -> np.ndarray:
    """Squared 2-Wasserstein distance between diagonal Gaussians (mean, log-variance), per row."""
    s1, s2 = np.exp(0.5 * lv1), np.exp(0.5 * lv2)
    return ((m1 - m2) ** 2).sum(-1) + ((s1 - s2) ** 2).sum(-1)


def symmetric_kl(m1: np.ndarray, lv1: np.ndarray, m2: np.ndarray, lv2: np.ndarray) -> np.ndarray:
    """KL(p || q) + KL(q || p) between diagonal Gaussians, per row."""
    v1, v2 = np.exp(lv1), np.exp(lv2)
    d2 = (m1 - m2) ** 2
    return 0.5 * ((v1 / v2 + v2 / v1 + d2 / v2 + d2 / v1 - 2).sum(-1))


DIVERGENCES = {"w2": gaussian_w2, "sym_kl": symmetric_kl}


def moments(x: np.ndarray) -> tuple[float, float]:
    """(mean, std) of a population (0, 0 when it is empty)."""
    x = np.asarray(x, dtype=np.float64)
    return (float(x.mean()), float(x.std())) if len(x) else (0.0, 0.0)


def zscore(x: np.ndarray, stats: tuple[float, float] | None = None) -> np.ndarray:
    """(x - mean) / std with the population's own moments, or those given (fitted on another sample); 0 when the
    std is 0."""
    x = np.asarray(x, dtype=np.float64)
    mean, sd = moments(x) if stats is None else stats
    return (x - mean) / sd if sd > 0 else np.zeros_like(x)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cos(a, b) per row; a zero vector is at distance 1 from anything."""
    na, nb = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    return 1.0 - (a * b).sum(-1) / np.maximum(na * nb, 1e-12)


def change_candidates(ts: np.ndarray, max_candidates: int) -> np.ndarray:
    """Split positions k (before = events[:k], after = events[k:]) at every UTC day boundary between two events,
    at most max_candidates of them, evenly spaced; empty when the history spans one day."""
    day = np.asarray(ts, dtype=np.int64) // DAY_S
    ks = np.flatnonzero(day[1:] != day[:-1]) + 1
    if len(ks) > max_candidates:
        ks = ks[np.linspace(0, len(ks) - 1, max_candidates).round().astype(np.int64)]
    return ks


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 of `score > threshold` on labelled users (validation)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    f1 = 2 * tp / np.maximum(tp + fp + y.sum(), 1e-12)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold can only fall between distinct scores
    i = int(np.argmax(np.where(last, f1, -1)))
    below = s[i + 1] if i + 1 < len(s) else s[i] - 1.0
    return float((s[i] + below) / 2), float(f1[i])
