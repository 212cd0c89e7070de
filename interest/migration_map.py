"""A 2-D map of the latent interest space for the report: where users sit before and after, and the paths of a few
migrators through it (metrics.json["migration"]["latent_map"]).

The plane is the first two principal components (scikit-learn PCA) of the Mult-VAE posterior means of a sample of
users' early and recent bags. A migrator's trajectory is the posterior mean of its bag in windows of
migration.window_days sliding back from the end of observation by a third of that, oldest first; the flagged users
with the largest drift are drawn (true positives first when the data has truth).
"""
from __future__ import annotations

import numpy as np

from interest_core import drift

MAP_USERS = 600  # users whose early and recent posteriors fit the plane and are drawn
TRAJECTORIES = 6  # migrators drawn
MAX_POINTS = 24  # windows per trajectory (the most recent ones)


def window_bags(ts: np.ndarray, items: np.ndarray, end_ts: int, window_s: float, step_s: float
                ) -> tuple[list[np.ndarray], list[float]]:
    """Bags of the sliding windows (end - window, end] with end = end_ts, end_ts - step, ..., oldest first, and the
    days from each window's end to end_ts; windows without events are left out."""
    bags, days = [], []
    end = float(end_ts)
    while end > ts[0] and len(bags) < MAX_POINTS:
        lo, hi = np.searchsorted(ts, end - window_s, side="right"), np.searchsorted(ts, end, side="right")
        if hi > lo:
            bags.append(items[lo:hi])
            days.append((end_ts - end) / drift.DAY_S)
        end -= step_s
    return bags[::-1], days[::-1]


def latent_map(scorer, rows: dict[str, list], scored: dict, flags: np.ndarray, positives: np.ndarray | None,
               truth: dict | None, seed: int) -> dict | None:
    """metrics.json["migration"]["latent_map"] (module docstring); None without a latent model or scored users.
    scorer: a DriftScorer; scored: its score(rows); flags / positives: per scored user (positives None: no truth)."""
    from sklearn.decomposition import PCA

    w = scored["windows"]
    if scorer.latent is None or len(w.rows) < 3:
        return None
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(len(w.rows), min(MAP_USERS, len(w.rows)), replace=False))
    early, _ = scorer.posteriors([w.early[j] for j in sample])
    recent, _ = scorer.posteriors([w.recent[j] for j in sample])
    pca = PCA(n_components=2, random_state=seed).fit(np.vstack([early, recent]))
    strength = np.where(flags, scored["latent"], -np.inf)
    if positives is not None:
        strength = strength + np.where(positives == 1, 1e6, 0.0)  # true positives first
    chosen = [j for j in np.argsort(-strength, kind="stable")[:TRAJECTORIES] if flags[j]]
    window_s = scorer.cfg.window_days * drift.DAY_S
    estimated = scorer.migration_times(rows, w.rows[chosen]) if chosen else np.zeros(0, np.int64)
    paths = []
    for j, est in zip(chosen, estimated):
        i = w.rows[j]
        ts, items = drift.observed(rows, i)
        bags, days = window_bags(ts, items, rows["end_ts"][i], window_s, window_s / 3)
        if not bags:
            continue
        means, _ = scorer.posteriors(bags)
        end = rows["end_ts"][i]
        planted = truth.get(rows["user_id"][i]) if truth is not None else None
        paths.append({"points": np.round(pca.transform(means), 4).tolist(), "days_before_end": days,
                      "estimated_days_before_end": float((end - est) / drift.DAY_S) if est >= 0 else None,
                      "planted_days_before_end": float((end - planted) / drift.DAY_S) if planted else None})
    return {"early": np.round(pca.transform(early), 4).tolist(), "recent": np.round(pca.transform(recent), 4).tolist(),
            "explained_variance": pca.explained_variance_ratio_.round(4).tolist(), "window_days": scorer.cfg.window_days,
            "step_days": scorer.cfg.window_days / 3, "trajectories": paths}
