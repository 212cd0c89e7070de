"""Segments: k-means (scikit-learn) over user embeddings, fitted on a sample on the driver and applied to every
user inside the batch export (ProfileSettings.segmenter), then summarised from the written profiles.

k = export.segments, or "auto": the k in 2..export.max_segments with the highest silhouette (cosine-free,
Euclidean, on at most SILHOUETTE_SAMPLE of the fitting users). segments.parquet (SEGMENT_SCHEMA) is computed by
streaming the profiles' parts, so the driver holds one record batch and per-segment counters, never all users.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from interest_core.batches import iter_batches

SILHOUETTE_SAMPLE = 5_000
TOP_CATEGORIES = 5
REPRESENTATIVE_ITEMS = 10
RECOMMENDATIONS_COUNTED = 5  # a user's first recommendations that count towards the segment's representative items

SEGMENT_SCHEMA = pa.schema([
    pa.field("segment", pa.int32()),
    pa.field("users", pa.int64()),
    pa.field("share", pa.float64()),  # of all profiled users
    pa.field("mean_events", pa.float64()),  # events per user in the data set
    pa.field("mean_days_since_last", pa.float64()),  # days from the user's last event to the data's last one
    pa.field("purchase_rate", pa.float64()),  # mean share of buys among a user's last max_len events
    pa.field("mean_p_buy_next", pa.float64()),
    pa.field("mean_churn_risk", pa.float64()),
    pa.field("top_categories", pa.list_(pa.string())),  # by summed interest-tag weight (deepest level)
    pa.field("top_category_shares", pa.list_(pa.float64())),
    pa.field("representative_items", pa.list_(pa.string())),  # most often among members' first recommendations
    pa.field("centroid", pa.list_(pa.float32())),
])


def fit_segments(x: np.ndarray, k: int | str, max_k: int, seed: int) -> tuple[object | None, dict]:
    """A fitted sklearn KMeans over the sample x (N, D) and a record of the choice ({k, silhouette by k});
    (None, ...) when the sample has fewer than 3 users."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    x = np.asarray(x, dtype=np.float64)
    if len(x) < 3:
        return None, {"k": None, "sample_users": int(len(x)), "reason": "fewer than 3 users to fit on"}
    fit = lambda k: KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)  # noqa: E731
    record: dict = {"sample_users": int(len(x)), "silhouette": {}}
    ks = range(2, min(max_k, len(x) - 1) + 1) if k == "auto" else [min(int(k), len(x))]
    best = None
    for kk in ks:
        km = fit(kk)
        sil = (float(silhouette_score(x, km.labels_, sample_size=min(SILHOUETTE_SAMPLE, len(x)), random_state=seed))
               if 1 < len(set(km.labels_.tolist())) < len(x) else None)
        record["silhouette"][str(kk)] = sil
        if best is None or (sil is not None and (best[1] is None or sil > best[1])):
            best = (km, sil)
    record["k"] = int(best[0].n_clusters)
    record["chosen_by"] = "silhouette" if k == "auto" else "config"
    return best[0], record


def summarize(profiles_dir: Path, centroids: np.ndarray, data_last_ts: int) -> pa.Table:
    """segments.parquet from the written profiles (streamed one record batch at a time)."""
    k = len(centroids)
    users = np.zeros(k, np.int64)
    sums = {name: np.zeros(k) for name in ("events", "days", "buy", "p_buy", "churn")}
    counts = {name: np.zeros(k, np.int64) for name in ("buy", "p_buy", "churn")}
    cats: list[Counter] = [Counter() for _ in range(k)]
    recs: list[Counter] = [Counter() for _ in range(k)]
    cols = ["segment", "n_events", "last_event_ts", "buy_share", "p_buy_next", "churn_risk", "interest_tags",
            "interest_weights", "top_item_ids"]
    for rb in iter_batches(sorted(str(f) for f in Path(profiles_dir).glob("*.parquet")), cols):
        b = rb.to_pydict()
        for i, s in enumerate(b["segment"]):
            if s is None:
                continue
            users[s] += 1
            sums["events"][s] += b["n_events"][i]
            sums["days"][s] += (data_last_ts - b["last_event_ts"][i]) / 86400
            for name, col in (("buy", "buy_share"), ("p_buy", "p_buy_next"), ("churn", "churn_risk")):
                if b[col][i] is not None:
                    sums[name][s] += b[col][i]
                    counts[name][s] += 1
            cats[s].update(dict(zip(b["interest_tags"][i], b["interest_weights"][i])))
            recs[s].update(b["top_item_ids"][i][:RECOMMENDATIONS_COUNTED])
    total = max(int(users.sum()), 1)
    mean = lambda name, n: [float(v / c) if c else None for v, c in zip(sums[name], n)]  # noqa: E731
    top = [c.most_common(TOP_CATEGORIES) for c in cats]
    return pa.table({
        "segment": pa.array(np.arange(k), pa.int32()), "users": users, "share": users / total,
        "mean_events": mean("events", users), "mean_days_since_last": mean("days", users),
        "purchase_rate": mean("buy", counts["buy"]), "mean_p_buy_next": mean("p_buy", counts["p_buy"]),
        "mean_churn_risk": mean("churn", counts["churn"]),
        "top_categories": [[c for c, _ in t] for t in top],
        "top_category_shares": [[w / (sum(cats[s].values()) or 1) for _, w in t] for s, t in enumerate(top)],
        "representative_items": [[i for i, _ in c.most_common(REPRESENTATIVE_ITEMS)] for c in recs],
        "centroid": [list(map(float, c)) for c in centroids],
    }, schema=SEGMENT_SCHEMA)


def embedding_map(x: np.ndarray, labels: np.ndarray, seed: int, max_points: int = 2_000) -> dict:
    """A 2-D PCA projection of (a sample of) the fitting users, with their segments: the report's map."""
    from sklearn.decomposition import PCA

    if len(x) < 2:
        return {"x": [], "y": [], "segment": [], "explained_variance": []}
    idx = np.random.default_rng(seed).permutation(len(x))[:max_points]
    pca = PCA(n_components=2, random_state=seed).fit(x)
    xy = pca.transform(x[idx])
    return {"x": xy[:, 0].round(4).tolist(), "y": xy[:, 1].round(4).tolist(), "segment": labels[idx].tolist(),
            "explained_variance": pca.explained_variance_ratio_.round(4).tolist()}
