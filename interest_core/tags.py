"""Interest tags: a user's categories at every level of the catalog, weighted by recency and by what the model
predicts, and their precision against known interests. Pure numpy; used by `interest evaluate` and `interest export`.

Levels come from the category path ("Electronics/Phones/Cases": level 1 "Electronics", level 2
"Electronics/Phones", level 3 the whole path); an item whose path is shorter than a level takes its whole path
there, so the deepest level is always the item's own category. Tag id 0 = unknown category.

Weight of tag c for a user, at one level:
    w(c) = (1 - beta) * sum_e 0.5 ** ((t_last - t_e) / half_life) [tag(e) = c] / sum_e 0.5 ** (...) [tag(e) > 0]
         +      beta  * P(the user's next item is in c)
over the history's events e with a known category (t_last: the user's most recent event); the second term is the
model's next-item distribution (softmax over the catalogue) summed by category, i.e. the categories of its top
predicted items, weighted by how likely each is. beta = export.tag_predicted_weight. Ties rank by tag id.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEP = "/"


@dataclass(frozen=True)
class TagLevels:
    names: list[list[str]]
    """Per level, tag id -> name; id 0 = unknown ("")."""
    item_tag: np.ndarray
    """(levels, num_items) int64: the tag id of every item id at every level, 0 = unknown."""

    @property
    def depth(self) -> int:
        return len(self.names)


def tag_levels(item_idx: np.ndarray, category: list[str | None], num_items: int, sep: str = SEP) -> TagLevels:
    """The catalog's levels from items' category paths (items table columns item_idx, category)."""
    paths = [c.split(sep) if c else [] for c in category]
    depth = max((len(p) for p in paths), default=0)
    names: list[list[str]] = []
    item_tag = np.zeros((max(depth, 1), num_items), dtype=np.int64)
    for level in range(depth):
        ids: dict[str, int] = {}
        tags = np.zeros(len(paths), dtype=np.int64)
        for r, p in enumerate(paths):
            if p:
                tags[r] = ids.setdefault(sep.join(p[: level + 1]), len(ids) + 1)
        item_tag[level, np.asarray(item_idx, dtype=np.int64)] = tags
        names.append([""] + list(ids))
    return TagLevels(names=names or [[""]], item_tag=item_tag)


def user_tags(items: np.ndarray, ts: np.ndarray, half_life_s: np.ndarray, item_tag: np.ndarray,
              predicted: tuple[np.ndarray, np.ndarray] | None, beta: float, top: int) -> tuple[np.ndarray, np.ndarray]:
    """One level's top tags per user (module docstring).

    items, ts (B, L): the histories, 0 = padding; half_life_s (B,) seconds (inf = no decay); item_tag (num_items,)
    this level's tag per item; predicted: (tag ids (B, M), probabilities (B, M)) of the model's most likely
    next-item tags (category_mass), or None (beta is then ignored). Returns (tags (B, top) int64, -1 where a user
    has fewer, weights (B, top) float64)."""
    B = len(items)
    n_tags = int(item_tag.max()) + 1
    valid = (items > 0)
    tag = item_tag[items] * valid  # (B, L)
    age = (ts.max(axis=1, initial=0, where=valid)[:, None] - ts) / half_life_s[:, None]  # (B, L)
    w = np.where(tag > 0, np.exp2(-np.nan_to_num(age, nan=0.0)), 0.0)  # (B, L)
    total = w.sum(axis=1, keepdims=True)
    w = (1 - beta if predicted is not None else 1.0) * np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    rows, tags, weights = np.repeat(np.arange(B), items.shape[1]), tag.ravel(), w.ravel()
    if predicted is not None and predicted[0].size:
        p_tag, p_mass = predicted  # (B, M) each
        rows = np.concatenate([rows, np.repeat(np.arange(B), p_tag.shape[1])])
        tags = np.concatenate([tags, p_tag.ravel()])
        weights = np.concatenate([weights, (beta * p_mass * (p_tag > 0)).ravel()])
    keep = (tags > 0) & (weights > 0)
    keys, inverse = np.unique(rows[keep] * n_tags + tags[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=weights[keep])
    row, tg = keys // n_tags, keys % n_tags
    order = np.lexsort((tg, -sums, row))
    row, tg, sums = row[order], tg[order], sums[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within the user's tags
    sel = rank < top
    out_t = np.full((B, top), -1, dtype=np.int64)
    out_w = np.zeros((B, top), dtype=np.float64)
    out_t[row[sel], rank[sel]], out_w[row[sel], rank[sel]] = tg[sel], sums[sel]
    return out_t, out_w


def category_mass(probs, item_tag, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The model's next-item distribution summed by tag: probs (B, V) torch tensor (softmax over item ids),
    item_tag (V,) torch int64 -> the top tags (B, M) and their probabilities (B, M), M = min(top, tags), numpy."""
    import torch

    mass = torch.zeros(probs.shape[0], int(item_tag.max()) + 1, dtype=probs.dtype).index_add_(1, item_tag, probs)
    mass[:, 0] = 0  # unknown category
    v, i = mass.topk(min(top, mass.shape[1]), dim=1)
    return i.numpy(), v.double().numpy()


def popular_tags(items: np.ndarray, item_tag: np.ndarray, top: int) -> np.ndarray:
    """(top,) the tags with the most events over all histories (the trivial baseline: everyone gets these)."""
    counts = np.bincount(item_tag[items[items > 0]], minlength=int(item_tag.max()) + 1)
    counts[0] = 0
    return np.lexsort((np.arange(len(counts)), -counts))[:top]


def precision_at_k(tags: np.ndarray, truth: list[set[int]], k_max: int = 3) -> tuple[float | None, int]:
    """Mean over users with known interests of |top-k tags ∩ truth| / k, k = min(k_max, |truth|); (value, users).

    tags (B, >= k_max) ranked tag ids (-1 = none, counted as a miss)."""
    scores = [len(set(t[: min(k_max, len(s))].tolist()) & s) / min(k_max, len(s))
              for t, s in zip(tags, truth) if s]
    return (float(np.mean(scores)) if scores else None), len(scores)
